package permission

import (
	"context"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store/memory"
)

// t0 is the fixtures' epoch: 2025-12-31T08:00:00Z.
var t0 = time.Unix(1767168000, 0).UTC()

const ch = "106540352242922"

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Mock
	store *memory.Store
	tr    *Tracker
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), clk: clock.NewMock()}
	f.clk.Set(t0)
	if cfg.Store == nil {
		f.store = memory.New(memory.Config{})
		cfg.Store = f.store
	}
	cfg.Clock = f.clk
	tr, err := New(f.ctx, cfg)
	require.NoError(t, err)
	f.tr = tr
	t.Cleanup(func() { require.NoError(t, tr.Close()) })
	return f
}

// record records events as they arrive in life: after they happened. The
// mock clock moves to the latest event's time first (tests of events
// stamped ahead of the clock call f.tr.Record themselves).
func (f *fixture) record(events ...Event) []Change {
	f.t.Helper()
	for _, e := range events {
		if e.At.After(f.clk.Now()) {
			f.clk.Set(e.At)
		}
	}
	changes, err := f.tr.Record(f.ctx, events...)
	require.NoError(f.t, err)
	return changes
}

// callable lists every callable contact of ch at now, in expiry order.
func (f *fixture) callable(now time.Time) []string {
	f.t.Helper()
	var out []string
	q := Query{Now: now, Limit: 2}
	for {
		p, err := f.tr.Eligible(f.ctx, ch, q)
		require.NoError(f.t, err)
		for _, e := range p.Entries {
			out = append(out, e.Contact)
		}
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
}

func grant(contact string, at time.Time) Event {
	return Event{Type: EventGrant, Channel: ch, Contact: contact, At: at, ID: "wamid." + contact + at.Format("150405")}
}

func permanent(contact string, at time.Time, src Source) Event {
	return Event{Type: EventGrant, Channel: ch, Contact: contact, At: at, Permanent: true, Source: src}
}

func revoke(contact string, at time.Time, r RevokeReason) Event {
	return Event{Type: EventRevoke, Channel: ch, Contact: contact, At: at, Reason: r}
}

func inbound(contact, id string, at time.Time, connected bool) Event {
	return Event{Type: EventInboundCall, Channel: ch, Contact: contact, At: at, ID: id, Connected: connected}
}

func types(cs []Change) []ChangeType {
	out := make([]ChangeType, len(cs))
	for i, c := range cs {
		out[i] = c.Type
	}
	return out
}
