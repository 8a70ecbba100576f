package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

type callableResp struct {
	Channel    string        `json:"channel"`
	Revision   int64         `json:"revision"`
	Now        time.Time     `json:"now"`
	Contacts   []contactJSON `json:"contacts"`
	NextCursor string        `json:"next_cursor"`
}

type errResp struct {
	Error string `json:"error"`
}

func contactsOf(r callableResp) []string {
	var out []string
	for _, c := range r.Contacts {
		out = append(out, c.Contact)
	}
	return out
}

// seed: on channel A, Sheena (expires in 2 h), Amina (expires in 5 days),
// Tomás (missed call: 7 days), Pat (permanent) and Rui (rejected); one
// contact on channel B.
func seed(e *testEnv) {
	e.text(chA, "Sheena Nelson", "16505551234", "wamid.t1", t0.Add(-3*time.Hour), "Hi, can someone call me about order ON-12853?")
	e.grant(chA, "Sheena Nelson", "16505551234", "wamid.g1", t0.Add(-166*time.Hour), t0.Add(2*time.Hour))
	e.grant(chA, "Amina Yusuf", "2348031234567", "wamid.g2", t0.Add(-48*time.Hour), t0.Add(120*time.Hour))
	e.missedCall(chA, "Tomás García", "34612345678", "wacid.c1", t0.Add(-time.Hour))
	e.grant(chA, "Pat Permanent", "447700900123", "wamid.g3", t0.Add(-10*time.Hour), time.Time{})
	e.grant(chA, "Rui Costa", "351912345678", "wamid.g4", t0.Add(-20*time.Hour), t0.Add(140*time.Hour))
	e.reject(chA, "Rui Costa", "351912345678", "wamid.r4", t0.Add(-19*time.Hour))
	e.grant(chB, "Amina Yusuf", "2348031234567", "wamid.g5", t0.Add(-time.Hour), t0.Add(167*time.Hour))
}

func TestAuth(t *testing.T) {
	e := newTestEnv(t, t0)
	var er errResp
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/channels", "", &er))
	assert.NotEmpty(t, er.Error)
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/channels", "wrong-token-0123456789", &er))
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/channels", testToken+"x", &er))
	// ?token= is for EventSource only.
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/channels?token="+testToken, "", &er))
	// Unknown API routes do not tell anything before the token check.
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/nope", "", &er))
	assert.Equal(t, http.StatusNotFound, e.get("/api/nope", &er))
	var ok map[string]any
	assert.Equal(t, http.StatusOK, e.get("/api/channels", &ok))
	// The page and health need no token.
	for _, p := range []string{"/", "/app.js", "/app.css", "/healthz"} {
		resp, err := e.http.Client().Get(e.http.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	// Metrics on the main address need the token (-metrics-addr serves
	// them elsewhere without one).
	resp, err := e.http.Client().Get(e.http.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = e.http.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestChannels(t *testing.T) {
	e := newTestEnv(t, t0)
	var got struct{ Channels []channelJSON }
	require.Equal(t, http.StatusOK, e.get("/api/channels", &got))
	assert.Empty(t, got.Channels)
	seed(e)
	require.Equal(t, http.StatusOK, e.get("/api/channels", &got))
	assert.Equal(t, []channelJSON{
		{Channel: chA.id, Display: chA.display, Callable: 4, Expiring24h: 1},
		{Channel: chB.id, Display: chB.display, Callable: 1},
	}, got.Channels)
}

func TestCallable(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	base := "/api/channels/" + chA.id + "/callable"

	var all callableResp
	require.Equal(t, http.StatusOK, e.get(base, &all))
	// Soonest expiry first, permanent last; the rejected contact is absent.
	assert.Equal(t, []string{"16505551234", "2348031234567", "34612345678", "447700900123"}, contactsOf(all))
	assert.Empty(t, all.NextCursor)
	assert.Positive(t, all.Revision)
	assert.True(t, all.Now.Equal(t0))
	s := all.Contacts[0]
	assert.Equal(t, "Sheena Nelson", s.Name)
	assert.Equal(t, "temporary", s.Kind)
	assert.Equal(t, "request", s.Source)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(2*time.Hour)))
	assert.True(t, s.GrantedAt.Equal(t0.Add(-166*time.Hour)))
	assert.Equal(t, 100, s.CallsLeft)
	tomas := all.Contacts[2]
	assert.Equal(t, "Tomás García", tomas.Name)
	assert.Equal(t, "inbound_call", tomas.Source)
	perm := all.Contacts[3]
	assert.Equal(t, "permanent", perm.Kind)
	assert.Nil(t, perm.ExpiresAt)

	// Paging: two pages of 2 then 2, same order as the full listing.
	var p1, p2 callableResp
	require.Equal(t, http.StatusOK, e.get(base+"?limit=2", &p1))
	require.NotEmpty(t, p1.NextCursor)
	require.Equal(t, http.StatusOK, e.get(base+"?limit=2&cursor="+p1.NextCursor, &p2))
	assert.Empty(t, p2.NextCursor)
	assert.Equal(t, contactsOf(all), append(contactsOf(p1), contactsOf(p2)...))

	var recent callableResp
	require.Equal(t, http.StatusOK, e.get(base+"?order=recent", &recent))
	assert.Equal(t, []string{"34612345678", "447700900123", "2348031234567", "16505551234"}, contactsOf(recent))

	var soon callableResp
	require.Equal(t, http.StatusOK, e.get(base+"?expiring_within=24h", &soon))
	assert.Equal(t, []string{"16505551234"}, contactsOf(soon))

	var er errResp
	for _, q := range []string{
		"?limit=0", "?limit=abc", "?limit=1001", "?order=alphabetical", "?expiring_within=-1h",
		"?expiring_within=tomorrow", "?cursor=garbage", "?order=recent&cursor=" + p1.NextCursor,
	} {
		assert.Equal(t, http.StatusBadRequest, e.get(base+q, &er), q)
		assert.NotEmpty(t, er.Error, q)
	}
	assert.Equal(t, http.StatusNotFound, e.get("/api/channels/999/callable", &er))
	assert.Contains(t, er.Error, "unknown channel")
}

func TestContactExplanation(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	base := "/api/channels/" + chA.id + "/contacts/"

	var x explanationJSON
	require.Equal(t, http.StatusOK, e.get(base+"16505551234", &x))
	assert.True(t, x.Callable)
	assert.Equal(t, "Sheena Nelson", x.Name)
	assert.Equal(t, "temporary", x.Status)
	assert.Contains(t, x.Reason, "temporary permission")
	require.NotNil(t, x.Kind)
	assert.Equal(t, "temporary", *x.Kind)
	assert.True(t, x.ExpiresAt.Equal(t0.Add(2*time.Hour)))
	assert.True(t, x.CanCall)
	assert.Equal(t, "allowed", x.CallReason)
	assert.Equal(t, 100, x.CallsLeft)
	require.Len(t, x.History, 1)
	assert.Equal(t, "temporary grant", x.History[0].What)
	assert.Equal(t, "wamid.g1", x.History[0].EventID)

	var p explanationJSON
	require.Equal(t, http.StatusOK, e.get(base+"447700900123", &p))
	assert.Equal(t, "permanent", p.Status)
	assert.False(t, p.CanRequest, "a permanent permission makes requests pointless")
	assert.Equal(t, "permanent_granted", p.RequestReason)
	assert.Nil(t, p.ExpiresAt)

	var r explanationJSON
	require.Equal(t, http.StatusOK, e.get(base+"351912345678", &r))
	assert.False(t, r.Callable)
	assert.Equal(t, "rejected", r.Status)
	assert.Equal(t, "revoked", r.CallReason)
	assert.Nil(t, r.Kind)
	require.Len(t, r.History, 2)
	assert.Equal(t, "revocation", r.History[1].What)

	// Expired: the answer follows the clock.
	e.clock.Add(3 * time.Hour)
	require.Equal(t, http.StatusOK, e.get(base+"16505551234", &x))
	assert.False(t, x.Callable)
	assert.Equal(t, "expired", x.Status)
	assert.Equal(t, "expired", x.CallReason)
	assert.True(t, x.CanRequest)

	var er errResp
	assert.Equal(t, http.StatusNotFound, e.get(base+"19995550000", &er))
	assert.Contains(t, er.Error, "unknown contact")
	assert.Equal(t, http.StatusNotFound, e.get("/api/channels/999/contacts/16505551234", &er))
}

func TestMessages(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	e.text(chA, "Sheena Nelson", "16505551234", "wamid.t2", t0.Add(-time.Hour), "Please call me after 5pm")
	e.text(chA, "Sheena Nelson", "16505551234", "wamid.t2", t0.Add(-time.Hour), "Please call me after 5pm") // Meta re-delivers
	var got struct {
		Name     string        `json:"name"`
		Messages []chatMessage `json:"messages"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/16505551234/messages", &got))
	assert.Equal(t, "Sheena Nelson", got.Name)
	var bodies []string
	for _, m := range got.Messages {
		bodies = append(bodies, m.Direction+": "+m.Body)
	}
	// Oldest first: the grant of a week ago, then the two texts.
	assert.Equal(t, []string{
		"event: Accepted the call permission request (temporary, until 2026-01-05T11:00:00Z)",
		"in: Hi, can someone call me about order ON-12853?",
		"in: Please call me after 5pm",
	}, bodies)

	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/34612345678/messages", &got))
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "call", got.Messages[0].Type)
	assert.Equal(t, "Called the business (missed)", got.Messages[0].Body)

	// The same user on another channel has a separate history.
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chB.id+"/contacts/2348031234567/messages", &got))
	require.Len(t, got.Messages, 1)

	var er errResp
	assert.Equal(t, http.StatusNotFound, e.get("/api/channels/"+chA.id+"/contacts/1999/messages", &er))
}

func TestEventStream(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	var list callableResp
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &list))

	// EventSource passes the token in the query.
	st := e.openStream(chA.id, nil, "?token="+testToken+"&after="+itoa(list.Revision))
	e.grant(chA, "Zed Newcomer", "15550001111", "wamid.g9", t0, t0.Add(30*time.Minute))
	ev := st.next(t)
	assert.Equal(t, "granted", ev.Event)
	assert.Equal(t, "15550001111", ev.Data.Contact)
	assert.Equal(t, "Zed Newcomer", ev.Data.Name, "the name is known before the event goes out")
	assert.Equal(t, chA.id, ev.Data.Channel)
	assert.Equal(t, 100, ev.Data.CallsLeft)
	assert.Equal(t, itoa(ev.Data.Revision), ev.ID)
	assert.True(t, ev.Data.ExpiresAt.Equal(t0.Add(30*time.Minute)))

	// Changes of the other channel are not on this stream.
	e.grant(chB, "Other", "15550002222", "wamid.g10", t0, t0.Add(time.Hour))
	// Expiry, driven by the mock clock and a synchronous sweep.
	e.clock.Add(time.Hour)
	n, err := e.s.tracker.Sweep(context.Background(), e.clock.Now())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	ev = st.next(t)
	assert.Equal(t, "expired", ev.Event)
	assert.Equal(t, "15550001111", ev.Data.Contact)
	lastID := ev.ID

	// Resume: what happens while disconnected is replayed from the log.
	st.resp.Body.Close()
	e.reject(chA, "Amina Yusuf", "2348031234567", "wamid.r2", e.clock.Now())
	st2 := e.openStream(chA.id, map[string]string{"Authorization": "Bearer " + testToken, "Last-Event-ID": lastID}, "?after=1")
	ev = st2.next(t)
	assert.Equal(t, "revoked", ev.Event)
	assert.Equal(t, "2348031234567", ev.Data.Contact)
	assert.Equal(t, "Amina Yusuf", ev.Data.Name)

	// Replayed grants carry their call budget too.
	st2.resp.Body.Close()
	st3 := e.openStream(chA.id, map[string]string{"Authorization": "Bearer " + testToken}, "?after="+itoa(list.Revision))
	ev = st3.next(t)
	assert.Equal(t, "granted", ev.Event)
	assert.Equal(t, 100, ev.Data.CallsLeft)

	var er errResp
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/channels/"+chA.id+"/events?token=nope", "", &er))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/channels/"+chA.id+"/events?after=-4", &er))
	assert.Equal(t, http.StatusNotFound, e.get("/api/channels/999/events", &er))
}

func TestEventStreamEndsOnShutdown(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	st := e.openStream(chA.id, map[string]string{"Authorization": "Bearer " + testToken}, "")
	e.s.stop()
	select {
	case _, ok := <-st.events:
		assert.False(t, ok, "no event expected, only the end of the stream")
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after stop")
	}
}

func TestMetrics(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	st := e.openStream(chA.id, map[string]string{"Authorization": "Bearer " + testToken}, "")
	e.grant(chA, "Zed Newcomer", "15550001111", "wamid.g9", t0, t0.Add(30*time.Minute))
	st.next(t)
	e.clock.Add(3 * time.Hour)
	_, err := e.s.tracker.Sweep(context.Background(), e.clock.Now())
	require.NoError(t, err)
	st.next(t) // Sheena and Zed expire
	st.next(t)

	resp, err := webhookPost(e, []byte(`{}`), "sha256=00")
	require.NoError(t, err)
	resp.Body.Close()

	scrape := func() string {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := e.http.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	want := []string{
		`callready_callable_contacts{channel="106540352242922"} 3`,
		`callready_callable_contacts{channel="106540352299999"} 1`,
		`callready_webhook_requests_total{outcome="accepted"} 9`,
		`callready_webhook_requests_total{outcome="bad_signature"} 1`,
		`callready_sse_subscribers 1`,
	}
	require.Eventually(t, func() bool {
		m := scrape()
		return strings.Contains(m, `callready_permission_changes_total{type="expired"} 2`) &&
			strings.Contains(m, `callready_permission_changes_total{type="granted"}`)
	}, 10*time.Second, 20*time.Millisecond, "the change watcher counts expiries")
	m := scrape()
	for _, w := range want {
		assert.Contains(t, m, w)
	}
}

func webhookPost(e *testEnv, body []byte, sig string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, e.http.URL+"/webhook", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	return e.http.Client().Do(req)
}

func TestWebhookEndpoint(t *testing.T) {
	e := newTestEnv(t, t0)
	body := metaBody(chA, "Sheena Nelson", "16505551234", "messages", "messages", map[string]any{
		"from": "16505551234", "id": "wamid.x", "timestamp": unixS(t0), "type": "text", "text": map[string]string{"body": "hi"},
	})
	for _, c := range []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"unsigned", body, "", http.StatusUnauthorized},
		{"wrong secret", body, webhook.Sign(body, "other"), http.StatusForbidden},
		{"tampered", append(bytes.Clone(body), ' '), webhook.Sign(body, testSecret), http.StatusForbidden},
		{"bad json", []byte(`{"entry":[`), webhook.Sign([]byte(`{"entry":[`), testSecret), http.StatusBadRequest},
		{"too large", bytes.Repeat([]byte(" "), maxWebhookBody+1), "sha256=00", http.StatusRequestEntityTooLarge},
	} {
		resp, err := webhookPost(e, c.body, c.sig)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, c.want, resp.StatusCode, c.name)
	}
	// Refused bodies taught the server nothing.
	var got struct{ Channels []channelJSON }
	require.Equal(t, http.StatusOK, e.get("/api/channels", &got))
	assert.Empty(t, got.Channels)

	resp, err := e.http.Client().Get(e.http.URL + "/webhook?hub.mode=subscribe&hub.verify_token=" + testVerify + "&hub.challenge=1158201444")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "1158201444", string(b))
	resp, err = e.http.Client().Get(e.http.URL + "/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestHealthz(t *testing.T) {
	e := newTestEnv(t, t0)
	var h map[string]string
	require.Equal(t, http.StatusOK, e.get("/healthz", &h))
	assert.Equal(t, "ok", h["status"])
	seed(e)
	require.NoError(t, e.s.opts.DB.Close()) // the database goes away
	var er errResp
	assert.Equal(t, http.StatusServiceUnavailable, e.get("/healthz", &er))
	assert.Equal(t, http.StatusServiceUnavailable, e.get("/api/channels/"+chA.id+"/callable", &er))
	assert.Equal(t, "storage unavailable, try again", er.Error)
	assert.Equal(t, http.StatusServiceUnavailable, e.get("/api/channels/"+chA.id+"/contacts/16505551234", &er))
}

func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/callready.db"
	open := func() (*server, func()) {
		db, _, err := openDB(ctx, path)
		require.NoError(t, err)
		s, err := newServer(ctx, serverOptions{DB: db, APIToken: testToken, AppSecret: testSecret})
		require.NoError(t, err)
		return s, func() { s.close(); db.Close() }
	}
	s, closeFn := open()
	now := time.Now()
	resp := serve(s, metaBody(chA, "Sheena Nelson", "16505551234", "messages", "messages", map[string]any{
		"from": "16505551234", "id": "wamid.g", "timestamp": unixS(now), "type": "interactive",
		"context": map[string]string{"id": "wamid.req"},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": map[string]any{
			"response": "accept", "is_permanent": true, "response_source": "user_action"}},
	}))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	closeFn()

	s, closeFn = open()
	defer closeFn()
	page, err := s.tracker.Eligible(ctx, chA.id, permission.Query{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	name, known, err := s.inbox.contact(ctx, chA.id, "16505551234")
	require.NoError(t, err)
	assert.True(t, known)
	assert.Equal(t, "Sheena Nelson", name)
	assert.True(t, s.inbox.knownChannel(ctx, chA.id))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// serve posts a signed body straight to a server, without a listener.
func serve(s *server, body []byte) *http.Response {
	return webhooktest.Serve(s, testSecret, body)
}

// post calls a POST endpoint of the API with the test token.
func (e *testEnv) postAPI(path string, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.http.URL+path, nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(out))
	return resp.StatusCode
}

// fillCallCap records connected business calls until the contact's call
// budget of the window is spent.
func (e *testEnv) fillCallCap(ch, contact string, at time.Time) {
	e.t.Helper()
	var evs []permission.Event
	for i := range 100 {
		evs = append(evs, permission.Event{Type: permission.EventBusinessCall, Channel: ch, Contact: contact,
			ID: fmt.Sprintf("wacid.cap.%s.%d", contact, i), At: at.Add(time.Duration(i) * time.Second), Connected: true})
	}
	_, err := e.s.tracker.Record(context.Background(), evs...)
	require.NoError(e.t, err)
}

func TestCallAction(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	call := func(contact string) (callJSON, int) {
		var c callJSON
		code := e.postAPI("/api/channels/"+chA.id+"/contacts/"+contact+"/call", &c)
		return c, code
	}
	c, code := call("16505551234")
	require.Equal(t, http.StatusOK, code)
	assert.True(t, c.Allowed)
	assert.Equal(t, "allowed", c.Reason)
	assert.Equal(t, "tel:+16505551234", c.DialURL, "the default dialer is a tel: link")

	c, _ = call("351912345678") // rejected
	assert.False(t, c.Allowed)
	assert.Equal(t, "revoked", c.Reason)
	assert.Equal(t, "rejected", c.Status)
	assert.Empty(t, c.DialURL)
	require.NotNil(t, c.EndedAt)
	assert.Equal(t, t0.Add(-19*time.Hour), *c.EndedAt)

	// The call cap: refused until a slot frees up, 24 h after the first call.
	e.fillCallCap(chA.id, "2348031234567", t0.Add(-time.Hour))
	c, _ = call("2348031234567")
	assert.False(t, c.Allowed)
	assert.Equal(t, "call_limit", c.Reason)
	require.NotNil(t, c.RetryAt)
	assert.Equal(t, t0.Add(23*time.Hour), *c.RetryAt)

	// Sheena's grant runs out: the call decided at the click says so.
	e.clock.Add(2 * time.Hour)
	c, _ = call("16505551234")
	assert.False(t, c.Allowed)
	assert.Equal(t, "expired", c.Reason)
	require.NotNil(t, c.EndedAt)
	assert.Equal(t, t0.Add(2*time.Hour), *c.EndedAt)

	var er errResp
	assert.Equal(t, http.StatusNotFound, e.postAPI("/api/channels/nope/contacts/1/call", &er))
}

// TestAllChannelsStream: /api/events carries every channel's changes.
func TestAllChannelsStream(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	st := e.openStreamPath("/api/events", fmt.Sprintf("?after=%d&token=%s", e.s.tracker.Revision(), testToken))
	e.grant(chA, "Zed", "15550001111", "wamid.z1", t0, t0.Add(time.Hour))
	e.grant(chB, "Yan", "15550002222", "wamid.y1", t0, t0.Add(time.Hour))
	a, b := st.next(t), st.next(t)
	assert.Equal(t, []string{chA.id, chB.id}, []string{a.Data.Channel, b.Data.Channel})
	assert.Equal(t, "granted", b.Event)
}
