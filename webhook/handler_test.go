package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

func TestNewRequiresSecretAndRecorder(t *testing.T) {
	_, err := webhook.New(webhook.Config{Recorder: &spy{}})
	assert.Error(t, err)
	_, err = webhook.New(webhook.Config{AppSecret: secret})
	assert.Error(t, err)
}

func TestSign(t *testing.T) {
	// Computed independently: printf '{}' | openssl dgst -sha256 -hmac test-app-secret
	assert.Equal(t, "sha256=c1ea56948b53132ad57904aac904aa087052a6f88de4d1236961d54b6003c28c", webhook.Sign([]byte("{}"), secret))
	assert.NoError(t, webhook.Verify([]byte("{}"), webhook.Sign([]byte("{}"), secret), secret))
	assert.Len(t, webhook.Sign(nil, secret), len("sha256=")+64)
}

// escapeNonASCII re-serialises a JSON body the way some proxies do: same
// document, non-ASCII letters written as \u escapes.
func escapeNonASCII(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		if r > 0x7f {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.WriteRune(r)
		}
	}
	return out.Bytes()
}

func TestSignatureEdgeCases(t *testing.T) {
	body := readFixture(t, "call-inbound-connect.json") // holds "Tomás"
	good := webhook.Sign(body, secret)
	escaped := escapeNonASCII(body)
	require.NotEqual(t, body, escaped)
	// Same semantics, different bytes.
	a, err := webhook.Parse(body)
	require.NoError(t, err)
	b, err := webhook.Parse(escaped)
	require.NoError(t, err)
	require.Equal(t, a.Events, b.Events)
	require.Equal(t, a.Calls[0].Contact, b.Calls[0].Contact)

	tampered := bytes.Replace(body, []byte("34612345678"), []byte("34612345679"), 1)
	tests := []struct {
		name   string
		body   []byte
		header *string // nil: no header at all
		code   int
		reason webhook.Reason
	}{
		{"valid", body, &good, http.StatusOK, ""},
		// Upper-case hex spells the same digest; Meta sends lower case but
		// refusing the other spelling would buy no security.
		{"uppercase hex", body, ptr("sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256="))), http.StatusOK, ""},
		{"wrong secret", body, ptr(webhook.Sign(body, "other-secret")), http.StatusForbidden, webhook.ReasonBadSignature},
		{"tampered body", tampered, &good, http.StatusForbidden, webhook.ReasonBadSignature},
		{"missing prefix", body, ptr(strings.TrimPrefix(good, "sha256=")), http.StatusForbidden, webhook.ReasonBadSignature},
		{"uppercase prefix", body, ptr("SHA256=" + strings.TrimPrefix(good, "sha256=")), http.StatusForbidden, webhook.ReasonBadSignature},
		{"sha1 prefix", body, ptr("sha1=" + strings.TrimPrefix(good, "sha256=")), http.StatusForbidden, webhook.ReasonBadSignature},
		{"truncated", body, ptr(good[:len(good)-2]), http.StatusForbidden, webhook.ReasonBadSignature},
		{"not hex", body, ptr(good[:len(good)-2] + "zz"), http.StatusForbidden, webhook.ReasonBadSignature},
		{"trailing space", body, ptr(good + " "), http.StatusForbidden, webhook.ReasonBadSignature},
		{"prefix only", body, ptr("sha256="), http.StatusForbidden, webhook.ReasonBadSignature},
		{"empty header", body, ptr(""), http.StatusUnauthorized, webhook.ReasonMissingSignature},
		{"no header", body, nil, http.StatusUnauthorized, webhook.ReasonMissingSignature},
		{"escaped unicode, original signature", escaped, &good, http.StatusForbidden, webhook.ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &spy{}
			h := newHandler(t, webhook.Config{Recorder: rec})
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tt.body))
			if tt.header != nil {
				req.Header.Set(webhook.SignatureHeader, *tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			assert.Equal(t, tt.code, w.Code)
			calls, _ := rec.seen()
			if tt.code != http.StatusOK {
				assert.Zero(t, calls, "recorded despite a failed authentication")
				assert.EqualValues(t, 1, h.Stats().Rejected[tt.reason])
				assert.Zero(t, h.Stats().Recorded)
			} else {
				assert.Equal(t, 1, calls)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account"}`)
	assert.ErrorIs(t, webhook.Verify(body, "", secret), webhook.ErrMissingSignature)
	assert.ErrorIs(t, webhook.Verify(body, "sha256=00", secret), webhook.ErrBadSignature)
	assert.ErrorIs(t, webhook.Verify(body, webhook.Sign(body, "x"), secret), webhook.ErrBadSignature)
	assert.NoError(t, webhook.Verify(body, webhook.Sign(body, secret), secret))
}

func ptr(s string) *string { return &s }

func TestHandshake(t *testing.T) {
	h := newHandler(t, webhook.Config{Recorder: &spy{}, VerifyToken: "tok"})
	get := func(h http.Handler, q url.Values) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil))
		return w
	}
	w := get(h, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"tok"}, "hub.challenge": {"1158201444"}})
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "1158201444", w.Body.String())
	assert.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain"))

	for name, q := range map[string]url.Values{
		"wrong token":   {"hub.mode": {"subscribe"}, "hub.verify_token": {"tok2"}, "hub.challenge": {"c"}},
		"token prefix":  {"hub.mode": {"subscribe"}, "hub.verify_token": {"to"}, "hub.challenge": {"c"}},
		"no token":      {"hub.mode": {"subscribe"}, "hub.challenge": {"c"}},
		"wrong mode":    {"hub.mode": {"unsubscribe"}, "hub.verify_token": {"tok"}, "hub.challenge": {"c"}},
		"no parameters": {},
	} {
		w := get(h, q)
		assert.Equal(t, http.StatusForbidden, w.Code, name)
		assert.NotContains(t, w.Body.String(), "c\n", name)
	}
	assert.EqualValues(t, 5, h.Stats().Rejected[webhook.ReasonBadVerifyToken])

	// No token configured: every handshake fails, even an empty token.
	h2 := newHandler(t, webhook.Config{Recorder: &spy{}})
	assert.Equal(t, http.StatusForbidden, get(h2, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {""}, "hub.challenge": {"c"}}).Code)
}

func TestMethodNotAllowed(t *testing.T) {
	rec := &spy{}
	h := newHandler(t, webhook.Config{Recorder: rec})
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m, "/", strings.NewReader("{}")))
		assert.Equal(t, http.StatusMethodNotAllowed, w.Code, m)
		assert.Equal(t, "GET, POST", w.Header().Get("Allow"))
	}
	assert.EqualValues(t, 4, h.Stats().Rejected[webhook.ReasonMethod])
	calls, _ := rec.seen()
	assert.Zero(t, calls)
}

func TestTooLarge(t *testing.T) {
	body := readFixture(t, "batch-two-channels.json")
	rec := &spy{}
	h := newHandler(t, webhook.Config{Recorder: rec, MaxBodyBytes: int64(len(body)) - 1})

	// Announced by Content-Length.
	assert.Equal(t, http.StatusRequestEntityTooLarge, post(t, h, body))
	// Streamed without a length: caught while reading.
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, secret))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)

	assert.EqualValues(t, 2, h.Stats().Rejected[webhook.ReasonTooLarge])
	calls, _ := rec.seen()
	assert.Zero(t, calls)

	// Exactly at the limit is fine.
	h = newHandler(t, webhook.Config{Recorder: rec, MaxBodyBytes: int64(len(body))})
	assert.Equal(t, http.StatusOK, post(t, h, body))
}

func TestDefaultLimitAboveMeta(t *testing.T) {
	assert.Greater(t, webhook.DefaultMaxBodyBytes, 3_000_000)
}

func TestMalformedBodies(t *testing.T) {
	// Wrong as a whole: 400, nothing recorded or quarantined.
	for name, tt := range map[string]struct {
		body   string
		reason webhook.Reason
	}{
		"not json":         {`{"object":`, webhook.ReasonBadJSON},
		"entry not a list": {`{"object":"whatsapp_business_account","entry":{}}`, webhook.ReasonBadJSON},
		"wrong object":     {`{"object":"page","entry":[]}`, webhook.ReasonWrongObject},
		"no object":        {`{"entry":[]}`, webhook.ReasonWrongObject},
	} {
		t.Run(name, func(t *testing.T) {
			rec, q := &spy{}, newQuarantine()
			h := newHandler(t, webhook.Config{Recorder: rec, Quarantine: q})
			assert.Equal(t, http.StatusBadRequest, post(t, h, []byte(tt.body)))
			calls, _ := rec.seen()
			assert.Zero(t, calls)
			assert.Zero(t, q.Len())
			assert.EqualValues(t, 1, h.Stats().Rejected[tt.reason])
		})
	}
	// Wrong in a part: that part is quarantined, the rest recorded, 200.
	reply := string(readFixture(t, "permission-accept-temporary.json"))
	for name, body := range map[string]string{
		"channel is a number": `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":106540352242922},"messages":[]}}]}]}`,
		"timestamp is a bool": strings.Replace(reply, `"timestamp":"1767168000"`, `"timestamp":true`, 1),
		"reply without user":  strings.NewReplacer(`"from":"16505551234",`, "", `"from_user_id":"US.13491208655302741918",`, "", `"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234","user_id":"US.13491208655302741918"}],`, "").Replace(reply),
		"NUL in the wa_id":    strings.Replace(reply, `"from":"16505551234"`, `"from":"1650555\u00001234"`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			rec, q := &spy{}, newQuarantine()
			h := newHandler(t, webhook.Config{Recorder: rec, Quarantine: q})
			assert.Equal(t, http.StatusOK, post(t, h, []byte(body)))
			calls, _ := rec.seen()
			assert.Zero(t, calls)
			items, next, err := q.List(context.Background(), "", 0)
			require.NoError(t, err)
			assert.Empty(t, next)
			require.Len(t, items, 1)
			assert.Contains(t, body, string(items[0].Raw))
			assert.EqualValues(t, 1, h.Stats().Quarantined)
			assert.EqualValues(t, 1, h.Stats().Accepted)
		})
	}
}

func TestStoreFailureThenRetry(t *testing.T) {
	tr := newTracker(t)
	rec := &spy{next: tr, err: errors.New("store: connection refused")}
	h := newHandler(t, webhook.Config{Recorder: rec})
	body := readFixture(t, "permission-accept-temporary.json")

	assert.Equal(t, http.StatusServiceUnavailable, post(t, h, body))
	st := h.Stats()
	assert.Zero(t, st.Recorded)
	assert.Zero(t, st.Accepted)
	assert.EqualValues(t, 1, st.Rejected[webhook.ReasonStoreError])
	assert.Equal(t, []listed{}, list(t, tr, chanMain))

	// Meta retries once the store is back.
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	assert.Equal(t, http.StatusOK, post(t, h, body))
	st = h.Stats()
	assert.EqualValues(t, 1, st.Recorded)
	assert.EqualValues(t, 1, st.Changes)
	assert.EqualValues(t, 2, st.Received)
	assert.EqualValues(t, 1, st.Accepted)
	assert.Len(t, list(t, tr, chanMain), 1)

	// A duplicate delivery changes nothing.
	assert.Equal(t, http.StatusOK, post(t, h, body))
	assert.EqualValues(t, 1, h.Stats().Changes)
}

// refuser is a Recorder that refuses, as invalid, any batch holding an
// event with the id bad, and records the rest.
type refuser struct {
	spy
	bad string
}

func (r *refuser) Record(ctx context.Context, events ...permission.Event) ([]permission.Change, error) {
	for _, e := range events {
		if e.ID == r.bad {
			return nil, fmt.Errorf("%w: event %s refused", permission.ErrInvalidEvent, e.ID)
		}
	}
	return r.spy.Record(ctx, events...)
}

// A Recorder stricter than Validate costs only the events it refuses.
func TestRecorderRefusalIsQuarantined(t *testing.T) {
	body := readFixture(t, "batch-quarantine-mixed.json")
	all, err := webhook.Parse(body)
	require.NoError(t, err)
	require.Len(t, all.Events, 2)
	rec := &refuser{bad: all.Events[0].ID}
	q := newQuarantine()
	h := newHandler(t, webhook.Config{Recorder: rec, Quarantine: q})
	assert.Equal(t, http.StatusOK, post(t, h, body))
	_, events := rec.seen()
	assert.Equal(t, all.Events[1:], events)
	items, _, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	assert.Len(t, items, len(all.Quarantined)+1)
	var refused *webhook.QuarantinedItem
	for i := range items {
		if strings.Contains(items[i].Error, "refused") {
			refused = &items[i]
		}
	}
	require.NotNil(t, refused)
	assert.Contains(t, string(refused.Raw), all.Events[0].ID)
	assert.Equal(t, "entry[0].changes[0].value.messages[0]", refused.Path)
	assert.EqualValues(t, 1, h.Stats().Recorded)
	assert.EqualValues(t, len(all.Quarantined)+1, h.Stats().Quarantined)
}

// failingQuarantine fails every Put.
type failingQuarantine struct{ *webhook.MemoryQuarantine }

func (*failingQuarantine) Put(context.Context, []webhook.QuarantinedItem) error {
	return errors.New("quarantine: disk full")
}

// The good items are recorded only once the bad ones are durable.
func TestQuarantineFailureIs503(t *testing.T) {
	rec := &spy{}
	h := newHandler(t, webhook.Config{Recorder: rec, Quarantine: &failingQuarantine{newQuarantine()}})
	assert.Equal(t, http.StatusServiceUnavailable, post(t, h, readFixture(t, "batch-quarantine-mixed.json")))
	calls, _ := rec.seen()
	assert.Zero(t, calls)
	assert.EqualValues(t, 1, h.Stats().Rejected[webhook.ReasonQuarantineError])
	assert.Zero(t, h.Stats().Quarantined)
	// A body with nothing to quarantine does not touch it.
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "permission-reject.json")))
}

func TestOneRecordCallPerBody(t *testing.T) {
	rec := &spy{}
	h := newHandler(t, webhook.Config{Recorder: rec})
	body := readFixture(t, "batch-two-channels.json")
	assert.Equal(t, http.StatusOK, post(t, h, body))
	calls, events := rec.seen()
	assert.Equal(t, 1, calls)
	assert.Len(t, events, 1)

	// A text message whose contacts[] shows phone and BSUID records only
	// that they name one person.
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "message-text.json")))
	calls, events = rec.seen()
	assert.Equal(t, 2, calls)
	assert.Equal(t, permission.EventIdentity, events[len(events)-1].Type)
	assert.NotEmpty(t, events[len(events)-1].Aliases)
	// A body with no events never calls the recorder.
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "message-status-app-too-old.json")))
	calls, _ = rec.seen()
	assert.Equal(t, 2, calls)
}

func TestCallbacks(t *testing.T) {
	tr := newTracker(t)
	var got []webhook.Message
	fail := true
	h := newHandler(t, webhook.Config{
		Recorder: tr,
		OnMessage: func(ctx context.Context, m webhook.Message) error {
			// The events of the body are recorded before any callback.
			if len(list(t, tr, chanMain)) != 1 {
				return errors.New("callback ran before the grant was recorded")
			}
			if fail {
				return errors.New("crm down")
			}
			got = append(got, m)
			return nil
		},
	})
	body := readFixture(t, "batch-two-channels.json")
	assert.Equal(t, http.StatusServiceUnavailable, post(t, h, body))
	assert.EqualValues(t, 1, h.Stats().Rejected[webhook.ReasonCallbackError])
	fail = false
	assert.Equal(t, http.StatusOK, post(t, h, body))
	require.Len(t, got, 2)
	assert.Equal(t, webhook.Message{
		Channel: chanMain, Contact: webhook.Contact{WaID: amina, Name: "Amina Yusuf"},
		ID: "wamid.HBgNMjM0ODAzMTIzNDU2NxUCABIYFDNBRDU", Timestamp: unix(1767210060), Type: "text",
		Text: "Yes please call me after 5pm", Raw: got[0].Raw,
	}, got[0])
	assert.JSONEq(t, `{"from":"2348031234567","id":"wamid.HBgNMjM0ODAzMTIzNDU2NxUCABIYFDNBRDU","timestamp":"1767210060","type":"text","text":{"body":"Yes please call me after 5pm"}}`, string(got[0].Raw))
	assert.Equal(t, chanAlt, got[1].Channel)
	assert.Equal(t, "Hello from the other line", got[1].Text)
	assert.Len(t, list(t, tr, chanMain), 1)
}

func TestOverHTTP(t *testing.T) {
	tr := newTracker(t)
	h := newHandler(t, webhook.Config{Recorder: tr})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := webhooktest.PostFile(context.Background(), srv.Client(), srv.URL, secret, fixtures+"/permission-profile-permanent.json")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []listed{{ana, permission.Permanent, permission.SourceProfile, unix(1767175200), time.Time{}}}, list(t, tr, chanMain))

	resp, err = webhooktest.PostFile(context.Background(), srv.Client(), srv.URL, "wrong", fixtures+"/permission-reject.json")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestLogsCarryNoPersonalData(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHandler(t, webhook.Config{Recorder: newTracker(t), Logger: log})
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "batch-two-channels.json")))
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "call-inbound-completed.json")))
	assert.Equal(t, http.StatusOK, post(t, h, readFixture(t, "batch-quarantine-mixed.json")))
	assert.Equal(t, http.StatusForbidden, post(t, newHandler(t, webhook.Config{AppSecret: "other", Recorder: &spy{}, Logger: log}), readFixture(t, "message-text.json")))
	out := buf.String()
	assert.Contains(t, out, "wamid.HBgNMjM0ODAzMTIzNDU2NxUCABIYFDNBRDQ", "event ids are logged at debug")
	assert.Contains(t, out, "item quarantined")
	for _, personal := range []string{"Amina", "Yes please", amina, "Li Wei", liWei, "CN.99887766554433221100", "Sheena", "Priya", "Kenji", kenji, "91987", "JP.99001122334455667788"} {
		assert.NotContains(t, out, personal)
	}
}

func TestOnBatchRunsBeforeRecording(t *testing.T) {
	rec := &spy{}
	var got webhook.Batch
	fail := true
	h := newHandler(t, webhook.Config{
		Recorder: rec,
		OnBatch: func(ctx context.Context, b webhook.Batch) error {
			if calls, _ := rec.seen(); calls != 0 {
				return errors.New("OnBatch ran after recording")
			}
			if fail {
				return errors.New("crm down")
			}
			got = b
			return nil
		},
	})
	body := readFixture(t, "batch-two-channels.json")
	assert.Equal(t, http.StatusServiceUnavailable, post(t, h, body))
	calls, _ := rec.seen()
	assert.Zero(t, calls, "a failed OnBatch records nothing")
	fail = false
	rec2 := &spy{}
	h = newHandler(t, webhook.Config{Recorder: rec2, OnBatch: func(ctx context.Context, b webhook.Batch) error { got = b; return nil }})
	assert.Equal(t, http.StatusOK, post(t, h, body))
	assert.Equal(t, []webhook.Channel{{ID: chanMain, DisplayPhoneNumber: "15550783881"}, {ID: chanAlt, DisplayPhoneNumber: "15550783999"}}, got.Channels)
	assert.Equal(t, []webhook.ChannelContact{
		{Channel: chanMain, Contact: webhook.Contact{WaID: amina, Name: "Amina Yusuf"}},
		{Channel: chanAlt, Contact: webhook.Contact{WaID: amina, Name: "Amina Yusuf"}},
	}, got.Contacts)
}
