// Package memory is the in-process store adapter: the ledger in ordered
// trees, pair states in a table by contact hash and a bounded change log
// in a ring, all lost when the process exits. It is what tests, examples
// and single-process hosts that do not need durability use, and it
// implements store.Notifier so several trackers in one process can share
// it.
package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/callready/callready/store"
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
	mu     sync.RWMutex
	pairs  pairTable
	log    changeLog // the newest entries and the store's revision (changelog.go)
	closed bool
	wake   chan struct{} // made by Wait, closed by the next commit
	tx     tx            // reused by every Update (they hold mu)

	// The ledger, laid out for the garbage collector (see ledger.go).
	ledger  map[string]*channelLedger
	dedupe  map[dedupeKey]struct{}
	seeds   [2]maphash.Seed // of dedupe keys and of byPair's contact hashes
	scratch []byte          // encoding buffer of addEventLocked
	lastSeq int64
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
	return &Store{
		pairs: newPairTable(), log: changeLog{limit: r},
		ledger: make(map[string]*channelLedger), dedupe: make(map[dedupeKey]struct{}),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

// Close makes every later call fail with store.ErrClosed and wakes waiters.
// It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		if s.wake != nil {
			close(s.wake)
		}
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
	events  []addedEvent
	added   map[dedupeKey]struct{}
}

type addedEvent struct {
	e    store.LedgerEvent
	hash dedupeKey
}

// reset empties t for the next Update, keeping its buffers.
func (t *tx) reset() {
	clear(t.undo)
	clear(t.changes)
	clear(t.events)
	t.undo, t.changes, t.events = t.undo[:0], t.changes[:0], t.events[:0]
	if len(t.added) > 64 {
		t.added = nil // clearing costs as much as the map's capacity, which never shrinks
	} else {
		clear(t.added)
	}
}

type undo struct {
	key     store.Key
	prev    record
	existed bool
}

func (t *tx) Get(ctx context.Context, k store.Key) (store.State, error) {
	rec, ok := t.s.pairs.get(k)
	if !ok {
		return store.State{}, store.ErrNotFound // hot path: new pairs are common
	}
	return store.State{Data: rec.data, Revision: rec.rev}, nil // read-only to the caller (store.Tx)
}

func (t *tx) Put(ctx context.Context, k store.Key, st store.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prev, existed := t.s.pairs.put(k, record{data: st.Data, rev: st.Revision}) // Put may keep Data (store.Tx)
	t.undo = append(t.undo, undo{k, prev, existed})
	return nil
}

func (t *tx) Append(ctx context.Context, c store.Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.Revision = t.s.log.last + int64(len(t.changes)) + 1
	t.changes = append(t.changes, c)
	return c.Revision, nil
}

func (t *tx) Known(ctx context.Context, refs []store.EventRef) (map[store.EventRef]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out map[store.EventRef]bool // nil when none: the common case
	for _, r := range refs {
		h := t.s.hashRef(r)
		_, stored := t.s.dedupe[h]
		_, added := t.added[h]
		if stored || added {
			if out == nil {
				out = make(map[store.EventRef]bool)
			}
			out[r] = true
		}
	}
	return out, nil
}

func (t *tx) AppendEvent(ctx context.Context, e store.LedgerEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := t.s.hashRef(store.EventRef{Channel: e.Key.Channel, Dedupe: e.Dedupe})
	if _, ok := t.s.dedupe[h]; ok {
		return nil
	}
	if _, ok := t.added[h]; ok {
		return nil
	}
	if t.added == nil {
		t.added = make(map[dedupeKey]struct{})
	}
	t.added[h] = struct{}{}
	t.events = append(t.events, addedEvent{e, h})
	return nil
}

// rollback restores what the transaction overwrote, newest first.
func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.existed {
			t.s.pairs.put(u.key, u.prev)
		} else {
			t.s.pairs.del(u.key)
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
	t := &s.tx
	t.s = s
	defer t.reset()
	if err := fn(t); err != nil {
		t.rollback()
		return err
	}
	for i := range t.changes {
		s.log.add(&t.changes[i])
	}
	for i := range t.events {
		s.addEventLocked(&t.events[i].e, t.events[i].hash)
	}
	if len(t.changes) > 0 && s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	return nil
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
	rec, ok := s.pairs.get(k)
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
	for k, rec := range s.pairs.all() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := fn(k, rec.state()); err != nil {
			return 0, err
		}
	}
	return s.log.last, nil
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
	if after >= s.log.last || limit <= 0 {
		return nil, nil
	}
	oldest := s.log.oldest()
	if after+1 < oldest {
		return nil, fmt.Errorf("memory: revision %d: %w (oldest kept is %d)", after+1, store.ErrCompacted, oldest)
	}
	skip := int(after + 1 - oldest)
	count := min(len(s.log.entries)-skip, limit)
	out := make([]store.Change, count)
	for i := range count {
		out[i] = s.log.change(skip + i)
	}
	return out, nil
}

// Wait implements store.Notifier.
func (s *Store) Wait(ctx context.Context, after int64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	if s.log.last > after {
		s.mu.Unlock()
		return nil
	}
	if s.wake == nil {
		s.wake = make(chan struct{}) // only when someone waits: commits stay free of it
	}
	wake := s.wake
	s.mu.Unlock()
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// record is a pair's cached state as stored.
type record struct {
	data []byte
	rev  int64
}

func (r record) state() store.State { return store.State{Data: slices.Clone(r.data), Revision: r.rev} }
