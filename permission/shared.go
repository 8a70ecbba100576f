package permission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/callready/callready/store"
)

// Several trackers on one store (Config.Shared): the store is the single
// truth and each tracker's index is a cache of it, fed by the change log.
// Every tracker applies every change (its own included) in revision order:
// after its own writes synchronously (read-your-writes), and for the others'
// writes from a follower loop started by Start, woken by the store's
// Notifier when it has one and by polling otherwise.

// DefaultPollInterval is how often a shared tracker reads the change log
// when the store gives no notification.
const DefaultPollInterval = time.Second

// catchUp applies every change committed after the last one applied,
// straight from the change log: each entry carries everything the index
// keeps for its pair, so no state is read.
func (t *Tracker) catchUp(ctx context.Context) error {
	t.followMu.Lock()
	defer t.followMu.Unlock()
	return t.readLog(ctx, math.MaxInt64)
}

// readLog applies the change log's entries after the last applied, up to
// revision upto, in pages. Callers hold followMu.
func (t *Tracker) readLog(ctx context.Context, upto int64) error {
	for t.applied < upto {
		limit := int(min(1000, upto-t.applied))
		page, err := t.store.Changes(ctx, t.applied, limit)
		if errors.Is(err, store.ErrCompacted) {
			return t.relist(ctx)
		}
		if err != nil {
			return err
		}
		t.applyChanges(page)
		if len(page) < limit {
			return nil // the log holds no more before upto (a store may leave revisions out)
		}
	}
	return nil
}

// localCommitApplied waits for this tracker's commit in flight, if any,
// and reports whether the index has moved past after, the revision the
// follower waited from. What woke the follower is most often a commit of
// this tracker's own; had it read the log then, it would have read the
// batch back, and the committer would have waited for it to apply it.
func (t *Tracker) localCommitApplied(after int64) bool {
	select {
	case t.writeSem <- struct{}{}: // no commit holds it now
		<-t.writeSem
	case <-t.ctx.Done():
		return false
	}
	t.followMu.Lock()
	defer t.followMu.Unlock()
	return t.applied != after
}

// catchUpWith is catchUp after this tracker committed own, a batch's
// changes: it reads from the store only the revisions before own's first
// (what other trackers committed before it; a batch's revisions are
// contiguous, and a store's revisions increase in commit order), then
// applies own as the batch wrote them rather than reading them back.
func (t *Tracker) catchUpWith(ctx context.Context, own []store.Change) error {
	if len(own) == 0 {
		return t.catchUp(ctx)
	}
	t.followMu.Lock()
	defer t.followMu.Unlock()
	if err := t.readLog(ctx, own[0].Revision-1); err != nil {
		return err
	}
	t.applyChanges(own) // those applied already (the follower's, a re-list's) are skipped
	return nil
}

// relist rebuilds the index from the store when the change log no longer
// holds what this tracker missed. Subscribers cannot be told what they
// missed either: they end with ErrResync and re-list. Callers hold
// followMu.
func (t *Tracker) relist(ctx context.Context) error {
	idx := newIndex()
	rev, err := t.store.Load(ctx, func(k store.Key, st store.State) error {
		if k.Contact == "" {
			return nil // a channel's own state
		}
		kind, s, _, err := decodeRecord(st.Data, k.Contact)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", k.Channel, k.Contact, err)
		}
		if kind != recordPerson {
			return nil // an alias: its person is listed under its own key
		}
		idx.apply(k, s.listed, s.listed.ok, s.wake)
		idx.loadPending(k.Channel, &s)
		return nil
	})
	if err != nil {
		return fmt.Errorf("permission: re-listing after compaction: %w", err)
	}
	idx.refreshFirsts()
	t.mu.Lock()
	t.idx, t.indexRevision = idx, rev
	t.mu.Unlock()
	select { // the clock loop's timer was armed for the old index
	case t.kick <- struct{}{}:
	default:
	}
	t.subMu.Lock()
	t.published = rev
	for s := range t.subs {
		s.end(fmt.Errorf("%w: this tracker fell behind the change log's retention", ErrResync))
	}
	clear(t.subs)
	t.subMu.Unlock()
	t.applied = rev
	t.log.Warn("callready: fell behind the change log; rebuilt the index from the store", "revision", rev)
	return nil
}

// followLoop applies other trackers' changes until Close.
func (t *Tracker) followLoop() {
	defer t.wg.Done()
	notifier, _ := store.AsNotifier(t.store)
	poll := t.clock.Timer(t.cfg.PollInterval)
	defer poll.Stop()
	for {
		t.followMu.Lock()
		after := t.applied
		t.followMu.Unlock()
		if notifier != nil {
			wctx, cancel := context.WithTimeout(t.ctx, t.cfg.PollInterval)
			err := notifier.Wait(wctx, after)
			cancel()
			if errors.Is(err, store.ErrClosed) {
				notifier = nil // poll from now on; the store's calls will say what is wrong
			}
		} else {
			poll.Reset(t.cfg.PollInterval)
			select {
			case <-poll.C:
			case <-t.ctx.Done():
			}
		}
		if t.closed() {
			return
		}
		if t.localCommitApplied(after) {
			continue // it read what others committed before it (catchUpWith): wait again from there
		}
		if err := t.catchUp(t.ctx); err != nil && !t.closed() {
			t.log.Warn("callready: following the change log failed; retrying", "err", err)
			backoff := t.clock.Timer(t.cfg.PollInterval)
			select { // back off instead of spinning on a store that is down
			case <-backoff.C:
			case <-t.ctx.Done():
				backoff.Stop()
				return
			}
		}
	}
}
