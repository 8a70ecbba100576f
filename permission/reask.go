package permission

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/callready/callready/store"
)

// Re-ask: the people whose permission lapsed and who may be asked again.

// Defaults of ReaskQuery.
const (
	// DefaultReaskWithin is ReaskQuery.Within's default: permissions that
	// lapsed in the last 30 days.
	DefaultReaskWithin = 30 * 24 * time.Hour
	// DefaultDeclinedFor is ReaskQuery.DeclinedFor's default: a person who
	// rejected a request (or revoked permission) is listed once a week has
	// passed, the span of Meta's weekly request limit.
	DefaultDeclinedFor = 7 * 24 * time.Hour
)

// ReaskQuery selects a page of people to ask again.
type ReaskQuery struct {
	// Now is the instant the list is computed at. Default: the tracker's
	// clock.
	Now time.Time
	// Within keeps the people whose permission lapsed within this duration
	// before Now. Default DefaultReaskWithin (30 days).
	Within time.Duration
	// DeclinedFor keeps people whose permission ended by a rejection or a
	// revocation only once it is at least this old. Default
	// DefaultDeclinedFor (7 days); negative lists them at once.
	DeclinedFor time.Duration
	// Limit is the page size. Default DefaultPageSize; at most MaxPageSize.
	Limit int
	// Cursor continues a listing: pass the previous page's NextCursor with
	// the same query.
	Cursor string
}

// ReaskEntry is one person whose permission lapsed.
type ReaskEntry struct {
	Channel      string
	Contact      string // the identifier the person is listed under
	WaID, UserID string
	// Reason is how it lapsed: ReasonExpired or ReasonRevoked (Status
	// says which revocation).
	Reason   Reason
	Status   Status
	LapsedAt time.Time
	// Decision is CanRequest's answer at Now; AllowedAt is Now when a
	// request is allowed now, else when it will be (Decision.RetryAt).
	Decision  Decision
	AllowedAt time.Time
}

// ReaskPage is one page of people to ask again, the most recently lapsed
// first, ties by contact.
type ReaskPage struct {
	Entries    []ReaskEntry
	NextCursor string
}

// Reask lists the people of channel whose permission lapsed (expired, or
// rejected or revoked at least q.DeclinedFor ago) within q.Within before
// q.Now, who are neither callable nor pending at q.Now, with the reason
// and when a request is allowed. It folds the channel's ledger (every
// person of the channel), so a page costs O(events of the channel): a list
// for an agent's screen or a nightly job, not for every request.
func (t *Tracker) Reask(ctx context.Context, channel string, q ReaskQuery) (ReaskPage, error) {
	if t.closed() {
		return ReaskPage{}, ErrClosed
	}
	if q.Now.IsZero() {
		q.Now = t.clock.Now()
	}
	q.Now = q.Now.UTC()
	if q.Within <= 0 {
		q.Within = DefaultReaskWithin
	}
	switch {
	case q.DeclinedFor == 0:
		q.DeclinedFor = DefaultDeclinedFor
	case q.DeclinedFor < 0:
		q.DeclinedFor = 0
	}
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	q.Limit = min(q.Limit, MaxPageSize)
	var after *reaskKey
	if q.Cursor != "" {
		k, err := decodeReaskCursor(q.Cursor)
		if err != nil {
			return ReaskPage{}, err
		}
		after = &k
	}
	if err := t.checkHorizon(q.Now.Add(-q.Within), t.clock.Now()); err != nil {
		return ReaskPage{}, err
	}
	all, err := t.reaskAll(ctx, channel, q)
	if err != nil {
		return ReaskPage{}, err
	}
	var page ReaskPage
	for _, e := range all {
		k := reaskKey{e.LapsedAt.UnixNano(), e.Contact}
		if after != nil && !after.before(k) {
			continue
		}
		if len(page.Entries) == q.Limit {
			last := page.Entries[len(page.Entries)-1]
			page.NextCursor = encodeReaskCursor(reaskKey{last.LapsedAt.UnixNano(), last.Contact})
			break
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// reaskAll is the whole list, in order.
func (t *Tracker) reaskAll(ctx context.Context, channel string, q ReaskQuery) ([]ReaskEntry, error) {
	byContact := map[string][]store.LedgerEvent{}
	err := scanLedger(ctx, t.store, store.LedgerQuery{Channel: channel, Limit: 5000}, func(e *store.LedgerEvent) bool {
		byContact[e.Key.Contact] = append(byContact[e.Key.Contact], *e)
		return true
	})
	if err != nil {
		return nil, err
	}
	cb := channelOf(asOf(byContact[""], q.Now, time.Time{}))
	delete(byContact, "")
	n := q.Now.UnixNano()
	var out []ReaskEntry
	for _, evs := range persons(byContact) {
		whole := foldLedger(evs) // who the person is: all their identifiers
		k := store.Key{Channel: channel, Contact: whole.contact()}
		now := asOf(slices.Clone(evs), q.Now, time.Time{})
		x := explain(k, now, evs, cb, t.cfg.ConfirmedCallbacksOnly, q.Now, t.cfg.Limits)
		if x.Callable || x.Status == StatusNeverGranted {
			continue
		}
		reason := statusReason(x.Status)
		if x.Since.Before(q.Now.Add(-q.Within)) || x.Since.After(q.Now) {
			continue
		}
		if reason == ReasonRevoked && q.Now.Sub(x.Since) < q.DeclinedFor {
			continue
		}
		if s := foldLedger(now); s.pendingAt(n).ok {
			continue
		}
		d := x.RequestDecision()
		e := ReaskEntry{Channel: channel, Contact: k.Contact, Reason: reason, Status: x.Status, LapsedAt: x.Since, Decision: d, AllowedAt: d.RetryAt}
		e.WaID, e.UserID = whole.phoneAndUser()
		if d.Allowed {
			e.AllowedAt = q.Now
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b ReaskEntry) int {
		return cmp.Or(b.LapsedAt.Compare(a.LapsedAt), cmp.Compare(a.Contact, b.Contact))
	})
	return out, nil
}

type reaskKey struct {
	lapsed  int64
	contact string
}

// before reports whether k comes before o in the listing's order.
func (k reaskKey) before(o reaskKey) bool {
	if k.lapsed != o.lapsed {
		return k.lapsed > o.lapsed
	}
	return k.contact < o.contact
}

func encodeReaskCursor(k reaskKey) string { return encodeKeyCursor('r', k.lapsed, k.contact) }

func decodeReaskCursor(s string) (reaskKey, error) {
	n, contact, err := decodeKeyCursor('r', s)
	return reaskKey{n, contact}, err
}

// ReaskResult is what ReaskAll did for one person: RequestID is set when
// it sent a request, Err says why not otherwise (a *RequestError for the
// limits, a pending request or another sender; send's own error).
type ReaskResult struct {
	Entry     ReaskEntry
	RequestID string
	Err       error
}

// ReaskAll asks again, through SendRequest (so never twice at once and
// never beyond the limits), up to q.Limit people of the Reask list, and
// reports per person what happened. People whose request is not allowed
// yet are reported with a *RequestError wrapping ErrRequestNotAllowed and
// not sent. send sends one request (free-form or template) to the person.
// It stops early only when ctx ends.
func (t *Tracker) ReaskAll(ctx context.Context, channel string, q ReaskQuery, send func(ctx context.Context, e ReaskEntry) (wamid string, err error)) ([]ReaskResult, error) {
	q.Cursor = ""
	page, err := t.Reask(ctx, channel, q)
	if err != nil {
		return nil, err
	}
	out := make([]ReaskResult, 0, len(page.Entries))
	for _, e := range page.Entries {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r := ReaskResult{Entry: e}
		if !e.Decision.Allowed {
			r.Err = &RequestError{Err: ErrRequestNotAllowed, Decision: e.Decision}
		} else {
			sent, err := t.SendRequest(ctx, channel, e.Contact, func(ctx context.Context) (string, error) { return send(ctx, e) })
			r.RequestID, r.Err = sent.RequestID, err
		}
		out = append(out, r)
	}
	return out, nil
}
