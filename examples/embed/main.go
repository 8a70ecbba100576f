// Command embed is the README's embedding example: a tracker on the
// in-memory store, one missed call, the live list and the call check.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

func main() {
	ctx := context.Background()
	st := memory.New(memory.Config{}) // or sqlstore.Open(ctx, db, sqlstore.Config{}): see below
	tr, err := permission.New(ctx, permission.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	tr.Start() // expires temporary grants on time: one timer, reset to the next expiry

	const channel = "106540352242922" // the business number's phone_number_id

	// List, then follow the list live from the listing's revision: nothing
	// missed, nothing twice.
	page, err := tr.Eligible(ctx, channel, permission.Query{Limit: 50})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := tr.Subscribe(permission.SubscribeOptions{Channel: channel, After: page.Revision})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	// Feed Meta's webhooks (package webhook does this for you) or your own events.
	_, err = tr.Record(ctx, permission.Event{
		Type: permission.EventInboundCall, Channel: channel,
		Contact: "34612345678", At: time.Now(), ID: "wacid.ABGG1", // a missed call: callable for 7 days
	})
	if err != nil {
		log.Fatal(err)
	}

	// The change arrives on the subscription. Next fails with ErrLagged
	// (subscribe again from sub.Revision()) or ErrResync (list again).
	c, err := sub.Next(ctx) // granted | extended | revoked | expired
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Type, c.Entry.Contact, c.Entry.Source)

	// Who may we call right now? Soonest expiry first; permanent ones last.
	page, err = tr.Eligible(ctx, channel, permission.Query{Limit: 50})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Entries {
		fmt.Println(e.Contact, "callable for", e.ExpiresAt.Sub(e.GrantedAt))
	}

	// At the moment of the call: may we, within Meta's limits?
	d, err := tr.CanCall(ctx, channel, "34612345678", time.Time{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("call allowed:", d.Allowed, "calls left:", d.Limits.CallsLeft)
}
