package permission

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
)

// randomEvents draws events for a few contacts from a small universe of
// times and ids, so that ties, duplicates and collisions are common: grants
// of every kind (callback replies naming calls among them), revocations,
// calls answered and missed, requests.
func randomEvents(r *rand.Rand, n int) []Event {
	contacts := []string{"a", "b", "c"}
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(20)) * 12 * time.Hour) }
	id := func(p string) string { return fmt.Sprintf("%s.%d", p, r.IntN(6)) }
	// A call has one start; its reports (connect, terminate) come within
	// two minutes of it and Meta's automatic reply a minute after that.
	var callAt [6]time.Time
	for i := range callAt {
		callAt[i] = at()
	}
	call := func() (string, time.Time) {
		i := r.IntN(len(callAt))
		return fmt.Sprintf("wacid.%d", i), callAt[i].Add(time.Duration(1+r.IntN(120)) * time.Second)
	}
	out := make([]Event, 0, n)
	for range n {
		e := Event{Channel: ch, Contact: contacts[r.IntN(len(contacts))], At: at()}
		switch r.IntN(8) {
		case 0:
			e.Type, e.ID, e.Source = EventGrant, id("wamid"), []Source{SourceRequest, SourceCallback, SourceProfile}[r.IntN(3)]
			if r.IntN(2) == 0 {
				e.ExpiresAt = e.At.Add(time.Duration(1+r.IntN(400)) * time.Hour)
			}
		case 1:
			e.Type, e.Permanent, e.Source = EventGrant, true, []Source{SourceRequest, SourceProfile}[r.IntN(2)]
		case 2:
			e.Type, e.Reason = EventRevoke, []RevokeReason{RevokeRejected, RevokeProfile, RevokeAutomatic}[r.IntN(3)]
		case 3:
			e.Type, e.Connected = EventInboundCall, r.IntN(2) == 0
			e.ID, e.At = call()
		case 4:
			// Meta's automatic reply to an inbound call.
			e.Type, e.Source, e.ID = EventGrant, SourceCallback, id("wamid.auto")
			e.Context, e.At = call()
			e.At = e.At.Add(2*time.Minute + time.Duration(r.IntN(60))*time.Second)
			e.ExpiresAt = e.At.Add(time.Duration(100+r.IntN(100)) * time.Hour)
		case 5:
			e.Type, e.ID = EventRequestSent, id("wamid.req")
		default:
			e.Type, e.ID, e.Connected = EventBusinessCall, id("wacid.out"), r.IntN(2) == 0
		}
		out = append(out, e)
	}
	return out
}

// shuffledWithDuplicates returns a permutation of events with some repeated.
func shuffledWithDuplicates(r *rand.Rand, events []Event) []Event {
	out := append([]Event(nil), events...)
	for range r.IntN(len(events) + 1) {
		out = append(out, events[r.IntN(len(events))])
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// record folds events as a tracker does, in arrival order: each is
// recorded at a clock that only moves forward (within a few days of the
// event), deduplicated, folded and compacted at once. It returns each
// pair's cached state and ledger.
func recordAll(t *testing.T, r *rand.Rand, evs []Event) (map[string]*pairState, map[string][]store.LedgerEvent) {
	t.Helper()
	states := map[string]*pairState{}
	ledgers := map[string][]store.LedgerEvent{}
	seen := map[string]bool{}
	clock := t0.Add(-48 * time.Hour)
	for _, e := range evs {
		v, err := e.validate(DefaultTTL)
		require.NoError(t, err)
		if at := v.At.Add(time.Duration(r.IntN(72)-24) * time.Hour); at.After(clock) {
			clock = at
		}
		le := ledgerEvent(v, DefaultTTL, clock)
		if seen[le.Dedupe] {
			continue
		}
		seen[le.Dedupe] = true
		s := states[v.Contact]
		if s == nil {
			s = &pairState{floor: none, wake: none}
			states[v.Contact] = s
		}
		s.fold(recOf(&le, -1))
		s.compact(clock.UnixNano())
		ledgers[v.Contact] = append(ledgers[v.Contact], le)
	}
	return states, ledgers
}

// TestFoldIsOrderIndependent: for random event sets, every permutation and
// duplication gives the same answers at every instant from the cache's
// floor on, those answers are the uncompacted fold's (what Explain reads),
// and the cached state always equals a fresh fold of its ledger.
func TestFoldIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lc := LimitsConfig{}.withDefaults()
	for iter := range 600 {
		events := randomEvents(r, 1+r.IntN(25))
		runs := make([]map[string]*pairState, 4)
		var ledgers map[string][]store.LedgerEvent
		floor := int64(none)
		for i := range runs {
			evs := events
			if i > 0 {
				evs = shuffledWithDuplicates(r, events)
			}
			var l map[string][]store.LedgerEvent
			runs[i], l = recordAll(t, r, evs)
			if i == 0 {
				ledgers = l
			}
			for contact, s := range runs[i] {
				floor = max(floor, s.floor)
				fresh := rebuild(l[contact])
				require.Equal(t, encodeState(&fresh, contact), encodeState(s, contact), "iteration %d run %d contact %s: cache differs from a fresh fold of the ledger", iter, i, contact)
			}
		}
		for contact, evs := range ledgers {
			full := foldLedger(evs)
			for h := int64(0); h < 24*30; h += 11 {
				at := floor + h*int64(time.Hour)
				want := full.entryAt(at, lc)
				wantBudget := full.budget(at, lc)
				for i, run := range runs {
					s := run[contact]
					require.Equal(t, want, s.entryAt(at, lc), "iteration %d run %d contact %s at %s", iter, i, contact, fromNs(at))
					require.Equal(t, wantBudget, s.budget(at, lc), "iteration %d run %d contact %s at %s", iter, i, contact, fromNs(at))
				}
			}
		}
	}
}

// TestCodecRoundTrip: a cached state survives encoding, and a corrupt one
// is refused, never misread.
func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		states, _ := recordAll(t, r, randomEvents(r, 1+r.IntN(25)))
		for contact, s := range states {
			s.listed = s.entryAt(s.floor, LimitsConfig{}.withDefaults())
			s.wake = s.wakeAfter(s.floor, LimitsConfig{}.withDefaults())
			b := encodeState(s, contact)
			got, err := decodeState(b, contact)
			require.NoError(t, err)
			require.Equal(t, b, encodeState(&got, contact))
			for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
				_, err := decodeState(b[:cut], contact)
				require.ErrorIs(t, err, errCorrupt)
			}
		}
	}
}

// fuzzContact is the key every fuzzed state is read under.
const fuzzContact = "a"

func FuzzDecodeState(f *testing.F) {
	s := pairState{floor: 5, wake: none}
	s.fold(rec{typ: EventGrant, at: 1, exp: 9, source: SourceRequest, id: "x", ref: -1})
	s.addIdent(fuzzContact, 1)
	f.Add(encodeState(&s, fuzzContact))
	s.pend = pendListed{ok: true, contact: fuzzContact, id: "wamid.1", sent: 1, lapses: 2}
	s.claim = requestClaim{token: "t", at: 1, until: 2}
	f.Add(encodeState(&s, fuzzContact)) // the lifecycle's version (codec_lifecycle.go)
	for _, b := range legacyStates(f) {
		f.Add(b) // the first encoding, still read
	}
	f.Add([]byte{unkeyedVersion, 0x14, 0, 0, 0, 0, 0, 0}) // an unkeyed version, still read
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeState(b, fuzzContact)
		var mem stateMem // a batch's slabs, part used already
		mem.permits(3)
		mem.idents(2)
		inMem, errMem := decodeStateIn(b, fuzzContact, &mem)
		require.Equal(t, err, errMem, "a batch's slabs read the same bytes alike")
		require.Equal(t, got, inMem, "a batch's slabs read the same bytes alike")
		if err != nil || len(b) == 0 {
			return
		}
		again := encodeState(&got, fuzzContact)
		if b[0] == stateVersion || b[0] == stateLifecycleVersion {
			require.Equal(t, b, again, "one encoding per state")
			return
		}
		back, err := decodeState(again, fuzzContact)
		require.NoError(t, err)
		require.Equal(t, got, back, "a state read in an earlier encoding is written keyed as the same state")
	})
}

// TestTrackerConvergesWhateverTheOrder feeds the same event set to two
// trackers in different orders and batchings, with the clock moving and
// sweeps in between, and checks their lists agree with each other and with
// Explain (a fold of the ledger) at every later instant.
func TestTrackerConvergesWhateverTheOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	for iter := range 150 {
		events := randomEvents(r, 1+r.IntN(30))
		run := func(evs []Event) *fixture {
			f := newFixture(t, Config{})
			for len(evs) > 0 {
				n := 1 + r.IntN(min(4, len(evs)))
				f.clk.Add(time.Duration(r.IntN(48)) * time.Hour)
				f.record(evs[:n]...)
				_, err := f.tr.Sweep(ctx, f.clk.Now())
				require.NoError(t, err)
				evs = evs[n:]
			}
			return f
		}
		a := run(shuffledWithDuplicates(r, events))
		b := run(shuffledWithDuplicates(r, events))
		start := a.clk.Now()
		if b.clk.Now().After(start) {
			start = b.clk.Now()
		}
		for h := 0; h < 400; h += 7 {
			now := start.Add(time.Duration(h) * time.Hour)
			var lists [2][]Entry
			for i, f := range []*fixture{a, b} {
				f.clk.Set(now)
				_, err := f.tr.Sweep(ctx, now)
				require.NoError(t, err)
				p, err := f.tr.Eligible(ctx, ch, Query{Now: now, Limit: MaxPageSize})
				require.NoError(t, err)
				lists[i] = p.Entries
			}
			require.Equal(t, lists[0], lists[1], "iteration %d at %s", iter, now)
			byContact := map[string]Entry{}
			for _, e := range lists[0] {
				byContact[e.Contact] = e
			}
			for _, contact := range []string{"a", "b", "c"} {
				x, err := a.tr.Explain(ctx, ch, contact, now)
				require.NoError(t, err)
				e, listed := byContact[contact]
				require.Equal(t, x.Callable, listed, "iteration %d contact %s at %s: Explain and the list disagree", iter, contact, now)
				if listed {
					require.Equal(t, x.Entry, e, "iteration %d contact %s at %s", iter, contact, now)
				}
			}
		}
	}
}

// TestChangeLogReplaysToTheIndex: applying the change log from the start
// yields exactly the callable set the index holds, for random histories, so
// a subscriber that lists then watches never diverges.
func TestChangeLogReplaysToTheIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	for iter := range 200 {
		f := newFixture(t, Config{})
		evs := randomEvents(r, 1+r.IntN(30))
		for len(evs) > 0 {
			n := 1 + r.IntN(min(3, len(evs)))
			f.clk.Add(time.Duration(r.IntN(72)) * time.Hour)
			f.record(evs[:n]...)
			_, err := f.tr.Sweep(ctx, f.clk.Now())
			require.NoError(t, err)
			evs = evs[n:]
		}
		log, err := f.store.Changes(ctx, 0, 1<<20)
		require.NoError(t, err)
		live := map[string]Entry{}
		for _, sc := range log {
			c := fromStore(sc)
			switch c.Type {
			case Granted:
				require.NotContains(t, live, c.Entry.Contact, "iteration %d: granted twice without an end", iter)
				live[c.Entry.Contact] = c.Entry
			case Extended, Updated:
				require.Contains(t, live, c.Entry.Contact, "iteration %d: extended before granted", iter)
				live[c.Entry.Contact] = c.Entry
			case Revoked, Expired:
				require.Contains(t, live, c.Entry.Contact, "iteration %d: ended before granted", iter)
				delete(live, c.Entry.Contact)
			}
		}
		var fromLog []string
		for c := range live {
			fromLog = append(fromLog, c)
		}
		require.ElementsMatch(t, fromLog, f.callable(f.clk.Now()), "iteration %d", iter)
	}
}

// TestWakeAfterMissesNoChange: for random states, the pair's entry at every
// instant where anything of the state could change it (each grant's start
// and end, each revocation's time and effect, each activity's instants;
// one nanosecond either side too) is its entry at the floor until the
// wake-up, so a sweep at the wake-up misses nothing.
func TestWakeAfterMissesNoChange(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	lc := LimitsConfig{}.withDefaults()
	for iter := range 600 {
		states, _ := recordAll(t, r, randomEvents(r, 1+r.IntN(25)))
		for contact, s := range states {
			var instants []int64
			for _, g := range s.grants {
				instants = append(instants, g.at, g.exp)
				if start, end, _, ok := s.span(&g); ok {
					instants = append(instants, start, end)
				}
			}
			for _, rv := range s.revs {
				instants = append(instants, rv.at, rv.eff)
			}
			for _, a := range s.act {
				instants = append(instants, a.at, a.at+int64(lc.CallWindow), a.at+int64(PendingTTL))
			}
			floor, wake := s.floor, s.wakeAfter(s.floor, lc)
			want := s.entryAt(floor, lc)
			for _, v := range instants {
				for _, at := range []int64{v - 1, v, v + 1} {
					if at <= floor || v == never || (wake != none && at >= wake) {
						continue
					}
					require.Equal(t, want, s.entryAt(at, lc), "iteration %d contact %s: the entry changes at %s, before the wake-up at %s", iter, contact, fromNs(at), fromNs(wake))
				}
			}
		}
	}
}

// TestReGrantMovesTheWakeUp: a grant that outlasts an earlier one makes
// the pair's wake-up its own end, not the end it superseded; once a
// revocation has ended both, neither end is a wake-up.
func TestReGrantMovesTheWakeUp(t *testing.T) {
	lc := LimitsConfig{}.withDefaults()
	day := int64(24 * time.Hour)
	base := t0.UnixNano()
	s := pairState{floor: base, wake: none}
	s.fold(rec{typ: EventGrant, at: base, exp: base + 7*day, source: SourceRequest, id: "wamid.1", recorded: none, ref: -1})
	require.Equal(t, base+7*day, s.wakeAfter(base, lc))
	s.fold(rec{typ: EventGrant, at: base + day, exp: base + 8*day, source: SourceRequest, id: "wamid.2", recorded: none, ref: -1})
	require.Equal(t, base+day, s.wakeAfter(base, lc), "the second grant's start")
	require.Equal(t, base+8*day, s.wakeAfter(base+day, lc), "the first grant's end is superseded")

	// A revocation on day 2 ends both grants (every grant that started by
	// then): its effect is the next wake-up, and after it there is none.
	s.fold(rec{typ: EventRevoke, at: base + 2*day, reason: RevokeRejected, id: "wamid.3", recorded: none, ref: -1})
	require.Equal(t, base+2*day, s.wakeAfter(base+day, lc))
	require.Equal(t, int64(none), s.wakeAfter(base+2*day, lc), "revoked: no end can change the entry")
}
