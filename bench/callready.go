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
	// buf is the page buffer Page keeps for AppendEligible, as a host
	// serving pages would (Impl's methods run one at a time).
	buf []permission.Entry
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
func (c *Callready) PrepareCursors(ctx context.Context, pages []DeepPage, now time.Time) (err error) {
	c.cursors, err = prepareCursors(pages, func(ch, cursor string) ([]Row, string, error) {
		p, err := c.tr.Eligible(ctx, ch, permission.Query{Limit: PageSize, Now: now, Cursor: cursor})
		return entryRows(p.Entries, callreadyRow), p.NextCursor, err
	})
	return err
}

// prepareCursors walks each channel of pages with list (one page after an
// opaque cursor: its rows and the next cursor) and maps every page's last
// row that pages name to the cursor that continues after it.
func prepareCursors(pages []DeepPage, list func(channel, cursor string) ([]Row, string, error)) (map[Row]string, error) {
	want := map[string]map[Row]bool{}
	for _, p := range pages {
		if want[p.Channel] == nil {
			want[p.Channel] = map[Row]bool{}
		}
		want[p.Channel][p.After] = true
	}
	cursors := map[Row]string{}
	for ch, rows := range want {
		cursor := ""
		for {
			page, next, err := list(ch, cursor)
			if err != nil {
				return nil, err
			}
			if len(page) > 0 && next != "" && rows[page[len(page)-1]] {
				cursors[page[len(page)-1]] = next
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	for _, p := range pages {
		if _, ok := cursors[p.After]; !ok {
			return nil, fmt.Errorf("no page of %s ends at %v", p.Channel, p.After)
		}
	}
	return cursors, nil
}

// entryRows converts a page's entries to rows.
func entryRows[E any](entries []E, row func(E) Row) []Row {
	rows := make([]Row, len(entries))
	for i, e := range entries {
		rows[i] = row(e)
	}
	return rows
}

// Tracker returns the underlying tracker.
func (c *Callready) Tracker() *permission.Tracker { return c.tr }

func callreadyRow(e permission.Entry) Row { return Row{e.Contact, e.ExpiresAt.UnixNano()} }

func grantEvent(g Grant) permission.Event {
	return permission.Event{Type: permission.EventGrant, Channel: g.Channel, Contact: g.Contact, At: g.GrantedAt, ExpiresAt: g.ExpiresAt}
}

// Load records the grants in batches of permission.DefaultMaxBatch, as
// permission's own benchmarks do.
func (c *Callready) Load(ctx context.Context, w Workload) error {
	return loadBatched(w, permission.DefaultMaxBatch, grantEvent, func(evs []permission.Event) error {
		_, err := c.tr.Record(ctx, evs...)
		return err
	})
}

// loadBatched records w's grants, converted by event, in batches of size.
func loadBatched[E any](w Workload, size int, event func(Grant) E, record func([]E) error) error {
	batch := make([]E, 0, size)
	for i := range w.N {
		batch = append(batch, event(w.Grant(i)))
		if len(batch) == cap(batch) || i == w.N-1 {
			if err := record(batch); err != nil {
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

// Page lists with AppendEligible into a buffer kept from page to page;
// after must be a row PrepareCursors prepared.
func (c *Callready) Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	entries, err := c.page(ctx, c.buf, channel, now, after)
	if err != nil {
		return nil, err
	}
	c.buf = entries
	return entryRows(entries, callreadyRow), nil
}

// PageNewSlice lists with Eligible, whose entries are a new slice per
// page (FreshPager).
func (c *Callready) PageNewSlice(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	entries, err := c.page(ctx, nil, channel, now, after)
	if err != nil {
		return nil, err
	}
	return entryRows(entries, callreadyRow), nil
}

// page is one page's entries, written over buf (a nil buf is Eligible).
func (c *Callready) page(ctx context.Context, buf []permission.Entry, channel string, now time.Time, after *Row) ([]permission.Entry, error) {
	cursor, err := preparedCursor(c.cursors, after)
	if err != nil {
		return nil, err
	}
	p, err := c.tr.AppendEligible(ctx, buf, channel, permission.Query{Limit: PageSize, Now: now, Cursor: cursor})
	if err != nil {
		return nil, err
	}
	return p.Entries, nil
}

// preparedCursor is the cursor prepared for after ("" when after is nil).
func preparedCursor(cursors map[Row]string, after *Row) (string, error) {
	if after == nil {
		return "", nil
	}
	cur, ok := cursors[*after]
	if !ok {
		return "", fmt.Errorf("no cursor prepared after %v", *after)
	}
	return cur, nil
}

// Expire runs Sweep while a subscriber drains the Expired changes on
// another goroutine, and returns once the subscriber has received them all.
func (c *Callready) Expire(ctx context.Context, now time.Time) (int, error) {
	sub, err := c.tr.Subscribe(permission.SubscribeOptions{After: c.tr.Revision()})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	return sweepDrained(ctx, func(ctx context.Context) (bool, error) {
		ch, err := sub.Next(ctx)
		return ch.Type == permission.Expired, err
	}, func(ctx context.Context) (int, error) { return c.tr.Sweep(ctx, now) })
}

// sweepDrained runs sweep while another goroutine takes changes with next
// (which says whether a change is an expiry), and returns once as many
// expiries were received as sweep reports.
func sweepDrained(ctx context.Context, next func(context.Context) (expired bool, err error), sweep func(context.Context) (int, error)) (int, error) {
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
			expired, err := next(ctx)
			mu.Lock()
			if err != nil {
				subErr = err
				mu.Unlock()
				return
			}
			if expired {
				received++
			}
			done := target >= 0 && received >= target
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	n, err := sweep(ctx)
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
