package permission

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/btree"

	"github.com/callready/callready/store"
)

// The pending list: people with a call permission request that Meta's user
// has not answered yet (see pending_rules.go for the rule). Like the
// callable list it lives in the change log (ChangePending,
// ChangePendingEnded, written in the transaction that caused them) and in
// a per-channel index that changes only by applying those changes, so
// every tracker on a shared store and every subscriber sees the same list.

// Change types of the pending list. Subscribe delivers them only with
// SubscribeOptions.Pending; Record does not return them (it returns the
// changes to the callable list).
const (
	// ChangePending: the person has a request pending, new or replacing
	// the one they had (Change.Pending names it).
	ChangePending ChangeType = "pending"
	// ChangePendingEnded: the person's request stopped pending:
	// Change.Pending.Ended says why (answered or lapsed).
	ChangePendingEnded ChangeType = "pending_ended"
)

// PendingEnd is why a request stopped pending.
type PendingEnd string

const (
	PendingAnswered PendingEnd = "answered" // a grant or revoke named it (Meta's context.id)
	PendingLapsed   PendingEnd = "lapsed"   // PendingTTL passed without an answer
)

// PendingEntry is one person's pending request.
type PendingEntry struct {
	Channel string
	// Contact is the identifier the person is listed under (see Entry).
	Contact      string
	WaID, UserID string
	// RequestID is the request's message id (wamid).
	RequestID string
	SentAt    time.Time
	// LapsesAt is when the request stops pending without an answer:
	// SentAt + PendingTTL.
	LapsesAt time.Time
	// Ended is set on ChangePendingEnded changes only.
	Ended PendingEnd
}

// PendingQuery selects a page of pending requests.
type PendingQuery struct {
	// Now is the instant the listing is computed at: requests lapsed by
	// then are left out. Default: the tracker's clock. The list is the
	// current one: a Now in the past does not bring back requests answered
	// since.
	Now time.Time
	// Limit is the page size. Default DefaultPageSize; at most MaxPageSize.
	Limit int
	// Cursor continues a listing: pass the previous page's NextCursor.
	Cursor string
}

// PendingPage is one page of pending requests, soonest to lapse first.
type PendingPage struct {
	Entries    []PendingEntry
	NextCursor string
	// Revision is the last change reflected: subscribe after it (with
	// SubscribeOptions.Pending) to follow the list.
	Revision int64
}

// pendListed is the pending request a person last put in the change log
// (not part of the fold: like listed, it is what the index holds).
type pendListed struct {
	ok           bool
	contact      string // the contact it is listed under
	id           string
	sent, lapses int64
	waID, userID string
}

// Pending lists the people of channel with a request pending at q.Now,
// soonest to lapse first, ties by contact. A page costs O(log n + page
// size): a range scan of the channel's pending index.
func (t *Tracker) Pending(ctx context.Context, channel string, q PendingQuery) (PendingPage, error) {
	if err := ctx.Err(); err != nil {
		return PendingPage{}, err
	}
	if t.closed() {
		return PendingPage{}, ErrClosed
	}
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	q.Limit = min(q.Limit, MaxPageSize)
	if q.Now.IsZero() {
		q.Now = t.clock.Now()
	}
	now := q.Now.UnixNano()
	start := pendItem{lapses: now + 1}
	after := false
	if q.Cursor != "" {
		it, err := decodePendingCursor(q.Cursor)
		if err != nil {
			return PendingPage{}, err
		}
		if it.lapses >= start.lapses {
			start, after = it, true
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	page := PendingPage{Revision: t.indexRevision}
	c := t.idx.pend.channels[channel]
	if c == nil {
		return page, nil
	}
	var last pendItem
	c.byLapse.AscendGreaterOrEqual(start, func(it pendItem) bool {
		if after && !lessPending(start, it) {
			return true // the cursor's own item
		}
		if len(page.Entries) == q.Limit {
			page.NextCursor = encodePendingCursor(last)
			return false
		}
		page.Entries = append(page.Entries, it.p.entry(channel))
		last = it
		return true
	})
	return page, nil
}

// CountPending returns how many people of channel have a request pending
// at now (the tracker's clock when zero; as for Pending, the current list
// with the requests lapsed by now left out). It costs O(log n) plus the
// lapsed requests the sweep has not removed yet.
func (t *Tracker) CountPending(channel string, now time.Time) (int, error) {
	if t.closed() {
		return 0, ErrClosed
	}
	if now.IsZero() {
		now = t.clock.Now()
	}
	n := now.UnixNano()
	t.mu.RLock()
	defer t.mu.RUnlock()
	c := t.idx.pend.channels[channel]
	if c == nil {
		return 0, nil
	}
	stale := 0
	c.byLapse.Ascend(func(it pendItem) bool {
		if it.lapses > n {
			return false
		}
		stale++
		return true
	})
	return len(c.rows) - stale, nil
}

// pendingIndex is the pending list of every channel.
type pendingIndex struct {
	channels map[string]*pendingChannel
}

type pendingChannel struct {
	rows    map[string]*pendListed // by contact
	byLapse *btree.BTreeG[pendItem]
}

type pendItem struct {
	lapses  int64
	contact string
	p       *pendListed
}

func lessPending(a, b pendItem) bool {
	if a.lapses != b.lapses {
		return a.lapses < b.lapses
	}
	return a.contact < b.contact
}

// set makes contact hold p (or nothing when !p.ok) in channel's list.
func (x *pendingIndex) set(channel, contact string, p pendListed) {
	c := x.channels[channel]
	if c == nil {
		if !p.ok {
			return
		}
		if x.channels == nil {
			x.channels = make(map[string]*pendingChannel)
		}
		c = &pendingChannel{rows: make(map[string]*pendListed), byLapse: btree.NewG(btreeDegree, lessPending)}
		x.channels[channel] = c
	}
	if old := c.rows[contact]; old != nil {
		c.byLapse.Delete(pendItem{lapses: old.lapses, contact: contact})
		delete(c.rows, contact)
	}
	if p.ok {
		p.contact = contact
		c.rows[contact] = &p
		c.byLapse.ReplaceOrInsert(pendItem{lapses: p.lapses, contact: contact, p: &p})
	}
	if len(c.rows) == 0 {
		delete(x.channels, channel)
	}
}

// applyPending applies one committed pending change to the index.
func (x *pendingIndex) applyPending(sc *store.Change) {
	for _, old := range sc.Replaces {
		x.set(sc.Key.Channel, old, pendListed{})
	}
	p := pendListed{ok: ChangeType(sc.Type) == ChangePending, id: sc.Source, sent: toNs(sc.GrantedAt), lapses: toNs(sc.ExpiresAt),
		waID: sc.WaID, userID: sc.UserID}
	x.set(sc.Key.Channel, sc.Key.Contact, p)
}

// applyPendingLocked applies sc when it is a pending change, adding its
// subscriber view to out; it reports whether it was one. Callers hold mu.
func (t *Tracker) applyPendingLocked(sc *store.Change, out *[]Change) bool {
	if !isPendingChange(ChangeType(sc.Type)) {
		return false
	}
	t.idx.pend.applyPending(sc)
	t.applied, t.indexRevision = sc.Revision, sc.Revision
	*out = append(*out, fromStore(*sc))
	return true
}

// loadPending puts a stored person's pending row in the index.
func (x *index) loadPending(channel string, s *pairState) {
	if s.pend.ok {
		x.pend.set(channel, s.pend.contact, s.pend)
	}
}

// pendingListChange is a pending change as subscribers see it.
func pendingListChange(c store.Change) Change {
	p := pendingOf(&c)
	return Change{Revision: c.Revision, Type: ChangeType(c.Type), At: c.At.UTC(), Replaces: c.Replaces, Pending: p,
		Entry: Entry{Channel: c.Key.Channel, Contact: c.Key.Contact, WaID: c.WaID, UserID: c.UserID}}
}

func isPendingChange(t ChangeType) bool { return t == ChangePending || t == ChangePendingEnded }

func (p *pendListed) entry(channel string) PendingEntry {
	return PendingEntry{Channel: channel, Contact: p.contact, WaID: p.waID, UserID: p.userID, RequestID: p.id,
		SentAt: fromNs(p.sent), LapsesAt: fromNs(p.lapses)}
}

// pendingOf is the pending change's view for subscribers. A pending change
// is stored in the change log's own columns, so that no adapter needs a
// migration: Source holds the request id, GrantedAt when it was sent,
// ExpiresAt when it lapses, and Kind (of a pending_ended change) why it
// ended.
func pendingOf(sc *store.Change) PendingEntry {
	e := PendingEntry{Channel: sc.Key.Channel, Contact: sc.Key.Contact, WaID: sc.WaID, UserID: sc.UserID, RequestID: sc.Source,
		SentAt: utcOrZero(sc.GrantedAt), LapsesAt: utcOrZero(sc.ExpiresAt)}
	if ChangeType(sc.Type) == ChangePendingEnded {
		e.Ended = PendingEnd(sc.Kind)
	}
	return e
}

func encodePendingCursor(it pendItem) string { return encodeKeyCursor('p', it.lapses, it.contact) }

func decodePendingCursor(s string) (pendItem, error) {
	n, contact, err := decodeKeyCursor('p', s)
	return pendItem{lapses: n, contact: contact}, err
}

// A key cursor, of the pending and re-ask lists, is a tag byte naming the
// list, an instant and the contact.
func encodeKeyCursor(tag byte, n int64, contact string) string {
	b := binary.BigEndian.AppendUint64([]byte{tag}, uint64(n))
	return base64.RawURLEncoding.EncodeToString(append(b, contact...))
}

func decodeKeyCursor(tag byte, s string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 9 || b[0] != tag {
		return 0, "", fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), string(b[9:]), nil
}

// settlePending compares the person's pending request at its floor with the
// one last listed and appends the change between them, moving rows listed
// under contacts that are no longer the person's (identifiers joined, or
// the contact moved). Called by settle, in the same transaction.
func (w *batchWriter) settlePending(r *request, p *pending, appended *[]store.Change) error {
	s := &p.state
	var replaces []string
	var dropped []pendListed
	drop := func(l pendListed) {
		if c := l.contact; c != "" && c != p.key.Contact && !containsString(replaces, c) {
			replaces = append(replaces, c)
			dropped = append(dropped, l)
		}
	}
	if s.pend.ok {
		drop(s.pend)
	}
	for _, q := range w.joinedInto(p) {
		if q.state.pend.ok {
			drop(q.state.pend)
			q.state.pend = pendListed{} // its row goes with this change
		}
	}
	cur := s.pendingAt(s.floor)
	now := pendListed{ok: cur.ok, contact: p.key.Contact, id: cur.id, sent: cur.sent, lapses: cur.lapses}
	if cur.ok {
		now.waID, now.userID = s.phoneAndUser()
	}
	prev := s.pend
	if now == prev && len(replaces) == 0 {
		return nil
	}
	if !prev.ok && len(dropped) > 0 {
		prev = dropped[0] // a joined person's row ends under its contact
	}
	sc := store.Change{Key: p.key, Replaces: replaces, WaID: now.waID, UserID: now.userID}
	switch {
	case now.ok:
		sc.Type, sc.At, sc.Source = string(ChangePending), fromNs(now.sent), now.id
		sc.GrantedAt, sc.ExpiresAt = fromNs(now.sent), fromNs(now.lapses)
	case prev.ok:
		sc.Type, sc.Source, sc.WaID, sc.UserID = string(ChangePendingEnded), prev.id, prev.waID, prev.userID
		sc.GrantedAt, sc.ExpiresAt = fromNs(prev.sent), fromNs(prev.lapses)
		sc.Kind, sc.At = string(PendingLapsed), fromNs(prev.lapses)
		if at := s.answeredAt(prev.id, s.floor); at != none {
			sc.Kind, sc.At = string(PendingAnswered), fromNs(at)
		}
		if prev.contact != p.key.Contact {
			sc.Key.Contact = prev.contact
			sc.Replaces = removeString(replaces, prev.contact)
		}
	default:
		return nil // nothing listed, nothing pending
	}
	rev, err := w.tx.Append(w.ctx, sc)
	if err != nil {
		return err
	}
	sc.Revision = rev
	s.pend = now
	p.revision = rev
	p.dirty = true
	*appended = append(*appended, sc)
	r.changes = append(r.changes, fromStore(sc))
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func removeString(ss []string, s string) []string {
	out := ss[:0:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// PendingRequest returns the request pending for the person any of whose
// identifiers is contact, at now (the tracker's clock when zero), from the
// person's cached state: one store read. ok is false when none is.
func (t *Tracker) PendingRequest(ctx context.Context, channel, contact string, now time.Time) (e PendingEntry, ok bool, err error) {
	if t.closed() {
		return PendingEntry{}, false, ErrClosed
	}
	if now.IsZero() {
		now = t.clock.Now()
	}
	k, s, err := t.resolvePerson(ctx, channel, contact)
	if err != nil {
		return PendingEntry{}, false, err
	}
	p := s.pendingAt(now.UnixNano())
	if !p.ok {
		return PendingEntry{}, false, nil
	}
	l := pendListed{ok: true, contact: k.Contact, id: p.id, sent: p.sent, lapses: p.lapses}
	l.waID, l.userID = s.phoneAndUser()
	return l.entry(channel), true, nil
}

// joinedInto returns the batch's persons that joined into p (none unless
// some persons of the batch joined).
func (w *batchWriter) joinedInto(p *pending) []*pending {
	if !w.joined {
		return nil
	}
	var out []*pending
	for _, q := range w.order {
		root := q
		for root.into != nil {
			root = root.into
		}
		if q != p && root == p {
			out = append(out, q)
		}
	}
	return out
}
