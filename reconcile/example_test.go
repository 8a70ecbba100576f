package reconcile_test

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
	"github.com/callready/callready/reconcile"
	"github.com/callready/callready/store/memory"
)

// A user accepted, but the webhook never arrived: checking with Meta
// finds the missed accept and records it.
func ExampleReconciler_CheckContact() {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	tr, _ := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	defer tr.Close()
	fake := cloudapitest.New(cloudapitest.Config{Clock: clk})
	defer fake.Close()
	api, _ := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client(), Clock: clk})
	r, _ := reconcile.New(reconcile.Config{Tracker: tr, API: api, Channels: []string{"106540352242922"}, Clock: clk})

	fake.SetPermission("106540352242922", "16505551234", cloudapitest.Permission{
		Status: "temporary", ExpiresAt: clk.Now().Add(72 * time.Hour)})
	res, err := r.CheckContact(ctx, "106540352242922", "16505551234")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range res.Drift {
		fmt.Println(d.Kind, "-", d.Detail)
	}
	ex, _ := tr.Explain(ctx, "106540352242922", "16505551234", time.Time{})
	fmt.Println(ex.Callable, ex.Entry.Source, ex.Entry.ExpiresAt.Format(time.RFC3339))
	// Output:
	// missed_accept - Meta says temporary until 2026-01-08T09:00:00Z (we said never_granted)
	// true reconcile 2026-01-08T09:00:00Z
}
