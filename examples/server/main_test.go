package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/webhook/webhooktest"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfig(t *testing.T) {
	c, err := parseConfig(nil, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.Addr)
	assert.Equal(t, "callready.db", c.DB)
	assert.False(t, c.Demo)
	assert.True(t, c.GeneratedAPIToken)
	assert.Len(t, c.APIToken, 32)
	assert.True(t, c.GeneratedAppSecret)

	c, err = parseConfig([]string{"-addr", ":9000", "-demo"}, envOf(map[string]string{
		"CALLREADY_ADDR": "0.0.0.0:1", "CALLREADY_DB": "postgres://u:p@localhost/crm",
		"CALLREADY_API_TOKEN": "0123456789abcdef", "CALLREADY_APP_SECRET": "s", "CALLREADY_VERIFY_TOKEN": "v",
	}))
	require.NoError(t, err)
	assert.Equal(t, ":9000", c.Addr, "flags win over the environment")
	assert.Equal(t, "postgres://u:p@localhost/crm", c.DB)
	assert.True(t, c.Demo)
	assert.Equal(t, "0123456789abcdef", c.APIToken)
	assert.False(t, c.GeneratedAPIToken || c.GeneratedAppSecret || c.GeneratedVerifyToken)
	assert.Equal(t, "PostgreSQL database postgres://u:xxxxx@localhost/crm", describeDB(c.DB), "no password in messages")

	for _, bad := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-addr", "8080"}, nil, "bad -addr"},
		{nil, map[string]string{"CALLREADY_API_TOKEN": "short"}, "CALLREADY_API_TOKEN"},
		{[]string{"-nope"}, nil, "bad flags"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"-db", ""}, nil, "bad -db"},
	} {
		_, err := parseConfig(bad.args, envOf(bad.env))
		require.Error(t, err, bad.args)
		assert.Contains(t, err.Error(), bad.want)
		assert.NotContains(t, err.Error(), "\n", "one line")
	}
}

func TestRunFailsFastOnBadDatabase(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-db", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, envOf(nil), &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot open PostgreSQL database")
	assert.NotContains(t, err.Error(), "\n")

	err = run(context.Background(), []string{"-db", filepath.Join(t.TempDir(), "missing-dir", "x.db")}, envOf(nil), &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SQLite database")
}

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunAndShutdown runs the real main loop: it serves, a webhook is
// acknowledged, a stream is open, and cancelling (what SIGTERM does)
// shuts down in order without losing what was acknowledged.
func TestRunAndShutdown(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "callready.db")
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	env := envOf(map[string]string{"CALLREADY_API_TOKEN": testToken, "CALLREADY_APP_SECRET": testSecret})
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-db", dbPath}, env, &out) }()

	re := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)`)
	var base string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "server did not start: %s", out.String())
	assert.NotContains(t, out.String(), "API token (generated", "a configured token is not printed")

	body := metaBody(chA, "Sheena Nelson", "16505551234", "messages", "messages", map[string]any{
		"from": "16505551234", "id": "wamid.g", "timestamp": unixS(time.Now()), "type": "interactive",
		"context": map[string]string{"id": "wamid.req"},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": map[string]any{
			"response": "accept", "is_permanent": true, "response_source": "user_action"}},
	})
	resp, err := webhooktest.Post(ctx, nil, base+"/webhook", testSecret, body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/api/channels/"+chA.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)

	cancel() // SIGTERM
	select {
	case err := <-done:
		require.NoError(t, err, out.String())
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return: an open stream blocks shutdown?")
	}
	_, err = io.ReadAll(stream.Body) // the stream was ended, not cut mid-event
	require.NoError(t, err)
	assert.Contains(t, out.String(), "stopped")

	// What was acknowledged is there after a restart.
	e := newTestEnvOn(t, dbPath)
	var list callableResp
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &list))
	assert.Equal(t, []string{"16505551234"}, contactsOf(list))
}

func TestConfigDemoTokenMetricsDial(t *testing.T) {
	_, err := parseConfig([]string{"-h"}, envOf(nil))
	var help helpError
	require.ErrorAs(t, err, &help, "-h is not an error: main prints the usage and exits 0")
	assert.Contains(t, help.usage, "-token-file")

	c, err := parseConfig([]string{"-demo"}, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "callready-demo.db", c.DB, "the demo keeps its data out of callready.db")
	assert.True(t, c.DemoDB)
	c, err = parseConfig([]string{"-demo", "-db", "mine.db"}, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "mine.db", c.DB)
	assert.False(t, c.DemoDB)
	c, err = parseConfig([]string{"-demo"}, envOf(map[string]string{"CALLREADY_DB": "env.db"}))
	require.NoError(t, err)
	assert.Equal(t, "env.db", c.DB)

	// The token file is created once, then read: a restart keeps the token.
	path := filepath.Join(t.TempDir(), "token")
	c1, err := parseConfig([]string{"-token-file", path}, envOf(nil))
	require.NoError(t, err)
	assert.False(t, c1.GeneratedAPIToken)
	c2, err := parseConfig(nil, envOf(map[string]string{"CALLREADY_API_TOKEN_FILE": path}))
	require.NoError(t, err)
	assert.Equal(t, c1.APIToken, c2.APIToken)
	assert.Len(t, c2.APIToken, 32)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.NoError(t, os.WriteFile(path, []byte("short\n"), 0o600))
	_, err = parseConfig([]string{"-token-file", path}, envOf(nil))
	assert.ErrorContains(t, err, "bad -token-file")

	c, err = parseConfig([]string{"-metrics-addr", "127.0.0.1:9090", "-dial-url", "https://phone.example/dial?to=%2B{phone}"}, envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9090", c.MetricsAddr)
	assert.Equal(t, "https://phone.example/dial?to=%2B34612345678", dialURL(c.DialURL, "1065", "34612345678"))
	assert.Equal(t, "tel:+34612345678", dialURL(defaultDial, "1065", "34612345678"))
	for _, bad := range [][]string{
		{"-metrics-addr", "9090"},
		{"-dial-url", "tel:+123"},
		{"-dial-url", "javascript:alert({phone})"},
	} {
		_, err := parseConfig(bad, envOf(nil))
		assert.Error(t, err, bad)
	}
}

// TestSendTestWebhook posts the fixture to a running server: the contact
// becomes callable, with fresh timestamps (a second send is accepted too).
func TestSendTestWebhook(t *testing.T) {
	e := newTestEnv(t, time.Now())
	addr := strings.TrimPrefix(e.http.URL, "http://")
	var out bytes.Buffer
	env := envOf(map[string]string{"CALLREADY_APP_SECRET": testSecret})
	require.NoError(t, run(context.Background(), []string{"-send-test-webhook", "-addr", addr}, env, &out))
	assert.Contains(t, out.String(), "accepted the test webhook")
	require.NoError(t, run(context.Background(), []string{"-send-test-webhook", "-addr", addr}, env, &out))
	// The fixture is stamped with the real time, a moment after the
	// server's mock clock: the grant takes effect once the clock gets there.
	e.clock.Add(time.Minute)
	_, err := e.s.tracker.Sweep(context.Background(), e.clock.Now()) // not waiting for the loop's timer on the mock clock
	require.NoError(t, err)
	var list callableResp
	require.Eventually(t, func() bool {
		return e.get("/api/channels/106540352242922/callable", &list) == http.StatusOK && len(list.Contacts) == 1
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"US.13491208655302741918"}, contactsOf(list), "listed under the BSUID the fixture carries")
	assert.Equal(t, "16505551234", list.Contacts[0].WaID)

	err = run(context.Background(), []string{"-send-test-webhook", "-addr", addr}, envOf(map[string]string{"CALLREADY_APP_SECRET": "wrong"}), &out)
	assert.ErrorContains(t, err, "403")
	err = run(context.Background(), []string{"-send-test-webhook", "-addr", addr}, envOf(nil), &out)
	assert.ErrorContains(t, err, "CALLREADY_APP_SECRET")
}
