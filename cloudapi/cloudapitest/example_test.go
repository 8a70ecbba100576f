package cloudapitest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/webhook"
)

// A simulated user answers a request an hour later (on the mock clock) with
// a webhook signed like Meta's.
func ExampleServer_Reply() {
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b, err := webhook.Parse(body)
		fmt.Println("signature:", webhook.Verify(body, r.Header.Get(webhook.SignatureHeader), "app-secret"), "parse:", err)
		for _, e := range b.Events {
			fmt.Println("event:", e.Type, e.Contact, "permanent", e.Permanent)
		}
	}))
	defer hooks.Close()

	clk := clock.NewMock()
	fake := cloudapitest.New(cloudapitest.Config{Clock: clk, AppSecret: "app-secret", WebhookURL: hooks.URL})
	defer fake.Close()
	api, _ := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken()})
	res, _ := api.SendPermissionTemplate(context.Background(), "106540352242922", cloudapi.TemplateRequest{
		To: cloudapi.Recipient{Phone: "16505551234"}, Name: "call_permission", Language: "en",
	})

	d, _ := fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true, Permanent: true, After: time.Hour})
	clk.Add(time.Hour)
	fmt.Println("delivered:", d.Wait(context.Background()))
	fmt.Println("meta says:", fake.Permission("106540352242922", "16505551234").Status)
	// Output:
	// signature: <nil> parse: <nil>
	// event: grant 16505551234 permanent true
	// delivered: <nil>
	// meta says: permanent
}
