// Package memory is the in-process store adapter: pair states in a map and
// a bounded change log in a ring, both lost when the process exits. It is
// what tests, examples and single-process hosts that do not need durability
// use, and it implements store.Notifier so several trackers in one process
// can share it.
package memory

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
)

// DefaultRetention is how many change-log entries a Store keeps when
// Config.Retention is zero.
const DefaultRetention = 1 << 16

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Retention is how many of the newest change-log entries are kept for
	// replay; older ones are dropped and reading them yields
	// store.ErrCompacted. Default DefaultRetention (65,536).
	Retention int
}

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	mu        sync.RWMutex
	pairs     map[store.Key]record
	log       []store.Change // ring of the newest entries, oldest at head
	head      int            // index of the oldest entry in log once full
	retention int
	revision  int64
	closed    bool
	wake      chan struct{} // closed and replaced on every commit
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns an empty Store.
func New(cfg Config) *Store {
	r := cfg.Retention
	if r <= 0 {
		r = DefaultRetention
	}
	return &Store{pairs: make(map[store.Key]record), retention: r, wake: make(chan struct{})}
}

// Close makes every later call fail with store.ErrClosed and wakes waiters.
// It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.wake)
	}
	return nil
}

// tx writes through to the store's map (Update holds the write lock) and
// keeps what it overwrote, to put it back if fn fails: no staging map to
// build and search. It has no GetMany (store.GetManyTx): reads here cost
// no round trip.
type tx struct {
	s       *Store
	undo    []undo
	changes []store.Change
}

type undo struct {
	key     store.Key
	prev    record
	existed bool
}

func (t *tx) Get(ctx context.Context, k store.Key) (store.State, error) {
	rec, ok := t.s.pairs[k]
	if !ok {
		return store.State{}, store.ErrNotFound // hot path: new pairs are common
	}
	return rec.state(), nil
}

func (t *tx) Put(ctx context.Context, k store.Key, st store.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prev, existed := t.s.pairs[k]
	t.undo = append(t.undo, undo{k, prev, existed})
	t.s.pairs[k] = compact(st)
	return nil
}

func (t *tx) Append(ctx context.Context, c store.Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.Revision = t.s.revision + int64(len(t.changes)) + 1
	t.changes = append(t.changes, c)
	return c.Revision, nil
}

// rollback restores what the transaction overwrote, newest first.
func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.existed {
			t.s.pairs[u.key] = u.prev
		} else {
			delete(t.s.pairs, u.key)
		}
	}
}

// Update runs fn under the store's write lock; its writes are applied only
// if fn returns nil.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	t := &tx{s: s}
	if err := fn(t); err != nil {
		t.rollback()
		return err
	}
	for _, c := range t.changes {
		s.appendLocked(c)
	}
	if len(t.changes) > 0 {
		close(s.wake)
		s.wake = make(chan struct{})
	}
	return nil
}

func (s *Store) appendLocked(c store.Change) {
	s.revision = c.Revision
	if len(s.log) < s.retention {
		s.log = append(s.log, c)
		return
	}
	s.log[s.head] = c
	s.head = (s.head + 1) % s.retention
}

// Get returns the committed state of one pair.
func (s *Store) Get(ctx context.Context, k store.Key) (store.State, error) {
	if err := ctx.Err(); err != nil {
		return store.State{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.State{}, store.ErrClosed
	}
	rec, ok := s.pairs[k]
	if !ok {
		return store.State{}, fmt.Errorf("memory: %s/%s: %w", k.Channel, k.Contact, store.ErrNotFound)
	}
	return rec.state(), nil
}

// Load calls fn for every pair under a read lock, so fn must not call back
// into the Store's write methods.
func (s *Store) Load(ctx context.Context, fn func(store.Key, store.State) error) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	for k, rec := range s.pairs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := fn(k, rec.state()); err != nil {
			return 0, err
		}
	}
	return s.revision, nil
}

// Changes returns retained entries after the given revision.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if after >= s.revision || limit <= 0 {
		return nil, nil
	}
	n := len(s.log)
	oldest := s.revision - int64(n) + 1 // revisions in the log are contiguous
	if after+1 < oldest {
		return nil, fmt.Errorf("memory: revision %d: %w (oldest kept is %d)", after+1, store.ErrCompacted, oldest)
	}
	skip := int(after + 1 - oldest)
	count := min(n-skip, limit)
	out := make([]store.Change, count)
	for i := range count {
		out[i] = s.log[(s.head+skip+i)%n]
	}
	return out, nil
}

// Wait implements store.Notifier.
func (s *Store) Wait(ctx context.Context, after int64) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	if s.revision > after {
		s.mu.RUnlock()
		return nil
	}
	wake := s.wake
	s.mu.RUnlock()
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func cloneState(st store.State) store.State {
	st.Activity = slices.Clone(st.Activity)
	return st
}

// record is a State packed for memory: times as unix nanoseconds (no
// *time.Location pointers for the GC to scan) and the activity slice only
// when there is activity. It keeps a pair in about half the bytes of a
// store.State.
type record struct {
	tAt, tExp, pAt, rAt, noted, rev    int64
	tSrc, tID, pSrc, pID, rReason, rID string
	act                                []store.Activity
}

// zeroTime marks the zero time.Time, which has no unix nanosecond value.
const zeroTime = math.MinInt64

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func compact(s store.State) record {
	return record{
		tAt: nanos(s.Temporary.At), tExp: nanos(s.Temporary.ExpiresAt), pAt: nanos(s.Permanent.At), rAt: nanos(s.Revoked.At),
		noted: nanos(s.ExpiryNoted), rev: s.Revision,
		tSrc: s.Temporary.Source, tID: s.Temporary.EventID, pSrc: s.Permanent.Source, pID: s.Permanent.EventID,
		rReason: s.Revoked.Reason, rID: s.Revoked.EventID,
		act: slices.Clone(s.Activity), // the caller keeps its slice
	}
}

func (r record) state() store.State {
	return store.State{
		Temporary:   store.Grant{At: fromNanos(r.tAt), ExpiresAt: fromNanos(r.tExp), Source: r.tSrc, EventID: r.tID},
		Permanent:   store.Grant{At: fromNanos(r.pAt), Source: r.pSrc, EventID: r.pID},
		Revoked:     store.Revocation{At: fromNanos(r.rAt), Reason: r.rReason, EventID: r.rID},
		ExpiryNoted: fromNanos(r.noted),
		Activity:    slices.Clone(r.act),
		Revision:    r.rev,
	}
}
