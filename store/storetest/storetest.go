// Package storetest is the conformance suite for store.Store adapters. An
// adapter's tests call Run with a constructor for empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New(memory.Config{}) })
//	}
//
// The suite checks the contract the tracker relies on: round-tripped states,
// changes and ledger events (times at store.Precision), ledger dedupe,
// ordering, paging and pruning, atomic transactions, increasing revisions,
// Load as a consistent snapshot under concurrent writes, Notifier.Wait,
// compaction errors, context cancellation and concurrent use.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
)

// NewStore returns an empty store for one test. The suite does not close
// it: register cleanup with t.Cleanup.
type NewStore func(t *testing.T) store.Store

// base is a fixed instant; adapters must keep at least microseconds.
var base = time.Date(2025, 12, 31, 8, 0, 0, 123456000, time.UTC)

// SampleState returns a state with every field set, for round-trip tests.
// Data holds every byte value, so an adapter that stores it as text fails.
func SampleState(i int) store.State {
	data := make([]byte, 0, 300)
	for b := range 256 {
		data = append(data, byte(b))
	}
	data = append(data, fmt.Sprintf("state %d", i)...)
	return store.State{Data: data, Revision: int64(i)}
}

func sampleChange(k store.Key, i int) store.Change {
	at := base.Add(time.Duration(i) * time.Second)
	return store.Change{Type: "granted", Key: k, At: at, Kind: "temporary", Source: "callback", GrantedAt: at, ExpiresAt: at.Add(168 * time.Hour),
		CallsLeft: 100 - i, UnansweredStreak: i % 5, Wake: at.Add(time.Duration(i) * time.Hour)}
}

// EqualState fails t unless a and b hold the same bytes and revision.
func EqualState(t testing.TB, want, got store.State) {
	t.Helper()
	if len(want.Data) == 0 && len(got.Data) == 0 {
		want.Data, got.Data = nil, nil
	}
	assert.Equal(t, want, got)
}

// SampleEvent returns a ledger event with every field set; times keep
// microseconds (store.Precision) but nothing finer.
func SampleEvent(k store.Key, i int) store.LedgerEvent {
	at := base.Add(time.Duration(i) * time.Hour)
	return store.LedgerEvent{
		Key: k, Dedupe: fmt.Sprintf("d%d", i), Type: "grant", ID: fmt.Sprintf("wamid.%d", i), Context: "wamid.q",
		At: at, ExpiresAt: at.Add(168 * time.Hour), Connected: i%2 == 0, Source: "request", Reason: "", Origin: "webhook",
		RecordedAt: at.Add(time.Second + time.Microsecond), Revision: int64(i),
	}
}

func equalEvent(t testing.TB, want, got store.LedgerEvent) {
	t.Helper()
	want.Seq = got.Seq
	for _, p := range []*time.Time{&want.At, &want.ExpiresAt, &want.RecordedAt, &got.At, &got.ExpiresAt, &got.RecordedAt} {
		*p = normTime(*p)
	}
	assert.Equal(t, want, got)
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// Run runs the whole suite.
func Run(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	k1 := store.Key{Channel: "106540352242922", Contact: "16505551234"}
	k2 := store.Key{Channel: "106540352242922", Contact: "US.13491208655302741918"}
	k3 := store.Key{Channel: "106540352299999", Contact: "16505551234"}

	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Get(ctx, k1)
		require.ErrorIs(t, err, store.ErrNotFound)
		err = s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Get(ctx, k1)
			return err
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		want := SampleState(1)
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, k1, want) }))
		got, err := s.Get(ctx, k1)
		require.NoError(t, err)
		EqualState(t, want, got)
		// Zero state and empty strings survive too.
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, k2, store.State{}) }))
		got, err = s.Get(ctx, k2)
		require.NoError(t, err)
		EqualState(t, store.State{}, got)
		// Pairs on different channels never mix.
		_, err = s.Get(ctx, k3)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("TxSeesOwnWrites", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, k1, SampleState(2)); err != nil {
				return err
			}
			got, err := tx.Get(ctx, k1)
			if err != nil {
				return err
			}
			EqualState(t, SampleState(2), got)
			return tx.Put(ctx, k1, SampleState(3))
		}))
		got, err := s.Get(ctx, k1)
		require.NoError(t, err)
		EqualState(t, SampleState(3), got)
	})

	t.Run("GetMany", func(t *testing.T) {
		s := newStore(t)
		supported := false
		err := s.Update(ctx, func(tx store.Tx) error {
			gm, ok := tx.(store.GetManyTx)
			if supported = ok; !ok {
				return nil // skip outside the transaction, never inside it
			}
			if err := tx.Put(ctx, k1, SampleState(1)); err != nil {
				return err
			}
			if err := tx.Put(ctx, k3, SampleState(3)); err != nil {
				return err
			}
			got, err := gm.GetMany(ctx, []store.Key{k1, k2, k3})
			if err != nil {
				return err
			}
			if len(got) != 2 {
				return fmt.Errorf("GetMany returned %d states, want 2: pairs not stored are absent", len(got))
			}
			EqualState(t, SampleState(1), got[k1])
			EqualState(t, SampleState(3), got[k3])
			empty, err := gm.GetMany(ctx, nil)
			if err == nil && len(empty) != 0 {
				err = fmt.Errorf("GetMany(nil) returned %d states", len(empty))
			}
			return err
		})
		require.NoError(t, err)
		if !supported {
			t.Skip("the adapter's Tx does not implement store.GetManyTx")
		}
	})

	t.Run("RollbackOnError", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, k1, SampleState(1)) }))
		rev0, err := s.Load(ctx, func(store.Key, store.State) error { return nil })
		require.NoError(t, err)
		boom := errors.New("boom")
		err = s.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ctx, k1, SampleState(9)); err != nil {
				return err
			}
			if err := tx.Put(ctx, k2, SampleState(9)); err != nil {
				return err
			}
			if _, err := tx.Append(ctx, sampleChange(k1, 1)); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		got, err := s.Get(ctx, k1)
		require.NoError(t, err)
		EqualState(t, SampleState(1), got)
		_, err = s.Get(ctx, k2)
		require.ErrorIs(t, err, store.ErrNotFound)
		rev1, err := s.Load(ctx, func(store.Key, store.State) error { return nil })
		require.NoError(t, err)
		require.Equal(t, rev0, rev1, "a rolled-back Append must not move the revision")
		ch, err := s.Changes(ctx, 0, 10)
		require.NoError(t, err)
		require.Empty(t, ch)
	})

	t.Run("ChangeLog", func(t *testing.T) {
		s := newStore(t)
		var revs []int64
		for i := range 5 {
			require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
				for j := range 2 {
					r, err := tx.Append(ctx, sampleChange(k1, i*2+j))
					if err != nil {
						return err
					}
					revs = append(revs, r)
				}
				return nil
			}))
		}
		for i := 1; i < len(revs); i++ {
			require.Greater(t, revs[i], revs[i-1], "revisions increase")
		}
		require.Positive(t, revs[0])
		all, err := s.Changes(ctx, 0, 100)
		require.NoError(t, err)
		require.Len(t, all, 10)
		for i, c := range all {
			want := sampleChange(k1, i)
			want.Revision = revs[i]
			assert.Equal(t, want.Revision, c.Revision)
			assert.Equal(t, want.Type, c.Type)
			assert.Equal(t, want.Key, c.Key)
			assert.Equal(t, want.Kind, c.Kind)
			assert.Equal(t, want.Source, c.Source)
			assert.Equal(t, want.CallsLeft, c.CallsLeft)
			assert.Equal(t, want.UnansweredStreak, c.UnansweredStreak)
			assert.True(t, want.At.Equal(c.At), "At %v != %v", want.At, c.At)
			assert.True(t, want.GrantedAt.Equal(c.GrantedAt))
			assert.True(t, want.ExpiresAt.Equal(c.ExpiresAt))
			assert.True(t, want.Wake.Equal(c.Wake))
		}
		page, err := s.Changes(ctx, revs[3], 4)
		require.NoError(t, err)
		require.Len(t, page, 4)
		require.Equal(t, revs[4], page[0].Revision)
		require.Equal(t, revs[7], page[3].Revision)
		none, err := s.Changes(ctx, revs[9], 10)
		require.NoError(t, err)
		require.Empty(t, none)
		rev, err := s.Load(ctx, func(store.Key, store.State) error { return nil })
		require.NoError(t, err)
		require.Equal(t, revs[9], rev, "Load reports the latest revision")
		// A permanent change has no expiry.
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Append(ctx, store.Change{Type: "granted", Key: k2, At: base, Kind: "permanent", Source: "profile", GrantedAt: base})
			return err
		}))
		last, err := s.Changes(ctx, revs[9], 1)
		require.NoError(t, err)
		require.Len(t, last, 1)
		require.True(t, last[0].ExpiresAt.IsZero())
		require.True(t, last[0].Wake.IsZero(), "no wake-up")
	})

	t.Run("Load", func(t *testing.T) {
		s := newStore(t)
		want := map[store.Key]store.State{k1: SampleState(1), k2: SampleState(2), k3: SampleState(3)}
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			for k, st := range want {
				if err := tx.Put(ctx, k, st); err != nil {
					return err
				}
			}
			return nil
		}))
		got := map[store.Key]store.State{}
		_, err := s.Load(ctx, func(k store.Key, st store.State) error {
			got[k] = st
			return nil
		})
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for k, st := range want {
			EqualState(t, st, got[k])
		}
		stop := errors.New("stop")
		_, err = s.Load(ctx, func(store.Key, store.State) error { return stop })
		require.ErrorIs(t, err, stop)
	})

	t.Run("Cancelled", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Update(cctx, func(tx store.Tx) error { return tx.Put(cctx, k1, SampleState(1)) })
		require.Error(t, err)
		_, err = s.Get(ctx, k1)
		require.ErrorIs(t, err, store.ErrNotFound, "a cancelled Update keeps nothing")
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					k := store.Key{Channel: "c", Contact: fmt.Sprintf("u%d", w)}
					err := s.Update(ctx, func(tx store.Tx) error {
						st, err := tx.Get(ctx, k)
						if err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						st.Revision++ // a counter: lost updates would show
						if err := tx.Put(ctx, k, st); err != nil {
							return err
						}
						_, err = tx.Append(ctx, sampleChange(k, i))
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for w := range writers {
			st, err := s.Get(ctx, store.Key{Channel: "c", Contact: fmt.Sprintf("u%d", w)})
			require.NoError(t, err)
			require.EqualValues(t, each, st.Revision)
		}
		var all []store.Change
		after := int64(0)
		for {
			page, err := s.Changes(ctx, after, 64)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Revision
		}
		require.Len(t, all, writers*each, "every committed change is in the log once")
		for i := 1; i < len(all); i++ {
			require.Greater(t, all[i].Revision, all[i-1].Revision)
		}
	})

	t.Run("LedgerRoundTripAndDedupe", func(t *testing.T) {
		s := newStore(t)
		e1, e2 := SampleEvent(k1, 1), SampleEvent(k1, 2)
		e2.Permanent, e2.ExpiresAt, e2.Type, e2.Reason = true, time.Time{}, "revoke", "rejected"
		r1 := store.EventRef{Channel: k1.Channel, Dedupe: e1.Dedupe}
		r2 := store.EventRef{Channel: k1.Channel, Dedupe: e2.Dedupe}
		other := store.EventRef{Channel: k3.Channel, Dedupe: e1.Dedupe} // same dedupe, other channel
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			known, err := tx.Known(ctx, []store.EventRef{r1})
			if err != nil {
				return err
			}
			if known[r1] {
				return errors.New("Known reports an event never appended")
			}
			if err := tx.AppendEvent(ctx, e1); err != nil {
				return err
			}
			known, err = tx.Known(ctx, []store.EventRef{r1, r2, other})
			if err != nil {
				return err
			}
			if !known[r1] || known[r2] || known[other] {
				return fmt.Errorf("Known inside the transaction = %v, want only %v", known, r1)
			}
			return tx.AppendEvent(ctx, e2)
		}))
		// A redelivery is a no-op, in a later transaction too.
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			known, err := tx.Known(ctx, []store.EventRef{r1, r2, other})
			if err != nil {
				return err
			}
			if !known[r1] || !known[r2] || known[other] {
				return fmt.Errorf("Known = %v after commit", known)
			}
			dup := e1
			dup.ID = "changed" // same dedupe key: still the same event
			return tx.AppendEvent(ctx, dup)
		}))
		got, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel, Contact: k1.Contact})
		require.NoError(t, err)
		require.Len(t, got, 2)
		equalEvent(t, e1, got[0])
		equalEvent(t, e2, got[1])
		require.Less(t, got[0].Seq, got[1].Seq)
		// A rolled-back append leaves nothing, not even its dedupe key.
		e3 := SampleEvent(k2, 3)
		boom := errors.New("boom")
		require.ErrorIs(t, s.Update(ctx, func(tx store.Tx) error {
			if err := tx.AppendEvent(ctx, e3); err != nil {
				return err
			}
			return boom
		}), boom)
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			known, err := tx.Known(ctx, []store.EventRef{{Channel: k2.Channel, Dedupe: e3.Dedupe}})
			if err == nil && len(known) > 0 {
				err = errors.New("a rolled-back event is known")
			}
			return err
		}))
	})

	t.Run("LedgerQuery", func(t *testing.T) {
		s := newStore(t)
		// Appended out of event-time order, over two pairs and two channels.
		order := []int{5, 1, 4, 2, 0, 3}
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			for _, i := range order {
				k := k1
				if i%2 == 1 {
					k = k2
				}
				e := SampleEvent(k, i)
				e.RecordedAt = base.Add(time.Duration(10+slices.Index(order, i)) * time.Hour)
				if err := tx.AppendEvent(ctx, e); err != nil {
					return err
				}
			}
			return tx.AppendEvent(ctx, SampleEvent(k3, 9))
		}))
		ats := func(evs []store.LedgerEvent) []int {
			var out []int
			for _, e := range evs {
				out = append(out, int(e.At.Sub(base)/time.Hour))
			}
			return out
		}
		all, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel})
		require.NoError(t, err)
		require.Equal(t, []int{0, 1, 2, 3, 4, 5}, ats(all), "a channel's events, by event time")
		pair, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel, Contact: k2.Contact})
		require.NoError(t, err)
		require.Equal(t, []int{1, 3, 5}, ats(pair))
		rng, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel, From: base.Add(time.Hour), To: base.Add(4 * time.Hour)})
		require.NoError(t, err)
		require.Equal(t, []int{1, 2, 3}, ats(rng), "From inclusive, To exclusive")
		known, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel, RecordedBy: base.Add(12 * time.Hour)})
		require.NoError(t, err)
		require.Equal(t, []int{1, 4, 5}, ats(known), "only events recorded by RecordedBy")
		// Paging with the cursor visits each event once.
		var paged []int
		q := store.LedgerQuery{Channel: k1.Channel, Limit: 4}
		for {
			page, err := s.Ledger(ctx, q)
			require.NoError(t, err)
			paged = append(paged, ats(page)...)
			if len(page) < q.Limit {
				break
			}
			q.After = store.LedgerCursor{At: page[len(page)-1].At, Seq: page[len(page)-1].Seq}
		}
		require.Equal(t, []int{0, 1, 2, 3, 4, 5}, paged)
		other, err := s.Ledger(ctx, store.LedgerQuery{Channel: k3.Channel})
		require.NoError(t, err)
		require.Len(t, other, 1)
	})

	t.Run("LedgerPrune", func(t *testing.T) {
		s := newStore(t)
		h := base.Add(1000 * time.Hour)
		ev := func(k store.Key, name string, at time.Time, exp time.Time, perm bool, typ string) store.LedgerEvent {
			return store.LedgerEvent{Key: k, Dedupe: name, Type: typ, ID: name, At: at, ExpiresAt: exp, Permanent: perm, RecordedAt: at}
		}
		old := base
		events := []store.LedgerEvent{
			ev(k1, "over", old, old.Add(time.Hour), false, "grant"),                     // over before the horizon: pruned
			ev(k1, "request", old, time.Time{}, false, "request_sent"),                  // activity: pruned
			ev(k1, "rev-before-all", old.Add(-time.Hour), time.Time{}, false, "revoke"), // ends no kept grant: pruned
			ev(k2, "permanent", old, time.Time{}, true, "grant"),                        // still holds: kept
			ev(k2, "rev-after", old.Add(time.Hour), time.Time{}, false, "revoke"),       // may end the permanent one: kept
			ev(k2, "rev-before", old.Add(-time.Hour), time.Time{}, false, "revoke"),     // older than it: pruned
			ev(k3, "long", old, h.Add(time.Hour), false, "grant"),                       // expires after the horizon: kept
			ev(k1, "recent", h, h.Add(time.Hour), false, "request_sent"),                // at the horizon: kept
		}
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			for _, e := range events {
				if err := tx.AppendEvent(ctx, e); err != nil {
					return err
				}
			}
			return nil
		}))
		n, err := s.PruneLedger(ctx, h)
		require.NoError(t, err)
		require.EqualValues(t, 4, n)
		var names []string
		for _, k := range []store.Key{k1, k2, k3} {
			evs, err := s.Ledger(ctx, store.LedgerQuery{Channel: k.Channel, Contact: k.Contact})
			require.NoError(t, err)
			for _, e := range evs {
				names = append(names, e.Dedupe)
			}
		}
		require.ElementsMatch(t, []string{"permanent", "rev-after", "long", "recent"}, names)
		// Pruned events are forgotten: appending one again records it.
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			known, err := tx.Known(ctx, []store.EventRef{{Channel: k1.Channel, Dedupe: "over"}, {Channel: k2.Channel, Dedupe: "permanent"}})
			if err == nil && (known[store.EventRef{Channel: k1.Channel, Dedupe: "over"}] || !known[store.EventRef{Channel: k2.Channel, Dedupe: "permanent"}]) {
				err = fmt.Errorf("Known after pruning = %v", known)
			}
			return err
		}))
	})

	t.Run("LoadIsASnapshot", func(t *testing.T) {
		s := newStore(t)
		// Writers move two pairs together, each commit keeping their
		// revisions equal; a Load that mixed two commits would see them differ.
		ka, kb := store.Key{Channel: "c", Contact: "a"}, store.Key{Channel: "c", Contact: "b"}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := s.Update(ctx, func(tx store.Tx) error {
					if err := tx.Put(ctx, ka, store.State{Data: []byte{1}, Revision: i}); err != nil {
						return err
					}
					if err := tx.Put(ctx, kb, store.State{Data: []byte{2}, Revision: i}); err != nil {
						return err
					}
					_, err := tx.Append(ctx, sampleChange(ka, int(i)))
					return err
				})
				if err != nil {
					return
				}
			}
		}()
		for range 20 {
			got := map[store.Key]int64{}
			rev, err := s.Load(ctx, func(k store.Key, st store.State) error {
				got[k] = st.Revision
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, got[ka], got[kb], "Load mixed two commits")
			require.Equal(t, got[ka], rev, "Load's revision is its snapshot's")
		}
		close(stop)
		wg.Wait()
	})

	t.Run("UpdateRetriedFn", func(t *testing.T) {
		// fn may run again: a second run must start from the same view, and
		// only the run that returned nil counts.
		s := newStore(t)
		calls := 0
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			calls++
			if _, err := tx.Get(ctx, k1); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("run %d sees an earlier run's write: %v", calls, err)
			}
			if err := tx.Put(ctx, k1, SampleState(calls)); err != nil {
				return err
			}
			if err := tx.AppendEvent(ctx, SampleEvent(k1, 1)); err != nil {
				return err
			}
			_, err := tx.Append(ctx, sampleChange(k1, calls))
			return err
		}))
		got, err := s.Get(ctx, k1)
		require.NoError(t, err)
		EqualState(t, SampleState(calls), got)
		evs, err := s.Ledger(ctx, store.LedgerQuery{Channel: k1.Channel})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		chs, err := s.Changes(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, chs, 1)
	})

	t.Run("NotifierWait", func(t *testing.T) {
		s := newStore(t)
		n, err := store.AsNotifier(s)
		if err != nil {
			require.ErrorIs(t, err, store.ErrUnsupported)
			t.Skip("the adapter does not implement store.Notifier")
		}
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Append(ctx, sampleChange(k1, 1))
			return err
		}))
		require.NoError(t, n.Wait(ctx, 0), "a change after 0 exists: Wait returns at once")
		done := make(chan error, 1)
		go func() { done <- n.Wait(ctx, 1) }()
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Append(ctx, sampleChange(k1, 2))
			return err
		}))
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Wait did not return after a commit")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, n.Wait(cctx, 1<<40), context.Canceled)
	})
}

// RunCompaction checks that reading before the retained log fails with
// store.ErrCompacted. newStore must return a store that retains at most
// retain entries.
func RunCompaction(t *testing.T, retain int, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	k := store.Key{Channel: "c", Contact: "u"}
	var revs []int64
	for i := range retain + 5 {
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			r, err := tx.Append(ctx, sampleChange(k, i))
			revs = append(revs, r)
			return err
		}))
	}
	_, err := s.Changes(ctx, 0, 10)
	require.ErrorIs(t, err, store.ErrCompacted)
	tail, err := s.Changes(ctx, revs[len(revs)-retain-1], retain+10)
	require.NoError(t, err)
	require.Len(t, tail, retain)
}
