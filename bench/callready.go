package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// Callready is a permission.Tracker, on the memory store unless another
// store is given. Its clock is a mock set at T0: time is an argument.
type Callready struct {
	tr  *permission.Tracker
	clk *clock.Mock
	st  store.Store
	// cursors maps the last row of a page to the NextCursor Eligible gave
	// for it (PrepareCursors), so that Page can start after any row a
	// DeepPage names.
	cursors map[Row]string
}

// ExpirySubscriberBuffer is the SubscriberBuffer the benchmarks configure,
// so that a subscriber draining a million expiries on the other core is
// not cut off with ErrLagged when the sweep briefly runs ahead of it.
const ExpirySubscriberBuffer = 1 << 16

// NewCallready opens a tracker on st (a fresh memory store when nil).
func NewCallready(ctx context.Context, st store.Store) (*Callready, error) {
	if st == nil {
		st = memory.New(memory.Config{})
	}
	clk := clock.NewMock()
	clk.Set(T0)
	tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk, SubscriberBuffer: ExpirySubscriberBuffer})
	if err != nil {
		return nil, err
	}
	return &Callready{tr: tr, clk: clk, st: st}, nil
}

// Store returns the store the tracker runs on.
func (c *Callready) Store() store.Store { return c.st }

// PrepareCursors walks the listings of the pages' channels at now, page
// by page, and keeps the NextCursor of every page whose last row is one of
// pages' After rows: Eligible's cursors are opaque, and this is how a host
// gets them.
func (c *Callready) PrepareCursors(ctx context.Context, pages []DeepPage, now time.Time) error {
	want := map[string]map[Row]bool{}
	for _, p := range pages {
		if want[p.Channel] == nil {
			want[p.Channel] = map[Row]bool{}
		}
		want[p.Channel][p.After] = true
	}
	c.cursors = map[Row]string{}
	for ch, rows := range want {
		q := permission.Query{Limit: PageSize, Now: now}
		for {
			p, err := c.tr.Eligible(ctx, ch, q)
			if err != nil {
				return err
			}
			if len(p.Entries) > 0 {
				e := p.Entries[len(p.Entries)-1]
				if r := (Row{e.Contact, e.ExpiresAt.UnixNano()}); rows[r] && p.NextCursor != "" {
					c.cursors[r] = p.NextCursor
				}
			}
			if p.NextCursor == "" {
				break
			}
			q.Cursor = p.NextCursor
		}
	}
	for _, p := range pages {
		if _, ok := c.cursors[p.After]; !ok {
			return fmt.Errorf("callready: no page of %s ends at %v", p.Channel, p.After)
		}
	}
	return nil
}

// Tracker returns the underlying tracker.
func (c *Callready) Tracker() *permission.Tracker { return c.tr }

func grantEvent(g Grant) permission.Event {
	return permission.Event{Type: permission.EventGrant, Channel: g.Channel, Contact: g.Contact, At: g.GrantedAt, ExpiresAt: g.ExpiresAt}
}

// Load records the grants in batches of permission.DefaultMaxBatch, as
// permission's own benchmarks do.
func (c *Callready) Load(ctx context.Context, w Workload) error {
	batch := make([]permission.Event, 0, permission.DefaultMaxBatch)
	for i := range w.N {
		batch = append(batch, grantEvent(w.Grant(i)))
		if len(batch) == cap(batch) || i == w.N-1 {
			if _, err := c.tr.Record(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

func (c *Callready) Record(ctx context.Context, g Grant) error {
	_, err := c.tr.Record(ctx, grantEvent(g))
	return err
}

// Page lists with Eligible; after must be a row PrepareCursors prepared.
func (c *Callready) Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	q := permission.Query{Limit: PageSize, Now: now}
	if after != nil {
		cur, ok := c.cursors[*after]
		if !ok {
			return nil, fmt.Errorf("callready: no cursor prepared after %v", *after)
		}
		q.Cursor = cur
	}
	p, err := c.tr.Eligible(ctx, channel, q)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(p.Entries))
	for i, e := range p.Entries {
		rows[i] = Row{e.Contact, e.ExpiresAt.UnixNano()}
	}
	return rows, nil
}

// Expire runs Sweep while a subscriber drains the Expired changes on
// another goroutine, and returns once the subscriber has received them all.
func (c *Callready) Expire(ctx context.Context, now time.Time) (int, error) {
	sub, err := c.tr.Subscribe(permission.SubscribeOptions{After: c.tr.Revision()})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		target    = -1
		received  int
		subErr    error
		delivered = make(chan struct{})
	)
	go func() {
		defer close(delivered)
		for {
			ch, err := sub.Next(ctx)
			mu.Lock()
			if err != nil {
				subErr = err
				mu.Unlock()
				return
			}
			if ch.Type == permission.Expired {
				received++
			}
			done := target >= 0 && received >= target
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	n, err := c.tr.Sweep(ctx, now)
	if err != nil {
		return n, err
	}
	mu.Lock()
	target = n
	done := received >= target
	mu.Unlock()
	if done {
		cancel() // the subscriber may be waiting in Next for a change that never comes
	}
	<-delivered
	mu.Lock()
	defer mu.Unlock()
	if received < n {
		if subErr != nil && !errors.Is(subErr, context.Canceled) {
			return n, fmt.Errorf("subscriber received %d of %d expiries: %w", received, n, subErr)
		}
		return n, fmt.Errorf("subscriber received %d of %d expiries", received, n)
	}
	return n, nil
}

func (c *Callready) Close() error { return c.tr.Close() }
