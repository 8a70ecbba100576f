// Package storetest is the conformance suite for store.Store adapters. An
// adapter's tests call Run with a constructor for empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New(memory.Config{}) })
//	}
//
// The suite checks the contract the tracker relies on: round-tripped states
// and changes, atomic transactions, increasing revisions, Load snapshots,
// compaction errors, context cancellation and concurrent use.
package storetest

import (
	"context"
	"errors"
	"fmt"
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
func SampleState(i int) store.State {
	at := base.Add(time.Duration(i) * time.Minute)
	return store.State{
		Temporary:   store.Grant{At: at, ExpiresAt: at.Add(168 * time.Hour), Source: "request", EventID: fmt.Sprintf("wamid.t%d", i)},
		Permanent:   store.Grant{At: at.Add(-time.Hour), Source: "profile", EventID: fmt.Sprintf("wamid.p%d", i)},
		Revoked:     store.Revocation{At: at.Add(-2 * time.Hour), Reason: "rejected", EventID: fmt.Sprintf("wamid.r%d", i)},
		ExpiryNoted: at.Add(-24 * time.Hour),
		Activity: []store.Activity{
			{Kind: "request", ID: "wamid.q", At: at.Add(-3 * time.Hour)},
			{Kind: "call_connected", ID: "wacid.c", At: at.Add(-time.Minute)},
		},
		Revision: int64(i),
	}
}

func sampleChange(k store.Key, i int) store.Change {
	at := base.Add(time.Duration(i) * time.Second)
	return store.Change{Type: "granted", Key: k, At: at, Kind: "temporary", Source: "callback", GrantedAt: at, ExpiresAt: at.Add(168 * time.Hour), CallsLeft: 100 - i, UnansweredStreak: i % 5}
}

// EqualState fails t unless a and b hold the same instants and values.
func EqualState(t testing.TB, want, got store.State) {
	t.Helper()
	norm := func(s store.State) store.State {
		for _, p := range []*time.Time{&s.Temporary.At, &s.Temporary.ExpiresAt, &s.Permanent.At, &s.Permanent.ExpiresAt, &s.Revoked.At, &s.ExpiryNoted} {
			*p = normTime(*p)
		}
		for i := range s.Activity {
			s.Activity[i].At = normTime(s.Activity[i].At)
		}
		if len(s.Activity) == 0 {
			s.Activity = nil
		}
		return s
	}
	assert.Equal(t, norm(want), norm(got))
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
