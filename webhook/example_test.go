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
