package bench

import (
	"context"
	"time"

	"github.com/benbjohnson/clock"

	v1 "github.com/callready/callready/bench/internal/preledger/permission"
	v1memory "github.com/callready/callready/bench/internal/preledger/store/memory"
)

// PreLedger is callready as it was before the event ledger (commit
// fee3727, frozen in internal/preledger): a tracker on its memory store,
// driven exactly as Callready is. It is the baseline of issue 12's
// criterion, measured in the same run as today's tracker, so that "did the
// ledger cost more than 20% against the alternatives" compares like with
// like on one machine.
type PreLedger struct {
	tr      *v1.Tracker
	cursors map[Row]string
}

// NewPreLedger opens the pre-ledger tracker on a fresh memory store, its
// mock clock at T0.
func NewPreLedger(ctx context.Context) (*PreLedger, error) {
	clk := clock.NewMock()
	clk.Set(T0)
	tr, err := v1.New(ctx, v1.Config{Store: v1memory.New(v1memory.Config{}), Clock: clk, SubscriberBuffer: ExpirySubscriberBuffer})
	if err != nil {
		return nil, err
	}
	return &PreLedger{tr: tr}, nil
}

func preLedgerEvent(g Grant) v1.Event {
	return v1.Event{Type: v1.EventGrant, Channel: g.Channel, Contact: g.Contact, At: g.GrantedAt, ExpiresAt: g.ExpiresAt}
}

func preLedgerRow(e v1.Entry) Row { return Row{e.Contact, e.ExpiresAt.UnixNano()} }

// Load records the grants in batches of DefaultMaxBatch, as Callready does.
func (c *PreLedger) Load(ctx context.Context, w Workload) error {
	return loadBatched(w, v1.DefaultMaxBatch, preLedgerEvent, func(evs []v1.Event) error {
		_, err := c.tr.Record(ctx, evs...)
		return err
	})
}

func (c *PreLedger) Record(ctx context.Context, g Grant) error {
	_, err := c.tr.Record(ctx, preLedgerEvent(g))
	return err
}

// PrepareCursors is Callready.PrepareCursors for this tracker.
func (c *PreLedger) PrepareCursors(ctx context.Context, pages []DeepPage, now time.Time) (err error) {
	c.cursors, err = prepareCursors(pages, func(ch, cursor string) ([]Row, string, error) {
		p, err := c.tr.Eligible(ctx, ch, v1.Query{Limit: PageSize, Now: now, Cursor: cursor})
		return entryRows(p.Entries, preLedgerRow), p.NextCursor, err
	})
	return err
}

// Page lists with Eligible; after must be a row PrepareCursors prepared.
func (c *PreLedger) Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	cursor, err := preparedCursor(c.cursors, after)
	if err != nil {
		return nil, err
	}
	p, err := c.tr.Eligible(ctx, channel, v1.Query{Limit: PageSize, Now: now, Cursor: cursor})
	if err != nil {
		return nil, err
	}
	return entryRows(p.Entries, preLedgerRow), nil
}

// Expire is Callready.Expire for this tracker.
func (c *PreLedger) Expire(ctx context.Context, now time.Time) (int, error) {
	sub, err := c.tr.Subscribe(v1.SubscribeOptions{After: c.tr.Revision()})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	return sweepDrained(ctx, func(ctx context.Context) (bool, error) {
		ch, err := sub.Next(ctx)
		return ch.Type == v1.Expired, err
	}, func(ctx context.Context) (int, error) { return c.tr.Sweep(ctx, now) })
}

func (c *PreLedger) Close() error { return c.tr.Close() }
