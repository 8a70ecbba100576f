package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/webhook/webhooktest"
)

const (
	testToken  = "test-api-token-0123456789"
	testSecret = "test-app-secret"
	testVerify = "test-verify-token"
)

var (
	chA = demoChannel{"106540352242922", "15550783881"}
	chB = demoChannel{"106540352299999", "15550783999"}
)

// testEnv is the real server wiring on a SQLite file in a temporary
// directory, behind a real HTTP listener, with a mock clock.
type testEnv struct {
	t     *testing.T
	s     *server
	clock *clock.Mock
	http  *httptest.Server
	t0    time.Time
}

func newTestEnv(t *testing.T, start time.Time) *testEnv {
	t.Helper()
	return newTestEnvAt(t, filepath.Join(t.TempDir(), "callready.db"), start)
}

// newTestEnvOn opens an existing database, on a clock at the real time.
func newTestEnvOn(t *testing.T, path string) *testEnv {
	t.Helper()
	return newTestEnvAt(t, path, time.Now())
}

func newTestEnvAt(t *testing.T, path string, start time.Time) *testEnv {
	t.Helper()
	return newTestEnvWith(t, path, start, nil)
}

// newTestEnvWith lets a test adjust the server's options (the dialer).
func newTestEnvWith(t *testing.T, path string, start time.Time, adjust func(*serverOptions)) *testEnv {
	t.Helper()
	ctx := context.Background()
	db, postgres, err := openDB(ctx, path)
	require.NoError(t, err)
	clk := clock.NewMock()
	clk.Set(start) // the mock starts at 1970: set it before anything reads it
	o := serverOptions{
		DB: db, Postgres: postgres, Clock: clk,
		AppSecret: testSecret, VerifyToken: testVerify, APIToken: testToken,
		Heartbeat: 200 * time.Millisecond,
	}
	if adjust != nil {
		adjust(&o)
	}
	s, err := newServer(ctx, o)
	require.NoError(t, err)
	hs := httptest.NewUnstartedServer(s)
	hs.Config.RegisterOnShutdown(s.stop)
	hs.Start()
	t.Cleanup(func() {
		s.stop() // ends open streams so Close does not wait for them
		hs.Close()
		require.NoError(t, s.close())
		require.NoError(t, db.Close())
	})
	return &testEnv{t: t, s: s, clock: clk, http: hs, t0: start}
}

// post sends a signed webhook body and requires 200.
func (e *testEnv) post(body []byte) {
	e.t.Helper()
	resp, err := webhooktest.Post(context.Background(), e.http.Client(), e.http.URL+"/webhook", testSecret, body)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, string(b))
}

func unixS(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// grant posts a temporary (exp non-zero) or permanent accept of a request.
func (e *testEnv) grant(ch demoChannel, name, wa, id string, at, exp time.Time) {
	r := map[string]any{"response": "accept", "is_permanent": exp.IsZero(), "response_source": "user_action"}
	if !exp.IsZero() {
		r["expiration_timestamp"] = unixS(exp)
	}
	e.post(metaBody(ch, name, wa, "messages", "messages", map[string]any{
		"from": wa, "id": id, "timestamp": unixS(at), "type": "interactive",
		"context":     map[string]string{"from": ch.display, "id": "wamid.request." + id},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": r},
	}))
}

func (e *testEnv) reject(ch demoChannel, name, wa, id string, at time.Time) {
	e.post(metaBody(ch, name, wa, "messages", "messages", map[string]any{
		"from": wa, "id": id, "timestamp": unixS(at), "type": "interactive",
		"context": map[string]string{"from": ch.display, "id": "wamid.request." + id},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": map[string]any{
			"response": "reject", "response_source": "user_action"}},
	}))
}

func (e *testEnv) text(ch demoChannel, name, wa, id string, at time.Time, body string) {
	e.post(metaBody(ch, name, wa, "messages", "messages", map[string]any{
		"from": wa, "id": id, "timestamp": unixS(at), "type": "text", "text": map[string]string{"body": body},
	}))
}

func (e *testEnv) missedCall(ch demoChannel, name, wa, id string, at time.Time) {
	e.post(metaBody(ch, name, wa, "calls", "calls", map[string]any{
		"id": id, "to": ch.display, "from": wa, "event": "terminate",
		"direction": "USER_INITIATED", "timestamp": unixS(at), "status": "FAILED",
	}))
}

// get calls the API with the test token and decodes the JSON answer.
func (e *testEnv) get(path string, out any) int {
	e.t.Helper()
	return e.getAs(path, testToken, out)
}

func (e *testEnv) getAs(path, token string, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	if out != nil {
		require.Contains(e.t, resp.Header.Get("Content-Type"), "application/json")
		require.NoError(e.t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	Event, ID string
	Data      eventJSON
}

// sseStream reads events from an open stream, skipping comments.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

func (e *testEnv) openStream(channel string, header map[string]string, query string) *sseStream {
	e.t.Helper()
	return e.openStreamHeader("/api/channels/"+channel+"/events", header, query)
}

// openStreamPath opens the stream at path (GET /api/events: all channels).
func (e *testEnv) openStreamPath(path, query string) *sseStream {
	e.t.Helper()
	return e.openStreamHeader(path, nil, query)
}

func (e *testEnv) openStreamHeader(path string, header map[string]string, query string) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+path+query, nil)
	require.NoError(e.t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.Equal(e.t, "text/event-stream", resp.Header.Get("Content-Type"))
	st := &sseStream{resp: resp, events: make(chan sseEvent, 64)}
	go func() {
		defer close(st.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		var data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Event != "" {
					_ = json.Unmarshal([]byte(data), &ev.Data)
					st.events <- ev
				}
				ev, data = sseEvent{}, ""
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return st
}

// next waits for the next event; the timeout only bounds a broken test.
func (st *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-st.events:
		require.True(t, ok, "stream ended")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return sseEvent{}
	}
}
