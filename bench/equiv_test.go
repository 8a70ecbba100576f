package bench

import (
	"context"
	"fmt"
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
		if NeedsPostgres(kind) && PostgresDSN() == "" {
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

// prepareAll prepares the cursors of pages at now in every Impl that
// needs them.
func prepareAll(ctx context.Context, impls map[string]Impl, pages []DeepPage, now time.Time) error {
	for kind, impl := range impls {
		if c, ok := impl.(CursorPreparer); ok {
			if err := c.PrepareCursors(ctx, pages, now); err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
		}
	}
	return nil
}

// TestSamePage checks that every alternative computes the same callable
// page as callready, for every channel, at instants where none, some and
// most of the grants have expired, at random cursors, after new records
// and re-grants, and after an expiry.
func TestSamePage(t *testing.T) {
	ctx := context.Background()
	w := Workload{N: 2997}
	impls := testImpls(t, w)
	ref := impls[KindCallready].(*Callready)

	check := func(when string, now time.Time) {
		t.Helper()
		for _, ch := range append(Channels(), "unknown") {
			want, err := ref.Page(ctx, ch, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if fresh, err := ref.PageNewSlice(ctx, ch, now, nil); err != nil || !slices.Equal(fresh, want) {
				t.Errorf("%s, channel %s: Eligible gave %v (%v), AppendEligible %v", when, ch, fresh, err, want)
			}
			for kind, impl := range impls {
				got, err := impl.Page(ctx, ch, now, nil)
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
	first, _ := ref.Page(ctx, HotChannel, PageNow(), nil)
	if len(first) != PageSize || first[0].ExpiresAt >= first[1].ExpiresAt {
		t.Fatalf("callready's first page is not %d rows soonest first: %v", PageSize, first)
	}
	check("a third expired", T0.Add(56*time.Hour))
	check("most expired", T0.Add(160*time.Hour))

	checkDeep := func(when string) {
		t.Helper()
		deep := w.DeepPages(40)
		if err := prepareAll(ctx, impls, deep, PageNow()); err != nil {
			t.Fatal(err)
		}
		chs := map[string]bool{}
		for i, d := range deep {
			chs[d.Channel] = true
			want, err := ref.Page(ctx, d.Channel, PageNow(), &d.After)
			if err != nil {
				t.Fatal(err)
			}
			if fresh, err := ref.PageNewSlice(ctx, d.Channel, PageNow(), &d.After); err != nil || !slices.Equal(fresh, want) {
				t.Errorf("%s: after %v, Eligible gave %v (%v), AppendEligible %v", when, d.After, fresh, err, want)
			}
			if len(want) != PageSize || cmpRow(want[0], d.After) <= 0 {
				t.Fatalf("%s: callready's page %d after %v: %d rows starting %v", when, i, d.After, len(want), want[:1])
			}
			for kind, impl := range impls {
				got, err := impl.Page(ctx, d.Channel, PageNow(), &d.After)
				if err != nil {
					t.Fatal(kind, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: %s page after %v differs from callready's:\n got %v\nwant %v", when, kind, d.After, got, want)
				}
			}
		}
		if len(chs) != len(Channels()) {
			t.Errorf("deep pages rotate over %d channels, want %d", len(chs), len(Channels()))
		}
	}
	checkDeep("loaded")

	const records = 60
	for kind, impl := range impls {
		for k := range records {
			if err := impl.Record(ctx, RecordGrant(k)); err != nil {
				t.Fatal(kind, err)
			}
			if err := impl.Record(ctx, w.Regrant(k)); err != nil {
				t.Fatal(kind, err)
			}
		}
	}
	check("after records and re-grants", PageNow())
	// The loaded positions moved, so the pages after a cursor are compared
	// along a walk of callready's listings: each alternative's page after
	// the last row of callready's previous page.
	for _, ch := range Channels() {
		var after *Row
		q := PageNow()
		for pages := 0; ; pages++ {
			want, err := ref.Page(ctx, ch, q, after)
			if err != nil {
				t.Fatal(err)
			}
			for kind, impl := range impls {
				got, err := impl.Page(ctx, ch, q, after)
				if err != nil {
					t.Fatal(kind, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("after records, %s page %d of %s differs from callready's:\n got %v\nwant %v", kind, pages, ch, got, want)
				}
			}
			if len(want) < PageSize {
				break
			}
			last := want[len(want)-1]
			after = &last
			if err := prepareAll(ctx, impls, []DeepPage{{Channel: ch, After: last}}, q); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Expiry by the simulated clock (ttlcache only knows the wall clock:
	// its expiry is checked in TestTTLCacheExpiry).
	cut := T0.Add(100 * time.Hour)
	latest := map[pairKey]time.Time{}
	for i := range w.N {
		g := w.Grant(i)
		latest[pairKey{g.Channel, g.Contact}] = g.ExpiresAt
	}
	for k := range records {
		for _, g := range []Grant{RecordGrant(k), w.Regrant(k)} {
			latest[pairKey{g.Channel, g.Contact}] = g.ExpiresAt
		}
	}
	wantExpired := 0
	for _, exp := range latest {
		if !exp.After(cut) {
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

// TestRecordsMove checks that the recorded grants land among the loaded
// ones rather than after them: new contacts on every channel, re-grants of
// distinct loaded contacts that extend them, in no rising order.
func TestRecordsMove(t *testing.T) {
	w := Workload{N: 10_000}
	first, last := w.Grant(0).ExpiresAt, w.Grant(0).ExpiresAt
	for i := range w.N {
		e := w.Grant(i).ExpiresAt
		if e.Before(first) {
			first = e
		}
		if e.After(last) {
			last = e
		}
	}
	chs := map[string]bool{}
	rises, seen := 0, map[string]bool{}
	var prev time.Time
	for k := range 1000 {
		g := RecordGrant(k)
		chs[g.Channel] = true
		if g.ExpiresAt.Before(first) || g.ExpiresAt.After(last) || g.ExpiresAt.After(SweepAt()) {
			t.Fatalf("record %d expires at %v, outside the loaded span %v … %v", k, g.ExpiresAt, first, last)
		}
		if g.ExpiresAt.After(prev) {
			rises++
		}
		prev = g.ExpiresAt
		r := w.Regrant(k)
		if seen[r.Contact] {
			t.Fatalf("re-grant %d repeats contact %s", k, r.Contact)
		}
		seen[r.Contact] = true
		orig := w.Grant(int(uint64(k) * regrantStride % uint64(w.N)))
		if r.Contact != orig.Contact || !r.ExpiresAt.After(orig.ExpiresAt) || r.ExpiresAt.After(SweepAt()) {
			t.Fatalf("re-grant %d: %+v does not extend %+v before SweepAt", k, r, orig)
		}
	}
	if len(chs) != len(Channels()) {
		t.Errorf("records go to %d channels, want %d", len(chs), len(Channels()))
	}
	if rises > 600 || rises < 400 {
		t.Errorf("%d of 1000 record expiries rise: not in random order", rises)
	}
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

// permute is a permutation of 0..n-1 for every n, including the ones
// that are not a power of four.
func TestPermute(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 4, 5, 997, 1000, 1 << 12, 10_000, 65_537} {
		seen := make([]bool, n)
		for i := range n {
			p := permute(i, n)
			if p >= n || seen[p] {
				t.Fatalf("n=%d: permute(%d) = %d, out of range or repeated", n, i, p)
			}
			seen[p] = true
		}
	}
	rising := 0 // a random order rises about half the time
	for i := range uint64(9_999) {
		if permute(i+1, 1_000_000) > permute(i, 1_000_000) {
			rising++
		}
	}
	if rising < 4_500 || rising > 5_500 {
		t.Errorf("%d of 9,999 consecutive positions rise; a random order gives about 5,000", rising)
	}
}
