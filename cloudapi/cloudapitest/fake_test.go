package cloudapitest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	channel  = "106540352242922"
	display  = "15550783881"
	fixtures = "../../webhook/testdata/fixtures/"
)

// receiver collects the webhooks posted to it, refusing bad signatures.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	srv    *httptest.Server
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify(body, req.Header.Get(webhook.SignatureHeader), secret); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

type env struct {
	fake *cloudapitest.Server
	api  *cloudapi.Client
	clk  *clock.Mock
	recv *receiver
}

func newEnv(t *testing.T, start time.Time, cfg cloudapitest.Config) *env {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(start)
	recv := newReceiver(t, "fake-secret")
	cfg.Clock, cfg.AppSecret, cfg.WebhookURL = clk, "fake-secret", recv.srv.URL
	if cfg.PhoneNumbers == nil {
		cfg.PhoneNumbers = map[string]string{channel: display}
	}
	fake := cloudapitest.New(cfg)
	t.Cleanup(fake.Close)
	api, err := cloudapi.New(cloudapi.Config{
		BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client(), Clock: clk, MaxRetries: -1,
	})
	require.NoError(t, err)
	return &env{fake: fake, api: api, clk: clk, recv: recv}
}

func (e *env) request(t *testing.T, to cloudapi.Recipient) cloudapi.SendResult {
	t.Helper()
	res, err := e.api.SendPermissionRequest(context.Background(), channel, cloudapi.PermissionRequest{To: to})
	require.NoError(t, err)
	return res
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixtures + name)
	require.NoError(t, err)
	return bytes.TrimSpace(b)
}

// The replies are Meta's fixtures byte for byte, once the fake's request
// id stands in for the fixture's.
func TestReplyBodiesMatchMetaFixtures(t *testing.T) {
	const sheenaReq = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJSEQ"
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{})
	require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: "16505551234", UserID: "US.13491208655302741918", Name: "Sheena Nelson"}))
	require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: "919812345678", UserID: "IN.88112233445566778899", Name: "Ravi Kumar"}))

	sheena := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	d, err := e.fake.Reply(sheena.MessageID, cloudapitest.Reply{Accept: true, ID: "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUE3"})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	want := strings.ReplaceAll(string(readFixture(t, "permission-accept-temporary.json")), sheenaReq, sheena.MessageID)
	require.Equal(t, want, string(d.Body()))
	require.Equal(t, [][]byte{d.Body()}, e.recv.all())

	e.clk.Set(time.Unix(1767171600, 0))
	ravi := e.request(t, cloudapi.Recipient{UserID: "IN.88112233445566778899"})
	d, err = e.fake.Reply(ravi.MessageID, cloudapitest.Reply{Accept: true, Permanent: true, ID: "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAEhgUM0FBOA"})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	want = strings.ReplaceAll(string(readFixture(t, "permission-accept-permanent.json")), "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSRQ", ravi.MessageID)
	require.Equal(t, want, string(d.Body()))

	// A day later Sheena rejects the request she accepted: allowed, the
	// request has not lapsed.
	e.clk.Set(time.Unix(1767254400, 0))
	d, err = e.fake.Reply(sheena.MessageID, cloudapitest.Reply{ID: "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUIx"})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	want = strings.ReplaceAll(string(readFixture(t, "permission-reject.json")), sheenaReq, sheena.MessageID)
	require.Equal(t, want, string(d.Body()))
	require.Equal(t, "no_permission", e.fake.Permission(channel, "16505551234").Status)
	require.Equal(t, "permanent", e.fake.Permission(channel, "919812345678").Status)
	require.Len(t, e.recv.all(), 3)
}

func TestReplyDelayOnMockClock(t *testing.T) {
	start := time.Unix(1767168000, 0).UTC()
	e := newEnv(t, start, cloudapitest.Config{})
	res := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	d, err := e.fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true, After: 10 * time.Minute})
	require.NoError(t, err)

	e.clk.Add(9 * time.Minute)
	select {
	case <-d.Done():
		t.Fatal("replied before the delay")
	default:
	}
	require.Equal(t, "no_permission", e.fake.Permission(channel, "16505551234").Status)
	require.Empty(t, e.recv.all())

	e.clk.Add(time.Minute)
	require.NoError(t, d.Wait(context.Background()))
	p := e.fake.Permission(channel, "16505551234")
	require.Equal(t, "temporary", p.Status)
	require.Equal(t, start.Add(10*time.Minute+cloudapitest.DefaultPermissionTTL), p.ExpiresAt.UTC())
	require.Len(t, e.recv.all(), 1)

	// The permission ends by itself after 168 h.
	e.clk.Add(cloudapitest.DefaultPermissionTTL - time.Second)
	require.Equal(t, "temporary", e.fake.Permission(channel, "16505551234").Status)
	e.clk.Add(time.Second)
	require.Equal(t, "no_permission", e.fake.Permission(channel, "16505551234").Status)
}

func TestReplyRefusals(t *testing.T) {
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{})
	_, err := e.fake.Reply("wamid.nope", cloudapitest.Reply{Accept: true})
	require.ErrorIs(t, err, cloudapitest.ErrUnknownRequest)

	first := e.request(t, cloudapi.Recipient{Phone: "16505551234"})

	// Unanswered, a request lapses 7 days after delivery.
	e.clk.Add(7 * 24 * time.Hour)
	_, err = e.fake.Reply(first.MessageID, cloudapitest.Reply{Accept: true})
	require.ErrorIs(t, err, cloudapitest.ErrLapsed)

	// A newer answered request supersedes an older one.
	a := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	e.clk.Add(25 * time.Hour)
	b := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	d, err := e.fake.Reply(b.MessageID, cloudapitest.Reply{})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	_, err = e.fake.Reply(a.MessageID, cloudapitest.Reply{Accept: true})
	require.ErrorIs(t, err, cloudapitest.ErrLapsed)

	// A decline can still become an accept, until 7 days after the answer.
	d, err = e.fake.Reply(b.MessageID, cloudapitest.Reply{Accept: true, After: time.Hour})
	require.NoError(t, err)
	e.clk.Add(time.Hour)
	require.NoError(t, d.Wait(context.Background()))
	require.Equal(t, "temporary", e.fake.Permission(channel, "16505551234").Status)

	// Lapsing during the delay finishes the delivery with ErrLapsed.
	d, err = e.fake.Reply(b.MessageID, cloudapitest.Reply{After: 7 * 24 * time.Hour})
	require.NoError(t, err)
	e.clk.Add(7 * 24 * time.Hour)
	require.ErrorIs(t, d.Wait(context.Background()), cloudapitest.ErrLapsed)

	// No webhook URL: only a Lost reply can be given.
	e.fake.SetWebhookURL("")
	e.fake.ConnectedCall(channel, "16505551234", false)
	c := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	_, err = e.fake.Reply(c.MessageID, cloudapitest.Reply{Accept: true})
	require.ErrorIs(t, err, cloudapitest.ErrNoWebhookURL)
	n := len(e.recv.all())
	d, err = e.fake.Reply(c.MessageID, cloudapitest.Reply{Accept: true, Permanent: true, Lost: true})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	require.Nil(t, d.Body())
	require.Len(t, e.recv.all(), n)
	require.Equal(t, "permanent", e.fake.Permission(channel, "16505551234").Status)
}

func TestWebhookReceiverRefusalIsReported(t *testing.T) {
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{})
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	e.fake.SetWebhookURL(bad.URL)
	res := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	d, err := e.fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true})
	require.NoError(t, err)
	require.ErrorContains(t, d.Wait(context.Background()), "503")
}

func TestOldAppGetsFailedStatus(t *testing.T) {
	errs := make(chan error, 1)
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{OnError: func(err error) { errs <- err }})
	require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: "16505551234", UserID: "US.1", OldApp: true}))
	res := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	ds := e.fake.Deliveries(res.MessageID)
	require.Len(t, ds, 1)
	sd := ds[0]
	require.NoError(t, sd.Wait(context.Background()))
	require.Len(t, e.recv.all(), 1)
	require.Equal(t, sd.Body(), e.recv.all()[0])
	b, err := webhook.Parse(sd.Body())
	require.NoError(t, err)
	require.Len(t, b.Statuses, 1)
	st := b.Statuses[0]
	require.Equal(t, res.MessageID, st.ID)
	require.Equal(t, "failed", st.Status)
	require.Equal(t, channel, st.Channel)
	var raw struct {
		Errors []struct{ Code int } `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(st.Raw, &raw))
	require.Equal(t, cloudapi.CodeUnsupportedApp, raw.Errors[0].Code)

	_, err = e.fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true})
	require.ErrorIs(t, err, cloudapitest.ErrUndeliverable)
	// It did not count against the limits: once the app is updated, a
	// request goes out the same day.
	require.NoError(t, e.fake.SetOldApp("US.1", false))
	next := e.request(t, cloudapi.Recipient{UserID: "US.1"})
	require.Empty(t, e.fake.Deliveries(next.MessageID))
	require.Nil(t, e.fake.Deliveries("wamid.unknown"))
	require.True(t, e.fake.Requests()[0].Undelivered)
	require.False(t, e.fake.Requests()[1].Undelivered)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	require.ErrorIs(t, e.fake.SetOldApp("nobody", true), cloudapitest.ErrUnknownUser)
}

func TestAutoReply(t *testing.T) {
	errs := make(chan error, 1)
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{
		AutoReply: func(r cloudapitest.Request) (cloudapitest.Reply, bool) {
			return cloudapitest.Reply{Accept: true, After: time.Minute}, r.Phone == "16505551234"
		},
		OnError: func(err error) { errs <- err },
	})
	yes := e.request(t, cloudapi.Recipient{Phone: "16505551234"})
	no := e.request(t, cloudapi.Recipient{Phone: "16505559999"})
	require.Empty(t, e.fake.Deliveries(no.MessageID))
	ds := e.fake.Deliveries(yes.MessageID)
	require.Len(t, ds, 1)
	e.clk.Add(time.Minute)
	require.NoError(t, ds[0].Wait(context.Background()))
	require.Len(t, e.recv.all(), 1)
	require.Equal(t, "temporary", e.fake.Permission(channel, "16505551234").Status)
	require.Equal(t, "no_permission", e.fake.Permission(channel, "16505559999").Status)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// Close stops replies still waiting for their delay and aborts none that
// are done.
func TestCloseStopsPendingReplies(t *testing.T) {
	clk := clock.NewMock()
	fake := cloudapitest.New(cloudapitest.Config{Clock: clk, WebhookURL: "http://127.0.0.1:1/never"})
	api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client()})
	require.NoError(t, err)
	res, err := api.SendPermissionRequest(context.Background(), channel, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: "1"}})
	require.NoError(t, err)
	d, err := fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true, After: time.Hour})
	require.NoError(t, err)
	fake.Close()
	fake.Close() // idempotent
	clk.Add(time.Hour)
	select {
	case <-d.Done():
		t.Fatal("a stopped reply finished")
	default:
	}
	_, err = fake.Reply(res.MessageID, cloudapitest.Reply{})
	require.ErrorIs(t, err, cloudapitest.ErrClosed)
}

// The fake refuses payloads that are not Meta's call permission requests.
func TestSendValidation(t *testing.T) {
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{})
	valid := `{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"interactive","interactive":{"type":"call_permission_request","action":{"name":"call_permission_request"}}}`
	cases := map[string]string{
		"unknown field":         `{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"interactive","interactive":{"type":"call_permission_request","header":{"type":"text"},"action":{"name":"call_permission_request"}}}`,
		"no recipient":          `{"messaging_product":"whatsapp","recipient_type":"individual","type":"interactive","interactive":{"type":"call_permission_request","action":{"name":"call_permission_request"}}}`,
		"wrong product":         strings.Replace(valid, `"whatsapp"`, `"sms"`, 1),
		"wrong action":          strings.Replace(valid, `"name":"call_permission_request"`, `"name":"cta_url"`, 1),
		"text message":          `{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"text"}`,
		"template w/o language": `{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"template","template":{"name":"t"}}`,
		"unnamed param":         `{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"template","template":{"name":"t","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text","text":"x"}]}]}}`,
		"not json":              `{`,
	}
	post := func(body string) (int, int) {
		req, _ := http.NewRequest(http.MethodPost, e.fake.URL()+"/v25.0/"+channel+"/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.fake.AccessToken())
		resp, err := e.fake.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var env struct {
			Error struct{ Code int } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&env)
		return resp.StatusCode, env.Error.Code
	}
	for name, body := range cases {
		status, code := post(body)
		require.Equal(t, http.StatusBadRequest, status, name)
		require.Equal(t, cloudapi.CodeInvalidParameter, code, name)
	}
	status, code := post(valid)
	require.Equal(t, http.StatusOK, status)
	require.Zero(t, code)
	require.Len(t, e.fake.Requests(), 1)

	// Wrong method or edge.
	req, _ := http.NewRequest(http.MethodDelete, e.fake.URL()+"/v25.0/"+channel+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+e.fake.AccessToken())
	resp, err := e.fake.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestAddUserConflicts(t *testing.T) {
	e := newEnv(t, time.Unix(1767168000, 0), cloudapitest.Config{})
	require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: "1", UserID: "US.1", ParentUserID: "US.ENT.1"}))
	require.Error(t, e.fake.AddUser(cloudapitest.User{UserID: "US.ENT.1"}))
	require.Error(t, e.fake.AddUser(cloudapitest.User{}))
	require.Error(t, e.fake.SetPermission(channel, "1", cloudapitest.Permission{Status: "maybe"}))
	require.ErrorIs(t, e.fake.ConnectedCall(channel, "2", true), cloudapitest.ErrUnknownUser)
	require.NoError(t, e.fake.ConnectedCall(channel, "US.ENT.1", true))
}

func TestRecordRequestCountsAgainstTheLimits(t *testing.T) {
	clk := clock.NewMock()
	clk.Set(time.Unix(1767168000, 0).UTC())
	s := cloudapitest.New(cloudapitest.Config{Clock: clk})
	defer s.Close()
	api, err := cloudapi.New(cloudapi.Config{BaseURL: s.URL(), AccessToken: s.AccessToken(), HTTPClient: s.Client(), Clock: clk})
	require.NoError(t, err)
	ctx := context.Background()
	const ch, who = "106540352242922", "16505551234"
	s.RecordRequest(ch, who, clk.Now().Add(-2*24*time.Hour))
	s.RecordRequest(ch, who, clk.Now().Add(-3*time.Hour))
	p, err := api.CallPermissions(ctx, ch, cloudapi.Recipient{Phone: who})
	require.NoError(t, err)
	a, ok := p.Action(cloudapi.ActionSendCallPermissionRequest)
	require.True(t, ok)
	require.False(t, a.CanPerform)
	require.Equal(t, 1, a.Limits[0].CurrentUsage)
	require.Equal(t, clk.Now().Add(21*time.Hour), a.Limits[0].ExpiresAt, "the day window frees 24 h after the newer one")
	require.Equal(t, 2, a.Limits[1].CurrentUsage)
	require.Equal(t, clk.Now().Add(5*24*time.Hour), a.Limits[1].ExpiresAt, "the week window frees 7 d after the oldest")
	_, err = api.SendPermissionRequest(ctx, ch, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: who}})
	var apiErr *cloudapi.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 138009, apiErr.Code)

	// Before a connected call it does not count.
	require.NoError(t, s.ConnectedCall(ch, who, false))
	s.RecordRequest(ch, who, clk.Now().Add(-time.Minute))
	p, err = api.CallPermissions(ctx, ch, cloudapi.Recipient{Phone: who})
	require.NoError(t, err)
	a, _ = p.Action(cloudapi.ActionSendCallPermissionRequest)
	require.True(t, a.CanPerform)
	require.Equal(t, 0, a.Limits[1].CurrentUsage)
}
