package permission

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
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

// catchUp applies every change committed after the last one applied. For
// the pairs a page of changes names it reads their current state, so the
// index also gets what change rows do not carry (call activity). A state
// read that way may already hold a later change: the page is then extended
// up to that change, so the index never reflects a revision beyond the one
// it reports (list, then watch, must neither miss nor repeat a change).
func (t *Tracker) catchUp(ctx context.Context) error {
	t.followMu.Lock()
	defer t.followMu.Unlock()
	for {
		page, err := t.changesAfter(ctx, t.applied, 1000)
		if err != nil || len(page) == 0 {
			return err
		}
		states := map[store.Key]*store.State{}
		for read := 0; read < len(page); {
			covered := page[len(page)-1].Revision
			newest := covered
			for _, sc := range page[read:] { // pairs named since the last read
				st, err := t.store.Get(ctx, sc.Key)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				states[sc.Key] = &st
				newest = max(newest, st.Revision)
			}
			read = len(page)
			if newest > covered {
				more, err := t.store.Changes(ctx, covered, int(newest-covered))
				if errors.Is(err, store.ErrCompacted) {
					return t.relist(ctx)
				}
				if err != nil {
					return err
				}
				page = append(page, more...)
			}
		}
		now := t.clock.Now()
		ks := make([]keyState, 0, len(states))
		for k, st := range states {
			ks = append(ks, keyState{k, st, now})
		}
		changes := make([]Change, len(page))
		for i, sc := range page {
			changes[i] = fromStore(sc)
		}
		t.applyToIndex(ks, changes)
		t.applied = page[len(page)-1].Revision
	}
}

// changesAfter reads the change log, re-listing when it is compacted past
// what this tracker applied.
func (t *Tracker) changesAfter(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	page, err := t.store.Changes(ctx, after, limit)
	if errors.Is(err, store.ErrCompacted) {
		return nil, t.relist(ctx)
	}
	return page, err
}

// relist rebuilds the index from the store when the change log no longer
// holds what this tracker missed. Subscribers cannot be told what they
// missed either: they end with ErrResync and re-list.
func (t *Tracker) relist(ctx context.Context) error {
	idx := newIndex()
	now := t.clock.Now()
	rev, err := t.store.Load(ctx, func(k store.Key, s store.State) error {
		if e, ok := indexEntry(k, &s, now); ok {
			idx.set(k.Channel, k.Contact, e, activityOf(&s, t.cfg.Limits))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("permission: re-listing after compaction: %w", err)
	}
	t.mu.Lock()
	t.idx, t.indexRevision = idx, rev
	t.mu.Unlock()
	select { // the expiry loop's timer was armed for the old index
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
	poll := time.NewTimer(t.cfg.PollInterval)
	defer poll.Stop()
	for {
		if notifier != nil {
			t.followMu.Lock()
			after := t.applied
			t.followMu.Unlock()
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
		if err := t.catchUp(t.ctx); err != nil && !t.closed() {
			t.log.Warn("callready: following the change log failed; retrying", "err", err)
			select { // back off instead of spinning on a store that is down
			case <-time.After(t.cfg.PollInterval):
			case <-t.ctx.Done():
				return
			}
		}
	}
}
