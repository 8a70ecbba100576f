package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
)

// newMetaEnv is the server with the Cloud API pointed at cloudapitest's
// fake over loopback, both on the test's mock clock.
func newMetaEnv(t *testing.T, ccfg cloudapi.Config) (*testEnv, *cloudapitest.Server) {
	t.Helper()
	var fake *cloudapitest.Server
	e := newTestEnvWith(t, filepath.Join(t.TempDir(), "callready.db"), t0, func(o *serverOptions) {
		clk := o.Clock.(*clock.Mock)
		fake = cloudapitest.New(cloudapitest.Config{Clock: clk, PhoneNumbers: map[string]string{chA.id: chA.display}})
		t.Cleanup(fake.Close)
		ccfg.BaseURL, ccfg.AccessToken, ccfg.HTTPClient, ccfg.Clock = fake.URL(), fake.AccessToken(), fake.Client(), clk
		api, err := cloudapi.New(ccfg)
		require.NoError(t, err)
		o.Meta = metaOptions{API: api, Channels: []string{chA.id}, Burst: 1, OnWait: func(d time.Duration) { clk.Add(d) }}
	})
	return e, fake
}

type checkResp struct {
	Channel   string    `json:"channel"`
	Contact   string    `json:"contact"`
	CheckedAt time.Time `json:"checked_at"`
	Meta      struct {
		Callable  bool      `json:"callable"`
		Kind      string    `json:"kind"`
		ExpiresAt time.Time `json:"expires_at"`
		Status    string    `json:"status"`
	} `json:"meta"`
	Before, After struct {
		Callable  bool      `json:"callable"`
		Kind      string    `json:"kind"`
		ExpiresAt time.Time `json:"expires_at"`
		Status    string    `json:"status"`
	}
	Drift []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
		Budget *struct {
			TimePeriod string `json:"time_period"`
			MetaLeft   int    `json:"meta_left"`
			OursLeft   int    `json:"ours_left"`
		} `json:"budget"`
	} `json:"drift"`
	Changed bool `json:"changed"`
	Changes []struct {
		Type     string `json:"type"`
		Revision int64  `json:"revision"`
	} `json:"changes"`
	Error string `json:"error"`
}

func (e *testEnv) check(contact string) (checkResp, int) {
	e.t.Helper()
	var out checkResp
	code := e.postAPI("/api/channels/"+chA.id+"/contacts/"+contact+"/check", &out)
	return out, code
}

func TestCheckWithMetaMissedRevoke(t *testing.T) {
	e, _ := newMetaEnv(t, cloudapi.Config{})
	e.grant(chA, "Sheena Nelson", "16505551234", "wamid.g1", t0.Add(-time.Hour), t0.Add(5*24*time.Hour))
	var list callableResp
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &list))
	require.Equal(t, []string{"16505551234"}, contactsOf(list))

	// Meta never saw the accept stand: the fake says no permission.
	res, code := e.check("16505551234")
	require.Equal(t, http.StatusOK, code, res.Error)
	require.True(t, res.Changed)
	require.Len(t, res.Drift, 1)
	require.Equal(t, "missed_revoke", res.Drift[0].Kind)
	require.NotEmpty(t, res.Drift[0].Detail)
	require.Equal(t, "no_permission", res.Meta.Status)
	require.True(t, res.Before.Callable)
	require.False(t, res.After.Callable)
	require.Equal(t, "revoked_reconciled", res.After.Status)
	require.Len(t, res.Changes, 1)
	require.Equal(t, "revoked", res.Changes[0].Type)
	require.Equal(t, t0, res.CheckedAt)

	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &list))
	require.Empty(t, list.Contacts, "the list corrected itself")
	var ex explanationJSON
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/16505551234", &ex))
	require.Equal(t, "revoked_reconciled", ex.Status)
	last := ex.History[len(ex.History)-1]
	require.Equal(t, "reconciled", last.Reason, "the history names Meta's answer")

	// A second check agrees.
	res, code = e.check("16505551234")
	require.Equal(t, http.StatusOK, code)
	require.False(t, res.Changed)
	require.Empty(t, res.Drift)
	require.NotNil(t, res.Changes)
}

func TestCheckWithMetaMissedAcceptAndMetrics(t *testing.T) {
	e, fake := newMetaEnv(t, cloudapi.Config{})
	e.text(chA, "Someone Else", "16505559999", "wamid.t1", t0.Add(-time.Minute), "hello") // the channel is known
	require.NoError(t, fake.SetPermission(chA.id, "US.13491208655302741918", cloudapitest.Permission{Status: "permanent"}))
	res, code := e.check("US.13491208655302741918")
	require.Equal(t, http.StatusOK, code, res.Error)
	require.Equal(t, "missed_accept", res.Drift[0].Kind)
	require.True(t, res.After.Callable)
	require.Equal(t, "permanent", res.After.Kind)
	require.Equal(t, "granted", res.Changes[0].Type)

	var ex explanationJSON
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/US.13491208655302741918", &ex))
	require.True(t, ex.Callable)
	require.Equal(t, string(permission.SourceReconcile), *ex.Source)

	m := scrapeMetrics(t, e)
	for _, w := range []string{
		`callready_reconcile_checks_total 1`,
		`callready_reconcile_drift_total{kind="missed_accept"} 1`,
		`callready_reconcile_drift_total{kind="missed_revoke"} 0`,
		`callready_reconcile_errors_total{kind="rate_limited"} 0`,
	} {
		require.Contains(t, m, w)
	}
}

func TestCheckWithMetaBudgetDrift(t *testing.T) {
	e, fake := newMetaEnv(t, cloudapi.Config{})
	api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client()})
	require.NoError(t, err)
	_, err = api.SendPermissionRequest(context.Background(), chA.id, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: "16505550000"}})
	require.NoError(t, err)
	res, code := e.check("16505550000")
	require.Equal(t, http.StatusOK, code, res.Error)
	require.True(t, res.Changed, "the request Meta counts is recorded as usage")
	require.Len(t, res.Drift, 2)
	require.Equal(t, "request_budget", res.Drift[0].Kind)
	require.Equal(t, "PT24H", res.Drift[0].Budget.TimePeriod)
	require.Equal(t, 0, res.Drift[0].Budget.MetaLeft)
	require.Equal(t, 1, res.Drift[0].Budget.OursLeft)

	// Checking again: our budget is Meta's now.
	res, code = e.check("16505550000")
	require.Equal(t, http.StatusOK, code, res.Error)
	require.False(t, res.Changed)
	require.Empty(t, res.Drift)
}

func TestCheckWithMetaErrors(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		e := newTestEnv(t, t0)
		res, code := e.check("16505551234")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Contains(t, res.Error, "CALLREADY_META_TOKEN")
	})
	e, fake := newMetaEnv(t, cloudapi.Config{MaxRetries: -1})
	t.Run("token", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/channels/"+chA.id+"/contacts/16505551234/check", nil)
		resp, err := e.http.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("GET is not allowed", func(t *testing.T) {
		var out errResp
		code := e.get("/api/channels/"+chA.id+"/contacts/16505551234/check", &out)
		require.Equal(t, http.StatusNotFound, code, "as every unknown API route")
	})
	t.Run("channel not configured", func(t *testing.T) {
		var out checkResp
		require.Equal(t, http.StatusNotFound, e.postAPI("/api/channels/"+chB.id+"/contacts/16505551234/check", &out))
	})
	t.Run("bad contact", func(t *testing.T) {
		res, code := e.check("16505551234%20OR%201")
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, res.Error, "bad contact")
	})
	t.Run("Meta refuses", func(t *testing.T) {
		fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusBadRequest, Code: 100, Message: "(#100) Invalid parameter"})
		res, code := e.check("16505551234")
		require.Equal(t, http.StatusBadGateway, code)
		require.Contains(t, res.Error, "Invalid parameter")
	})
	t.Run("Meta's rate limit", func(t *testing.T) {
		fake.RateLimitNext(1, 30*time.Second)
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/channels/"+chA.id+"/contacts/16505551234/check", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := e.http.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "30", resp.Header.Get("Retry-After"))
		m := scrapeMetrics(t, e)
		require.Contains(t, m, `callready_reconcile_errors_total{kind="rate_limited"} 1`)
		require.Contains(t, m, `callready_reconcile_errors_total{kind="other"} 1`, "the refusal above")
	})
	t.Run("nothing recorded by failures", func(t *testing.T) {
		var ex errResp
		require.Equal(t, http.StatusNotFound, e.get("/api/channels/"+chA.id+"/contacts/16505551234", &ex))
	})
}

func scrapeMetrics(t *testing.T, e *testEnv) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.http.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestParseMetaConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	c, err := parseMetaConfig(env())
	require.NoError(t, err)
	require.Equal(t, metaConfig{TemplateLanguage: "en_US"}, c, "nothing set: no Cloud API")

	c, err = parseMetaConfig(env(
		"CALLREADY_META_TOKEN", "EAAG-token", "CALLREADY_META_PHONE_NUMBER_IDS", " 106540352242922, 106540352299999,106540352242922",
		"CALLREADY_META_API_URL", "http://127.0.0.1:9999", "CALLREADY_META_API_VERSION", "v24.0",
		"CALLREADY_META_TEMPLATE", "call_permission", "CALLREADY_META_TEMPLATE_LANGUAGE", "pt_BR",
		"CALLREADY_RECONCILE_RATE", "2.5", "CALLREADY_RECONCILE_INTERVAL", "5m"))
	require.NoError(t, err)
	require.Equal(t, metaConfig{Token: "EAAG-token", BaseURL: "http://127.0.0.1:9999", APIVersion: "v24.0",
		Channels: []string{"106540352242922", "106540352299999"}, Template: "call_permission", TemplateLanguage: "pt_BR",
		ReconcileRate: 2.5, ReconcileInterval: 5 * time.Minute}, c)

	for name, bad := range map[string][]string{
		"token without ids":  {"CALLREADY_META_TOKEN", "x"},
		"ids without token":  {"CALLREADY_META_PHONE_NUMBER_IDS", "1065"},
		"id not digits":      {"CALLREADY_META_TOKEN", "x", "CALLREADY_META_PHONE_NUMBER_IDS", "abc"},
		"url":                {"CALLREADY_META_API_URL", "ftp://x"},
		"rate":               {"CALLREADY_RECONCILE_RATE", "0"},
		"rate not a number":  {"CALLREADY_RECONCILE_RATE", "fast"},
		"interval too short": {"CALLREADY_RECONCILE_INTERVAL", "10ms"},
	} {
		_, err := parseMetaConfig(env(bad...))
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), "\n", name)
	}
	// Through the server's configuration.
	_, err = parseConfig(nil, env("CALLREADY_META_TOKEN", "x"))
	require.ErrorContains(t, err, "CALLREADY_META_PHONE_NUMBER_IDS")
}

func TestDemoMirror(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t, t0)
	fake := cloudapitest.New(cloudapitest.Config{Clock: e.clock})
	t.Cleanup(fake.Close)
	// One contact of each drift kind, and one in step.
	byKind := map[demoDriftKind]string{}
	for i := 0; len(byKind) < 4; i++ {
		c := "1650555" + strings.Repeat("0", 4-len(itoa(int64(i)))) + itoa(int64(i))
		if _, ok := byKind[demoDrift(c)]; !ok {
			byKind[demoDrift(c)] = c
		}
	}
	exp := t0.Add(5 * 24 * time.Hour)
	e.grant(chA, "In Step", byKind[demoNoDrift], "wamid.m0", t0, exp)
	rev, err := mirrorDemoList(ctx, e.s, fake)
	require.NoError(t, err)
	require.Equal(t, cloudapitest.Permission{Status: "temporary", ExpiresAt: exp}, fake.Permission(chA.id, byKind[demoNoDrift]))

	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); mirrorDemoMeta(mctx, e.s, fake, rev, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	e.grant(chA, "Revoked There", byKind[demoRevokedAtMeta], "wamid.m1", t0, exp)
	e.grant(chA, "Permanent There", byKind[demoPermanentAtMeta], "wamid.m2", t0, exp)
	e.grant(chA, "Shorter There", byKind[demoShorterAtMeta], "wamid.m3", t0, exp)
	e.reject(chA, "In Step", byKind[demoNoDrift], "wamid.m4", t0.Add(time.Minute))
	require.Eventually(t, func() bool {
		return fake.Permission(chA.id, byKind[demoNoDrift]).Status == "no_permission" &&
			fake.Permission(chA.id, byKind[demoPermanentAtMeta]).Status == "permanent" &&
			fake.Permission(chA.id, byKind[demoShorterAtMeta]).ExpiresAt.Equal(exp.Add(-24*time.Hour))
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "no_permission", fake.Permission(chA.id, byKind[demoRevokedAtMeta]).Status)
}
