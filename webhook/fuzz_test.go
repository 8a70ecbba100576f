package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

func addFixtureSeeds(f *testing.F) {
	for _, name := range fixtureNames(f) {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"metadata":{"phone_number_id":"1"},"statuses":[{"id":"wacid.A","type":"call","status":"ACCEPTED","timestamp":1767168000,"recipient_user_id":"US.1"}]}}]}]}`))
}

// FuzzParse: Parse never panics, and whatever it returns is either an
// error wrapping ErrMalformed or a batch whose every event a tracker accepts.
func FuzzParse(f *testing.F) {
	addFixtureSeeds(f)
	tr := newTracker(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			if len(b.Events)+len(b.Messages)+len(b.Calls)+len(b.Statuses) != 0 {
				t.Fatalf("partial batch returned with error %v", err)
			}
			return
		}
		if len(b.Events) == 0 {
			return
		}
		if _, err := tr.Record(context.Background(), b.Events...); err != nil {
			t.Fatalf("Parse returned events the tracker refuses: %v\n%+v", err, b.Events)
		}
	})
}

// FuzzHandler: the whole handler, with a valid signature, never panics,
// answers one of the documented codes, and answers 200 only once the
// recorder has seen every event of the body.
func FuzzHandler(f *testing.F) {
	addFixtureSeeds(f)
	tr := newTracker(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := &spy{next: tr}
		h, err := webhook.New(webhook.Config{
			AppSecret: secret, Recorder: rec,
			OnMessage: func(context.Context, webhook.Message) error { return nil },
			OnCall:    func(context.Context, webhook.Call) error { return nil },
			OnStatus:  func(context.Context, webhook.MessageStatus) error { return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		resp := webhooktest.Serve(h, secret, body)
		resp.Body.Close()
		calls, seen := rec.seen()
		want, perr := webhook.Parse(body)
		switch resp.StatusCode {
		case http.StatusOK:
			if perr != nil {
				t.Fatalf("200 for a body Parse refuses: %v", perr)
			}
			if len(seen) != len(want.Events) || calls > 1 {
				t.Fatalf("200 but the recorder saw %d events in %d calls, body has %d", len(seen), calls, len(want.Events))
			}
			for i := range seen {
				if seen[i] != want.Events[i] {
					t.Fatalf("event %d: recorded %+v, body has %+v", i, seen[i], want.Events[i])
				}
			}
			if got := h.Stats().Recorded; got != int64(len(want.Events)) {
				t.Fatalf("Stats.Recorded = %d, want %d", got, len(want.Events))
			}
		case http.StatusBadRequest:
			if len(seen) != 0 {
				t.Fatalf("400 after recording %d events", len(seen))
			}
			if perr == nil {
				t.Fatalf("400 for a body Parse accepts")
			}
		default:
			t.Fatalf("unexpected status %d", resp.StatusCode)
		}
	})
}

var _ webhook.Recorder = (*spy)(nil)
