package bench

import (
	"context"
	"slices"
	"testing"
	"time"
)

// testImpls returns one loaded instance of every kind available here
// (PostgreSQL only when CALLREADY_TEST_POSTGRES is set).
func testImpls(t *testing.T, w Workload) map[string]Impl {
	t.Helper()
	ctx := context.Background()
	impls := map[string]Impl{}
	for _, kind := range Kinds() {
		if kind == KindPostgres && PostgresDSN() == "" {
			t.Logf("postgres skipped: %s is not set", EnvPostgres)
			continue
		}
		impl, err := NewImpl(ctx, kind, false, t.TempDir(), PostgresDSN())
		if err != nil {
			t.Fatal(kind, err)
		}
		t.Cleanup(func() { impl.Close() })
		if err := impl.Load(ctx, w); err != nil {
			t.Fatal(kind, err)
		}
		impls[kind] = impl
	}
	return impls
}

// TestSamePage checks that every alternative computes the same callable
// page as callready, for every channel, at instants where none, some and
// most of the grants have expired, after a record, and after an expiry.
func TestSamePage(t *testing.T) {
	ctx := context.Background()
	w := Workload{N: 997}
	impls := testImpls(t, w)
	ref := impls[KindCallready]

	check := func(when string, now time.Time) {
		t.Helper()
		for _, ch := range append(Channels(), RecordChannel, "unknown") {
			want, err := ref.Page(ctx, ch, now)
			if err != nil {
				t.Fatal(err)
			}
			for kind, impl := range impls {
				got, err := impl.Page(ctx, ch, now)
				if err != nil {
					t.Fatal(kind, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s, channel %s: %s page differs from callready's:\n got %v\nwant %v", when, ch, kind, got, want)
				}
			}
		}
	}
	check("all active", PageNow())
	first, _ := ref.Page(ctx, HotChannel, PageNow())
	if len(first) != PageSize || first[0].ExpiresAt >= first[1].ExpiresAt {
		t.Fatalf("callready's first page is not %d rows soonest first: %v", PageSize, first)
	}
	check("a third expired", T0.Add(56*time.Hour))
	check("most expired", T0.Add(160*time.Hour))

	for kind, impl := range impls {
		for k := range 60 {
			if err := impl.Record(ctx, RecordGrant(k)); err != nil {
				t.Fatal(kind, err)
			}
		}
	}
	check("after records", PageNow())

	// Expiry by the simulated clock (ttlcache only knows the wall clock:
	// its expiry is checked in TestTTLCacheExpiry).
	cut := T0.Add(100 * time.Hour)
	wantExpired := 0
	for i := range w.N {
		if !w.Grant(i).ExpiresAt.After(cut) {
			wantExpired++
		}
	}
	for kind, impl := range impls {
		if kind == KindTTLCache {
			continue
		}
		n, err := impl.Expire(ctx, cut)
		if err != nil || n != wantExpired {
			t.Errorf("%s: expired %d (%v), want %d", kind, n, err, wantExpired)
		}
	}
	check("after expiry", cut)
}

func TestTTLCacheExpiry(t *testing.T) {
	ctx := context.Background()
	c := NewTTLCache(true)
	defer c.Close()
	w := Workload{N: 500}
	if err := c.Load(ctx, w); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	n, err := c.Expire(ctx, time.Time{})
	if err != nil || n != w.N {
		t.Fatalf("expired %d (%v), want %d", n, err, w.N)
	}
}

func TestWorkload(t *testing.T) {
	for _, n := range []int{997, 10_000, 100_000, 1_000_000} {
		w := Workload{N: n}
		seen := map[int64]bool{}
		hot := 0
		for i := range min(n, 200_000) {
			g := w.Grant(i)
			if seen[g.ExpiresAt.UnixNano()] {
				t.Fatalf("n=%d: duplicate expiry at grant %d", n, i)
			}
			seen[g.ExpiresAt.UnixNano()] = true
			if !g.ExpiresAt.After(PageNow()) || g.ExpiresAt.After(SweepAt()) || !g.GrantedAt.Before(g.ExpiresAt) {
				t.Fatalf("n=%d: grant %d out of range: %+v", n, i, g)
			}
			if g.Channel == HotChannel {
				hot++
			}
		}
		if frac := float64(hot) / float64(min(n, 200_000)); frac < 0.79 || frac > 0.81 {
			t.Errorf("n=%d: hot channel holds %.2f of the grants", n, frac)
		}
	}
}
