package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"
)

// The go test benchmarks report means (ns/op). Medians and p99 per call
// come from the program in cmd/callbench. With -short every size is tiny
// so CI runs the whole harness in seconds.

func sizes() []int {
	if testing.Short() {
		return []int{1000}
	}
	return []int{10_000, 100_000, 1_000_000}
}

// loaded returns kind loaded with n grants, or skips when the kind is not
// available here (PostgreSQL without CALLREADY_TEST_POSTGRES).
func loaded(b *testing.B, kind string, n int, forExpiry bool) Impl {
	b.Helper()
	if NeedsPostgres(kind) && PostgresDSN() == "" {
		b.Skipf("PostgreSQL skipped: %s is not set (start a server with: eval \"$(../scripts/pg.sh start /tmp/benchpg)\")", EnvPostgres)
	}
	ctx := context.Background()
	impl, err := NewImpl(ctx, kind, forExpiry, b.TempDir(), PostgresDSN())
	if err != nil {
		b.Fatal(err)
	}
	if err := impl.Load(ctx, Workload{N: n}); err != nil {
		impl.Close()
		b.Fatal(err)
	}
	return impl
}

// BenchmarkPage: the first callable page (50, soonest expiry first) of the
// hot channel, which holds 80% of the n grants.
func BenchmarkPage(b *testing.B) {
	ctx := context.Background()
	for _, n := range sizes() {
		for _, kind := range Kinds() {
			b.Run(fmt.Sprintf("n=%d/%s", n, kind), func(b *testing.B) {
				impl := loaded(b, kind, n, false)
				defer impl.Close()
				now := PageNow()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					rows, err := impl.Page(ctx, HotChannel, now, nil)
					if err != nil || len(rows) != PageSize {
						b.Fatal(err, len(rows))
					}
				}
			})
		}
	}
}

// BenchmarkRecord: one new grant recorded into a store holding n grants.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	for _, n := range sizes() {
		for _, kind := range Kinds() {
			b.Run(fmt.Sprintf("n=%d/%s", n, kind), func(b *testing.B) {
				impl := loaded(b, kind, n, false)
				defer impl.Close()
				b.ReportAllocs()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					if err := impl.Record(ctx, RecordGrant(i)); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkExpire: expiring all n grants, every expiry delivered to a
// subscriber (callready: Sweep with a Subscription drained concurrently;
// ttlcache: DeleteExpired with an OnEviction callback; map and SQL: delete
// and a callback per row). Each iteration loads afresh, untimed.
func BenchmarkExpire(b *testing.B) {
	ctx := context.Background()
	for _, n := range sizes() {
		for _, kind := range Kinds() {
			b.Run(fmt.Sprintf("n=%d/%s", n, kind), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					impl := loaded(b, kind, n, true)
					if kind == KindTTLCache {
						time.Sleep(time.Millisecond)
					}
					b.StartTimer()
					got, err := impl.Expire(ctx, SweepAt())
					b.StopTimer()
					impl.Close()
					if err != nil || got != n {
						b.Fatal(err, got)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/expiry")
			})
		}
	}
}

// BenchmarkMemory reports heap in use per active grant (HeapInuse delta
// after GC, divided by n) for the in-process alternatives.
func BenchmarkMemory(b *testing.B) {
	for _, n := range sizes() {
		for _, kind := range Kinds() {
			if !InProcess(kind) {
				continue
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, kind), func(b *testing.B) {
				for range b.N {
					before := heapInuse()
					impl := loaded(b, kind, n, false)
					after := heapInuse()
					writeHeapProfile(b, kind, n)
					runtime.KeepAlive(impl)
					impl.Close()
					b.ReportMetric((float64(after)-float64(before))/float64(n), "B/grant")
				}
			})
		}
	}
}

// writeHeapProfile writes a heap profile while kind is loaded, to
// $BENCH_HEAPPROFILE_DIR/heap-<kind>-<n>.pprof, when that variable is set
// (go tool pprof -sample_index=inuse_space -top bench.test FILE).
func writeHeapProfile(b *testing.B, kind string, n int) {
	dir := os.Getenv("BENCH_HEAPPROFILE_DIR")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%s-%d.pprof", strings.ReplaceAll(kind, "+", "_"), n)))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWebhookIngest: signed webhook → tracker on store/sql → 200, over
// loopback HTTP with 16 concurrent clients; one grant per request.
func BenchmarkWebhookIngest(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			if backend == "postgres" && PostgresDSN() == "" {
				b.Skipf("PostgreSQL skipped: %s is not set", EnvPostgres)
			}
			b.ResetTimer()
			res, err := RunIngest(context.Background(), IngestConfig{
				Backend: backend, Dir: b.TempDir(), DSN: PostgresDSN(),
				Clients: 16, Duration: time.Minute, MaxRequests: b.N,
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.OK != b.N {
				b.Fatalf("%d of %d requests answered 200", res.OK, b.N)
			}
			b.ReportMetric(res.EventsPerSecond(), "events/s")
			slices.Sort(res.Notify)
			b.ReportMetric(float64(Percentile(res.Notify, 0.5).Microseconds()), "µs-to-subscriber-p50")
		})
	}
}
