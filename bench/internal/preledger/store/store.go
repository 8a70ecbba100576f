// Package store defines the storage contract behind a permission.Tracker.
//
// An adapter persists two things: the merged state of every (channel,
// contact) pair, and an append-only change log whose entries carry
// increasing revisions. The tracker does all the reasoning (merge rules,
// expiry, eligibility); an adapter only stores and returns records, so a host
// can implement Store on the database it already runs. Every method takes a
// context, and no method reads a clock: times always come from the caller.
//
// Optional capabilities are separate interfaces discovered by type
// assertion (see Notifier); their absence is reported with ErrUnsupported,
// never a panic. Package storetest holds the conformance suite every adapter
// must pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Adapters wrap them (fmt.Errorf("...: %w", ErrNotFound))
// and callers test with errors.Is.
var (
	// ErrNotFound: no state is stored for the pair.
	ErrNotFound = errors.New("store: not found")
	// ErrCompacted: the change log no longer holds the requested revisions
	// (retention dropped them); the reader must re-list instead.
	ErrCompacted = errors.New("store: change log compacted past the requested revision")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnsupported: an optional capability is not implemented by the store.
	ErrUnsupported = errors.New("store: capability not supported")
)

// Key names one pair: a business phone number id (the channel) and a user
// (wa_id digits or BSUID).
type Key struct {
	Channel string
	Contact string
}

// Grant is the latest grant of one kind held for a pair. The zero Grant
// means none.
type Grant struct {
	At        time.Time // when the user granted (event time); zero: no grant
	ExpiresAt time.Time // temporary grants only; zero for permanent ones
	Source    string    // opaque to the store (permission.Source)
	EventID   string    // Meta's message or call id, if known
}

// Revocation is the latest revocation seen for a pair. Zero means none.
type Revocation struct {
	At      time.Time
	Reason  string // opaque to the store (permission.RevokeReason)
	EventID string
}

// Activity is one limit-relevant event kept for rolling windows: a
// permission request sent, a business call connected or unanswered, an
// inbound call connected. Kind is opaque to the store.
type Activity struct {
	Kind string
	ID   string
	At   time.Time
}

// State is the merged state of one pair, as the tracker computes it.
// Adapters persist and return it unchanged (times with at least microsecond
// precision, in UTC).
type State struct {
	Temporary Grant
	Permanent Grant // ExpiresAt always zero
	Revoked   Revocation
	// ExpiryNoted is the ExpiresAt of the temporary grant whose expiry has
	// already been written to the change log, so expiry is recorded once.
	ExpiryNoted time.Time
	// Activity holds recent limit-relevant events, oldest first.
	Activity []Activity
	// Revision of the last change-log entry written for this pair (0: none).
	Revision int64
}

// Change is one entry of the change log: a pair's callable entry appeared,
// changed, or ended. Revision is assigned by the store on Append.
type Change struct {
	Revision  int64
	Type      string // opaque to the store (permission.ChangeType)
	Key       Key
	At        time.Time // when the change took effect (event time or expiry)
	Kind      string    // kind of the entry after (or, when it ended, before) the change
	Source    string
	GrantedAt time.Time
	ExpiresAt time.Time // zero for permanent entries
	// The entry's call budget when the change was made (see
	// permission.Entry).
	CallsLeft        int
	UnansweredStreak int
}

// Tx is one atomic write. Nothing written through a Tx is visible to other
// readers until Update returns nil, and nothing at all is kept when it
// returns an error.
type Tx interface {
	// Get returns the pair's state as of this transaction, including
	// writes made earlier in it, or ErrNotFound.
	Get(ctx context.Context, key Key) (State, error)
	// Put replaces the pair's state.
	Put(ctx context.Context, key Key, s State) error
	// Append adds c to the change log and returns the revision assigned to
	// it. Revisions are positive and increase in commit order. Gap-free
	// revisions (as memory and sqlstore assign) let a tracker notice a
	// commit it did not see (one reported as failed that went through) and
	// read it from the log; with gaps it re-reads the log after each one.
	Append(ctx context.Context, c Change) (int64, error)
}

// GetManyTx is an optional capability of a Tx: reading many pairs in one
// round trip, with the same locking as Get. The tracker uses it to read a
// whole group-committed batch at once.
type GetManyTx interface {
	// GetMany returns the states of the stored pairs among keys; pairs
	// not stored are absent from the map.
	GetMany(ctx context.Context, keys []Key) (map[Key]State, error)
}

// Store is the contract an adapter implements. It must be safe for
// concurrent use.
type Store interface {
	// Update runs fn inside one atomic transaction; fn may be called again
	// if the adapter retries a serialization failure, so it must not have
	// side effects outside the Tx. If fn returns an error, nothing is kept
	// and Update returns that error.
	Update(ctx context.Context, fn func(Tx) error) error
	// Get returns the committed state of one pair, or ErrNotFound.
	Get(ctx context.Context, key Key) (State, error)
	// Load calls fn for every stored pair (in no particular order) and
	// returns the latest committed revision at the time of the snapshot it
	// read. An error from fn stops Load and is returned.
	Load(ctx context.Context, fn func(Key, State) error) (revision int64, err error)
	// Changes returns up to limit change-log entries with revision > after,
	// in increasing revision order. If the log no longer holds revision
	// after+1 (and after is below the latest revision) it returns
	// ErrCompacted.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
}

// Notifier is an optional capability: a store shared by several trackers
// (processes or goroutines) that can say when the change log may have grown.
// Discover it with AsNotifier.
type Notifier interface {
	// Wait blocks until a change with revision > after may have been
	// committed, ctx is done, or the store is closed. Spurious wake-ups are
	// allowed: callers read Changes to see what is new.
	Wait(ctx context.Context, after int64) error
}

// AsNotifier returns s as a Notifier, or ErrUnsupported.
func AsNotifier(s Store) (Notifier, error) {
	if n, ok := s.(Notifier); ok {
		return n, nil
	}
	return nil, ErrUnsupported
}
