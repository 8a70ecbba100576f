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

	"github.com/callready/callready/bench/internal/preledger/store"
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
	// Logger receives warnings from the background expiry loop. Default: discard.
	Logger *slog.Logger
}

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

	mu            sync.RWMutex // guards idx and indexRevision
	idx           *index
	indexRevision int64

	subMu     sync.Mutex // guards subs and published
	subs      map[*Subscription]struct{}
	published int64

	cbMu      sync.RWMutex
	callbacks map[string]bool // channel → callback grants enabled (absent: enabled)

	kick      chan struct{} // wakes the expiry loop when the next expiry moves earlier
	done      chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc // cancels ctx, which background work runs under
	lifeMu    sync.Mutex         // orders Start's goroutines against Close
	started   bool
	closeOnce sync.Once
	wg        sync.WaitGroup

	armedHook func(next time.Time, ok bool) // tests: the expiry loop is waiting for next

	followMu sync.Mutex // serializes catchUp; guards applied
	applied  int64      // Shared: last change-log revision applied to the index
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{
		cfg:       cfg,
		clock:     cfg.Clock,
		store:     cfg.Store,
		log:       cfg.Logger,
		writeSem:  make(chan struct{}, 1),
		idx:       newIndex(),
		subs:      make(map[*Subscription]struct{}),
		callbacks: make(map[string]bool),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	now := t.clock.Now()
	rev, err := t.store.Load(ctx, func(k store.Key, s store.State) error {
		if e, ok := indexEntry(k, &s, now); ok {
			t.idx.set(k.Channel, k.Contact, e, activityOf(&s, cfg.Limits))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("permission: loading the store: %w", err)
	}
	t.indexRevision, t.published, t.applied = rev, rev, rev
	return t, nil
}

// SetCallbackPermission switches the implicit callback grant of inbound
// calls on or off for one channel, mirroring the number's
// callback_permission_status. It is on by default and not persisted: set it
// at start from the host's configuration. It affects calls recorded after
// the switch only.
func (t *Tracker) SetCallbackPermission(channel string, enabled bool) {
	t.cbMu.Lock()
	defer t.cbMu.Unlock()
	if enabled {
		delete(t.callbacks, channel)
	} else {
		t.callbacks[channel] = false
	}
}

func (t *Tracker) callbacksEnabled(channel string) bool {
	t.cbMu.RLock()
	defer t.cbMu.RUnlock()
	_, off := t.callbacks[channel]
	return !off
}

// Revision returns the revision of the last change applied to the index.
func (t *Tracker) Revision() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.indexRevision
}

// Record validates events and records them in one store transaction,
// returning the changes to the callable list they caused (possibly none:
// a duplicate or an event older than the state changes nothing). If any
// event is invalid, Record returns an error wrapping ErrInvalidEvent and
// records nothing. When Record returns nil the events are durable in the
// store.
func (t *Tracker) Record(ctx context.Context, events ...Event) ([]Change, error) {
	r := &request{now: t.clock.Now(), events: make([]Event, len(events)), done: make(chan struct{})}
	for i, e := range events {
		v, err := e.validate(t.cfg.TTL)
		if err != nil {
			if len(events) > 1 {
				err = fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		if v.Type == EventInboundCall && !t.callbacksEnabled(v.Channel) {
			v.noCallback = true
		}
		r.events[i] = v
	}
	if len(events) == 0 {
		return nil, nil
	}
	if err := t.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.changes, nil
}

// Sweep records the expiry of every temporary grant due at now, in batches
// of Config.SweepBatch, and returns how many expired. Hosts that do not
// call Start (and tests) drive expiry with it.
func (t *Tracker) Sweep(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		t.mu.RLock()
		due := t.idx.due(now, t.cfg.SweepBatch)
		t.mu.RUnlock()
		if len(due) == 0 {
			return total, nil
		}
		r := &request{now: now, expire: due, changes: make([]Change, 0, len(due)), done: make(chan struct{})}
		if err := t.submit(ctx, r); err != nil {
			return total, err
		}
		expired := 0
		for _, c := range r.changes {
			if c.Type == Expired {
				expired++
			}
		}
		total += expired
		// A short batch was the last; a batch that recorded nothing held
		// only entries another tracker had expired (now dropped): stop
		// rather than spin, the next wake-up sweeps the rest.
		if len(due) < t.cfg.SweepBatch || expired == 0 {
			return total, nil
		}
	}
}

// Start runs the expiry loop in a goroutine until Close: one timer, reset to
// the next expiry in the index, records expiries as they fall due. It sweeps
// once at start. With Config.Shared it also starts the change-log follower.
// Calling Start more than once has no further effect.
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

// Close stops the expiry loop and waits for it, ends every subscription
// with ErrClosed and makes later calls fail with ErrClosed. It does not close
// the store. Close is idempotent.
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
		if _, err := t.Sweep(t.ctx, t.clock.Now()); err != nil && !t.closed() {
			t.log.Warn("callready: expiry sweep failed; retrying at the next wake-up", "err", err)
		}
		t.mu.RLock()
		next, ok := t.idx.nextExpiry()
		t.mu.RUnlock()
		armed := false
		if ok {
			d := next.Sub(t.clock.Now())
			if d <= 0 {
				d = time.Millisecond // failed sweep: retry soon, without spinning
			}
			timer.Reset(d)
			armed = true
		}
		if t.armedHook != nil {
			t.armedHook(next, ok)
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
	events  []Event
	expire  []Entry
	changes []Change
	err     error
	done    chan struct{}
}

func (r *request) size() int { return len(r.events) + len(r.expire) }

// submit queues r and waits until a committer (possibly this goroutine)
// has written it.
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
		// We are the committer: take as much of the queue as fits.
		t.qmu.Lock()
		n, size := 0, 0
		for n < len(t.queue) && (n == 0 || size+t.queue[n].size() <= t.cfg.MaxBatch) {
			size += t.queue[n].size()
			n++
		}
		batch := slices.Clone(t.queue[:n])
		t.queue = slices.Delete(t.queue, 0, n)
		t.qmu.Unlock()
		if len(batch) > 0 {
			t.commit(ctx, batch)
		}
		<-t.writeSem
	}
}

type pending struct {
	key   store.Key
	state store.State
	now   time.Time // of the last request in the batch that touched the pair
	dirty bool
}

// commit writes a batch in one store transaction, then applies it to the
// index and publishes its changes, in revision order. Only one commit runs
// at a time.
func (t *Tracker) commit(ctx context.Context, batch []*request) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.WriteTimeout)
	defer cancel()
	size := 0
	for _, r := range batch {
		size += r.size()
	}
	var states map[store.Key]*pending
	var order []*pending
	err := t.store.Update(wctx, func(tx store.Tx) error {
		states = make(map[store.Key]*pending, size)
		order = order[:0]
		// One allocation for the batch's pairs; it never grows (a batch has
		// at most size pairs), so pointers into it stay valid.
		slab := make([]pending, 0, size)
		get := func(k store.Key) (*pending, error) {
			if p := states[k]; p != nil {
				return p, nil
			}
			s, err := tx.Get(wctx, k)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			slab = append(slab, pending{key: k, state: s})
			p := &slab[len(slab)-1]
			states[k] = p
			order = append(order, p)
			return p, nil
		}
		emit := func(r *request, p *pending, c Change) error {
			rev, err := tx.Append(wctx, store.Change{
				Type: string(c.Type), Key: p.key, At: c.At, Kind: string(c.Entry.Kind), Source: string(c.Entry.Source),
				GrantedAt: c.Entry.GrantedAt, ExpiresAt: c.Entry.ExpiresAt,
				CallsLeft: c.Entry.CallsLeft, UnansweredStreak: c.Entry.UnansweredStreak,
			})
			if err != nil {
				return err
			}
			c.Revision = rev
			p.state.Revision = rev
			p.dirty = true
			r.changes = append(r.changes, c)
			return nil
		}
		if gm, ok := tx.(store.GetManyTx); ok && size > 1 {
			if err := prefetch(wctx, gm, batch, func(k store.Key, s store.State) {
				slab = append(slab, pending{key: k, state: s})
				p := &slab[len(slab)-1]
				states[k] = p
				order = append(order, p)
			}); err != nil {
				return err
			}
		}
		for _, r := range batch {
			r.changes = r.changes[:0]
			for _, e := range r.events {
				p, err := get(store.Key{Channel: e.Channel, Contact: e.Contact})
				if err != nil {
					return err
				}
				p.now = r.now
				if err := t.apply(r, p, e, emit); err != nil {
					return err
				}
			}
			for _, e := range r.expire {
				p, err := get(store.Key{Channel: e.Channel, Contact: e.Contact})
				if err != nil {
					return err
				}
				p.now = r.now
				if ex, ok := pendingExpiry(p.key, &p.state, r.now); ok {
					p.state.ExpiryNoted = ex.ExpiresAt
					if err := emit(r, p, Change{Type: Expired, At: ex.ExpiresAt, Entry: ex}); err != nil {
						return err
					}
				}
			}
		}
		for _, p := range order {
			if p.dirty {
				if err := tx.Put(wctx, p.key, p.state); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for _, r := range batch {
			r.changes, r.err = nil, err
			close(r.done)
		}
		return
	}

	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if t.cfg.Shared {
		// Other trackers write to the store too: the index follows the
		// change log in revision order, own changes included.
		if err := t.catchUp(wctx); err != nil {
			t.log.Warn("callready: reading the change log after a write failed; the follower will retry", "err", err)
		}
		t.dropSwept(batch)
		return
	}
	n := 0
	for _, r := range batch {
		n += len(r.changes)
	}
	changes := make([]Change, 0, n)
	for _, r := range batch {
		changes = append(changes, r.changes...)
	}
	if len(changes) > 0 && changes[0].Revision != t.Revision()+1 {
		// Revisions this tracker never applied were committed: a write
		// reported as failed that the store committed anyway, or another
		// writer. Follow the log over the gap, this batch included, so
		// nothing committed stays out of the list or unpublished.
		t.followMu.Lock()
		t.applied = t.Revision()
		t.followMu.Unlock()
		err := t.catchUp(wctx)
		if err == nil {
			return
		}
		t.log.Warn("callready: reading the change log over a revision gap failed", "err", err)
	}
	// Each pair's entry as of the newest request that touched it.
	applied := make([]keyState, len(order))
	for i, p := range order {
		applied[i] = keyState{p.key, &p.state, p.now}
	}
	t.applyToIndex(applied, changes)
}

// prefetch reads every pair of a batch with one GetMany and hands each to
// add (pairs not stored as zero states), so the per-event get finds them.
func prefetch(ctx context.Context, gm store.GetManyTx, batch []*request, add func(store.Key, store.State)) error {
	seen := map[store.Key]bool{}
	var keys []store.Key
	for _, r := range batch {
		for _, e := range r.events {
			if k := (store.Key{Channel: e.Channel, Contact: e.Contact}); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		for _, e := range r.expire {
			if k := (store.Key{Channel: e.Channel, Contact: e.Contact}); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	got, err := gm.GetMany(ctx, keys)
	if err != nil {
		return err
	}
	for _, k := range keys {
		add(k, got[k])
	}
	return nil
}

// dropSwept removes from the index the due entries a sweep found already
// expired in the store (another tracker recorded the expiry, so no change
// of this batch names them), unless a newer grant replaced them meanwhile.
func (t *Tracker) dropSwept(batch []*request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range batch {
		for _, e := range r.expire {
			c := t.idx.channel(e.Channel, false)
			if c == nil {
				continue
			}
			if s := c.slots[e.Contact]; s != nil && s.expires == e.ExpiresAt.UnixNano() {
				t.idx.remove(e.Channel, e.Contact)
			}
		}
	}
}

// indexEntry is the entry the index holds for a pair at now: the callable
// entry, or a temporary one that reached its expiry but whose expiry is not
// recorded yet (left for the sweep). An expiry already recorded is never
// undone by a clock that is behind it.
func indexEntry(k store.Key, s *store.State, now time.Time) (Entry, bool) {
	now = later(now, s.ExpiryNoted)
	if e, ok := entryAt(k, s, now); ok {
		return e, true
	}
	return pendingExpiry(k, s, now)
}

type keyState struct {
	key   store.Key
	state *store.State
	now   time.Time
}

// applyToIndex makes the index hold each pair's entry at its instant, moves
// the index revision to the last change, publishes the changes, and wakes
// the expiry loop when a temporary entry may now expire first.
func (t *Tracker) applyToIndex(states []keyState, changes []Change) {
	var earliest time.Time
	t.mu.Lock()
	for _, ks := range states {
		e, ok := indexEntry(ks.key, ks.state, ks.now)
		if ok {
			t.idx.set(ks.key.Channel, ks.key.Contact, e, activityOf(ks.state, t.cfg.Limits))
		} else {
			t.idx.remove(ks.key.Channel, ks.key.Contact)
		}
		if ok && e.Kind == Temporary && (earliest.IsZero() || e.ExpiresAt.Before(earliest)) {
			earliest = e.ExpiresAt
		}
	}
	if n := len(changes); n > 0 {
		t.indexRevision = max(t.indexRevision, changes[n-1].Revision)
	}
	t.mu.Unlock()
	t.publish(changes)
	if !earliest.IsZero() {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// apply folds one event into a pair, emitting the changes it causes: first
// the expiry of a grant that ran out before the event, then the event's own.
func (t *Tracker) apply(r *request, p *pending, e Event, emit func(*request, *pending, Change) error) error {
	s := &p.state
	// Never judge a pair at an instant before an expiry already recorded
	// (by a sweep that ran at a later now, here or in another tracker):
	// the grant would look callable again.
	now := later(r.now, s.ExpiryNoted)
	if ex, ok := pendingExpiry(p.key, s, now); ok {
		s.ExpiryNoted = ex.ExpiresAt
		if err := emit(r, p, Change{Type: Expired, At: ex.ExpiresAt, Entry: ex}); err != nil {
			return err
		}
	}
	before, had := t.entryWithLimits(p.key, s, now)
	if !merge(s, e, t.cfg.TTL, !e.noCallback) {
		return nil
	}
	p.dirty = true
	// A late grant that ran out before now was never callable: note its
	// expiry silently so no sweep reports it.
	if _, ok := pendingExpiry(p.key, s, now); ok {
		s.ExpiryNoted = s.Temporary.ExpiresAt
	}
	after, has := t.entryWithLimits(p.key, s, now)
	if c, ok := transition(before, after, had, has, s, e.At); ok {
		return emit(r, p, c)
	}
	return nil
}

// entryWithLimits is entryAt with the entry's call budget filled in, so a
// change of calls left or of the streak is an Extended change.
func (t *Tracker) entryWithLimits(k store.Key, s *store.State, now time.Time) (Entry, bool) {
	e, ok := entryAt(k, s, now)
	if ok {
		a := activityOf(s, t.cfg.Limits)
		e.CallsLeft = a.callsLeft(now.UnixNano(), t.cfg.Limits)
		if a != nil {
			e.UnansweredStreak = a.streak
		}
	}
	return e, ok
}
