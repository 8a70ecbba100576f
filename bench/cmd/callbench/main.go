// Command callbench measures callready against the alternatives (see
// package bench) and prints Markdown tables: per-call latency medians and
// p99 of callable pages and records, the expiry of every due grant with
// events delivered, heap per grant, and webhook ingest over loopback HTTP
// on store/sql. Every figure is the median over -runs runs.
//
//	go run ./cmd/callbench                      # full: 10k, 100k, 1M, 5 runs
//	go run ./cmd/callbench -short               # seconds, tiny sizes, 1 run
//
// PostgreSQL parts run when CALLREADY_TEST_POSTGRES is set and are skipped
// with a message otherwise.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/bench"
)

func main() {
	var (
		short        = flag.Bool("short", false, "tiny sizes, one run, short budgets: a smoke test")
		sizesFlag    = flag.String("sizes", "10000,100000,1000000", "active grants per workload, comma-separated")
		runs         = flag.Int("runs", 5, "runs; every figure is the median over runs")
		kindsFlag    = flag.String("kinds", strings.Join(bench.Kinds(), ","), "alternatives to measure")
		minCalls     = flag.Int("min-calls", 5, "page and record calls per measurement, at least")
		maxCalls     = flag.Int("max-calls", 20000, "page and record calls per measurement, at most")
		budget       = flag.Duration("budget", 2*time.Second, "time per page or record measurement once min-calls are done")
		ingest       = flag.Bool("ingest", true, "measure webhook ingest on store/sql")
		ingestOnly   = flag.Bool("ingest-only", false, "measure webhook ingest only")
		ingestDur    = flag.Duration("ingest-duration", 5*time.Second, "length of one ingest run")
		ingestCli    = flag.Int("ingest-clients", 32, "concurrent HTTP clients of the throughput run")
		out          = flag.String("out", "", "also write the Markdown report to this file")
		jsonOut      = flag.String("json", "", "write every raw result to this file")
		cpuProfile   = flag.String("cpuprofile", "", "write a CPU profile of the whole run")
		workDir      = flag.String("dir", "", "directory for SQLite files (default: a temporary one)")
		ledgerFlag   = flag.String("ledger-sizes", "", "grants recorded into callready on store/sql to size the ledger, once (default: -sizes; \"none\" skips)")
		footprint    = flag.Bool("footprint", true, "callready: a second load per size and run to split the heap into index, store and ledger")
		skipPostgres = bench.PostgresDSN() == ""
	)
	flag.Parse()
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		log.Fatal(err)
	}
	kinds := strings.Split(*kindsFlag, ",")
	o := bench.Options{MinCalls: *minCalls, MaxCalls: *maxCalls, Budget: *budget, DSN: bench.PostgresDSN(), SkipFootprint: !*footprint}
	var ledgerSizes []int
	switch *ledgerFlag {
	case "none":
	case "":
		ledgerSizes = sizes
	default:
		if ledgerSizes, err = parseSizes(*ledgerFlag); err != nil {
			log.Fatal(err)
		}
	}
	if *short {
		sizes, *runs = []int{1000}, 1
		ledgerSizes = []int{1000}
		o.MinCalls, o.MaxCalls, o.Budget = 5, 200, 50*time.Millisecond
		*ingestDur = 300 * time.Millisecond
		*ingestCli = 4
	}
	if *ingestOnly {
		kinds, *ingest, ledgerSizes = nil, true, nil
	}
	if skipPostgres {
		fmt.Fprintf(os.Stderr, "callbench: PostgreSQL skipped: %s is not set (eval \"$(../scripts/pg.sh start /tmp/benchpg)\")\n", bench.EnvPostgres)
		kinds = slices.DeleteFunc(kinds, bench.NeedsPostgres)
	}
	dir := *workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "callbench"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	o.Dir = dir
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()

	started := time.Now()
	results := map[string][]bench.Result{} // kind/n → one per run
	type ingestKey struct {
		backend string
		clients int
	}
	ingests := map[ingestKey][]bench.IngestResult{}
	backends := []string{"sqlite"}
	if !skipPostgres {
		backends = append(backends, "postgres")
	}
	for run := 1; run <= *runs; run++ {
		for _, n := range sizes {
			for _, kind := range kinds {
				t := time.Now()
				r, err := bench.Measure(ctx, kind, bench.Workload{N: n}, o)
				if err != nil {
					log.Fatalf("run %d, n=%d: %v", run, n, err)
				}
				key := kind + "/" + strconv.Itoa(n)
				results[key] = append(results[key], r)
				fmt.Fprintf(os.Stderr, "run %d n=%d %-12s page p50 %-9v p99 %-9v (%d)  new slice %-9v  rotating %-9v  deep %-9v p99 %-9v (%d)  record %-9v  re-grant %-9v  expire %-12v  %6.1f B/grant  [%v]\n",
					run, n, kind, r.PageMedian, r.PageP99, r.PageCalls, r.NewSliceMedian, r.FirstRotMedian, r.DeepMedian, r.DeepP99, r.DeepCalls,
					r.RecordMedian, r.RegrantMedian, r.Expire, r.BytesPerGrant, time.Since(t).Round(time.Millisecond))
				if f := r.Footprint; f.LedgerEvents > 0 {
					fmt.Fprintf(os.Stderr, "run %d n=%d %-12s footprint: total %.1f B/grant = index %.1f + store %.1f; ledger %.1f B/event (%d events)\n",
						run, n, kind, f.TotalBytesPerGrant, f.IndexBytesPerGrant, f.StoreBytesPerGrant, f.LedgerBytesPerEvent, f.LedgerEvents)
				}
			}
		}
		if *ingest {
			for _, backend := range backends {
				for _, clients := range []int{*ingestCli, 1} {
					r, err := bench.RunIngest(ctx, bench.IngestConfig{Backend: backend, Dir: dir, DSN: bench.PostgresDSN(), Clients: clients, Duration: *ingestDur})
					if err != nil {
						log.Fatalf("run %d, ingest %s: %v", run, backend, err)
					}
					k := ingestKey{backend, clients}
					ingests[k] = append(ingests[k], r)
					slices.Sort(r.Notify)
					fmt.Fprintf(os.Stderr, "run %d ingest %-8s clients=%-3d %8.0f events/s  (%d ok)  to subscriber p50 %v\n",
						run, backend, clients, r.EventsPerSecond(), r.OK, bench.Percentile(r.Notify, 0.5))
				}
			}
		}
	}

	var ledgers []bench.LedgerFootprint
	for _, n := range ledgerSizes {
		for _, backend := range backends {
			f, err := bench.MeasureSQLLedger(ctx, backend, dir, bench.PostgresDSN(), bench.Workload{N: n})
			if err != nil {
				log.Fatalf("ledger size, %s n=%d: %v", backend, n, err)
			}
			ledgers = append(ledgers, f)
			fmt.Fprintf(os.Stderr, "ledger %-8s n=%d: %d events, ledger %d B = %.1f B/event; all tables %.1f B/grant  [load %v]\n",
				backend, n, f.Events, f.LedgerBytes, f.BytesPerEvent, f.AllPerGrant, f.Load.Round(time.Millisecond))
		}
	}

	var w strings.Builder
	report(&w, sizes, kinds, results, *runs)
	baselineCriterion(&w, sizes, kinds, results)
	footprints(&w, sizes, results, ledgers, *runs)
	if *ingest {
		fmt.Fprintf(&w, "\n### Webhook ingest on store/sql (signed POST → Record → 200, loopback HTTP)\n\n")
		fmt.Fprintf(&w, "One permission reply (one grant, new contact) per request; the tracker on store/sql; one subscriber. Median over %d runs of %v each.\n\n", *runs, *ingestDur)
		fmt.Fprintf(&w, "| backend | clients | events/s | POST→200 p50 | POST→200 p99 | POST start→subscriber p50 | p99 |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, backend := range backends {
			for _, clients := range []int{*ingestCli, 1} {
				rs := ingests[ingestKey{backend, clients}]
				var eps []float64
				var h50, h99, n50, n99 []time.Duration
				for _, r := range rs {
					eps = append(eps, r.EventsPerSecond())
					slices.Sort(r.HTTP)
					slices.Sort(r.Notify)
					h50 = append(h50, bench.Percentile(r.HTTP, 0.5))
					h99 = append(h99, bench.Percentile(r.HTTP, 0.99))
					n50 = append(n50, bench.Percentile(r.Notify, 0.5))
					n99 = append(n99, bench.Percentile(r.Notify, 0.99))
				}
				fmt.Fprintf(&w, "| %s | %d | %.0f | %s | %s | %s | %s |\n", backend, clients, medianF(eps),
					dur(medianD(h50)), dur(medianD(h99)), dur(medianD(n50)), dur(medianD(n99)))
			}
		}
	}
	fmt.Fprintf(&w, "\nTotal wall time %v.\n", time.Since(started).Round(time.Second))
	fmt.Print(w.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(w.String()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"results": results, "ledger": ledgers, "ingest": fmtIngest(ingests)}, "", " ")
		if err != nil {
			log.Fatalf("-json: %v", err)
		}
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func fmtIngest[K comparable](m map[K][]bench.IngestResult) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for k, rs := range m {
		for _, r := range rs {
			key := fmt.Sprint(k)
			out[key] = append(out[key], map[string]any{"sent": r.Sent, "ok": r.OK, "elapsed_ns": r.Elapsed, "events_per_s": r.EventsPerSecond(), "lagged": r.Lagged})
		}
	}
	return out
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func medianD(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func ratio(x, base float64) string {
	if base <= 0 || math.IsNaN(x) || math.IsNaN(base) || x <= 0 {
		return "–"
	}
	r := x / base
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

type agg struct {
	pageP50, pageP99, newSliceP50, newSliceP99, rotP50, deepP50, deepP99, recP50, recP99, regP50, regP99, expire, load time.Duration
	bytes                                                                                                              float64
	calls, deepCalls                                                                                                   int
}

func aggregate(rs []bench.Result) agg {
	var a agg
	col := func(f func(bench.Result) time.Duration) time.Duration {
		var xs []time.Duration
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return medianD(xs)
	}
	a.pageP50 = col(func(r bench.Result) time.Duration { return r.PageMedian })
	a.pageP99 = col(func(r bench.Result) time.Duration { return r.PageP99 })
	a.newSliceP50 = col(func(r bench.Result) time.Duration { return r.NewSliceMedian })
	a.newSliceP99 = col(func(r bench.Result) time.Duration { return r.NewSliceP99 })
	a.rotP50 = col(func(r bench.Result) time.Duration { return r.FirstRotMedian })
	a.deepP50 = col(func(r bench.Result) time.Duration { return r.DeepMedian })
	a.deepP99 = col(func(r bench.Result) time.Duration { return r.DeepP99 })
	a.regP50 = col(func(r bench.Result) time.Duration { return r.RegrantMedian })
	a.regP99 = col(func(r bench.Result) time.Duration { return r.RegrantP99 })
	a.recP50 = col(func(r bench.Result) time.Duration { return r.RecordMedian })
	a.recP99 = col(func(r bench.Result) time.Duration { return r.RecordP99 })
	a.expire = col(func(r bench.Result) time.Duration { return r.Expire })
	a.load = col(func(r bench.Result) time.Duration { return r.Load })
	var bs []float64
	calls, deep := 0, 0
	for _, r := range rs {
		bs = append(bs, float64(r.BytesPerGrant))
		calls += r.PageCalls
		deep += r.DeepCalls
	}
	a.bytes = medianF(bs)
	if len(rs) > 0 {
		a.calls, a.deepCalls = calls/len(rs), deep/len(rs)
	}
	return a
}

func report(w io.Writer, sizes []int, kinds []string, results map[string][]bench.Result, runs int) {
	if len(kinds) == 0 {
		return
	}
	fmt.Fprintf(w, "### Side by side (median of %d runs)\n\n", runs)
	fmt.Fprintf(w, "Pages of %d callable contacts, soonest expiry first: *first (hot)* = the first page of the hot channel (80%% of the grants), as issue 8 measured; *first, rotating* = first pages, the 5 channels in turn; *at cursor* = the page after a pseudo-random page boundary of the listing (%d distinct cursors cycled), the 5 channels in turn. p50/p99 over the calls of one run (calls/run shown). *New* = one grant of a new contact on the 5 channels in turn; *re-grant* = one grant extending a loaded contact's; both with pseudo-random expiries among the loaded ones. Expire = every grant due (loaded and recorded), each expiry delivered to a subscriber. Memory = HeapInuse delta after GC / grants (in-process alternatives only; callready = tracker + memory store).\n\n", bench.PageSize, bench.DeepPageCount)
	fmt.Fprintf(w, "| grants | alternative | first (hot) p50 | p99 | calls/run | first, rotating p50 | at cursor p50 | p99 | calls/run | new p50 | p99 | re-grant p50 | p99 | expire all + events | memory/grant | load |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		for _, kind := range kinds {
			a := aggregate(results[kind+"/"+strconv.Itoa(n)])
			mem := "–"
			if !math.IsNaN(a.bytes) {
				mem = fmt.Sprintf("%.0f B", a.bytes)
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %d | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", n, kind,
				dur(a.pageP50), dur(a.pageP99), a.calls, dur(a.rotP50), dur(a.deepP50), dur(a.deepP99), a.deepCalls,
				dur(a.recP50), dur(a.recP99), dur(a.regP50), dur(a.regP99), dur(a.expire), mem, dur(a.load))
		}
	}
	for _, n := range sizes {
		for _, kind := range kinds {
			if a := aggregate(results[kind+"/"+strconv.Itoa(n)]); a.newSliceP50 > 0 {
				fmt.Fprintf(w, "\n%s at %d: the first page (hot) above reuses its buffer (AppendEligible); into a new slice per page (Eligible) it is p50 %s, p99 %s.\n", kind, n, dur(a.newSliceP50), dur(a.newSliceP99))
			}
		}
	}
	if !slices.Contains(kinds, bench.KindCallready) {
		return
	}
	fmt.Fprintf(w, "\n### Ratios (alternative ÷ callready: above 1× callready is faster or smaller)\n\n")
	var others []string
	for _, k := range kinds {
		if k != bench.KindCallready {
			others = append(others, k)
		}
	}
	fmt.Fprintf(w, "| grants | metric |")
	for _, k := range others {
		fmt.Fprintf(w, " %s |", k)
	}
	fmt.Fprintf(w, "\n|---:|---|%s\n", strings.Repeat("---:|", len(others)))
	for _, n := range sizes {
		cr := aggregate(results[bench.KindCallready+"/"+strconv.Itoa(n)])
		rows := []struct {
			name string
			f    func(agg) float64
		}{
			{"page first (hot) p50", func(a agg) float64 { return float64(a.pageP50) }},
			{"page first (hot) p99", func(a agg) float64 { return float64(a.pageP99) }},
			{"page first, rotating p50", func(a agg) float64 { return float64(a.rotP50) }},
			{"page at cursor p50", func(a agg) float64 { return float64(a.deepP50) }},
			{"page at cursor p99", func(a agg) float64 { return float64(a.deepP99) }},
			{"record new p50", func(a agg) float64 { return float64(a.recP50) }},
			{"re-grant p50", func(a agg) float64 { return float64(a.regP50) }},
			{"expire all", func(a agg) float64 { return float64(a.expire) }},
			{"memory/grant", func(a agg) float64 { return a.bytes }},
		}
		for _, row := range rows {
			fmt.Fprintf(w, "| %d | %s |", n, row.name)
			for _, k := range others {
				fmt.Fprintf(w, " %s |", ratio(row.f(aggregate(results[k+"/"+strconv.Itoa(n)])), row.f(cr)))
			}
			fmt.Fprintln(w)
		}
	}
}

// baselineCriterion writes issue 12's criterion: today's callready against
// callready before the ledger, both measured in this run. A ratio to any
// alternative fell by exactly before ÷ now, so "not more than 20% worse
// than the alternatives' ratios before" is before ÷ now ≥ 0.8.
func baselineCriterion(w io.Writer, sizes []int, kinds []string, results map[string][]bench.Result) {
	if !slices.Contains(kinds, bench.KindCallready) || !slices.Contains(kinds, bench.KindPreLedger) {
		return
	}
	fmt.Fprintf(w, "\n### Issue 12: callready against itself before the ledger (%s), same run\n\n", bench.KindPreLedger)
	fmt.Fprintf(w, "Every ratio of callready to an alternative changed by *before ÷ now*; the criterion is that it stays ≥ 0.8.\n\n")
	fmt.Fprintf(w, "| grants | metric | before the ledger | now | before ÷ now | ≥ 0.8 |\n|---:|---|---:|---:|---:|---|\n")
	for _, n := range sizes {
		now := aggregate(results[bench.KindCallready+"/"+strconv.Itoa(n)])
		before := aggregate(results[bench.KindPreLedger+"/"+strconv.Itoa(n)])
		for _, m := range []struct {
			name string
			f    func(agg) time.Duration
		}{
			{"page first (hot) p50", func(a agg) time.Duration { return a.pageP50 }},
			{"page first, rotating p50", func(a agg) time.Duration { return a.rotP50 }},
			{"page at cursor p50", func(a agg) time.Duration { return a.deepP50 }},
			{"record new p50", func(a agg) time.Duration { return a.recP50 }},
			{"re-grant p50", func(a agg) time.Duration { return a.regP50 }},
		} {
			b, c := m.f(before), m.f(now)
			verdict := "**no**"
			if float64(b) >= 0.8*float64(c) {
				verdict = "yes"
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", n, m.name, dur(b), dur(c), ratio(float64(b), float64(c)), verdict)
		}
	}
}

// footprints writes callready's heap split and the ledger's size per store.
func footprints(w io.Writer, sizes []int, results map[string][]bench.Result, ledgers []bench.LedgerFootprint, runs int) {
	rows := 0
	for _, n := range sizes {
		for _, r := range results[bench.KindCallready+"/"+strconv.Itoa(n)] {
			if r.Footprint.LedgerEvents > 0 {
				rows++
			}
		}
	}
	if rows > 0 {
		fmt.Fprintf(w, "\n### callready's memory: index, store, ledger (median of %d runs)\n\n", runs)
		fmt.Fprintf(w, "A second load of the same workload per run: *total* = tracker + memory store per grant; *index* = what Close of the tracker frees (the store kept); *store* = what stays (pair states, change log, ledger); *ledger* = a memory store holding only a copy of that store's ledger events (strings cloned, so the contact is counted here too), per event.\n\n")
		fmt.Fprintf(w, "| grants | total/grant | index/grant | store/grant | ledger/event | events/grant |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, n := range sizes {
			var tot, idx, st, led, ev []float64
			for _, r := range results[bench.KindCallready+"/"+strconv.Itoa(n)] {
				f := r.Footprint
				if f.LedgerEvents == 0 {
					continue
				}
				tot = append(tot, float64(f.TotalBytesPerGrant))
				idx = append(idx, float64(f.IndexBytesPerGrant))
				st = append(st, float64(f.StoreBytesPerGrant))
				led = append(led, float64(f.LedgerBytesPerEvent))
				ev = append(ev, float64(f.LedgerEvents)/float64(n))
			}
			if len(tot) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %d | %.0f B | %.0f B | %.0f B | %.0f B | %.2f |\n", n, medianF(tot), medianF(idx), medianF(st), medianF(led), medianF(ev))
		}
	}
	if len(ledgers) > 0 {
		fmt.Fprintf(w, "\n### The ledger on store/sql (callready tracker, grants recorded in batches of 512; measured once)\n\n")
		fmt.Fprintf(w, "SQLite: `dbstat` pages of the ledger table and its indexes; PostgreSQL: `pg_total_relation_size` (table, indexes, TOAST) after `VACUUM`. *All tables* = every callready table and index (ledger, pairs, change log, meta) per grant.\n\n")
		fmt.Fprintf(w, "| store | grants | ledger events | ledger bytes | bytes/event | all tables/grant | load |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, f := range ledgers {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %.0f B | %.0f B | %s |\n", f.Backend, f.N, f.Events, f.LedgerBytes, f.BytesPerEvent, f.AllPerGrant, dur(f.Load))
		}
	}
}
