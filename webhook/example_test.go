package webhook_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

// Mount the handler, let "Meta" post a signed delivery, and list who is
// callable.
func Example() {
	ctx := context.Background()
	clk := clock.NewMock() // a real host leaves Clock nil
	clk.Set(time.Unix(1767254400, 0))
	tracker, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close()

	h, err := webhook.New(webhook.Config{
		AppSecret:   "app-secret",
		VerifyToken: "verify-token",
		Recorder:    tracker,
		OnMessage: func(_ context.Context, m webhook.Message) error {
			fmt.Printf("message %s from %s: %q\n", m.Type, m.Contact.Name, m.Text)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := webhooktest.PostFile(ctx, srv.Client(), srv.URL, "app-secret", "testdata/fixtures/batch-two-channels.json")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("status", resp.StatusCode)

	page, err := tracker.Eligible(ctx, "106540352242922", permission.Query{})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Entries {
		fmt.Println("callable:", e.Contact, e.Kind, e.Source, "until", e.ExpiresAt.Format(time.RFC3339))
	}
	// Output:
	// message text from Amina Yusuf: "Yes please call me after 5pm"
	// message text from Amina Yusuf: "Hello from the other line"
	// status 200
	// callable: 2348031234567 temporary request until 2026-01-07T19:40:00Z
}

// One item the handler cannot record does not cost the others: it is
// quarantined, raw, and the delivery is answered 200.
func ExampleQuarantine() {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Unix(1767254400, 0))
	tracker, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close()
	// A host with a database passes sqlstore's Store.Quarantine instead.
	q := webhook.NewMemoryQuarantine(webhook.QuarantineConfig{Clock: clk})
	h, err := webhook.New(webhook.Config{AppSecret: "app-secret", Recorder: tracker, Quarantine: q, Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{
		"metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
		"calls":[
			{"id":"wacid.A","from":"16505551234","to":"15550783881","event":"connect","direction":"USER_INITIATED","timestamp":"1767254000"},
			{"id":"wacid.B","from":"16505559999","to":"15550783881","event":"connect","direction":"GROUP_CALL","timestamp":"1767254100"}]}}]}]}`)
	resp := webhooktest.Serve(h, "app-secret", body)
	resp.Body.Close()
	fmt.Println("status", resp.StatusCode)

	items, _, err := q.List(ctx, "", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range items {
		fmt.Println("quarantined:", it.Path, it.Error)
	}
	page, err := tracker.Eligible(ctx, "106540352242922", permission.Query{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("callable:", len(page.Entries), "; stats:", h.Stats().Quarantined, "quarantined")
	// Output:
	// status 200
	// quarantined: entry[0].changes[0].value.calls[1] webhook: malformed body: unknown call direction "GROUP_CALL"
	// callable: 1 ; stats: 1 quarantined
}
