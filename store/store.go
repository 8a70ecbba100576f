// Package store defines the storage contract behind a permission.Tracker.
//
// An adapter persists three things, written together in one transaction:
// the ledger (every event recorded, once: the source of truth), the cached
// state derived from each (channel, contact) pair's events, and an
// append-only change log of the callable list whose entries carry
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

// Times: adapters must keep every time they are given with at least
// microsecond precision, in UTC. The tracker truncates event times to
// microseconds before it merges them, so an adapter that keeps exactly
// microseconds returns the same values it was given and a redelivered
// event never looks new.
const Precision = time.Microsecond

// State is the cached state of one pair: what the tracker derived from the
// pair's ledger events, so it need not re-read them on every write.
type State struct {
	// Data is the tracker's encoding of the pair's derived state. It is
	// opaque to the store: persist and return it byte for byte. Nil means
	// none: the tracker rebuilds it from the ledger (a migration may leave
	// it nil). It belongs to its Key: the encoding leaves out what the
	// key already says, so bytes moved under another key (a contact
	// renamed by hand in the database) read as another state. The
	// tracker, which moves a person to another key when its identifiers
	// change, writes the state again under the new one.
	Data []byte
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
	// WaID and UserID are the person's phone number and BSUID (either may
	// be empty); Replaces the contacts this entry takes the place of.
	WaID, UserID string
	Replaces     []string
	// Wake is the next instant at which the clock alone changes the pair
	// (an expiry, a call slot freeing, a grant stamped ahead of the clock
	// taking effect); zero for none.
	Wake time.Time
}

// LedgerEvent is one recorded event: the ledger is the append-only source
// of truth every State is derived from. Adapters store the fields as given
// and return them unchanged; only Type "revoke", Permanent and ExpiresAt
// mean something to them (see Store.PruneLedger).
type LedgerEvent struct {
	// Seq is the event's position in the ledger, assigned by the store on
	// AppendEvent: unique, increasing in append order within a store.
	Seq int64
	Key Key
	// Dedupe identifies the event for redelivery: AppendEvent of an event
	// whose Dedupe is already stored on the same channel is a no-op.
	Dedupe string
	Type   string // opaque (permission.EventType's name), "revoke" for revocations
	// Aliases are the other identifiers of the user the event carried.
	Aliases []string
	ID      string // Meta's message or call id, if any
	// Context is the id of the message or call the event answers.
	Context   string
	At        time.Time // event time
	ExpiresAt time.Time // until when the event grants permission; zero: not a temporary grant
	Permanent bool      // a permanent grant
	Connected bool      // call events: picked up
	Source    string    // opaque (permission.Source)
	Reason    string    // opaque (permission.RevokeReason)
	Origin    string    // opaque (permission.Origin): webhook, host, reconcile, migrated
	// RecordedAt is when the tracker recorded it, by its clock, and
	// Revision the change-log revision of the pair once it was applied.
	RecordedAt time.Time
	Revision   int64
}

// EventRef names a ledger event for deduplication.
type EventRef struct {
	Channel string
	Dedupe  string
}

// LedgerCursor is a position in a ledger listing: the (At, Seq) of the last
// event returned.
type LedgerCursor struct {
	At  time.Time
	Seq int64
}

// LedgerQuery selects ledger events of one channel, ordered by (At, Seq).
type LedgerQuery struct {
	Channel string // required
	Contact string // optional: one pair only
	// From and To bound the event time: From <= At < To. Zero: unbounded.
	From, To time.Time
	// RecordedBy, when set, keeps only events with RecordedAt <= RecordedBy.
	RecordedBy time.Time
	// After continues a listing after the cursor (exclusive). Zero: start.
	After LedgerCursor
	// Limit caps the events returned; zero or less means no limit.
	Limit int
}

// Tx is one atomic write. Nothing written through a Tx is visible to other
// readers until Update returns nil, and nothing at all is kept when it
// returns an error.
type Tx interface {
	// Get returns the pair's state as of this transaction, including
	// writes made earlier in it, or ErrNotFound. The caller must not
	// modify the returned Data: a store may hand out the bytes it keeps.
	Get(ctx context.Context, key Key) (State, error)
	// Put replaces the pair's state. The store may keep s.Data as it is:
	// the caller must not modify it afterwards.
	Put(ctx context.Context, key Key, s State) error
	// Known reports which of refs name events already in the ledger,
	// including those appended earlier in this transaction (the map holds
	// only those; it may be nil when there are none): the tracker
	// asks once per batch, before it folds the batch's events.
	Known(ctx context.Context, refs []EventRef) (map[EventRef]bool, error)
	// AppendEvent adds e to the ledger; Seq is assigned by the store. An
	// event whose (Key.Channel, Dedupe) is stored already is not added
	// again (callers check with Known first).
	AppendEvent(ctx context.Context, e LedgerEvent) error
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
	// Ledger returns the committed ledger events q selects, ordered by
	// (At, Seq).
	Ledger(ctx context.Context, q LedgerQuery) ([]LedgerEvent, error)
	// PruneLedger deletes the events with At before horizon that can no
	// longer decide anything at or after it, and returns how many it
	// deleted. An event before the horizon is kept when it may still grant
	// permission after it (Permanent, or ExpiresAt after horizon), and an
	// event of Type "revoke" is kept when its pair has such a kept event
	// that is not newer than it (the revocation may still end that grant).
	PruneLedger(ctx context.Context, horizon time.Time) (int64, error)
}

// LedgerRevoke is the LedgerEvent.Type of revocations, the one type name
// stores know (see PruneLedger).
const LedgerRevoke = "revoke"

// PruneKeeps reports, for one pair's events before horizon, which the
// PruneLedger rule keeps. Adapters that prune in Go use it; SQL adapters
// state the same rule in SQL.
func PruneKeeps(events []LedgerEvent, horizon time.Time) []bool {
	keep := make([]bool, len(events))
	var earliest time.Time // oldest kept grant before the horizon
	for i, e := range events {
		if !e.At.Before(horizon) {
			keep[i] = true
			continue
		}
		if e.Permanent || e.ExpiresAt.After(horizon) {
			keep[i] = true
			if earliest.IsZero() || e.At.Before(earliest) {
				earliest = e.At
			}
		}
	}
	for i, e := range events {
		if e.Type == LedgerRevoke && e.At.Before(horizon) && !earliest.IsZero() && !e.At.Before(earliest) {
			keep[i] = true
		}
	}
	return keep
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
