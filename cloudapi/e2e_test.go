package cloudapi_test

import (
	"cmp"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/webhook"
)

// loop is the whole circle on one mock clock: the client sends through the
// fake, the fake's user answers with a signed webhook to a real
// webhook.Handler, and the tracker behind it lists the contact.
type loop struct {
	clk     *clock.Mock
	tracker *permission.Tracker
	handler *webhook.Handler
	fake    *cloudapitest.Server
	api     *cloudapi.Client
}

func newLoop(t *testing.T) *loop {
	t.Helper()
	const secret = "e2e-app-secret"
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(start)
	tracker, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	require.NoError(t, err)
	t.Cleanup(func() { tracker.Close() })
	h, err := webhook.New(webhook.Config{AppSecret: secret, Recorder: tracker})
	require.NoError(t, err)
	hsrv := httptest.NewServer(h)
	t.Cleanup(hsrv.Close)
	fake := cloudapitest.New(cloudapitest.Config{
		Clock: clk, AppSecret: secret, WebhookURL: hsrv.URL, HTTPClient: hsrv.Client(),
		PhoneNumbers: map[string]string{channel: "15550783881"},
	})
	t.Cleanup(fake.Close)
	api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client(), Clock: clk})
	require.NoError(t, err)
	return &loop{clk: clk, tracker: tracker, handler: h, fake: fake, api: api}
}

func (l *loop) callable(t *testing.T) []permission.Entry {
	t.Helper()
	page, err := l.tracker.Eligible(context.Background(), channel, permission.Query{})
	require.NoError(t, err)
	return page.Entries
}

func TestEndToEndAcceptMakesContactCallable(t *testing.T) {
	ctx := context.Background()
	l := newLoop(t)
	require.NoError(t, l.fake.AddUser(cloudapitest.User{Phone: phone, UserID: bsuid, Name: "Sheena Nelson"}))
	require.NoError(t, l.fake.AddUser(cloudapitest.User{UserID: "US.777", Name: "username user"}))

	// Sheena by phone, temporary; the username user by BSUID, permanent.
	sheena, err := l.api.SendPermissionRequest(ctx, channel, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: phone}})
	require.NoError(t, err)
	_, err = l.tracker.Record(ctx, permission.Event{Type: permission.EventRequestSent, Channel: channel, Contact: sheena.Contact.WaID, At: l.clk.Now(), ID: sheena.MessageID})
	require.NoError(t, err)
	user, err := l.api.SendPermissionTemplate(ctx, channel, cloudapi.TemplateRequest{
		To: cloudapi.Recipient{UserID: "US.777"}, Name: "call_permission", Language: "en",
	})
	require.NoError(t, err)
	require.Empty(t, user.Contact.WaID)

	// The tracker's request budget agrees with Meta's: no second request today.
	d, err := l.tracker.CanRequest(ctx, channel, phone, time.Time{})
	require.NoError(t, err)
	require.False(t, d.Allowed)
	_, err = l.api.SendPermissionRequest(ctx, channel, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: phone}})
	r, _ := cloudapi.Reason(err)
	require.Equal(t, d.Reason, r)

	acceptS, err := l.fake.Reply(sheena.MessageID, cloudapitest.Reply{Accept: true, After: 10 * time.Minute})
	require.NoError(t, err)
	acceptU, err := l.fake.Reply(user.MessageID, cloudapitest.Reply{Accept: true, Permanent: true, After: 20 * time.Minute})
	require.NoError(t, err)
	require.Empty(t, l.callable(t))

	l.clk.Add(10 * time.Minute)
	require.NoError(t, acceptS.Wait(ctx))
	entries := l.callable(t)
	require.Len(t, entries, 1)
	require.Equal(t, phone, entries[0].WaID, "the phone beside the BSUID the reply carried")
	require.Equal(t, permission.Temporary, entries[0].Kind)
	require.Equal(t, permission.SourceRequest, entries[0].Source)
	require.Equal(t, start.Add(10*time.Minute+7*24*time.Hour), entries[0].ExpiresAt.UTC())

	l.clk.Add(10 * time.Minute)
	require.NoError(t, acceptU.Wait(ctx))
	entries = l.callable(t)
	require.Len(t, entries, 2)
	var contacts []string
	for _, e := range entries {
		contacts = append(contacts, cmp.Or(e.WaID, e.Contact))
	}
	require.ElementsMatch(t, []string{phone, "US.777"}, contacts)
	cc, err := l.tracker.CanCall(ctx, channel, "US.777", time.Time{})
	require.NoError(t, err)
	require.True(t, cc.Allowed)

	// Meta's GET says the same thing as the list.
	p, err := l.api.CallPermissions(ctx, channel, cloudapi.Recipient{Phone: phone})
	require.NoError(t, err)
	require.Equal(t, cloudapi.StatusTemporary, p.Status)
	require.Equal(t, entries[0].ExpiresAt.UTC(), p.ExpiresAt)

	// Sheena changes her mind: a reject to the same request ends it.
	reject, err := l.fake.Reply(sheena.MessageID, cloudapitest.Reply{After: time.Hour})
	require.NoError(t, err)
	l.clk.Add(time.Hour)
	require.NoError(t, reject.Wait(ctx))
	entries = l.callable(t)
	require.Len(t, entries, 1)
	require.Equal(t, "US.777", entries[0].Contact)

	st := l.handler.Stats()
	require.Equal(t, int64(3), st.Accepted)
	require.Equal(t, int64(3), st.Received)
}
