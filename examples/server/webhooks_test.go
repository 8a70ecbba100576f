package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/webhook/webhooktest"
)

// postStatus sends a signed webhook body and returns the status.
func (e *testEnv) postStatus(body []byte) int {
	e.t.Helper()
	resp, err := webhooktest.Post(context.Background(), e.http.Client(), e.http.URL+"/webhook", testSecret, body)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func grantBody(ch demoChannel, name, wa, id string, at, exp time.Time) []byte {
	return metaBody(ch, name, wa, "messages", "messages", map[string]any{
		"from": wa, "id": id, "timestamp": unixS(at), "type": "interactive",
		"context": map[string]string{"from": ch.display, "id": "wamid.request." + id},
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": map[string]any{
			"response": "accept", "is_permanent": false, "expiration_timestamp": unixS(exp), "response_source": "user_action"}},
	})
}

func textBody(ch demoChannel, name, wa, id string, at time.Time, text string) []byte {
	return metaBody(ch, name, wa, "messages", "messages", map[string]any{
		"from": wa, "id": id, "timestamp": unixS(at), "type": "text", "text": map[string]string{"body": text},
	})
}

// TestInboxRowsCommitWithEvents: a body's inbox rows (contact, name, chat
// lines) and its permission events are written in one transaction: when
// an inbox row cannot be written, the webhook gets 503 and neither the
// events nor any other row of the body is kept; Meta's re-delivery then
// writes them all.
func TestInboxRowsCommitWithEvents(t *testing.T) {
	e := newTestEnv(t, t0)
	ctx := context.Background()
	db := e.s.opts.DB
	_, err := db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON server_messages
		WHEN NEW.id LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned message'); END`)
	require.NoError(t, err)

	grant := grantBody(chA, "Sheena Nelson", "16505551234", "wamid.poison1", t0.Add(-time.Hour), t0.Add(time.Hour))
	text := textBody(chA, "Amina Yusuf", "2348031234567", "wamid.poison2", t0.Add(-time.Hour), "hello")
	require.Equal(t, http.StatusServiceUnavailable, e.postStatus(grant))
	require.Equal(t, http.StatusServiceUnavailable, e.postStatus(text))

	callable := func() []string {
		var got callableResp
		require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &got))
		return contactsOf(got)
	}
	// chA became known in neither body's transaction: no channel either.
	var er errResp
	assert.Equal(t, http.StatusNotFound, e.get("/api/channels/"+chA.id+"/callable", &er))
	for _, c := range []string{"16505551234", "2348031234567"} {
		_, known, err := e.s.inbox.contact(ctx, chA.id, c)
		require.NoError(t, err)
		assert.False(t, known, c)
	}
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM callready_ledger").Scan(&n))
	assert.Zero(t, n, "no event recorded")

	_, err = db.ExecContext(ctx, `DROP TRIGGER poison`)
	require.NoError(t, err)
	e.post(grant)
	e.post(text)
	assert.Equal(t, []string{"16505551234"}, callable())
	var got struct {
		Name     string        `json:"name"`
		Messages []chatMessage `json:"messages"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/16505551234/messages", &got))
	assert.Equal(t, "Sheena Nelson", got.Name)
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "permission", got.Messages[0].Type)
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/2348031234567/messages", &got))
	assert.Equal(t, "Amina Yusuf", got.Name)
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "hello", got.Messages[0].Body)
}
