package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
)

// newRequestEnv is the server with the Cloud API on cloudapitest's fake,
// whose simulated users post their replies to the server's /webhook,
// signed with the server's app secret, all on the test's mock clock.
func newRequestEnv(t *testing.T, template string) (*testEnv, *cloudapitest.Server) {
	t.Helper()
	var fake *cloudapitest.Server
	e := newTestEnvWith(t, filepath.Join(t.TempDir(), "callready.db"), t0, func(o *serverOptions) {
		clk := o.Clock.(*clock.Mock)
		fake = cloudapitest.New(cloudapitest.Config{Clock: clk, AppSecret: testSecret, PhoneNumbers: map[string]string{chA.id: chA.display}})
		t.Cleanup(fake.Close)
		api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client(), Clock: clk})
		require.NoError(t, err)
		o.Meta = metaOptions{API: api, Channels: []string{chA.id}, Burst: 1, Template: template, TemplateLanguage: "en_US"}
	})
	fake.SetWebhookURL(e.http.URL + "/webhook")
	return e, fake
}

type requestResp struct {
	Contact   string    `json:"contact"`
	RequestID string    `json:"request_id"`
	Via       string    `json:"via"`
	SentAt    time.Time `json:"sent_at"`
	LapsesAt  time.Time `json:"lapses_at"`
	Error     string    `json:"error"`
	Reason    string    `json:"reason"`
	RetryAt   time.Time `json:"retry_at"`
	Pending   *struct {
		RequestID string `json:"request_id"`
	} `json:"pending"`
}

func (e *testEnv) request(contact string) (requestResp, int) {
	e.t.Helper()
	var out requestResp
	code := e.postAPI("/api/channels/"+chA.id+"/contacts/"+contact+"/request", &out)
	return out, code
}

type pendingResp struct {
	Pending []struct {
		Contact   string    `json:"contact"`
		Name      string    `json:"name"`
		RequestID string    `json:"request_id"`
		LapsesAt  time.Time `json:"lapses_at"`
	} `json:"pending"`
}

type reaskResp struct {
	Contacts []struct {
		Contact       string     `json:"contact"`
		Name          string     `json:"name"`
		Reason        string     `json:"reason"`
		Status        string     `json:"status"`
		LapsedAt      time.Time  `json:"lapsed_at"`
		CanRequest    bool       `json:"can_request"`
		RequestReason string     `json:"request_reason"`
		AllowedAt     *time.Time `json:"allowed_at"`
	} `json:"contacts"`
}

func TestRequestPermissionInsideTheWindow(t *testing.T) {
	e, fake := newRequestEnv(t, "")
	const sheena = "16505551234"
	e.text(chA, "Sheena Nelson", sheena, "wamid.in1", t0.Add(-time.Hour), "Can you call me?")
	stream := e.openStream(chA.id, map[string]string{"Authorization": "Bearer " + testToken}, "?pending=1")

	var x explanationJSON
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/contacts/"+sheena, &x))
	assert.Equal(t, "message", x.RequestVia, "the user wrote an hour ago: a free-form request")
	assert.Nil(t, x.Pending)

	got, code := e.request(sheena)
	require.Equal(t, 200, code, got.Error)
	assert.Equal(t, "message", got.Via)
	assert.Equal(t, t0.Add(7*24*time.Hour), got.LapsesAt)
	reqs := fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, got.RequestID, reqs[0].ID)
	assert.Empty(t, reqs[0].Template)
	assert.Equal(t, requestBody, reqs[0].Body)

	ev := stream.next(t)
	assert.Equal(t, "pending", ev.Event)
	assert.Equal(t, sheena, ev.Data.Contact)
	assert.Equal(t, "Sheena Nelson", ev.Data.Name)

	// The request is in the chat history and on the Pending tab.
	var msgs struct {
		Messages []chatMessage `json:"messages"`
	}
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/contacts/"+sheena+"/messages", &msgs))
	require.Len(t, msgs.Messages, 2)
	assert.Equal(t, got.RequestID, msgs.Messages[1].ID)
	assert.Equal(t, "out", msgs.Messages[1].Direction)
	assert.Contains(t, msgs.Messages[1].Body, "Call permission request")
	var p pendingResp
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/pending", &p))
	require.Len(t, p.Pending, 1)
	assert.Equal(t, got.RequestID, p.Pending[0].RequestID)
	assert.Equal(t, "Sheena Nelson", p.Pending[0].Name)
	var chans struct {
		Channels []channelJSON `json:"channels"`
	}
	require.Equal(t, 200, e.get("/api/channels", &chans))
	assert.Equal(t, 1, chans.Channels[0].Pending)

	// Asking again while it is pending sends nothing.
	again, code := e.request(sheena)
	assert.Equal(t, 409, code)
	assert.Equal(t, "pending", again.Reason)
	require.NotNil(t, again.Pending)
	assert.Equal(t, got.RequestID, again.Pending.RequestID)
	assert.Len(t, fake.Requests(), 1)

	// The user accepts (a signed webhook from the fake): pending ends,
	// Sheena is callable.
	d, err := fake.Reply(got.RequestID, cloudapitest.Reply{Accept: true})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	ev = stream.next(t)
	assert.Equal(t, "pending_ended", ev.Event)
	assert.Equal(t, "granted", stream.next(t).Event)
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/pending", &p))
	assert.Empty(t, p.Pending)
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/contacts/"+sheena, &x))
	assert.True(t, x.Callable)
	assert.Nil(t, x.Pending)
}

func TestRequestPermissionOutsideTheWindow(t *testing.T) {
	e, _ := newRequestEnv(t, "")
	const amina = "447700900123"
	e.text(chA, "Amina Yusuf", amina, "wamid.in1", t0.Add(-25*time.Hour), "Hello")
	got, code := e.request(amina)
	assert.Equal(t, 409, code)
	assert.Equal(t, "no_template", got.Reason)
	var x explanationJSON
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/contacts/"+amina, &x))
	assert.Empty(t, x.RequestVia)
	assert.Contains(t, x.RequestBlocked, "CALLREADY_META_TEMPLATE")

	e2, fake := newRequestEnv(t, "call_permission_ask")
	e2.text(chA, "Amina Yusuf", amina, "wamid.in1", t0.Add(-25*time.Hour), "Hello")
	got, code = e2.request(amina)
	require.Equal(t, 200, code, got.Error)
	assert.Equal(t, "template", got.Via)
	reqs := fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "call_permission_ask", reqs[0].Template)
	assert.Equal(t, "en_US", reqs[0].Language)

	// Rejected: no longer pending, but Meta's 24 h limit holds.
	d, err := fake.Reply(got.RequestID, cloudapitest.Reply{})
	require.NoError(t, err)
	require.NoError(t, d.Wait(context.Background()))
	again, code := e2.request(amina)
	assert.Equal(t, 409, code)
	assert.Equal(t, "request_limit_24h", again.Reason)
	assert.Equal(t, t0.Add(24*time.Hour), again.RetryAt)
	assert.Len(t, fake.Requests(), 1)
}

func TestRequestPermissionNotConfigured(t *testing.T) {
	e := newTestEnv(t, t0)
	e.text(chA, "Sheena Nelson", "16505551234", "wamid.in1", t0.Add(-time.Hour), "Hi")
	got, code := e.request("16505551234")
	assert.Equal(t, 503, code)
	assert.Equal(t, "not_configured", got.Reason)
}

func TestReaskTabAndBulk(t *testing.T) {
	e, fake := newRequestEnv(t, "call_permission_ask")
	const tomas, priya, lukas, chloe = "34612000001", "34612000002", "34612000003", "34612000004"
	e.grant(chA, "Tomás García", tomas, "wamid.g1", t0.Add(-9*24*time.Hour), t0.Add(-2*24*time.Hour)) // expired 2 days ago
	e.reject(chA, "Priya Raman", priya, "wamid.r1", t0.Add(-10*24*time.Hour))                         // declined 10 days ago
	e.reject(chA, "Lukas Becker", lukas, "wamid.r2", t0.Add(-24*time.Hour))                           // declined yesterday: not yet
	e.grant(chA, "Chloé Martin", chloe, "wamid.g2", t0.Add(-time.Hour), t0.Add(5*24*time.Hour))       // callable
	var ra reaskResp
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/reask", &ra))
	require.Len(t, ra.Contacts, 2)
	assert.Equal(t, tomas, ra.Contacts[0].Contact)
	assert.Equal(t, "Tomás García", ra.Contacts[0].Name)
	assert.Equal(t, "expired", ra.Contacts[0].Reason)
	assert.True(t, ra.Contacts[0].CanRequest)
	assert.Equal(t, priya, ra.Contacts[1].Contact)
	assert.Equal(t, "rejected", ra.Contacts[1].Status)
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/reask?declined_for=12h", &ra))
	assert.Len(t, ra.Contacts, 3)
	assert.Equal(t, 400, e.get("/api/channels/"+chA.id+"/reask?within=soon", nil))

	var bulk struct {
		Sent    int `json:"sent"`
		NotSent int `json:"not_sent"`
		Results []struct {
			Contact   string `json:"contact"`
			Sent      bool   `json:"sent"`
			RequestID string `json:"request_id"`
		} `json:"results"`
	}
	require.Equal(t, 200, e.postAPI("/api/channels/"+chA.id+"/reask", &bulk))
	assert.Equal(t, 2, bulk.Sent)
	assert.Equal(t, 0, bulk.NotSent)
	assert.Len(t, fake.Requests(), 2)
	var p pendingResp
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/pending", &p))
	assert.Len(t, p.Pending, 2)
	require.Equal(t, 200, e.get("/api/channels/"+chA.id+"/reask", &ra))
	assert.Empty(t, ra.Contacts, "asked: pending now, off the Re-ask tab")

	// Once more: nobody left to ask.
	require.Equal(t, 200, e.postAPI("/api/channels/"+chA.id+"/reask", &bulk))
	assert.Equal(t, 0, bulk.Sent)
	assert.Len(t, fake.Requests(), 2)
}

func TestDemoAutoReplyAnswersSome(t *testing.T) {
	answers := map[string]int{}
	for i := range 200 {
		r, ok := demoAutoReply(cloudapitest.Request{Phone: "1650555" + string(rune('0'+i%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i/100))})
		switch {
		case !ok:
			answers["none"]++
		case r.Permanent:
			answers["permanent"]++
		case r.Accept:
			answers["temporary"]++
		}
		if ok {
			assert.Equal(t, demoReplyAfter, r.After)
		}
	}
	assert.Positive(t, answers["none"])
	assert.Positive(t, answers["permanent"])
	assert.Greater(t, answers["temporary"], answers["none"])
}
