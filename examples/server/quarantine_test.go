package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type quarantinePage struct {
	Items []struct {
		ReceivedAt time.Time       `json:"received_at"`
		Error      string          `json:"error"`
		Raw        json.RawMessage `json:"raw"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// TestQuarantineAPI: the items of a body the webhook could not record are
// listed newest first, paged, behind the token, and counted in /metrics;
// the good items of the same bodies are recorded.
func TestQuarantineAPI(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	e := newTestEnv(t, t0)

	// A call of an unknown direction beside a good reply: the reply counts.
	for i, dir := range []string{"PEER_TO_PEER", "SIDEWAYS", "CONFERENCE"} {
		e.clock.Add(time.Minute)
		e.post(metaBody(chA, "Sheena Nelson", "16505551234", "calls", "calls", map[string]any{
			"id": "wacid.q" + string(rune('1'+i)), "to": chA.display, "from": "16505551234", "event": "terminate",
			"direction": dir, "timestamp": unixS(e.clock.Now()), "status": "COMPLETED",
		}))
	}
	e.grant(chA, "Ravi Kumar", "919812345678", "wamid.q-ok", e.clock.Now(), e.clock.Now().Add(24*time.Hour))

	var page quarantinePage
	require.Equal(t, http.StatusOK, e.get("/api/quarantine", &page))
	require.Len(t, page.Items, 3)
	assert.Empty(t, page.NextCursor)
	assert.Contains(t, string(page.Items[0].Raw), `"CONFERENCE"`, "newest first")
	assert.Contains(t, page.Items[0].Error, `unknown call direction "CONFERENCE"`)
	assert.Equal(t, t0.Add(3*time.Minute), page.Items[0].ReceivedAt)
	assert.Contains(t, string(page.Items[2].Raw), `"PEER_TO_PEER"`)

	// Paged like the callable list.
	var seen []string
	cursor := ""
	for {
		var p quarantinePage
		require.Equal(t, http.StatusOK, e.get("/api/quarantine?limit=2&cursor="+cursor, &p))
		for _, it := range p.Items {
			seen = append(seen, it.Error)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	require.Len(t, seen, 3)
	for i := range seen {
		assert.Equal(t, page.Items[i].Error, seen[i])
	}

	var errBody map[string]string
	assert.Equal(t, http.StatusBadRequest, e.get("/api/quarantine?cursor=garbage", &errBody))
	assert.Equal(t, http.StatusBadRequest, e.get("/api/quarantine?limit=0", &errBody))
	assert.Equal(t, http.StatusUnauthorized, e.getAs("/api/quarantine", "", &errBody))

	// The good reply of the same traffic is callable.
	var list struct {
		Contacts []contactJSON `json:"contacts"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &list))
	require.Len(t, list.Contacts, 1)
	assert.Equal(t, "919812345678", list.Contacts[0].Contact)

	req, err := http.NewRequest(http.MethodGet, e.http.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken) // /metrics is behind the API token
	resp, err := e.http.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := string(b)
	assert.Contains(t, m, "callready_webhook_quarantined_total 3")
	assert.Contains(t, m, "callready_webhook_quarantine_items 3")
	assert.True(t, strings.Contains(m, `callready_webhook_requests_total{outcome="accepted"} 4`), "bodies with quarantined items are accepted")
}

func TestRawJSON(t *testing.T) {
	assert.Equal(t, `{"a":1}`, string(rawJSON([]byte(`{"a":1}`))))
	assert.Equal(t, `null`, string(rawJSON(nil)))
	assert.Equal(t, "{\"a\":\"x\uFFFD\"}", string(rawJSON([]byte("{\"a\":\"x\xff\"}"))))
	assert.Equal(t, `"not json"`, string(rawJSON([]byte(`not json`))))
}
