package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
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
	// Quarantine paths: a bad entry, change, value, contact and item.
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[7,{"changes":"x"},{"changes":[1,{"field":"messages","value":{"metadata":{"phone_number_id":2}}},{"field":"calls","value":{"metadata":{"phone_number_id":"1"},"contacts":[{"wa_id":1}],"calls":[{"id":"wacid.A","from":"1\u0000","event":"connect","direction":"USER_INITIATED","timestamp":"1767168000"}]}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"time":1767168000,"changes":[{"field":"account_settings_update","value":{"phone_number_id":"1","calling":{"callback_permission_status":"MAYBE"}}}]}]}`))
}

// checkQuarantined: every quarantined item is a JSON value of the body,
// identified by its hash, with a path and an error.
func checkQuarantined(t *testing.T, items []webhook.QuarantinedItem) {
	t.Helper()
	for _, q := range items {
		if !json.Valid(q.Raw) || q.ID != webhook.QuarantineID(q.Raw) || q.Path == "" || q.Error == "" {
			t.Fatalf("bad quarantined item %+v", q)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it returns is either an
// error (ErrMalformed, ErrWrongObject) with no batch, or a batch whose
// every event a tracker accepts and whose quarantined items are sound.
func FuzzParse(f *testing.F) {
	addFixtureSeeds(f)
	tr := newTracker(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) && !errors.Is(err, webhook.ErrWrongObject) {
				t.Fatalf("error wrapping neither ErrMalformed nor ErrWrongObject: %v", err)
			}
			if len(b.Events)+len(b.Messages)+len(b.Calls)+len(b.Statuses)+len(b.Settings)+len(b.Quarantined) != 0 {
				t.Fatalf("partial batch returned with error %v", err)
			}
			return
		}
		checkQuarantined(t, b.Quarantined)
		for _, e := range b.Events {
			if err := e.Validate(); err != nil {
				t.Fatalf("Parse returned an event Validate refuses: %v\n%+v", err, e)
			}
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
// answers one of the documented codes, answers 400 only for a body Parse
// refuses as a whole, and 200 only once the recorder has seen every event
// of the body and the quarantine holds every quarantined item.
func FuzzHandler(f *testing.F) {
	addFixtureSeeds(f)
	tr := newTracker(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := &spy{next: tr}
		q := newQuarantine()
		h, err := webhook.New(webhook.Config{
			AppSecret: secret, Recorder: rec, Quarantine: q,
			OnMessage: func(context.Context, webhook.Message) error { return nil },
			OnCall:    func(context.Context, webhook.Call) error { return nil },
			OnStatus:  func(context.Context, webhook.MessageStatus) error { return nil },
			OnSetting: func(context.Context, webhook.ChannelSetting) error { return nil },
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
				if !reflect.DeepEqual(seen[i], want.Events[i]) {
					t.Fatalf("event %d: recorded %+v, body has %+v", i, seen[i], want.Events[i])
				}
			}
			if got := h.Stats().Recorded; got != int64(len(want.Events)) {
				t.Fatalf("Stats.Recorded = %d, want %d", got, len(want.Events))
			}
			items, _, err := q.List(context.Background(), "", webhook.MaxQuarantinePage)
			if err != nil {
				t.Fatal(err)
			}
			checkQuarantined(t, items)
			held := map[string]bool{}
			for _, it := range items {
				held[it.ID] = true
			}
			for _, it := range want.Quarantined {
				if !held[it.ID] {
					t.Fatalf("200 but %s (%s) is not in the quarantine", it.Path, it.Error)
				}
			}
			if got := h.Stats().Quarantined; got != int64(len(want.Quarantined)) {
				t.Fatalf("Stats.Quarantined = %d, want %d", got, len(want.Quarantined))
			}
		case http.StatusBadRequest:
			if len(seen) != 0 || q.Len() != 0 {
				t.Fatalf("400 after recording %d events and quarantining %d items", len(seen), q.Len())
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
