// Command quickstart shows the callable list of one WhatsApp business
// number changing as simulated days pass: a tracker on the in-memory store
// with a mock clock, fed an accepted request, a missed inbound call, a
// permanent grant from the business profile and a reject.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

const channel = "106540352242922"

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	ctx := context.Background()
	clk := clock.NewMock()
	start := time.Date(2025, 12, 31, 9, 0, 0, 0, time.UTC)
	clk.Set(start)

	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		return err
	}
	defer tr.Close()

	events := []permission.Event{
		// Sheena accepts a permission request: 7 days.
		{Type: permission.EventGrant, Channel: channel, Contact: "16505551234", At: start, ID: "wamid.accept", ExpiresAt: start.Add(168 * time.Hour)},
		// Tomás calls and nobody picks up: he may be called back for 7 days.
		{Type: permission.EventInboundCall, Channel: channel, Contact: "34612345678", At: start.Add(2 * 24 * time.Hour), ID: "wacid.missed"},
		// Amina switches calls on from the business profile: permanent.
		{Type: permission.EventGrant, Channel: channel, Contact: "2348031234567", At: start, Permanent: true, Source: permission.SourceProfile},
		// Luca accepted, then rejected a day later.
		{Type: permission.EventGrant, Channel: channel, Contact: "393331234567", At: start, ID: "wamid.luca"},
		{Type: permission.EventRevoke, Channel: channel, Contact: "393331234567", At: start.Add(24 * time.Hour), Reason: permission.RevokeRejected},
	}
	fed := make([]bool, len(events))
	for day := 0; day <= 10; day++ {
		now := start.Add(time.Duration(day) * 24 * time.Hour)
		clk.Set(now)
		// Feed the events that have happened by now.
		var due []permission.Event
		for i, e := range events {
			if !fed[i] && !e.At.After(now) {
				due, fed[i] = append(due, e), true
			}
		}
		if _, err := tr.Record(ctx, due...); err != nil {
			return err
		}
		expired, err := tr.Sweep(ctx, now)
		if err != nil {
			return err
		}
		page, err := tr.Eligible(ctx, channel, permission.Query{Now: now})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "day %2d (%s): %d callable, %d expired today\n", day, now.Format("Jan 2"), len(page.Entries), expired)
		for _, e := range page.Entries {
			until := "no expiry"
			if e.Kind == permission.Temporary {
				until = "until " + e.ExpiresAt.Format("Jan 2 15:04") + fmt.Sprintf(" (%s left)", e.ExpiresAt.Sub(now).Round(time.Hour))
			}
			fmt.Fprintf(w, "   %-14s %-9s %-12s %s\n", e.Contact, e.Kind, e.Source, until)
		}
	}
	x, err := tr.Explain(ctx, channel, "393331234567", clk.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "\nwhy not 393331234567? %s\n", x.Reason)
	return err
}
