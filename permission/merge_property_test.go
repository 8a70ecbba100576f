package permission

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// randomEvents draws events for a few contacts from a small universe of
// times and ids, so that ties, duplicates and collisions are common.
func randomEvents(r *rand.Rand, n int) []Event {
	contacts := []string{"a", "b", "c"}
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(20)) * 12 * time.Hour) }
	id := func(p string) string { return fmt.Sprintf("%s.%d", p, r.IntN(6)) }
	out := make([]Event, 0, n)
	for range n {
		e := Event{Channel: ch, Contact: contacts[r.IntN(len(contacts))], At: at()}
		switch r.IntN(7) {
		case 0:
			e.Type, e.ID, e.Source = EventGrant, id("wamid"), []Source{SourceRequest, SourceCallback, SourceProfile}[r.IntN(3)]
			if r.IntN(2) == 0 {
				e.ExpiresAt = e.At.Add(time.Duration(1+r.IntN(200)) * time.Hour)
			}
		case 1:
			e.Type, e.Permanent, e.Source = EventGrant, true, []Source{SourceRequest, SourceProfile}[r.IntN(2)]
		case 2:
			e.Type, e.Reason = EventRevoke, []RevokeReason{RevokeRejected, RevokeProfile, RevokeAutomatic}[r.IntN(3)]
		case 3:
			e.Type, e.ID, e.Connected = EventInboundCall, id("wacid"), r.IntN(2) == 0
		case 4:
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

// TestMergeIsOrderIndependent: the state after a set of events is the same
// for any permutation and duplication of it (property test).
func TestMergeIsOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		events := randomEvents(r, 1+r.IntN(25))
		fold := func(evs []Event) map[string]store.State {
			states := map[string]store.State{}
			for _, e := range evs {
				v, err := e.validate(DefaultTTL)
				require.NoError(t, err)
				s := states[v.Contact]
				merge(&s, v, DefaultTTL, true)
				states[v.Contact] = s
			}
			return states
		}
		want := fold(events)
		for range 3 {
			got := fold(shuffledWithDuplicates(r, events))
			require.Equal(t, want, got, "iteration %d", iter)
		}
	}
}

// TestTrackerConvergesWhateverTheOrder feeds the same event set to two
// trackers in different orders and batchings, with the clock moving and
// sweeps in between, and checks they agree on every pair at every instant.
func TestTrackerConvergesWhateverTheOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	for iter := range 200 {
		events := randomEvents(r, 1+r.IntN(30))
		run := func(evs []Event) (*Tracker, *memory.Store) {
			st := memory.New(memory.Config{})
			f := newFixture(t, Config{Store: st})
			for len(evs) > 0 {
				n := 1 + r.IntN(min(4, len(evs)))
				f.clk.Add(time.Duration(r.IntN(48)) * time.Hour)
				f.record(evs[:n]...)
				_, err := f.tr.Sweep(ctx, f.clk.Now())
				require.NoError(t, err)
				evs = evs[n:]
			}
			return f.tr, st
		}
		a, sa := run(shuffledWithDuplicates(r, events))
		b, sb := run(shuffledWithDuplicates(r, events))
		for _, contact := range []string{"a", "b", "c"} {
			k := store.Key{Channel: ch, Contact: contact}
			x, errA := sa.Get(ctx, k)
			y, errB := sb.Get(ctx, k)
			require.Equal(t, errA == nil, errB == nil)
			x.Revision, y.Revision, x.ExpiryNoted, y.ExpiryNoted = 0, 0, time.Time{}, time.Time{}
			require.Equal(t, x, y, "iteration %d contact %s", iter, contact)
			for h := 0; h < 20*12+400; h += 7 {
				now := t0.Add(time.Duration(h) * time.Hour)
				ea, errA := a.Explain(ctx, ch, contact, now)
				eb, errB := b.Explain(ctx, ch, contact, now)
				require.NoError(t, errA)
				require.NoError(t, errB)
				require.Equal(t, ea, eb, "iteration %d contact %s at %s", iter, contact, now)
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
			case Extended:
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
