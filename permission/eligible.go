package permission

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/callready/callready/internal/bptree"
	"github.com/callready/callready/store"
)

// Order is the order of an Eligible listing.
type Order string

const (
	// OrderExpiring lists soonest expiry first, permanent entries last
	// (most recently granted first among those): the leads to call first.
	OrderExpiring Order = "expiring"
	// OrderRecent lists the most recently granted first.
	OrderRecent Order = "recent"
)

// Default and maximum page sizes of Eligible.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Query selects a page of callable contacts.
type Query struct {
	// Order of the listing. Default OrderExpiring.
	Order Order
	// Limit is the page size. Default DefaultPageSize (50); at most MaxPageSize.
	Limit int
	// Cursor continues a listing: pass the previous Page.NextCursor with the
	// same Order and ExpiringWithin. Empty starts at the beginning.
	Cursor string
	// ExpiringWithin, when positive, keeps only temporary entries that
	// expire within this duration of Now (permanent ones never do).
	ExpiringWithin time.Duration
	// WithCallsLeft keeps only entries with at least one call left in the
	// current call window: the contacts an agent can call right now.
	WithCallsLeft bool
	// Now is the instant the listing is computed at. Default: the tracker's
	// clock.
	Now time.Time
}

// Page is one page of callable contacts.
type Page struct {
	Entries []Entry
	// NextCursor continues the listing; empty on the last page.
	NextCursor string
	// Revision is the last change reflected in the listing: subscribe after
	// it to follow the list without missing or repeating a change.
	Revision int64
}

// Eligible lists the contacts of channel that are callable at q.Now. A page
// costs O(log n + page size): a range scan of the channel's ordered index.
// Temporary entries past their expiry that the sweep has not yet removed
// are skipped, never returned. Filters other than ExpiringWithin on
// OrderExpiring skip non-matching entries one by one, so their cost grows
// with the entries skipped (few in practice: capped or unswept ones).
//
// A Now before the tracker's clock asks about the past: the listing is then
// folded from the ledger (every pair of the channel, so it costs O(events
// of the channel)), as everything recorded so far says it was at Now. Its
// Revision is the tracker's current one. Instants before the ledger's
// retention horizon fail with ErrBeyondRetention.
func (t *Tracker) Eligible(ctx context.Context, channel string, q Query) (Page, error) {
	return t.AppendEligible(ctx, nil, channel, q)
}

// AppendEligible is Eligible writing the page's entries over dst[:0]
// (growing it when the page needs more room) and returning them in
// Page.Entries. A host that lists often, such as an HTTP handler that
// encodes each page and drops it, passes back a buffer it keeps (the
// previous Page.Entries, or one from a sync.Pool) and then allocates
// nothing per page: most of a page's cost is a new 8 KB slice written
// for the first time, not the index. dst's old contents are overwritten;
// a nil dst is Eligible.
func (t *Tracker) AppendEligible(ctx context.Context, dst []Entry, channel string, q Query) (Page, error) {
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	if t.closed() {
		return Page{}, ErrClosed
	}
	if q.Order == "" {
		q.Order = OrderExpiring
	}
	if q.Order != OrderExpiring && q.Order != OrderRecent {
		return Page{}, fmt.Errorf("permission: unknown order %q", q.Order)
	}
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	q.Limit = min(q.Limit, MaxPageSize)
	if q.ExpiringWithin < 0 {
		return Page{}, fmt.Errorf("permission: negative ExpiringWithin %s", q.ExpiringWithin)
	}
	past := false
	if clockNow := t.clock.Now(); q.Now.IsZero() {
		q.Now = clockNow
	} else if q.Now.Before(clockNow) {
		if err := t.checkHorizon(q.Now, clockNow); err != nil {
			return Page{}, err
		}
		past = true
	}
	var after *row
	if q.Cursor != "" {
		it, err := decodeCursor(q.Cursor, q.Order)
		if err != nil {
			return Page{}, err
		}
		after = &it
	}
	if past {
		c, err := t.channelAt(ctx, channel, q.Now)
		if err != nil {
			return Page{}, err
		}
		page := listPage(c, q, after, dst)
		page.Revision = t.Revision()
		return page, nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	page := listPage(t.idx.channel(channel, false), q, after, dst)
	page.Revision = t.indexRevision
	return page, nil
}

// listPage is one page of c's listed entries for q (Order, Limit and Now
// set), after the cursor's row when not nil, written over dst[:0].
func listPage(c *channelIndex, q Query, after *row, dst []Entry) Page {
	var page Page
	if c == nil || c.listed() == 0 {
		if dst != nil {
			page.Entries = dst[:0]
		}
		return page
	}
	now := q.Now.UnixNano()
	horizon := int64(never)
	if q.ExpiringWithin > 0 && int64(q.ExpiringWithin) < never-now {
		horizon = now + int64(q.ExpiringWithin)
	}
	page.Entries = slices.Grow(dst[:0], min(q.Limit, c.listed()))
	var last row
	more := false
	visit := func(r *row) bool {
		if r.expires <= now {
			return true // expired, not yet swept
		}
		if r.expires > horizon {
			return q.Order == OrderRecent // sorted by expiry: nothing further qualifies
		}
		if q.WithCallsLeft && r.callsLeft == 0 {
			return true
		}
		if len(page.Entries) == q.Limit {
			more = true
			return false
		}
		page.Entries = page.Entries[:len(page.Entries)+1]
		r.fill(&page.Entries[len(page.Entries)-1], c.name)
		last = *r
		return true
	}
	if q.Order == OrderRecent {
		// The recent order holds keys; the rows are in the expiry order.
		from := bptree.Key{A: math.MinInt64}
		if after != nil {
			from = recentKey(after.granted, after.expires, after.contact)
		}
		c.byRecent.Ascend(from, func(k *rowKey) bool {
			if after != nil && keyRecentKey(k) == from {
				return true // the cursor's own row
			}
			r, ok := c.row(k)
			return !ok || visit(r)
		})
	} else {
		from := firstExpiringFrom(now + 1)
		if after != nil {
			from = rowExpiryKey(after)
		}
		c.byExpiry.Ascend(from, func(r *row) bool {
			if after != nil && rowExpiryKey(r) == from {
				return true // the cursor's own row
			}
			return visit(r)
		})
	}
	if more {
		page.NextCursor = encodeCursor(q.Order, last)
	}
	return page
}

// channelAt folds the ledger of every pair of channel as of at into a
// throwaway index of the entries callable then.
func (t *Tracker) channelAt(ctx context.Context, channel string, at time.Time) (*channelIndex, error) {
	byContact := map[string][]store.LedgerEvent{}
	// Not bounded by To: a revocation stamped after at may have been in
	// effect by then (asOf decides).
	err := scanLedger(ctx, t.store, store.LedgerQuery{Channel: channel, Limit: 5000}, func(e *store.LedgerEvent) bool {
		byContact[e.Key.Contact] = append(byContact[e.Key.Contact], *e)
		return true
	})
	if err != nil {
		return nil, err
	}
	idx := newIndex()
	n := at.UnixNano()
	cb := channelOf(asOf(byContact[""], at, time.Time{}))
	delete(byContact, "")
	for _, evs := range persons(byContact) {
		s := foldLedger(asOf(evs, at, time.Time{}))
		s.callbacks, s.confirmedOnly = cb, t.cfg.ConfirmedCallbacksOnly
		if l := s.entryAt(n, t.cfg.Limits); l.ok {
			idx.apply(store.Key{Channel: channel, Contact: s.contact()}, l, true, none)
		}
	}
	return idx.channel(channel, false), nil
}

// A cursor is the last row's key in its order: the order, two numbers and
// the contact.
func encodeCursor(o Order, r row) string {
	k1, k2 := r.expires, -r.granted
	if o == OrderRecent {
		k1, k2 = -r.granted, r.expires
	}
	b := make([]byte, 0, 17+len(r.contact))
	b = append(b, o[0])
	b = binary.BigEndian.AppendUint64(b, uint64(k1))
	b = binary.BigEndian.AppendUint64(b, uint64(k2))
	b = append(b, r.contact...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, o Order) (row, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 17 || b[0] != o[0] {
		return row{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	k1, k2 := int64(binary.BigEndian.Uint64(b[1:9])), int64(binary.BigEndian.Uint64(b[9:17]))
	r := row{expires: k1, granted: -k2, contact: string(b[17:])}
	if o == OrderRecent {
		r.granted, r.expires = -k1, k2
	}
	return r, nil
}

// Count returns how many contacts of channel are callable at now (the
// tracker's clock when zero) and, when within is positive, how many of
// those are temporary entries expiring within that duration of now. It
// costs O(log n) plus the entries counted for soon and the expired ones the
// sweep has not removed yet.
// After Close it returns ErrClosed.
func (t *Tracker) Count(channel string, now time.Time, within time.Duration) (callable, soon int, err error) {
	if t.closed() {
		return 0, 0, ErrClosed
	}
	if now.IsZero() {
		now = t.clock.Now()
	}
	n := now.UnixNano()
	horizon := int64(never)
	if int64(within) < never-n {
		horizon = n + int64(within)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	c := t.idx.channel(channel, false)
	if c == nil {
		return 0, 0, nil
	}
	stale := 0
	c.byExpiry.AscendAll(func(r *row) bool {
		switch {
		case r.expires <= n:
			stale++
		case within > 0 && r.expires <= horizon:
			soon++
		default:
			return false
		}
		return true
	})
	return c.listed() - stale, soon, nil
}

// Channels returns the channels that have at least one listed entry
// (callable, or expired and not yet swept), sorted.
func (t *Tracker) Channels() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.idx.channels))
	for name, c := range t.idx.channels {
		if c.listed() > 0 {
			out = append(out, name)
		}
	}
	t.mu.RUnlock()
	slices.Sort(out)
	return out
}

// persons groups a channel's events by person: identifiers an event
// carried together are one person (union-find over Contact and Aliases).
func persons(byContact map[string][]store.LedgerEvent) [][]store.LedgerEvent {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	for contact, evs := range byContact {
		find(contact)
		for _, e := range evs {
			for _, a := range e.Aliases {
				if ra, rc := find(a), find(contact); ra != rc {
					parent[ra] = rc
				}
			}
		}
	}
	groups := map[string][]store.LedgerEvent{}
	for contact, evs := range byContact {
		r := find(contact)
		groups[r] = append(groups[r], evs...)
	}
	out := make([][]store.LedgerEvent, 0, len(groups))
	for _, evs := range groups {
		slices.SortFunc(evs, ledgerOrder)
		out = append(out, evs)
	}
	return out
}
