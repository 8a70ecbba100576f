package bench

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jellydator/ttlcache/v3"
)

// Impl is one way of keeping the callable list. Methods are called from
// one goroutine at a time.
type Impl interface {
	// Load adds the N grants of w, batched where the implementation can.
	Load(ctx context.Context, w Workload) error
	// Page returns the PageSize soonest-expiring grants of channel still
	// active at now, soonest first (ties by contact); after a cursor when
	// after is not nil (keyset: rows ordered after *after).
	Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error)
	// Record adds one grant, or replaces the pair's.
	Record(ctx context.Context, g Grant) error
	// Expire removes every grant due at now and returns once an event for
	// each has been delivered to a subscriber (a callback, a subscription).
	// It returns how many expired.
	Expire(ctx context.Context, now time.Time) (int, error)
	Close() error
}

// FreshPager is an Impl whose Page reuses a buffer and that can also list
// into a new slice per page, as a host keeping no buffer does (callready:
// AppendEligible for Page, Eligible here). Measure times both.
type FreshPager interface {
	PageNewSlice(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error)
}

// pairKey identifies a grant in the map-based alternatives.
type pairKey struct{ channel, contact string }

// cmpRow is the listing order: expiry, then contact.
func cmpRow(a, b Row) int {
	if a.ExpiresAt != b.ExpiresAt {
		return cmp.Compare(a.ExpiresAt, b.ExpiresAt)
	}
	return strings.Compare(a.Contact, b.Contact)
}

// listed reports whether a grant of the channel expiring at exp belongs
// in a listing at now (unix ns) after the cursor.
func listed(contact string, exp, now int64, after *Row) bool {
	if exp <= now {
		return false
	}
	return after == nil || cmpRow(Row{contact, exp}, *after) > 0
}

// take sorts rows in listing order and keeps the first PageSize.
func take(rows []Row) []Row {
	slices.SortFunc(rows, cmpRow)
	return rows[:min(len(rows), PageSize)]
}

// MapScan is the quick implementation: a mutex-protected map, scanned,
// filtered and sorted for every page.
type MapScan struct {
	mu sync.RWMutex
	m  map[pairKey]int64 // expiry, unix ns
}

func NewMapScan() *MapScan { return &MapScan{m: make(map[pairKey]int64)} }

func (s *MapScan) Load(ctx context.Context, w Workload) error {
	for i := range w.N {
		if err := s.Record(ctx, w.Grant(i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *MapScan) Record(_ context.Context, g Grant) error {
	s.mu.Lock()
	s.m[pairKey{g.Channel, g.Contact}] = g.ExpiresAt.UnixNano()
	s.mu.Unlock()
	return nil
}

func (s *MapScan) Page(_ context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	n := now.UnixNano()
	var rows []Row
	s.mu.RLock()
	for k, exp := range s.m {
		if k.channel == channel && listed(k.contact, exp, n, after) {
			rows = append(rows, Row{k.contact, exp})
		}
	}
	s.mu.RUnlock()
	return take(rows), nil
}

// Expire scans the map, deletes due grants and calls a callback for each
// after unlocking, as a quick implementation's expiry ticker would.
func (s *MapScan) Expire(_ context.Context, now time.Time) (int, error) {
	n := now.UnixNano()
	var due []pairKey
	s.mu.Lock()
	for k, exp := range s.m {
		if exp <= n {
			due = append(due, k)
			delete(s.m, k)
		}
	}
	s.mu.Unlock()
	var delivered atomic.Int64
	onExpired := func(pairKey) { delivered.Add(1) }
	for _, k := range due {
		onExpired(k)
	}
	return int(delivered.Load()), nil
}

func (s *MapScan) Close() error { return nil }

// TTLCache is github.com/jellydator/ttlcache/v3 doing the job: Set with a
// TTL, an OnEviction callback for expiries, and since it has no ordered
// listing, a page is Range + filter by channel + sort + take PageSize.
//
// ttlcache only knows the wall clock, so simulated times map to real ones:
// a grant expiring at T0+d is Set with TTL d. In "due" mode (for the expiry
// measurement) every grant is Set with a TTL of a few microseconds instead,
// so that all are really due when Expire runs DeleteExpired.
type TTLCache struct {
	c       *ttlcache.Cache[pairKey, int64]
	due     bool
	evicted atomic.Int64
	stop    func()
}

// NewTTLCache returns an empty cache; due selects the expiry mode.
func NewTTLCache(due bool) *TTLCache {
	t := &TTLCache{c: ttlcache.New[pairKey, int64](ttlcache.WithDisableTouchOnHit[pairKey, int64]()), due: due}
	t.stop = t.c.OnEviction(func(_ context.Context, r ttlcache.EvictionReason, _ *ttlcache.Item[pairKey, int64]) {
		if r == ttlcache.EvictionReasonExpired {
			t.evicted.Add(1)
		}
	})
	return t
}

func (t *TTLCache) Load(ctx context.Context, w Workload) error {
	for i := range w.N {
		if err := t.Record(ctx, w.Grant(i)); err != nil {
			return err
		}
	}
	return nil
}

func (t *TTLCache) Record(_ context.Context, g Grant) error {
	ttl := g.ExpiresAt.Sub(T0)
	if t.due {
		ttl = time.Microsecond
	}
	t.c.Set(pairKey{g.Channel, g.Contact}, g.ExpiresAt.UnixNano(), ttl)
	return nil
}

func (t *TTLCache) Page(_ context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	n := now.UnixNano()
	var rows []Row
	t.c.Range(func(it *ttlcache.Item[pairKey, int64]) bool {
		if k := it.Key(); k.channel == channel {
			if exp := it.Value(); listed(k.contact, exp, n, after) {
				rows = append(rows, Row{k.contact, exp})
			}
		}
		return true
	})
	return take(rows), nil
}

// Expire runs DeleteExpired and waits until the OnEviction callback (which
// ttlcache runs in a goroutine per evicted item) has counted every expiry.
// now is ignored: ttlcache expires by the wall clock.
func (t *TTLCache) Expire(ctx context.Context, _ time.Time) (int, error) {
	before := t.c.Metrics().Evictions
	base := t.evicted.Load()
	t.c.DeleteExpired()
	want := int64(t.c.Metrics().Evictions - before)
	for t.evicted.Load()-base < want {
		if err := ctx.Err(); err != nil {
			return int(t.evicted.Load() - base), err
		}
		time.Sleep(50 * time.Microsecond)
	}
	return int(want), nil
}

func (t *TTLCache) Close() error {
	t.stop()
	t.c.DeleteAll()
	return nil
}
