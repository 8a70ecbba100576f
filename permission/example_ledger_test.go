package permission_test

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

// "Was the contact callable at T?": a permanent grant from the business
// profile on day 0, switched off on day 1, and a new request accepted on
// day 5. Asked about day 2, Explain folds the ledger up to that instant:
// the later grant does not count.
func ExampleTracker_Explain_pastInstant() {
	ctx := context.Background()
	day0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	clk := clock.NewMock()
	clk.Set(day0.Add(6 * 24 * time.Hour))
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tr.Close()

	const ch, user = "106540352242922", "34612345678"
	_, _ = tr.Record(ctx,
		permission.Event{Type: permission.EventGrant, Channel: ch, Contact: user, At: day0, Permanent: true, Source: permission.SourceProfile, ID: "wamid.on"},
		permission.Event{Type: permission.EventRevoke, Channel: ch, Contact: user, At: day0.Add(24 * time.Hour), Reason: permission.RevokeProfile, ID: "wamid.off"},
		permission.Event{Type: permission.EventGrant, Channel: ch, Contact: user, At: day0.Add(5 * 24 * time.Hour), ID: "wamid.accept"},
	)
	for _, d := range []int{0, 2, 5} {
		x, _ := tr.Explain(ctx, ch, user, day0.Add(time.Duration(d)*24*time.Hour+time.Hour))
		fmt.Printf("day %d: callable=%v (%s)\n", d, x.Callable, x.Status)
		for _, ev := range x.Evidence {
			fmt.Printf("  %s %s at %s\n", ev.What, ev.EventID, ev.At.Format("Jan 2"))
		}
	}
	// Output:
	// day 0: callable=true (permanent)
	//   permanent grant wamid.on at Jan 5
	// day 2: callable=false (revoked_profile)
	//   permanent grant wamid.on at Jan 5
	//   revocation wamid.off at Jan 6
	// day 5: callable=true (temporary)
	//   temporary grant wamid.accept at Jan 10
}

// "What did we know at 14:05?": the agent dialled at 14:05; the user had
// rejected at 14:00, but the webhook was recorded only at 14:07. At 14:05
// the contact was not callable, yet what the tracker knew then said it was:
// the agent acted on the best information there was.
func ExampleKnownAt() {
	ctx := context.Background()
	t := func(hhmm string) time.Time {
		v, _ := time.Parse("2006-01-02 15:04", "2026-01-05 "+hhmm)
		return v
	}
	clk := clock.NewMock()
	clk.Set(t("09:00"))
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tr.Close()

	const ch, user = "106540352242922", "34612345678"
	_, _ = tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: ch, Contact: user, At: t("09:00"), ID: "wamid.accept"})
	clk.Set(t("14:07")) // the reject, stamped 14:00 by Meta, is recorded at 14:07
	_, _ = tr.Record(ctx, permission.Event{Type: permission.EventRevoke, Channel: ch, Contact: user, At: t("14:00"), ID: "wamid.reject"})

	truth, _ := tr.Explain(ctx, ch, user, t("14:05"))
	known, _ := tr.Explain(ctx, ch, user, t("14:05"), permission.KnownAt(t("14:05")))
	fmt.Println("callable at 14:05:", truth.Callable, "-", truth.Reason)
	fmt.Println("known at 14:05:   ", known.Callable, "-", known.Reason)
	for _, ev := range truth.Evidence {
		fmt.Printf("  %s at %s, recorded %s\n", ev.What, ev.At.Format("15:04"), ev.RecordedAt.Format("15:04"))
	}
	// Output:
	// callable at 14:05: false - the user rejected the permission request at 2026-01-05T14:00:00Z
	// known at 14:05:    true - temporary permission (request) granted 2026-01-05T09:00:00Z, expires 2026-01-12T09:00:00Z
	//   temporary grant at 09:00, recorded 09:00
	//   revocation at 14:00, recorded 14:07
}
