package permission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
)

// SubscribeOptions selects the changes a Subscription delivers.
type SubscribeOptions struct {
	// Channel, when set, keeps only changes of that channel.
	Channel string
	// After resumes the stream: only changes with a greater revision are
	// delivered, those already committed replayed from the store's change
	// log first. Pass a Page's Revision (list, then watch), the last
	// revision received, or Tracker.Revision() to follow from now. Zero
	// replays the whole retained log (ErrResync once it is compacted).
	After int64
}

// Subscription is a stream of changes, read with Next. It holds no
// goroutine. A subscriber that lets more than Config.SubscriberBuffer
// changes pile up is cut off: Next then returns ErrLagged, and the
// subscriber resumes with a new Subscribe from its last revision.
type Subscription struct {
	t       *Tracker
	channel string

	// Only the reader touches these.
	last     int64    // revision of the last change delivered (or skipped)
	replay   []Change // changes read from the store, not yet delivered
	liveFrom int64    // changes after this revision arrive live in buf

	mu     sync.Mutex
	buf    []Change
	err    error // why the subscription ended, once it has
	notify chan struct{}
}

// Subscribe starts a stream of changes. See SubscribeOptions.
func (t *Tracker) Subscribe(opts SubscribeOptions) (*Subscription, error) {
	if opts.After < 0 {
		return nil, fmt.Errorf("permission: negative revision %d", opts.After)
	}
	s := &Subscription{t: t, channel: opts.Channel, notify: make(chan struct{}, 1)}
	t.subMu.Lock()
	defer t.subMu.Unlock()
	if t.closed() {
		return nil, ErrClosed
	}
	s.liveFrom, s.last = t.published, opts.After
	t.subs[s] = struct{}{}
	return s, nil
}

// Next returns the next change, waiting for one until ctx is done. After
// the subscription ends it returns ErrLagged, ErrResync, ErrClosed (tracker
// or subscription closed) or the store's error.
func (s *Subscription) Next(ctx context.Context) (Change, error) {
	for {
		if c, ok, err := s.nextReplayed(ctx); err != nil || ok {
			return c, err
		}
		s.mu.Lock()
		if err := s.err; errors.Is(err, ErrClosed) {
			s.mu.Unlock()
			return Change{}, err // closed: nothing more, buffered or not
		}
		for len(s.buf) > 0 {
			c := s.buf[0]
			s.buf[0] = Change{}
			s.buf = s.buf[1:]
			if c.Revision > s.last {
				s.last = c.Revision
				s.mu.Unlock()
				return c, nil
			}
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return Change{}, err
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Change{}, ctx.Err()
		}
	}
}

// nextReplayed serves changes older than the subscription from the store.
func (s *Subscription) nextReplayed(ctx context.Context) (Change, bool, error) {
	for len(s.replay) > 0 || s.last < s.liveFrom {
		if len(s.replay) == 0 {
			batch, err := s.t.store.Changes(ctx, s.last, 256)
			if errors.Is(err, store.ErrCompacted) {
				return Change{}, false, fmt.Errorf("%w: %w", ErrResync, err)
			}
			if err != nil {
				return Change{}, false, err
			}
			if len(batch) == 0 {
				s.last = s.liveFrom
				break
			}
			for _, sc := range batch {
				if sc.Revision > s.liveFrom {
					break
				}
				s.replay = append(s.replay, fromStore(sc))
			}
			if len(s.replay) == 0 {
				s.last = s.liveFrom
				break
			}
		}
		c := s.replay[0]
		s.replay = s.replay[1:]
		s.last = c.Revision
		if s.channel == "" || c.Entry.Channel == s.channel {
			return c, true, nil
		}
	}
	return Change{}, false, nil
}

// Close ends the subscription; Next then returns ErrClosed. Idempotent.
func (s *Subscription) Close() {
	s.t.subMu.Lock()
	delete(s.t.subs, s)
	s.t.subMu.Unlock()
	s.end(ErrClosed)
}

// Revision returns the revision of the last change delivered. Call it from
// the goroutine that calls Next.
func (s *Subscription) Revision() int64 { return s.last }

func (s *Subscription) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// publish hands committed changes to every subscriber without blocking.
func (t *Tracker) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	t.subMu.Lock()
	defer t.subMu.Unlock()
	t.published = max(t.published, changes[len(changes)-1].Revision)
	for s := range t.subs {
		n := 0
		s.mu.Lock()
		for _, c := range changes {
			if s.channel != "" && c.Entry.Channel != s.channel {
				continue
			}
			if len(s.buf) >= t.cfg.SubscriberBuffer {
				s.err = fmt.Errorf("%w: more than %d changes undelivered", ErrLagged, t.cfg.SubscriberBuffer)
				s.buf = nil
				delete(t.subs, s)
				n++
				break
			}
			s.buf = append(s.buf, c)
			n++
		}
		s.mu.Unlock()
		if n > 0 {
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
	}
}

func fromStore(c store.Change) Change {
	e := Entry{
		Channel: c.Key.Channel, Contact: c.Key.Contact, Kind: Kind(c.Kind), Source: Source(c.Source),
		GrantedAt: c.GrantedAt.UTC(), ExpiresAt: utcOrZero(c.ExpiresAt),
		CallsLeft: c.CallsLeft, UnansweredStreak: c.UnansweredStreak,
	}
	return Change{Revision: c.Revision, Type: ChangeType(c.Type), At: c.At.UTC(), Entry: e}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
