package cloudapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	channel = "106540352242922"
	phone   = "16505551234"
	bsuid   = "US.13491208655302741918"
	parent  = "US.ENT.11815799212886844830"
)

var start = time.Unix(1767168000, 0).UTC()

// wire records every request the client sends: method, URL and body.
type wire struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, URL, Auth, Body string
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := recorded{Method: r.Method, URL: r.URL.String(), Auth: r.Header.Get("Authorization")}
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		rec.Body = string(b)
		r.Body = io.NopCloser(strings.NewReader(rec.Body))
	}
	w.mu.Lock()
	w.reqs = append(w.reqs, rec)
	w.mu.Unlock()
	return w.next.RoundTrip(r)
}

func (w *wire) all() []recorded {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]recorded(nil), w.reqs...)
}

type env struct {
	fake *cloudapitest.Server
	api  *cloudapi.Client
	clk  *clock.Mock
	wire *wire
	// waits receives each backoff wait (OnRetry), once its timer exists.
	waits chan time.Duration
}

func newEnv(t *testing.T, fcfg cloudapitest.Config, ccfg cloudapi.Config) *env {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(start)
	fcfg.Clock = clk
	if fcfg.PhoneNumbers == nil {
		fcfg.PhoneNumbers = map[string]string{channel: "15550783881"}
	}
	fake := cloudapitest.New(fcfg)
	t.Cleanup(fake.Close)
	e := &env{fake: fake, clk: clk, wire: &wire{next: fake.Client().Transport}, waits: make(chan time.Duration, 16)}
	ccfg.BaseURL = fake.URL()
	if ccfg.AccessToken == "" {
		ccfg.AccessToken = fake.AccessToken()
	}
	ccfg.HTTPClient = &http.Client{Transport: e.wire}
	ccfg.Clock = clk
	if ccfg.OnRetry == nil {
		ccfg.OnRetry = func(_ int, wait time.Duration, _ error) { e.waits <- wait }
	}
	api, err := cloudapi.New(ccfg)
	require.NoError(t, err)
	e.api = api
	return e
}

func (e *env) send(to cloudapi.Recipient) (cloudapi.SendResult, error) {
	return e.api.SendPermissionRequest(context.Background(), channel, cloudapi.PermissionRequest{To: to})
}

func requireJSON(t *testing.T, want, got string) {
	t.Helper()
	require.JSONEq(t, want, got)
}

func TestSendPermissionRequestWire(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
	require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: phone, UserID: bsuid, ParentUserID: parent}))
	res, err := e.api.SendPermissionRequest(context.Background(), channel, cloudapi.PermissionRequest{
		To: cloudapi.Recipient{Phone: phone}, Body: "May we call you about your order?",
	})
	require.NoError(t, err)
	sent := e.fake.Requests()
	require.Len(t, sent, 1)
	require.Equal(t, sent[0].ID, res.MessageID)
	require.True(t, strings.HasPrefix(res.MessageID, "wamid."))
	require.Equal(t, cloudapi.Contact{Input: phone, WaID: phone, UserID: bsuid, ParentUserID: parent}, res.Contact)
	require.Equal(t, "May we call you about your order?", sent[0].Body)

	w := e.wire.all()
	require.Len(t, w, 1)
	require.Equal(t, http.MethodPost, w[0].Method)
	require.Equal(t, e.fake.URL()+"/"+cloudapi.DefaultAPIVersion+"/"+channel+"/messages", w[0].URL)
	require.Equal(t, "Bearer "+e.fake.AccessToken(), w[0].Auth)
	requireJSON(t, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"interactive",
		"interactive":{"type":"call_permission_request","body":{"text":"May we call you about your order?"},"action":{"name":"call_permission_request"}}}`, w[0].Body)
}

func TestSendByBSUIDAndBoth(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{APIVersion: "v23.0"})
	require.NoError(t, e.fake.AddUser(cloudapitest.User{UserID: "US.777", Name: "username user"}))
	res, err := e.send(cloudapi.Recipient{UserID: "US.777"})
	require.NoError(t, err)
	require.Equal(t, cloudapi.Contact{Input: "US.777", UserID: "US.777"}, res.Contact, "no phone for a username user")
	w := e.wire.all()
	require.Contains(t, w[0].URL, "/v23.0/")
	requireJSON(t, `{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.777","type":"interactive",
		"interactive":{"type":"call_permission_request","action":{"name":"call_permission_request"}}}`, w[0].Body)

	// Both: both are sent, and the phone wins.
	res, err = e.send(cloudapi.Recipient{Phone: phone, UserID: "US.other"})
	require.NoError(t, err)
	require.Equal(t, phone, res.Contact.Input)
	require.Equal(t, phone, res.Contact.WaID)
	require.Contains(t, e.wire.all()[1].Body, `"to":"16505551234","recipient":"US.other"`)
}

func TestSendPermissionTemplate(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{Templates: []string{"call_permission"}}, cloudapi.Config{})
	res, err := e.api.SendPermissionTemplate(context.Background(), channel, cloudapi.TemplateRequest{
		To: cloudapi.Recipient{Phone: phone}, Name: "call_permission", Language: "en_US",
		Parameters: []cloudapi.NamedParameter{{Name: "first_name", Text: "Sheena"}, {Name: "order", Text: "#42"}},
	})
	require.NoError(t, err)
	sent := e.fake.Requests()[0]
	require.Equal(t, res.MessageID, sent.ID)
	require.Equal(t, "call_permission", sent.Template)
	require.Equal(t, "en_US", sent.Language)
	require.Equal(t, map[string]string{"first_name": "Sheena", "order": "#42"}, sent.Parameters)
	requireJSON(t, `{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"template",
		"template":{"name":"call_permission","language":{"code":"en_US"},"components":[{"type":"body","parameters":[
			{"type":"text","parameter_name":"first_name","text":"Sheena"},{"type":"text","parameter_name":"order","text":"#42"}]}]}}`,
		e.wire.all()[0].Body)

	// Without parameters there is no component at all.
	e.fake.ConnectedCall(channel, phone, false)
	_, err = e.api.SendPermissionTemplate(context.Background(), channel, cloudapi.TemplateRequest{
		To: cloudapi.Recipient{UserID: e.fake.Requests()[0].UserID}, Name: "call_permission", Language: "en",
	})
	require.NoError(t, err)
	requireJSON(t, `{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"`+sent.UserID+`","type":"template",
		"template":{"name":"call_permission","language":{"code":"en"}}}`, e.wire.all()[1].Body)

	// A template Meta does not know.
	_, err = e.api.SendPermissionTemplate(context.Background(), channel, cloudapi.TemplateRequest{
		To: cloudapi.Recipient{Phone: "16505550000"}, Name: "nope", Language: "en",
	})
	var apiErr *cloudapi.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 132001, apiErr.Code)
	require.Equal(t, http.StatusNotFound, apiErr.HTTPStatus)
	require.Contains(t, apiErr.Details, "nope")
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
	ctx := context.Background()
	_, err := e.api.SendPermissionRequest(ctx, channel, cloudapi.PermissionRequest{})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	_, err = e.api.SendPermissionRequest(ctx, "", cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: phone}})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	_, err = e.api.SendPermissionTemplate(ctx, channel, cloudapi.TemplateRequest{To: cloudapi.Recipient{Phone: phone}, Name: "t"})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	_, err = e.api.SendPermissionTemplate(ctx, channel, cloudapi.TemplateRequest{
		To: cloudapi.Recipient{Phone: phone}, Name: "t", Language: "en", Parameters: []cloudapi.NamedParameter{{Text: "x"}},
	})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	_, err = e.api.CallPermissions(ctx, channel, cloudapi.Recipient{})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	require.Empty(t, e.wire.all())

	_, err = cloudapi.New(cloudapi.Config{})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
	_, err = cloudapi.New(cloudapi.Config{AccessToken: "t", BaseURL: "ftp://x"})
	require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
}

func TestRequestLimits(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
	to := cloudapi.Recipient{Phone: phone}
	_, err := e.send(to)
	require.NoError(t, err)

	// A second request within 24 h: 138009, the request-limit reason.
	_, err = e.send(to)
	var apiErr *cloudapi.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, cloudapi.CodeRequestLimit, apiErr.Code)
	require.Equal(t, http.StatusBadRequest, apiErr.HTTPStatus)
	require.Equal(t, "OAuthException", apiErr.Type)
	require.NotEmpty(t, apiErr.FBTraceID)
	require.NotEmpty(t, apiErr.Details)
	require.Contains(t, apiErr.Error(), "138009")
	r, ok := cloudapi.Reason(err)
	require.True(t, ok)
	require.Equal(t, permission.ReasonRequestLimitDay, r)
	require.False(t, cloudapi.IsRateLimited(err))
	require.Len(t, e.wire.all(), 2, "not retried")

	// After 24 h: the second of the week.
	e.clk.Add(24 * time.Hour)
	_, err = e.send(to)
	require.NoError(t, err)
	// Another day: the week's two are spent.
	e.clk.Add(24 * time.Hour)
	_, err = e.send(to)
	require.Equal(t, cloudapi.CodeRequestLimit, cloudapi.Code(err))

	// GET shows the budget: P7D exhausted until a week after the first.
	p, err := e.api.CallPermissions(context.Background(), channel, to)
	require.NoError(t, err)
	act, ok := p.Action(cloudapi.ActionSendCallPermissionRequest)
	require.True(t, ok)
	require.False(t, act.CanPerform)
	require.Equal(t, []cloudapi.Limit{
		{TimePeriod: "PT24H", Period: 24 * time.Hour, MaxAllowed: 1, CurrentUsage: 0},
		{TimePeriod: "P7D", Period: 7 * 24 * time.Hour, MaxAllowed: 2, CurrentUsage: 2, ExpiresAt: start.Add(7 * 24 * time.Hour)},
	}, act.Limits)
	require.Equal(t, 0, act.Limits[1].Remaining())

	// A connected call resets both windows.
	require.NoError(t, e.fake.ConnectedCall(channel, phone, false))
	_, err = e.send(to)
	require.NoError(t, err)
}

func TestPermanentHolderRefused(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
	require.NoError(t, e.fake.SetPermission(channel, bsuid, cloudapitest.Permission{Status: "permanent"}))
	_, err := e.send(cloudapi.Recipient{UserID: bsuid})
	require.Equal(t, cloudapi.CodePermanentHeld, cloudapi.Code(err))
	r, ok := cloudapi.Reason(err)
	require.True(t, ok)
	require.Equal(t, permission.ReasonPermanentHeld, r)
}

func TestCallPermissions(t *testing.T) {
	for _, key := range []string{"expiration_time", "expiration"} {
		t.Run(key, func(t *testing.T) {
			e := newEnv(t, cloudapitest.Config{ExpirationKey: key, WebhookURL: "http://unused.invalid"}, cloudapi.Config{})
			require.NoError(t, e.fake.AddUser(cloudapitest.User{Phone: phone, UserID: bsuid, ParentUserID: parent}))
			ctx := context.Background()

			p, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
			require.NoError(t, err)
			require.Equal(t, cloudapi.StatusNoPermission, p.Status)
			require.True(t, p.ExpiresAt.IsZero())
			act, _ := p.Action(cloudapi.ActionSendCallPermissionRequest)
			require.True(t, act.CanPerform)
			call, ok := p.Action(cloudapi.ActionStartCall)
			require.True(t, ok)
			require.False(t, call.CanPerform)
			require.Equal(t, []cloudapi.Limit{{TimePeriod: "PT24H", Period: 24 * time.Hour, MaxAllowed: 100}}, call.Limits)
			_, ok = p.Action("dance")
			require.False(t, ok)

			res, err := e.send(cloudapi.Recipient{Phone: phone})
			require.NoError(t, err)
			d, err := e.fake.Reply(res.MessageID, cloudapitest.Reply{Accept: true, Lost: true})
			require.NoError(t, err)
			require.NoError(t, d.Wait(ctx))
			require.NoError(t, e.fake.ConnectedCall(channel, phone, true))

			// By phone, BSUID and parent BSUID: the same answer.
			for i, who := range []cloudapi.Recipient{{Phone: phone}, {UserID: bsuid}, {UserID: parent}, {Phone: phone, UserID: "ignored"}} {
				p, err := e.api.CallPermissions(ctx, channel, who)
				require.NoError(t, err)
				require.Equal(t, cloudapi.StatusTemporary, p.Status)
				require.Equal(t, start.Add(cloudapitest.DefaultPermissionTTL), p.ExpiresAt)
				call, _ := p.Action(cloudapi.ActionStartCall)
				require.True(t, call.CanPerform)
				require.Equal(t, 1, call.Limits[0].CurrentUsage)
				require.Equal(t, 99, call.Limits[0].Remaining())
				u := e.wire.all()[len(e.wire.all())-1].URL
				require.Contains(t, u, "/"+channel+"/call_permissions?")
				switch i {
				case 0, 3:
					require.True(t, strings.HasSuffix(u, "?user_wa_id="+phone), u)
				default:
					require.True(t, strings.HasSuffix(u, "?recipient="+who.UserID), u)
				}
			}
			// Unknown users have no permission.
			p, err = e.api.CallPermissions(ctx, channel, cloudapi.Recipient{UserID: "US.unknown"})
			require.NoError(t, err)
			require.Equal(t, cloudapi.StatusNoPermission, p.Status)
		})
	}
}

func TestMetaErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("bad token", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{AccessToken: "stolen"})
		_, err := e.send(cloudapi.Recipient{Phone: phone})
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, cloudapi.CodeInvalidToken, apiErr.Code)
		require.Equal(t, http.StatusUnauthorized, apiErr.HTTPStatus)
		require.Equal(t, "OAuthException", apiErr.Type)
		_, ok := apiErr.Reason()
		require.False(t, ok)
		require.Empty(t, e.fake.Requests())
	})
	t.Run("unknown phone number id", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		_, err := e.api.CallPermissions(ctx, "999", cloudapi.Recipient{Phone: phone})
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, cloudapi.CodeInvalidParameter, apiErr.Code)
		require.Equal(t, 33, apiErr.Subcode)
		require.Equal(t, "GraphMethodException", apiErr.Type)
		require.Contains(t, apiErr.Error(), "100/33")
	})
	// Every calling code the spec lists comes back with its code, subcode,
	// details and reason, once, with no retry.
	for _, c := range []struct {
		code, status int
		reason       permission.Reason
	}{
		{cloudapi.CodeCallingDisabled, 401, permission.ReasonCallingNotEnabled},
		{cloudapi.CodeUserCannotBeCalled, 400, permission.ReasonUserCannotBeCalled},
		{cloudapi.CodeNoPermission, 401, permission.ReasonNoPermission},
		{cloudapi.CodeRequestLimit, 400, permission.ReasonRequestLimit}, // the message names no window
		{cloudapi.CodeCallLimit, 400, permission.ReasonCallLimit},
		{cloudapi.CodePermanentHeld, 400, permission.ReasonPermanentHeld},
		{cloudapi.CodeRecipientNotAllowed, 400, permission.ReasonNotAllowedRecipient},
		{138013, 400, permission.ReasonCallingUnavailable},
		{138014, 400, permission.ReasonCallingDisabled},
	} {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: c.status, Code: c.code, Subcode: 2494010, Message: "m", Details: "d"})
		_, err := e.send(cloudapi.Recipient{Phone: phone})
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr, c.code)
		require.Equal(t, c.code, apiErr.Code)
		require.Equal(t, 2494010, apiErr.Subcode)
		require.Equal(t, c.status, apiErr.HTTPStatus)
		require.Equal(t, "m", apiErr.Message)
		require.Equal(t, "d", apiErr.Details)
		r, ok := cloudapi.Reason(err)
		require.Equal(t, c.reason != "", ok, c.code)
		require.Equal(t, c.reason, r)
		require.Len(t, e.wire.all(), 1, "code %d not retried", c.code)
		require.Empty(t, e.fake.Requests())
	}
	t.Run("not an envelope", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusBadGateway, Raw: "<html>502 Bad Gateway</html>"})
		_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadGateway, apiErr.HTTPStatus)
		require.Zero(t, apiErr.Code)
		require.Contains(t, apiErr.Message, "502 Bad Gateway")
		require.Len(t, e.wire.all(), 1, "5xx not retried")
	})
	t.Run("malformed 200", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: "not json"})
		_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, cloudapi.ErrMalformedResponse)
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: `{"messaging_product":"whatsapp","messages":[]}`})
		_, err = e.send(cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, cloudapi.ErrMalformedResponse)
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: `{"permission":{"status":"temporary","expiration_time":"soon"}}`})
		_, err = e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, cloudapi.ErrMalformedResponse)
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: `{"actions":[]}`})
		_, err = e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, cloudapi.ErrMalformedResponse)
	})
	t.Run("transport error", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.Close()
		_, err := e.send(cloudapi.Recipient{Phone: phone})
		require.Error(t, err)
		var apiErr *cloudapi.Error
		require.False(t, errors.As(err, &apiErr))
		require.NotContains(t, err.Error(), phone, "no phone number in errors")
		require.Len(t, e.wire.all(), 1, "a send lost in transit is not retried")
	})
}

// retry runs call in a goroutine, advancing the mock clock by each backoff
// wait once the client waits, and returns the call's error and the waits.
func (e *env) retry(t *testing.T, call func() error) (error, []time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	var waits []time.Duration
	for {
		select {
		case err := <-done:
			return err, waits
		case w := <-e.waits:
			waits = append(waits, w)
			e.clk.Add(w)
		case <-time.After(10 * time.Second):
			t.Fatal("the call neither finished nor waited")
		}
	}
}

func TestRateLimitBackoff(t *testing.T) {
	ctx := context.Background()
	t.Run("exponential", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.RateLimitNext(3, 0)
		var p cloudapi.Permissions
		err, waits := e.retry(t, func() (err error) {
			p, err = e.api.CallPermissions(ctx, channel, cloudapi.Recipient{UserID: bsuid})
			return err
		})
		require.NoError(t, err)
		require.Equal(t, cloudapi.StatusNoPermission, p.Status)
		require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, waits)
		require.Len(t, e.wire.all(), 4)
		require.Equal(t, start.Add(7*time.Second), e.clk.Now().UTC())
	})
	t.Run("capped", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{InitialBackoff: 10 * time.Second, MaxBackoff: 25 * time.Second})
		e.fake.RateLimitNext(4, 0)
		err, waits := e.retry(t, func() error {
			_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}, waits)
	})
	t.Run("retry-after honoured", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.RateLimitNext(2, 7*time.Second)
		err, waits := e.retry(t, func() error {
			_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, waits)
	})
	t.Run("sends retried on 130429", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.RateLimitNext(1, 0)
		var res cloudapi.SendResult
		err, waits := e.retry(t, func() (err error) {
			res, err = e.send(cloudapi.Recipient{Phone: phone})
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []time.Duration{time.Second}, waits)
		require.Len(t, e.fake.Requests(), 1, "one request sent")
		require.Equal(t, e.fake.Requests()[0].ID, res.MessageID)
	})
	t.Run("retries run out", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{MaxRetries: 2})
		e.fake.RateLimitNext(3, 0)
		err, waits := e.retry(t, func() error {
			_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
			return err
		})
		require.ErrorIs(t, err, cloudapi.ErrRateLimited)
		require.True(t, cloudapi.IsRateLimited(err))
		require.Equal(t, cloudapi.CodeCallPermissionsLimit, cloudapi.Code(err))
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusTooManyRequests, apiErr.HTTPStatus)
		require.Len(t, waits, 2)
		require.Len(t, e.wire.all(), 3)
	})
	t.Run("retries disabled", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{MaxRetries: -1})
		e.fake.RateLimitNext(1, 0)
		_, err := e.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, cloudapi.ErrRateLimited)
		require.Len(t, e.wire.all(), 1)
	})
	t.Run("context canceled while waiting", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var attempts []int
		e2 := newEnv(t, cloudapitest.Config{}, cloudapi.Config{OnRetry: func(attempt int, _ time.Duration, err error) {
			attempts = append(attempts, attempt)
			require.True(t, cloudapi.IsRateLimited(err))
			cancel()
		}})
		e2.fake.RateLimitNext(5, 0)
		_, err := e2.api.CallPermissions(cctx, channel, cloudapi.Recipient{Phone: phone})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, cloudapi.ErrRateLimited, "the last error is kept")
		require.Equal(t, []int{1}, attempts)
		require.Len(t, e2.wire.all(), 1)
	})
}

// Retry-After as an HTTP date is relative to the client's clock.
func TestRetryAfterHTTPDate(t *testing.T) {
	clk := clock.NewMock()
	clk.Set(start)
	var n int
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			w.Header().Set("Retry-After", start.Add(30*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 4, "message": "Application request limit reached"}})
			return
		}
		w.Write([]byte(`{"messaging_product":"whatsapp","permission":{"status":"permanent"},"actions":[]}`))
	})
	waits := make(chan time.Duration, 1)
	api, err := cloudapi.New(cloudapi.Config{BaseURL: srv, AccessToken: "t", Clock: clk,
		OnRetry: func(_ int, w time.Duration, _ error) { waits <- w }})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		p, err := api.CallPermissions(context.Background(), channel, cloudapi.Recipient{Phone: phone})
		if err == nil && p.Status != cloudapi.StatusPermanent {
			err = errors.New("wrong status " + string(p.Status))
		}
		done <- err
	}()
	w := <-waits
	require.Equal(t, 30*time.Second, w)
	clk.Add(w)
	require.NoError(t, <-done)
}

// Meta's limit holds under concurrency: of ten simultaneous requests to one
// user, one is sent and nine get 138009.
func TestConcurrentSendsOneGetsThrough(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{MaxRetries: -1})
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			_, err := e.send(cloudapi.Recipient{Phone: phone})
			codes <- cloudapi.Code(err)
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	require.Equal(t, map[int]int{0: 1, cloudapi.CodeRequestLimit: 9}, count)
	require.Len(t, e.fake.Requests(), 1)
}
