// Package bench compares callready's callable list with what a CRM
// developer would otherwise write: a github.com/jellydator/ttlcache/v3
// cache, a mutex-protected map scanned per page, and an indexed SQL table
// queried per page view (SQLite and PostgreSQL); and callready itself as
// it was before the event ledger (internal/preledger, the baseline of the
// ledger's cost). It is its own module so
// the comparison libraries and drivers never become dependencies of
// callready.
//
// Every alternative implements Impl over the same Workload. The go test
// benchmarks (bench_test.go) give means; the program in cmd/callbench
// measures per-call latencies (median, p99) over repeated runs and prints
// the tables of BENCHMARKS.md.
package bench
