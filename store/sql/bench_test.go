package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
	sqlstore "github.com/callready/callready/store/sql"
)

// Benchmarks (see BENCH.md for figures and commands):
//
//	go test -run '^$' -bench . ./store/sql/
//
// BenchmarkRebuild fills 100,000 grants by default; set
// CALLREADY_BENCH_GRANTS=1000000 for the 1M figure.

var cleanups struct {
	sync.Mutex
	fns []func()
}

func atExit(fn func()) {
	cleanups.Lock()
	defer cleanups.Unlock()
	cleanups.fns = append(cleanups.fns, fn)
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, fn := range cleanups.fns {
		fn()
	}
	os.Exit(code)
}

// benchStore returns an empty store of the named kind.
func benchStore(b *testing.B, kind string) store.Store {
	switch kind {
	case "memory":
		return memory.New(memory.Config{})
	case "sqlite":
		return newSQLite(b, sqlstore.Config{})
	default:
		return newPostgres(b, sqlstore.Config{})
	}
}

// BenchmarkRecord measures durable record throughput through
// permission.Tracker.Record: each op is one Record of one grant for a new
// contact, with 1 or 16 goroutines recording at once (group commit
// shares transactions between them).
func BenchmarkRecord(b *testing.B) {
	for _, kind := range []string{"memory", "sqlite", "postgres"} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/writers=%d", kind, writers), func(b *testing.B) {
				ctx := context.Background()
				clk := clock.NewMock()
				clk.Set(t0)
				tr, err := permission.New(ctx, permission.Config{Store: benchStore(b, kind), Clock: clk})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							if _, err := tr.Record(ctx, grant("u"+strconv.FormatInt(i, 10), t0, 168*time.Hour)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

func benchGrants() int {
	if n, err := strconv.Atoi(os.Getenv("CALLREADY_BENCH_GRANTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

var filled sync.Map // kind → store.Store filled with benchGrants() pairs

// filledStore returns a store holding n grants over 10 channels: 90%
// temporary (distinct expiries), 10% permanent. It is filled once per
// process with one bulk statement and kept for every -count run.
func filledStore(b *testing.B, kind string, n int) store.Store {
	if s, ok := filled.Load(kind); ok {
		return s.(store.Store)
	}
	ctx := context.Background()
	var s store.Store
	switch kind {
	case "memory":
		m := memory.New(memory.Config{})
		clk := clock.NewMock()
		clk.Set(t0)
		tr, err := permission.New(ctx, permission.Config{Store: m, Clock: clk})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]permission.Event, 0, 512)
		for i := 1; i <= n; i++ {
			e := permission.Event{Type: permission.EventGrant, Channel: "ch" + strconv.Itoa(i%10), Contact: "u" + strconv.Itoa(i), At: t0, ID: "wamid." + strconv.Itoa(i)}
			if i%10 == 0 {
				e.Permanent, e.Source = true, permission.SourceProfile
			} else {
				e.ExpiresAt = t0.Add(168*time.Hour + time.Duration(i)*time.Millisecond)
			}
			if batch = append(batch, e); len(batch) == cap(batch) || i == n {
				if _, err := tr.Record(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		tr.Close()
		s = m
	case "sqlite":
		dir, err := os.MkdirTemp("", "callready-bench")
		if err != nil {
			b.Fatal(err)
		}
		atExit(func() { os.RemoveAll(dir) })
		db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(dir, "bench.db")))
		if err != nil {
			b.Fatal(err)
		}
		atExit(func() { db.Close() })
		s = bulkFill(b, db, sqlstore.DefaultTablePrefix, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) `, "s", n)
	default:
		db := postgresDB(b)
		schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			b.Fatal(err)
		}
		atExit(func() { _, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
		s = bulkFill(b, db, schema+".callready_", "", "generate_series(1::bigint, $1::bigint) AS s(i)", n)
	}
	filled.Store(kind, s)
	return s
}

// bulkFill opens a store on db and inserts n pairs with two INSERT …
// SELECTs over a row generator (a recursive CTE on SQLite, generate_series
// on PostgreSQL): one ledger event each, and the pair without a cached
// state, as the ledger migration leaves pairs. A first tracker folds them.
func bulkFill(b *testing.B, db *sql.DB, prefix, with, from string, n int) store.Store {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	at := t0.UnixNano()
	exp := t0.Add(168 * time.Hour).UnixNano()
	for _, q := range []string{
		fmt.Sprintf(with+`INSERT INTO %[1]sledger (channel, contact, dedupe, type, event_id, at, expires_at, flags, source, origin, recorded_at)
	SELECT 'ch' || (i %% 10), 'u' || i, 'bench' || i, 'grant', 'wamid.' || i, %[2]d,
		CASE WHEN i %% 10 = 0 THEN NULL ELSE %[3]d + i * 1000000 END,
		CASE WHEN i %% 10 = 0 THEN 1 ELSE 0 END,
		CASE WHEN i %% 10 = 0 THEN 'profile' ELSE 'request' END, 'host', %[2]d
	FROM `+from, prefix, at, exp),
		fmt.Sprintf(with+`INSERT INTO %[1]spairs (channel, contact, revision) SELECT 'ch' || (i %% 10), 'u' || i, 0 FROM `+from, prefix),
	} {
		if _, err := db.ExecContext(ctx, q, n); err != nil {
			b.Fatal(err)
		}
	}
	clk := clock.NewMock()
	clk.Set(t0)
	tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	tr.Close()
	return st
}

// BenchmarkRebuild measures permission.New over a filled store: loading
// every pair and rebuilding the expiry index (one op = one rebuild).
func BenchmarkRebuild(b *testing.B) {
	n := benchGrants()
	for _, kind := range []string{"memory", "sqlite", "postgres"} {
		b.Run(fmt.Sprintf("%s/grants=%d", kind, n), func(b *testing.B) {
			ctx := context.Background()
			st := filledStore(b, kind, n)
			clk := clock.NewMock()
			clk.Set(t0)
			wantRev := int64(n) // one Granted change per pair
			for b.Loop() {
				tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
				if err != nil {
					b.Fatal(err)
				}
				p, err := tr.Eligible(ctx, "ch1", permission.Query{Limit: 1})
				if err != nil || len(p.Entries) != 1 || p.Revision != wantRev {
					b.Fatalf("rebuilt index: %+v, %v", p, err)
				}
				tr.Close()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}
