package permission_test

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

func Example() {
	ctx := context.Background()
	clk := clock.NewMock()
	now := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	clk.Set(now)

	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	const channel = "106540352242922"
	_, err = tr.Record(ctx,
		permission.Event{Type: permission.EventGrant, Channel: channel, Contact: "16505551234", At: now, ExpiresAt: now.Add(168 * time.Hour)},
		permission.Event{Type: permission.EventInboundCall, Channel: channel, Contact: "34612345678", At: now.Add(-time.Hour), ID: "wacid.1"},
		permission.Event{Type: permission.EventGrant, Channel: channel, Contact: "4915112345678", At: now, Permanent: true, Source: permission.SourceProfile},
	)
	if err != nil {
		panic(err)
	}
	page, err := tr.Eligible(ctx, channel, permission.Query{})
	if err != nil {
		panic(err)
	}
	for _, e := range page.Entries {
		fmt.Println(e.Contact, e.Kind, e.Source, e.ExpiresAt.Format(time.RFC3339))
	}
	// Output:
	// 34612345678 temporary inbound_call 2026-01-07T08:00:00Z
	// 16505551234 temporary request 2026-01-07T09:00:00Z
	// 4915112345678 permanent profile 0001-01-01T00:00:00Z
}

// A handler that lists often keeps its page buffer: after the first page,
// listing allocates nothing per entry.
func ExampleTracker_AppendEligible() {
	ctx := context.Background()
	now := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	clk := clock.NewMock()
	clk.Set(now)
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tr.Close()
	for i, contact := range []string{"16505551234", "34612345678", "4915112345678"} {
		tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: "chan", Contact: contact, At: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Hour)})
	}

	var buf []permission.Entry
	q := permission.Query{Limit: 2}
	for {
		page, err := tr.AppendEligible(ctx, buf, "chan", q)
		if err != nil {
			panic(err)
		}
		for _, e := range page.Entries {
			fmt.Println(e.Contact, e.ExpiresAt.Format(time.Kitchen))
		}
		if page.NextCursor == "" {
			break
		}
		buf, q.Cursor = page.Entries, page.NextCursor // the next page overwrites this one
	}
	// Output:
	// 16505551234 10:00AM
	// 34612345678 11:00AM
	// 4915112345678 12:00PM
}

func ExampleTracker_Subscribe() {
	ctx := context.Background()
	at := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	clk := clock.NewMock()
	clk.Set(at)
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tr.Close()

	// List, then watch from the listing's revision: nothing missed, nothing twice.
	page, _ := tr.Eligible(ctx, "chan", permission.Query{})
	sub, _ := tr.Subscribe(permission.SubscribeOptions{Channel: "chan", After: page.Revision})
	defer sub.Close()

	tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: "chan", Contact: "u1", At: at, ExpiresAt: at.Add(time.Hour)})
	tr.Sweep(ctx, at.Add(time.Hour))

	for range 2 {
		c, _ := sub.Next(ctx)
		fmt.Println(c.Revision, c.Type, c.Entry.Contact, c.At.Format(time.Kitchen))
	}
	// Output:
	// 1 granted u1 9:00AM
	// 2 expired u1 10:00AM
}

func ExampleTracker_Explain() {
	ctx := context.Background()
	at := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{})})
	defer tr.Close()
	tr.Record(ctx,
		permission.Event{Type: permission.EventGrant, Channel: "chan", Contact: "u1", At: at},
		permission.Event{Type: permission.EventRevoke, Channel: "chan", Contact: "u1", At: at.Add(24 * time.Hour), Reason: permission.RevokeRejected},
	)
	x, _ := tr.Explain(ctx, "chan", "u1", at.Add(48*time.Hour))
	fmt.Println(x.Callable, x.Status)
	fmt.Println(x.Reason)
	// Output:
	// false rejected
	// the user rejected the permission request at 2026-01-01T09:00:00Z
}

func ExampleTracker_CanCall() {
	ctx := context.Background()
	at := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Limits: permission.LimitsConfig{CallsPerWindow: 1}})
	defer tr.Close()
	tr.Record(ctx,
		permission.Event{Type: permission.EventGrant, Channel: "chan", Contact: "u1", At: at},
		permission.Event{Type: permission.EventBusinessCall, Channel: "chan", Contact: "u1", At: at.Add(time.Hour), ID: "wacid.1", Connected: true},
	)
	d, _ := tr.CanCall(ctx, "chan", "u1", at.Add(2*time.Hour))
	fmt.Println(d.Allowed, d.Reason, d.RetryAt.Format(time.RFC3339))
	// Output:
	// false call_limit 2026-01-01T10:00:00Z
}
