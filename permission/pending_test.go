package permission

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

func reqSent(contact, id string, at time.Time) Event {
	return Event{Type: EventRequestSent, Channel: ch, Contact: contact, At: at, ID: id}
}

func reply(contact, ctxID string, at time.Time, accept bool) Event {
	if accept {
		return Event{Type: EventGrant, Channel: ch, Contact: contact, At: at, ID: "wamid.reply." + ctxID, Context: ctxID}
	}
	return Event{Type: EventRevoke, Channel: ch, Contact: contact, At: at, Reason: RevokeRejected, Context: ctxID}
}

// randomLifecycle draws requests and replies (to those requests, to
// unknown ones, or without a context) from a small universe of times and
// ids, so ties and duplicates are common. A request has one send time; its
// reports come within hours of it (a wamid is never reused days later).
func randomLifecycle(r *rand.Rand, n int) []Event {
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(30)) * 8 * time.Hour) }
	var sentAt [5]time.Time
	for i := range sentAt {
		sentAt[i] = at()
	}
	out := make([]Event, 0, n)
	for range n {
		i := r.IntN(len(sentAt) + 1)
		id := fmt.Sprintf("wamid.req.%d", i)
		base := at() // an id never sent: replies to it answer nothing
		if i < len(sentAt) {
			base = sentAt[i]
		}
		switch r.IntN(4) {
		case 0, 1:
			if i == len(sentAt) {
				i, id = 0, "wamid.req.0"
				base = sentAt[0]
			}
			out = append(out, reqSent("a", id, base.Add(time.Duration(r.IntN(3))*time.Hour)))
		case 2:
			out = append(out, reply("a", id, base.Add(time.Duration(r.IntN(10*24)-2)*time.Hour), r.IntN(2) == 0))
		default:
			e := grant("a", at())
			if r.IntN(2) == 0 {
				e.Source, e.Context = SourceCallback, id // a callback reply names a call, never a request
			}
			out = append(out, e)
		}
	}
	return out
}

// naivePending is the rule as the brief states it, straight from the
// events: the latest request by event time (ties by id) at or before t,
// until t reaches its time plus PendingTTL or a reply naming it took
// effect.
func naivePending(evs []store.LedgerEvent, t time.Time) (string, bool) {
	var best *store.LedgerEvent
	first := map[string]time.Time{}
	for i := range evs {
		e := &evs[i]
		if e.Type != EventRequestSent.String() {
			continue
		}
		if f, ok := first[e.ID]; !ok || e.At.Before(f) {
			first[e.ID] = e.At
		}
	}
	for i := range evs {
		e := &evs[i]
		if e.Type != EventRequestSent.String() || !e.At.Equal(first[e.ID]) || e.At.After(t) {
			continue
		}
		if best == nil || e.At.After(best.At) || (e.At.Equal(best.At) && e.ID > best.ID) {
			best = e
		}
	}
	if best == nil || !t.Before(best.At.Add(PendingTTL)) {
		return "", false
	}
	for _, e := range evs {
		if e.Context != best.ID || (e.Type != EventGrant.String() && e.Type != EventRevoke.String()) || Source(e.Source) == SourceCallback {
			continue
		}
		eff := e.At
		if !e.RecordedAt.IsZero() && e.RecordedAt.Before(eff) {
			eff = e.RecordedAt
		}
		if !eff.After(t) {
			return "", false
		}
	}
	return best.ID, true
}

// TestPendingIsOrderIndependent: for random request and reply sets, every
// permutation and duplication gives the same pending request at every
// instant from the cache's floor on, equal to the uncompacted fold's and
// to the rule read straight from the events.
func TestPendingIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 3))
	for iter := range 500 {
		events := randomLifecycle(r, 1+r.IntN(16))
		runs := make([]map[string]*pairState, 4)
		var ledger []store.LedgerEvent
		floor := int64(none)
		for i := range runs {
			evs := events
			if i > 0 {
				evs = shuffledWithDuplicates(r, events)
			}
			var l map[string][]store.LedgerEvent
			runs[i], l = recordAll(t, r, evs)
			if i == 0 {
				ledger = l["a"]
			}
			floor = max(floor, runs[i]["a"].floor)
			fresh := rebuild(l["a"])
			require.Equal(t, encodeState(&fresh, "a"), encodeState(runs[i]["a"], "a"), "iteration %d run %d", iter, i)
		}
		full := foldLedger(ledger)
		for h := int64(0); h < 24*10; h += 5 {
			at := floor + h*int64(time.Hour)
			want := full.pendingAt(at)
			id, ok := naivePending(ledger, fromNs(at))
			require.Equal(t, ok, want.ok, "iteration %d at %s", iter, fromNs(at))
			require.Equal(t, id, want.id, "iteration %d at %s", iter, fromNs(at))
			for i, run := range runs {
				require.Equal(t, want, run["a"].pendingAt(at), "iteration %d run %d at %s", iter, i, fromNs(at))
			}
		}
	}
}

func TestPendingRule(t *testing.T) {
	s := pairState{floor: none, wake: none}
	fold := func(e Event) {
		v, err := e.validate(DefaultTTL)
		require.NoError(t, err)
		le := ledgerEvent(v, DefaultTTL, v.At)
		s.fold(recOf(&le, -1))
	}
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	fold(reqSent("a", "wamid.1", t0))
	assert.False(t, s.pendingAt(at(-time.Second)).ok, "not before it was sent")
	p := s.pendingAt(at(time.Hour))
	require.True(t, p.ok)
	assert.Equal(t, "wamid.1", p.id)
	assert.Equal(t, at(PendingTTL), p.lapses)
	assert.False(t, s.pendingAt(at(PendingTTL)).ok, "lapses 7 days after it was sent")

	fold(grant("a", t0.Add(time.Hour))) // a grant naming no request does not answer it
	assert.True(t, s.pendingAt(at(2*time.Hour)).ok)
	fold(reply("a", "wamid.other", t0.Add(time.Hour), true))
	assert.True(t, s.pendingAt(at(2*time.Hour)).ok, "a reply to another request")

	fold(reqSent("a", "wamid.2", t0.Add(3*time.Hour)))
	assert.Equal(t, "wamid.2", s.pendingAt(at(4*time.Hour)).id, "a newer request replaces the older")
	fold(reply("a", "wamid.1", t0.Add(5*time.Hour), false))
	assert.True(t, s.pendingAt(at(6*time.Hour)).ok, "answering the replaced request leaves the newer pending")
	fold(reply("a", "wamid.2", t0.Add(5*time.Hour), false))
	assert.True(t, s.pendingAt(at(5*time.Hour-1)).ok)
	assert.False(t, s.pendingAt(at(5*time.Hour)).ok, "rejected")
}

func TestCodecLifecycle(t *testing.T) {
	s := pairState{floor: 5, wake: none}
	s.fold(rec{typ: EventRequestSent, at: 1, id: "wamid.1", ref: -1})
	v1 := encodeState(&s, "a")
	require.Equal(t, byte(stateVersion), v1[0], "no pending listed, no claim: no lifecycle bytes")
	s.pend = pendListed{ok: true, contact: "a", id: "wamid.1", sent: 1, lapses: 1 + int64(PendingTTL), waID: "34600"}
	s.claim = requestClaim{token: "tok", at: 2, until: 3}
	b := encodeState(&s, "a")
	require.Equal(t, byte(stateLifecycleVersion), b[0])
	got, err := decodeState(b, "a")
	require.NoError(t, err)
	assert.Equal(t, s.pend, got.pend)
	assert.Equal(t, s.claim, got.claim)
	assert.Equal(t, b, encodeState(&got, "a"))
	for cut := 1; cut < len(b); cut++ {
		_, err := decodeState(b[:cut], "a")
		require.ErrorIs(t, err, errCorrupt)
	}
	kind, _, _, err := decodeRecord(b, "a")
	require.NoError(t, err)
	assert.Equal(t, recordPerson, kind)
}

func pendingContacts(t *testing.T, tr *Tracker, now time.Time, limit int) []string {
	t.Helper()
	var out []string
	q := PendingQuery{Now: now, Limit: limit}
	for {
		p, err := tr.Pending(context.Background(), ch, q)
		require.NoError(t, err)
		for _, e := range p.Entries {
			out = append(out, e.Contact)
		}
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
}

func nextPending(t *testing.T, s *Subscription) Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.Next(ctx)
	require.NoError(t, err)
	return c
}

func TestTrackerPendingLifecycle(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{Channel: ch, After: f.tr.Revision(), Pending: true})
	require.NoError(t, err)
	plain, err := f.tr.Subscribe(SubscribeOptions{Channel: ch, After: f.tr.Revision()})
	require.NoError(t, err)

	changes := f.record(reqSent("34600000002", "wamid.b", t0), reqSent("34600000001", "wamid.a", t0), reqSent("34600000003", "wamid.c", t0.Add(-time.Hour)))
	assert.Empty(t, changes, "Record returns changes to the callable list only")
	assert.Equal(t, []string{"34600000003", "34600000001", "34600000002"}, pendingContacts(t, f.tr, f.clk.Now(), 1), "soonest to lapse first, ties by contact")
	n, err := f.tr.CountPending(ch, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for range 3 {
		c := nextPending(t, sub)
		require.Equal(t, ChangePending, c.Type)
		assert.Equal(t, PendingTTL, c.Pending.LapsesAt.Sub(c.Pending.SentAt))
	}

	// The user accepts b's request: b is callable and no longer pending.
	f.clk.Add(time.Hour)
	changes = f.record(reply("34600000002", "wamid.b", f.clk.Now(), true))
	require.Equal(t, []ChangeType{Granted}, types(changes))
	c := nextPending(t, sub)
	assert.Equal(t, ChangePendingEnded, c.Type)
	assert.Equal(t, PendingAnswered, c.Pending.Ended)
	assert.Equal(t, "wamid.b", c.Pending.RequestID)
	assert.Equal(t, "34600000002", c.Entry.Contact)
	assert.Equal(t, Granted, nextPending(t, sub).Type)
	assert.Equal(t, Granted, nextPending(t, plain).Type, "a plain subscriber sees only the callable list")
	assert.Equal(t, []string{"34600000003", "34600000001"}, pendingContacts(t, f.tr, f.clk.Now(), 10))

	// Lapses: c 7 days after it was sent, through the clock's wake-ups.
	lapse := t0.Add(-time.Hour).Add(PendingTTL)
	assert.Equal(t, []string{"34600000001"}, pendingContacts(t, f.tr, lapse, 10), "a lapsed request is never listed, swept or not")
	f.clk.Set(lapse)
	_, err = f.tr.Sweep(f.ctx, lapse)
	require.NoError(t, err)
	c = nextPending(t, sub)
	assert.Equal(t, ChangePendingEnded, c.Type)
	assert.Equal(t, PendingLapsed, c.Pending.Ended)
	assert.Equal(t, lapse, c.At)
	n, err = f.tr.CountPending(ch, lapse)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	// A newer request replaces a's pending one.
	f.clk.Set(t0.Add(3 * 24 * time.Hour))
	f.record(reqSent("34600000001", "wamid.a2", f.clk.Now()))
	c = nextPending(t, sub)
	assert.Equal(t, ChangePending, c.Type)
	assert.Equal(t, "wamid.a2", c.Pending.RequestID)
	page, err := f.tr.Pending(f.ctx, ch, PendingQuery{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "wamid.a2", page.Entries[0].RequestID)
	assert.Equal(t, "34600000001", page.Entries[0].WaID)

	// A fresh tracker on the same store lists the same.
	tr2, err := New(f.ctx, Config{Store: f.store, Clock: f.clk})
	require.NoError(t, err)
	defer tr2.Close()
	assert.Equal(t, []string{"34600000001"}, pendingContacts(t, tr2, f.clk.Now(), 10))
	_, err = f.tr.Pending(f.ctx, ch, PendingQuery{Cursor: "nonsense"})
	require.ErrorIs(t, err, ErrBadCursor)
}

// TestPendingFollowsThePerson: when identifiers join, the pending row moves
// to the person's contact, never shown twice.
func TestPendingFollowsThePerson(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(reqSent("34600000001", "wamid.a", t0))
	assert.Equal(t, []string{"34600000001"}, pendingContacts(t, f.tr, t0, 10))
	e := Event{Type: EventIdentity, Channel: ch, Contact: "34600000001", Aliases: []string{"US.bsuid1"}, At: t0.Add(time.Minute)}
	f.record(e)
	page, err := f.tr.Pending(f.ctx, ch, PendingQuery{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "US.bsuid1", page.Entries[0].Contact)
	assert.Equal(t, "34600000001", page.Entries[0].WaID)
	assert.Equal(t, "US.bsuid1", page.Entries[0].UserID)
	// The reply arrives under the phone number: it still answers.
	f.record(reply("34600000001", "wamid.a", t0.Add(time.Hour), false))
	assert.Empty(t, pendingContacts(t, f.tr, f.clk.Now(), 10))
}

func TestSharedPending(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	st := memory.New(memory.Config{})
	trs := sharedTrackers(t, st, clk, 2)
	a, b := trs[0], trs[1]
	sub, err := b.Subscribe(SubscribeOptions{Channel: ch, After: b.Revision(), Pending: true})
	require.NoError(t, err)
	_, err = a.Record(ctx, reqSent("u1", "wamid.1", t0))
	require.NoError(t, err)
	c := nextPending(t, sub)
	assert.Equal(t, ChangePending, c.Type)
	caughtUp(t, st, a, b)
	assert.Equal(t, []string{"u1"}, pendingContacts(t, b, t0, 10))
	_, err = b.Record(ctx, reply("u1", "wamid.1", t0.Add(time.Minute), true))
	require.NoError(t, err)
	caughtUp(t, st, a, b)
	assert.Empty(t, pendingContacts(t, a, t0.Add(time.Minute), 10))
}

func TestPendingRequestOfOnePerson(t *testing.T) {
	f := newFixture(t, Config{})
	_, ok, err := f.tr.PendingRequest(f.ctx, ch, "u1", time.Time{})
	require.NoError(t, err)
	assert.False(t, ok)
	f.record(reqSent("u1", "wamid.1", t0))
	p, ok, err := f.tr.PendingRequest(f.ctx, ch, "u1", time.Time{})
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "wamid.1", p.RequestID)
	assert.Equal(t, t0.Add(PendingTTL), p.LapsesAt)
	_, ok, err = f.tr.PendingRequest(f.ctx, ch, "u1", t0.Add(PendingTTL))
	require.NoError(t, err)
	assert.False(t, ok, "lapsed")
}

// TestPendingJoinedPersons: two identifiers, each with a request pending,
// turn out to be one person: one row remains, the latest request's, under
// the person's contact.
func TestPendingJoinedPersons(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{Channel: ch, After: f.tr.Revision(), Pending: true})
	require.NoError(t, err)
	f.record(reqSent("34600000001", "wamid.old", t0), reqSent("US.bsuid1", "wamid.new", t0.Add(time.Hour)))
	assert.Equal(t, []string{"34600000001", "US.bsuid1"}, pendingContacts(t, f.tr, f.clk.Now(), 10))
	nextPending(t, sub)
	nextPending(t, sub)
	f.record(Event{Type: EventIdentity, Channel: ch, Contact: "34600000001", Aliases: []string{"US.bsuid1"}, At: t0.Add(2 * time.Hour)})
	page, err := f.tr.Pending(f.ctx, ch, PendingQuery{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "US.bsuid1", page.Entries[0].Contact)
	assert.Equal(t, "wamid.new", page.Entries[0].RequestID, "the newer request replaces the older")
	c := nextPending(t, sub)
	assert.Equal(t, ChangePending, c.Type)
	assert.Equal(t, []string{"34600000001"}, c.Replaces, "a subscriber drops the other row")
	// A fresh tracker agrees.
	tr2, err := New(f.ctx, Config{Store: f.store, Clock: f.clk})
	require.NoError(t, err)
	defer tr2.Close()
	assert.Equal(t, []string{"US.bsuid1"}, pendingContacts(t, tr2, f.clk.Now(), 10))
}
