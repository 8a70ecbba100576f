package cloudapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/webhook"
)

// Send a permission request and ask Meta (here, the fake) what the user
// allows.
func Example() {
	ctx := context.Background()
	fake := cloudapitest.New(cloudapitest.Config{}) // a real host points BaseURL at nothing: the default is Meta
	defer fake.Close()
	fake.AddUser(cloudapitest.User{Phone: "16505551234", UserID: "US.13491208655302741918"})

	api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken()})
	if err != nil {
		log.Fatal(err)
	}
	res, err := api.SendPermissionRequest(ctx, "106540352242922", cloudapi.PermissionRequest{
		To:   cloudapi.Recipient{Phone: "16505551234"},
		Body: "May we call you about your order?",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent:", res.MessageID == fake.Requests()[0].ID, "to", res.Contact.WaID, res.Contact.UserID)

	p, err := api.CallPermissions(ctx, "106540352242922", cloudapi.Recipient{UserID: "US.13491208655302741918"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("permission:", p.Status)
	for _, a := range p.Actions {
		fmt.Print(a.Name, " ", a.CanPerform)
		for _, l := range a.Limits {
			fmt.Printf(" [%s %d/%d]", l.Period, l.CurrentUsage, l.MaxAllowed)
		}
		fmt.Println()
	}
	// Output:
	// sent: true to 16505551234 US.13491208655302741918
	// permission: no_permission
	// send_call_permission_request false [24h0m0s 1/1] [168h0m0s 1/2]
	// start_call false [24h0m0s 0/100]
}

// Meta's refusals map to the reasons a local decision gives.
func ExampleReason() {
	ctx := context.Background()
	fake := cloudapitest.New(cloudapitest.Config{})
	defer fake.Close()
	api, _ := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken()})
	to := cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: "16505551234"}}

	api.SendPermissionRequest(ctx, "106540352242922", to)
	_, err := api.SendPermissionRequest(ctx, "106540352242922", to) // the same day
	var apiErr *cloudapi.Error
	if errors.As(err, &apiErr) {
		fmt.Println("code", apiErr.Code, "HTTP", apiErr.HTTPStatus)
	}
	reason, _ := cloudapi.Reason(err)
	fmt.Println("reason:", reason)
	// Output:
	// code 138009 HTTP 400
	// reason: request_limit_24h
}

// Rate limits are retried after a backoff measured on Config.Clock; with
// a mock clock, OnRetry can advance it.
func ExampleConfig_backoff() {
	clk := clock.NewMock()
	fake := cloudapitest.New(cloudapitest.Config{Clock: clk})
	defer fake.Close()
	fake.RateLimitNext(2, 0) // two 613s, then the answer

	api, _ := cloudapi.New(cloudapi.Config{
		BaseURL: fake.URL(), AccessToken: fake.AccessToken(), Clock: clk,
		OnRetry: func(attempt int, wait time.Duration, err error) {
			fmt.Printf("attempt %d: code %d, retry in %s\n", attempt, cloudapi.Code(err), wait)
			clk.Add(wait)
		},
	})
	p, err := api.CallPermissions(context.Background(), "106540352242922", cloudapi.Recipient{Phone: "16505551234"})
	fmt.Println(p.Status, err)
	// Output:
	// attempt 1: code 613, retry in 1s
	// attempt 2: code 613, retry in 2s
	// no_permission <nil>
}

// The whole loop: the fake's user accepts by a signed webhook to a
// webhook.Handler, and the tracker lists the contact as callable.
func Example_webhook() {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Unix(1767168000, 0))
	tracker, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tracker.Close()
	h, _ := webhook.New(webhook.Config{AppSecret: "app-secret", Recorder: tracker})
	hooks := httptest.NewServer(h)
	defer hooks.Close()

	fake := cloudapitest.New(cloudapitest.Config{Clock: clk, AppSecret: "app-secret", WebhookURL: hooks.URL})
	defer fake.Close()
	api, _ := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), Clock: clk})

	res, err := api.SendPermissionRequest(ctx, "106540352242922", cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: "16505551234"}})
	if err != nil {
		log.Fatal(err)
	}
	reply, _ := fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true, After: 5 * time.Minute})
	clk.Add(5 * time.Minute)
	if err := reply.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	page, _ := tracker.Eligible(ctx, "106540352242922", permission.Query{})
	for _, e := range page.Entries {
		fmt.Println("callable:", e.WaID, e.Kind, "until", e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	// Output:
	// callable: 16505551234 temporary until 2026-01-07T08:05:00Z
}
