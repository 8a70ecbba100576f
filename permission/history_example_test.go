package permission_test

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

// The agent dialled at 14:05; the user had switched calls off at 14:00,
// but the webhook saying so arrived at 14:07. History shows both times;
// Explain answers "callable at 14:05" both ways.
func ExampleTracker_History() {
	ctx := context.Background()
	day := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	clk := clock.NewMock()
	clk.Set(at(9, 0))
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	const channel, contact = "106540352242922", "34612345678"
	_, err = tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: channel, Contact: contact,
		At: at(9, 0), ExpiresAt: at(9, 0).Add(7 * 24 * time.Hour), ID: "wamid.accept", Context: "wamid.request", Origin: permission.OriginWebhook})
	if err != nil {
		panic(err)
	}
	clk.Set(at(14, 7)) // the revoke is recorded late
	_, err = tr.Record(ctx, permission.Event{Type: permission.EventRevoke, Channel: channel, Contact: contact,
		At: at(14, 0), Reason: permission.RevokeProfile, Origin: permission.OriginWebhook})
	if err != nil {
		panic(err)
	}

	for ev, err := range tr.History(ctx, permission.HistoryQuery{Channel: channel, Contact: contact}) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s at %s recorded %s (%s, revision %d) id=%q\n", ev.What, ev.At.Format("15:04"),
			ev.RecordedAt.Format("15:04"), ev.Origin, ev.Revision, ev.ID)
	}
	dial := at(14, 5)
	truth, _ := tr.Explain(ctx, channel, contact, dial)
	known, _ := tr.Explain(ctx, channel, contact, dial, permission.KnownAt(dial))
	fmt.Println("callable at 14:05:", truth.Callable, truth.Status)
	fmt.Println("as known at 14:05:", known.Callable, known.Status)
	// Output:
	// temporary grant at 09:00 recorded 09:00 (webhook, revision 1) id="wamid.accept"
	// revocation at 14:00 recorded 14:07 (webhook, revision 2) id=""
	// callable at 14:05: false revoked_profile
	// as known at 14:05: true temporary
}
