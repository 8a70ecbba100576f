package permission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/store"
)

// Defaults of Config fields left zero.
const (
	DefaultTTL              = 168 * time.Hour
	DefaultSweepBatch       = 1000
	DefaultSubscriberBuffer = 1024
	DefaultMaxBatch         = 512
	DefaultWriteTimeout     = 30 * time.Second
)

// Config configures a Tracker. Only Store is required.
type Config struct {
	// Store persists pair states and the change log. Required: use
	// memory.New for an in-process tracker.
	Store store.Store
	// Clock is the time source. Default: the system clock.
	Clock clock.Clock
	// TTL is the life of a temporary grant when Meta sends no
	// expiration_timestamp, and of the callback grant of an inbound call.
	// Default DefaultTTL (168 h).
	TTL time.Duration
	// SweepBatch bounds how many expiries one store transaction records, so
	// a burst of expiries never holds up writers for long. Default
	// DefaultSweepBatch (1000).
	SweepBatch int
	// SubscriberBuffer is how many undelivered changes a subscriber may
	// hold before it is cut off with ErrLagged. Default
	// DefaultSubscriberBuffer (1024).
	SubscriberBuffer int
	// MaxBatch bounds how many events concurrent Record calls share in one
	// store transaction (group commit). Default DefaultMaxBatch (512).
	MaxBatch int
	// WriteTimeout bounds one store transaction. A batch serves several
	// callers, so it does not stop when one caller's context is cancelled.
	// Default DefaultWriteTimeout (30 s).
	WriteTimeout time.Duration
	// Limits are Meta's call and request caps. Zero fields take today's
	// values (see LimitsConfig).
	Limits LimitsConfig
	// Shared says other trackers (other processes, or other Trackers in
	// this one) write to the same store. The tracker then follows the
	// store's change log so its list and subscribers see every change, in
	// revision order, whoever wrote it; Start runs the follower. Default
	// false: this tracker is the store's only writer.
	Shared bool
	// PollInterval is how often a shared tracker reads the change log when
	// the store sends no notification (see store.Notifier), and how long it
	// waits before retrying a failed read. Default DefaultPollInterval (1 s).
	PollInterval time.Duration
	// ConfirmedCallbacksOnly lists a grant derived from a user's call only
	// once Meta's automatic callback reply confirms it. Default false: a
	// caller is listed at once (Entry.Unconfirmed) while the channel's
	// callback setting is enabled or unknown, as Wati's Request Accepted
	// view does, and not at all while it is known disabled.
	ConfirmedCallbacksOnly bool
	// LedgerRetention is how long recorded events are kept, by event time.
	// Older events are pruned (by Start's loop, or PruneLedger) unless they
	// still decide something after the horizon (a permanent grant, a grant
	// not yet over, the revocation that ends one), and questions about
	// instants before the horizon fail with ErrBeyondRetention. Default
	// DefaultLedgerRetention (400 days); KeepForever never prunes.
	LedgerRetention time.Duration
	// HostRows writes the rows that RecordRows calls carry, inside the
	// store transaction of their group commit: once per batch, with the
	// rows of every RecordRows call in it, in call order, after the
	// tracker's own writes and every RecordWith write. A host then writes
	// a batch's rows in a few multi-row statements (one round trip on
	// PostgreSQL) instead of a few per call. It has HostWrite's duties: no
	// effect outside tx, and it may run again. If it fails, the batch is
	// written again calling HostRows once per call, each with its own rows,
	// so that only the calls whose rows fail are failed. Default nil:
	// RecordRows fails with ErrNoHostRows.
	HostRows func(ctx context.Context, tx store.Tx, rows []any) error
	// Logger receives warnings from the background expiry loop. Default: discard.
	Logger *slog.Logger
}

// DefaultLedgerRetention is Config.LedgerRetention's default: 400 days,
// longer than a year of audits. KeepForever disables pruning.
const (
	DefaultLedgerRetention time.Duration = 400 * 24 * time.Hour
	KeepForever            time.Duration = -1
)

// pruneEvery is how often Start's loop prunes the ledger.
const pruneEvery = time.Hour

// Tracker keeps the callable list of every channel, fed by events and by
// the clock. All methods are safe for concurrent use.
type Tracker struct {
	cfg   Config
	clock clock.Clock
	store store.Store
	log   *slog.Logger

	// Writes: a single committer at a time (writeSem) takes every queued
	// request into one store transaction.
	writeSem chan struct{}
	qmu      sync.Mutex
	queue    []*request
	writer   batchWriter // the committer's, reused (under writeSem)
	batch    []*request  // the committer's, reused (under writeSem)

	mu            sync.RWMutex // guards idx and indexRevision
	idx           *index
	indexRevision int64

	subMu     sync.Mutex // guards subs and published
	subs      map[*Subscription]struct{}
	published int64

	kick      chan struct{} // wakes the expiry loop when the next expiry moves earlier
	done      chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc // cancels ctx, which background work runs under
	lifeMu    sync.Mutex         // orders Start's goroutines against Close
	started   bool
	closeOnce sync.Once
	wg        sync.WaitGroup

	armedHook func(next time.Time, ok bool) // tests: the expiry loop is waiting for next

	followMu sync.Mutex // serializes catchUp; guards applied and applyBuf
	applied  int64      // last change-log revision applied to the index
	applyBuf []Change   // applyChanges' scratch

	inflight  sync.WaitGroup // Record and Sweep calls in progress, which Close waits for
	lastPrune time.Time      // expiry loop only
}

// New opens a tracker on cfg.Store and rebuilds its index from the stored
// states. Grants that expired while no tracker ran are not callable; their
// expiry is recorded by the first sweep (Start runs one at once).
func New(ctx context.Context, cfg Config) (*Tracker, error) {
	if cfg.Store == nil {
		return nil, errors.New("permission: Config.Store is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.SweepBatch <= 0 {
		cfg.SweepBatch = DefaultSweepBatch
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.LedgerRetention == 0 {
		cfg.LedgerRetention = DefaultLedgerRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		cfg:      cfg,
		clock:    cfg.Clock,
		store:    cfg.Store,
		log:      cfg.Logger,
		writeSem: make(chan struct{}, 1),
		idx:      newIndex(),
		subs:     make(map[*Subscription]struct{}),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	var missing []store.Key
	rev, err := t.store.Load(ctx, func(k store.Key, st store.State) error {
		if k.Contact == "" {
			return nil // a channel's own state
		}
		if st.Data == nil {
			missing = append(missing, k) // left by a migration: fold its ledger
			return nil
		}
		kind, s, _, err := decodeRecord(st.Data, k.Contact)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", k.Channel, k.Contact, err)
		}
		if kind != recordPerson {
			return nil // an alias: its person is listed under its own key
		}
		t.idx.apply(k, s.listed, s.listed.ok, s.wake)
		t.idx.loadPending(k.Channel, &s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("permission: loading the store: %w", err)
	}
	t.idx.refreshFirsts()
	t.indexRevision, t.published, t.applied = rev, rev, rev
	if len(missing) > 0 {
		if err := t.rebuildStates(ctx, missing); err != nil {
			return nil, fmt.Errorf("permission: rebuilding states from the ledger: %w", err)
		}
	}
	return t, nil
}

// SetCallbackPermission records the channel's callback permission setting
// from at on, as the host knows it (from its configuration or Meta's GET
// /<PHONE_NUMBER_ID>/settings). Meta's account_settings_update webhook
// records the same event (package webhook). The setting is part of the
// store's state, shared by every tracker on it, and decided by event time:
// the latest setting at a call's start says whether the call grants a
// callback.
func (t *Tracker) SetCallbackPermission(ctx context.Context, channel string, status CallbackStatus, at time.Time) error {
	_, err := t.Record(ctx, Event{Type: EventCallbackSetting, Channel: channel, At: at, Callback: status})
	return err
}

// Revision returns the revision of the last change applied to the index.
func (t *Tracker) Revision() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.indexRevision
}

// Record validates events and records them in one store transaction,
// returning the changes to the callable list they caused (possibly none:
// a redelivery, or an event that changes nothing listed). If any event is
// invalid, Record returns an error wrapping ErrInvalidEvent and records
// nothing. When Record returns nil the events are durable in the store.
func (t *Tracker) Record(ctx context.Context, events ...Event) ([]Change, error) {
	return t.record(ctx, nil, nil, events)
}

// record is Record and RecordWith.
func (t *Tracker) record(ctx context.Context, host HostWrite, rows any, events []Event) ([]Change, error) {
	if !t.enter() {
		return nil, ErrClosed
	}
	defer t.inflight.Done()
	now := t.clock.Now().UTC()
	r := &request{now: now, host: host, rows: rows, done: make(chan struct{})}
	if len(events) == 1 {
		r.events = r.one[:]
	} else {
		r.events = make([]store.LedgerEvent, len(events))
	}
	for i, e := range events {
		v, err := e.validate(t.cfg.TTL)
		if err != nil {
			if len(events) > 1 {
				err = fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		r.events[i] = ledgerEvent(v, t.cfg.TTL, now)
	}
	if len(events) == 0 && host == nil && rows == nil {
		return nil, nil
	}
	also, err := t.pairsUnderSettings(ctx, r.events, now)
	if err != nil {
		return nil, err
	}
	r.also = also
	if err := t.submit(ctx, r); err != nil {
		return nil, err
	}
	return visible(r.changes), nil
}

// pairsUnderSettings returns the pairs whose inbound calls a callback
// setting among events may grant or stop granting: those with a call at or
// after the setting whose callback grant could still run. They are read
// from the ledger before the write (a call another instance records
// meanwhile reads the new setting in its own transaction).
func (t *Tracker) pairsUnderSettings(ctx context.Context, events []store.LedgerEvent, now time.Time) ([]store.Key, error) {
	var keys []store.Key
	seen := map[store.Key]bool{}
	for _, e := range events {
		if e.Type != EventCallbackSetting.String() {
			continue
		}
		from := e.At
		if oldest := now.Add(-t.cfg.TTL - callReplyWindow); from.Before(oldest) {
			from = oldest
		}
		err := scanLedger(ctx, t.store, store.LedgerQuery{Channel: e.Key.Channel, From: from, Limit: 5000}, func(le *store.LedgerEvent) bool {
			if le.Type == EventInboundCall.String() && !seen[le.Key] {
				seen[le.Key] = true
				keys = append(keys, le.Key)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// enter registers a call Close must wait for; false once closed.
func (t *Tracker) enter() bool {
	t.lifeMu.Lock()
	defer t.lifeMu.Unlock()
	if t.closed() {
		return false
	}
	t.inflight.Add(1)
	return true
}

// visible drops the index-only changes subscribers never see.
func visible(cs []Change) []Change {
	if !slices.ContainsFunc(cs, func(c Change) bool { return c.Type == Scheduled || isPendingChange(c.Type) }) {
		return cs // the common case: nothing to drop, nothing to copy
	}
	out := cs[:0:0]
	for _, c := range cs {
		if c.Type != Scheduled && !isPendingChange(c.Type) {
			out = append(out, c)
		}
	}
	return out
}

// Sweep records every change the clock has caused by now (expiries, call
// slots freeing, grants stamped ahead of the clock taking effect), in
// batches of Config.SweepBatch, and returns how many entries expired.
// Hosts that do not call Start (and tests) drive the clock's changes with
// it.
func (t *Tracker) Sweep(ctx context.Context, now time.Time) (int, error) {
	if !t.enter() {
		return 0, ErrClosed
	}
	defer t.inflight.Done()
	now = now.UTC()
	total := 0
	var due []store.Key
	var changes []Change // both reused batch to batch: a sweep of millions allocates them once
	for {
		t.mu.RLock()
		due = t.idx.due(due, now.UnixNano(), t.cfg.SweepBatch)
		t.mu.RUnlock()
		if len(due) == 0 {
			return total, nil
		}
		r := &request{now: now, wake: due, changes: changes[:0], done: make(chan struct{})}
		if err := t.submit(ctx, r); err != nil {
			return total, err
		}
		changes = r.changes
		expired := 0
		for _, c := range r.changes {
			if c.Type == Expired {
				expired++
			}
		}
		total += expired
		// A short batch was the last; a batch that changed nothing held
		// only pairs another tracker had handled (the follower brings
		// their changes): stop rather than spin.
		if len(due) < t.cfg.SweepBatch || len(r.changes) == 0 {
			return total, nil
		}
	}
}

// PruneLedger deletes the ledger events older than now minus
// Config.LedgerRetention that can no longer decide anything (see
// store.Store.PruneLedger) and returns how many it deleted. Start's loop
// calls it hourly; hosts that do not call Start may call it themselves.
func (t *Tracker) PruneLedger(ctx context.Context, now time.Time) (int64, error) {
	if t.closed() {
		return 0, ErrClosed
	}
	if t.cfg.LedgerRetention < 0 {
		return 0, nil
	}
	return t.store.PruneLedger(ctx, now.Add(-t.cfg.LedgerRetention))
}

// horizon is the oldest instant the ledger still answers for at now.
func (t *Tracker) horizon(now time.Time) time.Time {
	if t.cfg.LedgerRetention < 0 {
		return time.Time{}
	}
	return now.Add(-t.cfg.LedgerRetention)
}

// Start runs the clock loop in a goroutine until Close: one timer, reset to
// the next instant the clock changes an entry, records those changes as
// they fall due, and prunes the ledger hourly. It sweeps once at start.
// With Config.Shared it also starts the change-log follower. Calling Start
// more than once has no further effect.
func (t *Tracker) Start() {
	t.lifeMu.Lock()
	defer t.lifeMu.Unlock()
	if t.started || t.closed() {
		return
	}
	t.started = true
	t.wg.Add(1)
	go t.expiryLoop()
	if t.cfg.Shared {
		t.wg.Add(1)
		go t.followLoop()
	}
}

// Close stops the background loops and waits for them and for every
// Record and Sweep in flight, ends every subscription with ErrClosed and
// makes later calls fail with ErrClosed. It does not close the store.
// Close is idempotent.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		t.lifeMu.Lock()
		close(t.done)
		t.lifeMu.Unlock()
		t.cancel()
		t.subMu.Lock()
		for s := range t.subs {
			s.end(ErrClosed)
		}
		clear(t.subs)
		t.subMu.Unlock()
	})
	t.inflight.Wait()
	t.wg.Wait()
	return nil
}

func (t *Tracker) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *Tracker) expiryLoop() {
	defer t.wg.Done()
	timer := t.clock.Timer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := t.clock.Now()
		if _, err := t.Sweep(t.ctx, now); err != nil && !t.closed() {
			t.log.Warn("callready: sweep failed; retrying at the next wake-up", "err", err)
		}
		if now.Sub(t.lastPrune) >= pruneEvery {
			t.lastPrune = now
			if _, err := t.PruneLedger(t.ctx, now); err != nil && !t.closed() {
				t.log.Warn("callready: pruning the ledger failed; retrying in an hour", "err", err)
			}
		}
		t.mu.RLock()
		next, ok := t.idx.nextWake()
		t.mu.RUnlock()
		// With nothing due the loop still wakes hourly, to prune.
		d := pruneEvery
		if ok {
			d = time.Unix(0, next).Sub(t.clock.Now())
			if d <= 0 {
				d = time.Millisecond // failed sweep: retry soon, without spinning
			}
		}
		timer.Reset(d)
		armed := true
		if t.armedHook != nil {
			t.armedHook(time.Unix(0, next).UTC(), ok)
		}
		select {
		case <-t.done:
			return
		case <-timer.C:
		case <-t.kick:
			if armed && !timer.Stop() {
				select { // the timer fired meanwhile: drain it so Reset cannot block
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// request is one unit of group commit: a Record call or a sweep batch.
type request struct {
	now     time.Time
	events  []store.LedgerEvent
	one     [1]store.LedgerEvent // events' array when there is one
	also    []store.Key          // pairs a callback setting in events may change
	wake    []store.Key          // pairs whose wake-up instant is due
	host    HostWrite            // RecordWith's write, run in the batch's transaction
	rows    any                  // RecordRows's rows, for Config.HostRows
	changes []Change
	err     error
	done    chan struct{}
}

func (r *request) size() int {
	n := len(r.events) + len(r.also) + len(r.wake)
	if r.host != nil || r.rows != nil {
		n++ // a host's write counts as one item of the batch
	}
	return n
}

// submit queues r and waits until a committer (this goroutine, another
// caller, or drain) has written it.
func (t *Tracker) submit(ctx context.Context, r *request) error {
	t.qmu.Lock()
	if t.closed() {
		t.qmu.Unlock()
		return ErrClosed
	}
	t.queue = append(t.queue, r)
	t.qmu.Unlock()
	for {
		select {
		case <-r.done:
			return r.err
		case t.writeSem <- struct{}{}:
		case <-ctx.Done():
			t.qmu.Lock()
			i := slices.Index(t.queue, r)
			if i >= 0 {
				t.queue = slices.Delete(t.queue, i, i+1)
			}
			t.qmu.Unlock()
			if i >= 0 {
				return ctx.Err()
			}
			<-r.done // a committer holds it: its outcome is the truth
			return r.err
		}
		// We are the committer.
		if t.commitQueued(ctx) {
			t.wg.Add(1) // before Close's Wait: this caller is still in flight
			go t.drain()
		} else {
			<-t.writeSem
		}
	}
}

// commitQueued commits as much of the queue as fits in one batch, and
// reports whether requests are still queued. The caller holds writeSem.
func (t *Tracker) commitQueued(ctx context.Context) (more bool) {
	t.qmu.Lock()
	n, size := 0, 0
	for n < len(t.queue) && (n == 0 || size+t.queue[n].size() <= t.cfg.MaxBatch) {
		size += t.queue[n].size()
		n++
	}
	batch := append(t.batch[:0], t.queue[:n]...)
	t.queue = slices.Delete(t.queue, 0, n)
	t.qmu.Unlock()
	if len(batch) > 0 {
		t.commit(ctx, batch)
	}
	clear(batch)
	t.batch = batch[:0]
	t.qmu.Lock()
	defer t.qmu.Unlock()
	return len(t.queue) > 0
}

// drain takes writeSem over from a caller whose batch committed while
// others queued, and commits batch after batch until the queue is empty.
// Under load the committer thus never stops between batches: handing
// writeSem to a waiting caller instead would wait for the scheduler to run
// that goroutine, while the batch's callers woken by the commit take the
// CPU (at 32 clients, about a tenth of the time a batch held writeSem on
// PostgreSQL). It commits with the tracker's context, whose values are
// none of the callers' (see HostWrite).
func (t *Tracker) drain() {
	defer t.wg.Done()
	for t.commitQueued(t.ctx) {
	}
	<-t.writeSem
}

// rebuildStates folds the ledger of pairs that have no cached state (a
// migration left them so) and records the changes that makes. It reads
// each channel's ledger once, in pages, rather than one query per pair.
func (t *Tracker) rebuildStates(ctx context.Context, keys []store.Key) error {
	now := t.clock.Now().UTC()
	byChannel := map[string]map[string][]store.LedgerEvent{}
	for _, k := range keys {
		if byChannel[k.Channel] == nil {
			byChannel[k.Channel] = map[string][]store.LedgerEvent{}
		}
		byChannel[k.Channel][k.Contact] = nil
	}
	for channel, pairs := range byChannel {
		err := scanLedger(ctx, t.store, store.LedgerQuery{Channel: channel, Limit: 10000}, func(e *store.LedgerEvent) bool {
			if evs, ok := pairs[e.Key.Contact]; ok {
				pairs[e.Key.Contact] = append(evs, *e)
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(keys, 500) {
		states := make([]pairState, len(chunk))
		for i, k := range chunk {
			states[i] = rebuild(byChannel[k.Channel][k.Contact])
			states[i].compact(now.UnixNano())
		}
		r := &request{now: now, done: make(chan struct{})}
		var appended []store.Change
		err := t.store.Update(ctx, func(tx store.Tx) error {
			appended, r.changes = appended[:0], r.changes[:0]
			w := batchWriter{t: t, tx: tx, ctx: ctx, pairs: make(map[store.Key]*pending)}
			for i, k := range chunk {
				p := &pending{key: k, state: states[i], dirty: true}
				if err := w.settle(r, p, now.UnixNano(), &appended); err != nil {
					return err
				}
				if err := tx.Put(ctx, k, store.State{Data: encodeState(&p.state, k.Contact), Revision: p.revision}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		t.followMu.Lock()
		t.applyChanges(appended)
		t.followMu.Unlock()
	}
	return nil
}

// applyChanges is the one path by which the index changes: committed
// change-log entries, in revision order, whoever wrote them. It moves the
// index revision to the last one, publishes the visible changes, and wakes
// the clock loop when a wake-up instant may now come first. Callers hold
// followMu.
func (t *Tracker) applyChanges(changes []store.Change) {
	if len(changes) == 0 {
		return
	}
	out := t.applyBuf[:0] // publish copies what it keeps
	defer func() { clear(out); t.applyBuf = out[:0] }()
	kick := false
	t.mu.Lock()
	for i := range changes {
		sc := &changes[i]
		if sc.Revision <= t.applied {
			continue
		}
		if t.applyPendingLocked(sc, &out) {
			continue // the pending list's own index (pending.go)
		}
		c := fromStore(*sc)
		l := listed{ok: sc.Kind != "" && c.Type != Revoked && c.Type != Expired, kind: Kind(sc.Kind), source: Source(sc.Source),
			granted: toNs(sc.GrantedAt), expires: never, callsLeft: sc.CallsLeft, streak: sc.UnansweredStreak,
			waID: sc.WaID, userID: sc.UserID}
		for _, old := range sc.Replaces {
			t.idx.apply(store.Key{Channel: sc.Key.Channel, Contact: old}, listed{}, false, none)
		}
		if !sc.ExpiresAt.IsZero() {
			l.expires = sc.ExpiresAt.UnixNano()
		}
		wake := toNs(sc.Wake)
		kick = kick || wake != none
		t.idx.apply(sc.Key, l, l.ok, wake)
		t.applied = sc.Revision
		t.indexRevision = sc.Revision
		if c.Type != Scheduled {
			out = append(out, c)
		}
	}
	t.idx.refreshFirsts()
	t.mu.Unlock()
	t.publish(out, t.applied)
	if kick {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}
