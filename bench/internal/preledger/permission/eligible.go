package permission

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
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
func (t *Tracker) Eligible(ctx context.Context, channel string, q Query) (Page, error) {
	if err := ctx.Err(); err != nil {
		return Page{}, err
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
	if q.Now.IsZero() {
		q.Now = t.clock.Now()
	}
	now := q.Now.UnixNano()
	var after *item
	if q.Cursor != "" {
		it, err := decodeCursor(q.Cursor, q.Order)
		if err != nil {
			return Page{}, err
		}
		after = &it
	}
	horizon := int64(never)
	if q.ExpiringWithin > 0 && int64(q.ExpiringWithin) < never-now {
		horizon = now + int64(q.ExpiringWithin)
	}

	t.mu.RLock()
	defer t.mu.RUnlock()
	page := Page{Revision: t.indexRevision}
	c := t.idx.channel(channel, false)
	if c == nil {
		return page, nil
	}
	page.Entries = make([]Entry, 0, min(q.Limit, len(c.slots)))
	var last item
	more := false
	visit := func(it item) bool {
		if after != nil && !lessInChannel(*after, it) {
			return true // the cursor's own item
		}
		s := it.s
		if s.expires <= now {
			return true // expired, not yet swept
		}
		if q.Order == OrderExpiring && s.expires > horizon {
			return false // sorted by expiry: nothing further qualifies
		}
		if q.Order == OrderRecent && s.expires > horizon {
			return true
		}
		left := s.act.callsLeft(now, t.cfg.Limits)
		if q.WithCallsLeft && left == 0 {
			return true
		}
		if len(page.Entries) == q.Limit {
			more = true
			return false
		}
		e := s.entry()
		e.CallsLeft = left
		if s.act != nil {
			e.UnansweredStreak = s.act.streak
		}
		page.Entries = append(page.Entries, e)
		last = it
		return true
	}
	pivotSlot := &slot{}
	switch {
	case after != nil:
		pivot := *after
		if q.Order == OrderExpiring {
			c.byExpiry.AscendGreaterOrEqual(pivot, visit)
		} else {
			c.byRecent.AscendGreaterOrEqual(pivot, visit)
		}
	case q.Order == OrderExpiring:
		c.byExpiry.AscendGreaterOrEqual(item{k1: now + 1, k2: -never, s: pivotSlot}, visit)
	default:
		c.byRecent.Ascend(visit)
	}
	if more {
		page.NextCursor = encodeCursor(q.Order, last)
	}
	return page, nil
}

// A cursor is the last item's key: order, two numbers and the contact.
func encodeCursor(o Order, it item) string {
	b := make([]byte, 0, 17+len(it.s.contact))
	b = append(b, o[0])
	b = binary.BigEndian.AppendUint64(b, uint64(it.k1))
	b = binary.BigEndian.AppendUint64(b, uint64(it.k2))
	b = append(b, it.s.contact...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, o Order) (item, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 17 || b[0] != o[0] {
		return item{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return item{
		k1: int64(binary.BigEndian.Uint64(b[1:9])),
		k2: int64(binary.BigEndian.Uint64(b[9:17])),
		s:  &slot{contact: string(b[17:])},
	}, nil
}

// Count returns how many contacts of channel are callable at now (the
// tracker's clock when zero) and, when within is positive, how many of
// those are temporary entries expiring within that duration of now. It
// costs O(log n) plus the entries counted for soon and the expired ones the
// sweep has not removed yet.
func (t *Tracker) Count(channel string, now time.Time, within time.Duration) (callable, soon int) {
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
		return 0, 0
	}
	stale := 0
	c.byExpiry.Ascend(func(it item) bool {
		switch {
		case it.s.expires <= n:
			stale++
		case within > 0 && it.s.expires <= horizon:
			soon++
		default:
			return false
		}
		return true
	})
	return len(c.slots) - stale, soon
}

// Channels returns the channels that have at least one entry in the index
// (callable, or expired and not yet swept), sorted.
func (t *Tracker) Channels() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.idx.channels))
	for name := range t.idx.channels {
		out = append(out, name)
	}
	t.mu.RUnlock()
	slices.Sort(out)
	return out
}
