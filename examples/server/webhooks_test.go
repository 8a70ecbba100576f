package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
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

// poisonMessages makes inserting a chat line whose id contains "poison"
// fail; the returned function removes the trigger.
func poisonMessages(t *testing.T, e *testEnv) func() {
	t.Helper()
	ctx := context.Background()
	db := e.s.opts.DB
	if !e.s.opts.Postgres {
		_, err := db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON server_messages
			WHEN NEW.id LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned message'); END`)
		require.NoError(t, err)
		return func() {
			_, err := db.ExecContext(ctx, `DROP TRIGGER poison`)
			require.NoError(t, err)
		}
	}
	_, err := db.ExecContext(ctx, `CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.id LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned message'; END IF; RETURN NEW; END $$`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON server_messages FOR EACH ROW EXECUTE FUNCTION poison()`)
	require.NoError(t, err)
	return func() {
		_, err := db.ExecContext(ctx, `DROP TRIGGER poison ON server_messages`)
		require.NoError(t, err)
	}
}

// TestInboxRowsCommitWithEvents: a body's inbox rows (contact, name, chat
// lines) and its permission events are written in one transaction: when
// an inbox row cannot be written, the webhook gets 503 and neither the
// events nor any other row of the body is kept; Meta's re-delivery then
// writes them all.
func TestInboxRowsCommitWithEvents(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e := newEnv(t0, nil)
		ctx := context.Background()
		unpoison := poisonMessages(t, e)

		grant := grantBody(chA, "Sheena Nelson", "16505551234", "wamid.poison1", t0.Add(-time.Hour), t0.Add(time.Hour))
		text := textBody(chA, "Amina Yusuf", "2348031234567", "wamid.poison2", t0.Add(-time.Hour), "hello")
		require.Equal(t, http.StatusServiceUnavailable, e.postStatus(grant))
		require.Equal(t, http.StatusServiceUnavailable, e.postStatus(text))

		// chA became known in neither body's transaction: no channel either.
		var er errResp
		assert.Equal(t, http.StatusNotFound, e.get("/api/channels/"+chA.id+"/callable", &er))
		for _, c := range []string{"16505551234", "2348031234567"} {
			_, known, err := e.s.inbox.contact(ctx, chA.id, c)
			require.NoError(t, err)
			assert.False(t, known, c)
		}
		var n int
		require.NoError(t, e.s.opts.DB.QueryRowContext(ctx, "SELECT count(*) FROM callready_ledger").Scan(&n))
		assert.Zero(t, n, "no event recorded")

		unpoison()
		e.post(grant)
		e.post(text)
		var callable callableResp
		require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable", &callable))
		assert.Equal(t, []string{"16505551234"}, contactsOf(callable))
		assert.Equal(t, []string{"Sheena Nelson: permission", "Amina Yusuf: in hello"}, []string{
			historyOf(t, e, chA, "16505551234"), historyOf(t, e, chA, "2348031234567"),
		})
	})
}

// historyOf words a contact's name and chat lines.
func historyOf(t *testing.T, e *testEnv, ch demoChannel, contact string) string {
	t.Helper()
	var got struct {
		Name     string        `json:"name"`
		Messages []chatMessage `json:"messages"`
	}
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+ch.id+"/contacts/"+contact+"/messages", &got))
	out := got.Name + ":"
	for _, m := range got.Messages {
		switch m.Type {
		case "permission":
			out += " permission"
		default:
			out += " " + m.Direction + " " + m.Body
		}
	}
	return out
}

// TestBatchBodyRows: a body of two changes on two channels writes every
// row of it (two channels, the contact on each, a permission line and
// texts) in its one transaction.
func TestBatchBodyRows(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e := newEnv(time.Unix(1767210200, 0).UTC(), nil)
		body, err := os.ReadFile("../../webhook/testdata/fixtures/batch-two-channels.json")
		require.NoError(t, err)
		e.post(body)
		e.post(body) // Meta re-delivers: nothing twice
		var got struct {
			Channels []channelJSON `json:"channels"`
		}
		require.Equal(t, http.StatusOK, e.get("/api/channels", &got))
		require.Len(t, got.Channels, 2)
		assert.Equal(t, "15550783881", got.Channels[0].Display)
		assert.Equal(t, "15550783999", got.Channels[1].Display)
		assert.Equal(t, "Amina Yusuf: permission in Yes please call me after 5pm", historyOf(t, e, chA, "2348031234567"))
		assert.Equal(t, "Amina Yusuf: in Hello from the other line", historyOf(t, e, chB, "2348031234567"))
	})
}

// When the tracker refuses a body's events as invalid (the handler then
// records them one by one), the body's own rows are written at once: they
// must not wait for an event the tracker may refuse again.
func TestRecorderRefusedEventsKeepTheBodyRows(t *testing.T) {
	e := newTestEnv(t, t0)
	ctx := context.Background()
	rows := &inboxRows{}
	e.s.inbox.addChannel(rows, chA.id, chA.display)
	rows.addContact(chA.id, "16505551234", "Sheena Nelson")
	rows.messages = append(rows.messages, chatMessage{
		ID: "wamid.kept", Channel: chA.id, Contact: "16505551234", Direction: "in", Type: "text", Body: "kept", At: t0.Add(-time.Minute),
	})
	br := &bodyRows{rows: rows}
	bctx := context.WithValue(ctx, bodyKey{}, br)
	// No contact: the tracker refuses it.
	_, err := recorder{e.s}.Record(bctx, permission.Event{Type: permission.EventGrant, Channel: chA.id, At: t0, ID: "wamid.bad"})
	require.ErrorIs(t, err, permission.ErrInvalidEvent)
	require.Nil(t, br.rows, "written")
	assert.Equal(t, "Sheena Nelson: in kept", historyOf(t, e, chA, "16505551234"))
	assert.True(t, e.s.inbox.knownChannel(ctx, chA.id))

	// A later event of the body carries only its own permission line.
	_, err = recorder{e.s}.Record(bctx, permission.Event{
		Type: permission.EventGrant, Channel: chA.id, Contact: "16505551234", At: t0, ID: "wamid.good", Permanent: true,
	})
	require.NoError(t, err)
	assert.Equal(t, "Sheena Nelson: in kept permission", historyOf(t, e, chA, "16505551234"))
}

// TestBatchedInboxRows: the inbox rows of several webhooks merged into one
// group commit's statements keep one row per contact (a name over none),
// one chat line per id, and runs of rows longer than one INSERT holds.
func TestBatchedInboxRows(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e := newEnv(t0, nil)
		ctx := context.Background()
		var all inboxRows
		for i := range maxRowsPerInsert + 7 {
			r := &inboxRows{}
			e.s.inbox.addChannel(r, chA.id, chA.display)
			name := ""
			if i == 3 {
				name = "Sheena Nelson"
			}
			r.addContact(chA.id, "16505551234", name)                     // in every body
			r.addContact(chA.id, "1650555"+strconv.Itoa(2000+i), "Other") // one per body
			r.messages = append(r.messages, chatMessage{ID: "wamid.same", Channel: chA.id, Contact: "16505551234", Direction: "in", Type: "text", Body: "first", At: t0},
				chatMessage{ID: "wamid." + strconv.Itoa(i), Channel: chA.id, Contact: "16505551234", Direction: "in", Type: "text", Body: "line", At: t0.Add(time.Duration(i) * time.Second)})
			all.merge(r)
		}
		require.Len(t, all.channels, 1)
		require.Len(t, all.contacts, maxRowsPerInsert+8)
		require.Len(t, all.messages, maxRowsPerInsert+8)
		all.at = t0
		require.NoError(t, e.s.inbox.write(ctx, e.s.opts.DB, &all))
		e.s.inbox.committed(&all)

		name, known, err := e.s.inbox.contact(ctx, chA.id, "16505551234")
		require.NoError(t, err)
		require.True(t, known)
		require.Equal(t, "Sheena Nelson", name, "a name over none")
		var contacts, messages, first int
		require.NoError(t, e.s.opts.DB.QueryRowContext(ctx, "SELECT count(*) FROM server_contacts").Scan(&contacts))
		require.NoError(t, e.s.opts.DB.QueryRowContext(ctx, "SELECT count(*) FROM server_messages").Scan(&messages))
		require.NoError(t, e.s.opts.DB.QueryRowContext(ctx, e.s.inbox.q("SELECT count(*) FROM server_messages WHERE id = ? AND body = ?"), "wamid.same", "first").Scan(&first))
		require.Equal(t, maxRowsPerInsert+8, contacts)
		require.Equal(t, maxRowsPerInsert+8, messages)
		require.Equal(t, 1, first)
	})
}

// TestPoisonedWebhookAmongConcurrentOnes: webhooks posted at once share
// group commits; one whose inbox row cannot be written gets 503 alone,
// and every other's events and rows are kept.
func TestPoisonedWebhookAmongConcurrentOnes(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e := newEnv(t0, nil)
		defer poisonMessages(t, e)()
		const n = 24
		status := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			id := "wamid.ok" + strconv.Itoa(i)
			if i == 7 {
				id = "wamid.poison" + strconv.Itoa(i)
			}
			body := grantBody(chA, "Caller "+strconv.Itoa(i), "1650555"+strconv.Itoa(3000+i), id, t0.Add(-time.Hour), t0.Add(time.Hour))
			wg.Go(func() { status[i] = e.postStatus(body) })
		}
		wg.Wait()
		var want []string
		for i, s := range status {
			if i == 7 {
				require.Equal(t, http.StatusServiceUnavailable, s)
				continue
			}
			require.Equal(t, http.StatusOK, s, "webhook %d", i)
			c := "1650555" + strconv.Itoa(3000+i)
			want = append(want, c)
			require.Equal(t, "Caller "+strconv.Itoa(i)+": permission", historyOf(t, e, chA, c))
		}
		var callable callableResp
		require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable?limit=100", &callable))
		require.ElementsMatch(t, want, contactsOf(callable))
	})
}
