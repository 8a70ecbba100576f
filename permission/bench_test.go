package permission

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// filled returns a tracker on the memory store holding n active temporary
// grants in one channel, granted at t0 (the clock) and expiring one second
// apart from t0+1h.
func filled(b *testing.B, n int) *Tracker {
	return loaded(b, n, func(i int) time.Time { return t0.Add(time.Hour + time.Duration(i)*time.Second) })
}

// loaded returns a tracker on the memory store holding n active temporary
// grants in one channel, granted at t0 (the clock), the i-th expiring at
// expiry(i); recorded in batches of DefaultMaxBatch.
func loaded(b *testing.B, n int, expiry func(i int) time.Time) *Tracker {
	b.Helper()
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	tr, err := New(ctx, Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	batch := make([]Event, 0, DefaultMaxBatch)
	for i := range n {
		batch = append(batch, Event{Type: EventGrant, Channel: ch, Contact: "1650" + strconv.Itoa(1_000_000+i), At: t0, ExpiresAt: expiry(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := tr.Record(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	runtime.GC() // the load's garbage is not collected during the timed loop
	return tr
}

// BenchmarkRecord: one grant recorded (one store transaction) into a
// tracker that holds 1M active grants.
func BenchmarkRecord(b *testing.B) {
	tr := filled(b, 1_000_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		exp := t0.Add(time.Hour + time.Duration(i%3600)*time.Second)
		if _, err := tr.Record(ctx, Event{Type: EventGrant, Channel: "other", Contact: "3461" + strconv.Itoa(i), At: t0, ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEligibleFirstPage: the first 50 callable contacts of a channel
// holding 1M grants.
func BenchmarkEligibleFirstPage(b *testing.B) {
	tr := filled(b, 1_000_000)
	ctx := context.Background()
	q := Query{Limit: 50, Now: t0.Add(30 * time.Minute)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p, err := tr.Eligible(ctx, ch, q)
		if err != nil || len(p.Entries) != 50 {
			b.Fatal(err, len(p.Entries))
		}
	}
}

// BenchmarkAppendEligibleFirstPage: BenchmarkEligibleFirstPage with the
// page's buffer kept from one call to the next.
func BenchmarkAppendEligibleFirstPage(b *testing.B) {
	tr := filled(b, 1_000_000)
	ctx := context.Background()
	q := Query{Limit: 50, Now: t0.Add(30 * time.Minute)}
	var buf []Entry
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p, err := tr.AppendEligible(ctx, buf, ch, q)
		if err != nil || len(p.Entries) != 50 {
			b.Fatal(err, len(p.Entries))
		}
		buf = p.Entries
	}
}

// BenchmarkSweep100k: recording the expiry of 100k due grants. Each
// iteration fills a fresh tracker (untimed) and sweeps it.
func BenchmarkSweep100k(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		tr := filled(b, n)
		b.StartTimer()
		got, err := tr.Sweep(ctx, t0.Add(1000*time.Hour))
		if err != nil || got != n {
			b.Fatal(err, got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/expiry")
}

// BenchmarkMemoryPerGrant reports heap in use per active grant (tracker
// index and memory store together) at 1M grants.
func BenchmarkMemoryPerGrant(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := filled(b, n)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "B/grant")
		runtime.KeepAlive(tr)
		tr.Close()
	}
}

// BenchmarkRebuild1M: New on a memory store holding 1M active grants,
// i.e. the index rebuild a restarted process does.
func BenchmarkRebuild1M(b *testing.B) {
	tr := filled(b, 1_000_000)
	st := tr.store
	b.ResetTimer()
	for range b.N {
		t2, err := New(context.Background(), Config{Store: st, Clock: tr.clock})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n, _, _ := t2.Count(ch, t0, 0); n != 1_000_000 {
			b.Fatal(n)
		}
		t2.Close()
		b.StartTimer()
	}
}

// filledRandom is filled with expiries in random order over a week (so
// records and pages land anywhere in the index, as in bench/), and returns
// 4,096 page cursors of the listing, shuffled.
func filledRandom(b *testing.B, n int) (*Tracker, []string) {
	b.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	tr := loaded(b, n, func(int) time.Time { return t0.Add(time.Hour + time.Duration(r.Int64N(int64(167*time.Hour)))) })
	// Cursors at every seventh page boundary, visited in random order.
	var cursors []string
	q := Query{Limit: 50, Now: t0.Add(30 * time.Minute)}
	for i := 0; len(cursors) < 4096; i++ {
		p, err := tr.Eligible(ctx, ch, q)
		if err != nil {
			b.Fatal(err)
		}
		if p.NextCursor == "" {
			break
		}
		if i%7 == 0 {
			cursors = append(cursors, p.NextCursor)
		}
		q.Cursor = p.NextCursor
	}
	r.Shuffle(len(cursors), func(i, j int) { cursors[i], cursors[j] = cursors[j], cursors[i] })
	runtime.GC()
	return tr, cursors
}

// BenchmarkDeepPageRandom: a page of 50 at a random cursor of 1M grants.
func BenchmarkDeepPageRandom(b *testing.B) {
	tr, cursors := filledRandom(b, 1_000_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p, err := tr.Eligible(ctx, ch, Query{Limit: 50, Now: t0.Add(30 * time.Minute), Cursor: cursors[i%len(cursors)]})
		if err != nil || len(p.Entries) != 50 {
			b.Fatal(err, len(p.Entries))
		}
	}
}

// BenchmarkRecordRandom: one new contact with a random expiry recorded
// into 1M grants with random expiries.
func BenchmarkRecordRandom(b *testing.B) {
	tr, _ := filledRandom(b, 1_000_000)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		exp := t0.Add(time.Hour + time.Duration(r.Int64N(int64(167*time.Hour))))
		if _, err := tr.Record(ctx, Event{Type: EventGrant, Channel: ch, Contact: "3461" + strconv.Itoa(i), At: t0, ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegrantRandom: a new grant with a random later expiry for a
// random one of 1M loaded contacts (expiries in random order).
func BenchmarkRegrantRandom(b *testing.B) {
	tr, _ := filledRandom(b, 1_000_000)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		exp := t0.Add(168*time.Hour + time.Duration(r.Int64N(int64(168*time.Hour))))
		contact := "1650" + strconv.Itoa(1_000_000+r.IntN(1_000_000))
		if _, err := tr.Record(ctx, Event{Type: EventGrant, Channel: ch, Contact: contact, At: t0, ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndex1M measures the in-memory index alone, without the store:
// a new pair with a random expiry joining 1M (a row in both orders and a
// slot; the index grows by b.N), re-granting random pairs of 1M (each
// moves its row in both orders and updates its slot) and removing pairs
// as the sweep does (due, then each pair leaves). Where BenchmarkSweep100k
// and the Record benchmarks are dominated by the store, this shows what
// the index's layout costs.
func BenchmarkIndex1M(b *testing.B) {
	const n = 1_000_000
	keys := make([]store.Key, n)
	for i := range keys {
		keys[i] = store.Key{Channel: ch, Contact: "1650" + strconv.Itoa(1_000_000+i)}
	}
	load := func(r *rand.Rand) *index {
		x := newIndex()
		for _, k := range keys {
			exp := int64(1e15) + r.Int64N(1e15)
			x.apply(k, listed{ok: true, granted: 1, expires: exp, waID: k.Contact}, true, exp)
		}
		x.refreshFirsts()
		return x
	}
	b.Run("new", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		x := load(r)
		fresh := make([]store.Key, b.N)
		for i := range fresh {
			fresh[i] = store.Key{Channel: ch, Contact: "3461" + strconv.Itoa(1_000_000+i)}
		}
		b.ResetTimer()
		for _, k := range fresh {
			exp := int64(1e15) + r.Int64N(1e15)
			x.apply(k, listed{ok: true, granted: 2, expires: exp, waID: k.Contact}, true, exp)
		}
	})
	b.Run("regrant", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		x := load(r)
		b.ResetTimer()
		for i := range b.N {
			k := keys[r.IntN(n)]
			exp := int64(1e15) + r.Int64N(1e15)
			x.apply(k, listed{ok: true, granted: int64(2 + i), expires: exp, waID: k.Contact}, true, exp)
		}
	})
	b.Run("remove", func(b *testing.B) {
		x := load(rand.New(rand.NewPCG(1, 2)))
		b.ResetTimer()
		removed := 0
		for removed < b.N {
			due := x.due(nil, math.MaxInt64-1, min(DefaultMaxBatch, b.N-removed))
			if len(due) == 0 {
				b.StopTimer()
				x = load(rand.New(rand.NewPCG(uint64(removed), 2)))
				b.StartTimer()
				continue
			}
			for _, k := range due {
				x.apply(k, listed{}, false, none)
			}
			x.refreshFirsts()
			removed += len(due)
		}
	})
}
