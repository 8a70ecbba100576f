package permission_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

// The request lifecycle: a person whose permission expired is on the
// re-ask list; SendRequest asks them once (a second ask is refused while
// the first is pending); their answer, naming the request, ends it.
func ExampleTracker_SendRequest() {
	ctx := context.Background()
	clk := clock.NewMock()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk.Set(now)
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		panic(err)
	}
	defer tr.Close()
	const channel, contact = "106540352242922", "16505551234"
	_, err = tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: channel, Contact: contact,
		At: now.Add(-9 * 24 * time.Hour), ExpiresAt: now.Add(-2 * 24 * time.Hour)})
	if err != nil {
		panic(err)
	}
	re, err := tr.Reask(ctx, channel, permission.ReaskQuery{})
	if err != nil {
		panic(err)
	}
	for _, e := range re.Entries {
		fmt.Println("re-ask:", e.Contact, e.Reason, "allowed now:", e.Decision.Allowed)
	}

	// send would call cloudapi.Client.SendPermissionRequest.
	send := func(context.Context) (string, error) { return "wamid.HBgL1", nil }
	sent, err := tr.SendRequest(ctx, channel, contact, send)
	if err != nil {
		panic(err)
	}
	fmt.Println("sent:", sent.RequestID, "lapses:", sent.LapsesAt.Format(time.RFC3339))
	_, err = tr.SendRequest(ctx, channel, contact, send)
	fmt.Println("again:", errors.Is(err, permission.ErrPending))
	n, _ := tr.CountPending(channel, time.Time{})
	fmt.Println("pending:", n)

	clk.Add(time.Hour) // the user accepts; the webhook's context.id names the request
	_, err = tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: channel, Contact: contact,
		At: clk.Now(), Context: sent.RequestID, ID: "wamid.reply1"})
	if err != nil {
		panic(err)
	}
	n, _ = tr.CountPending(channel, time.Time{})
	ok, _ := tr.CanCall(ctx, channel, contact, time.Time{})
	fmt.Println("pending:", n, "callable:", ok.Allowed)
	// Output:
	// re-ask: 16505551234 expired allowed now: true
	// sent: wamid.HBgL1 lapses: 2026-03-09T09:00:00Z
	// again: true
	// pending: 1
	// pending: 0 callable: true
}
