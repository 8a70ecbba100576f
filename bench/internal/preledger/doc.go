// Package preledger holds, under permission, store and store/memory,
// callready's tracker as it was at commit fee3727, the last before the
// event ledger, with only its import paths changed. It is frozen: the
// benchmarks measure it beside today's tracker (bench.PreLedger) so that
// the ledger's cost is a ratio measured in one run on one machine. Do not
// fix or improve it; it is not part of callready's API.
package preledger
