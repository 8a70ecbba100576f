package reconcile_test

import (
	"context"
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
	"github.com/callready/callready/reconcile"
	"github.com/callready/callready/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	channel = "106540352242922"
	phone   = "16505551234"
	bsuid   = "US.13491208655302741918"
)

var start = time.Unix(1767168000, 0).UTC()

// gets records the GET call_permissions the client sends, with the mock
// clock's time.
type gets struct {
	next http.RoundTripper
	clk  clock.Clock
	mu   sync.Mutex
	who  []string
	at   []time.Time
}

func (g *gets) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/call_permissions") {
		q := r.URL.Query()
		g.mu.Lock()
		g.who = append(g.who, q.Get("user_wa_id")+q.Get("recipient"))
		g.at = append(g.at, g.clk.Now())
		g.mu.Unlock()
	}
	return g.next.RoundTrip(r)
}

func (g *gets) contacts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.who...)
}

func (g *gets) times() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Time(nil), g.at...)
}

type env struct {
	clk  *clock.Mock
	tr   *permission.Tracker
	fake *cloudapitest.Server
	api  *cloudapi.Client
	gets *gets
	rec  *reconcile.Reconciler
}

// newEnv wires a tracker, the fake over loopback and a reconciler on one
// mock clock. Every wait (rate limit, client backoff) advances the clock
// by itself, so rounds run to the end synchronously.
func newEnv(t *testing.T, rcfg reconcile.Config, ccfg cloudapi.Config) *env {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(start)
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	fake := cloudapitest.New(cloudapitest.Config{Clock: clk, PhoneNumbers: map[string]string{channel: "15550783881"}})
	t.Cleanup(fake.Close)
	g := &gets{next: fake.Client().Transport, clk: clk}
	ccfg.BaseURL, ccfg.AccessToken, ccfg.Clock = fake.URL(), fake.AccessToken(), clk
	ccfg.HTTPClient = &http.Client{Transport: g}
	if ccfg.OnRetry == nil {
		ccfg.OnRetry = func(_ int, wait time.Duration, _ error) { clk.Add(wait) }
	}
	api, err := cloudapi.New(ccfg)
	require.NoError(t, err)
	rcfg.Tracker, rcfg.API, rcfg.Clock = tr, api, clk
	if rcfg.Channels == nil {
		rcfg.Channels = []string{channel}
	}
	if rcfg.OnWait == nil {
		rcfg.OnWait = func(d time.Duration) { clk.Add(d) }
	}
	rec, err := reconcile.New(rcfg)
	require.NoError(t, err)
	return &env{clk: clk, tr: tr, fake: fake, api: api, gets: g, rec: rec}
}

func (e *env) grant(t *testing.T, contact string, at, expires time.Time, permanent bool) {
	t.Helper()
	_, err := e.tr.Record(context.Background(), permission.Event{Type: permission.EventGrant, Channel: channel, Contact: contact,
		At: at, ExpiresAt: expires, Permanent: permanent, Origin: permission.OriginWebhook})
	require.NoError(t, err)
}

func (e *env) meta(t *testing.T, contact, status string, expires time.Time) {
	t.Helper()
	require.NoError(t, e.fake.SetPermission(channel, contact, cloudapitest.Permission{Status: status, ExpiresAt: expires}))
}

func (e *env) explain(t *testing.T, contact string) permission.Explanation {
	t.Helper()
	ex, err := e.tr.Explain(context.Background(), channel, contact, time.Time{})
	require.NoError(t, err)
	return ex
}

func kinds(res reconcile.Result) []reconcile.DriftKind {
	var out []reconcile.DriftKind
	for _, d := range res.Drift {
		out = append(out, d.Kind)
	}
	return out
}

// reconciled finds the reconcile evidence Explain names.
func reconciled(ex permission.Explanation) []permission.Evidence {
	var out []permission.Evidence
	for _, ev := range ex.Evidence {
		if ev.Origin == permission.OriginReconcile {
			out = append(out, ev)
		}
	}
	return out
}

func TestMissedAccept(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		contact string
		status  string
		expires time.Time
	}{
		{"temporary by phone", phone, "temporary", start.Add(5 * 24 * time.Hour)},
		{"permanent by BSUID", bsuid, "permanent", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
			e.meta(t, tc.contact, tc.status, tc.expires)
			require.False(t, e.explain(t, tc.contact).Callable)

			res, err := e.rec.CheckContact(ctx, channel, tc.contact)
			require.NoError(t, err)
			require.Equal(t, []reconcile.DriftKind{reconcile.MissedAccept}, kinds(res))
			require.Equal(t, []string{tc.contact}, e.gets.contacts())
			require.False(t, res.Before.Callable)
			require.True(t, res.After.Callable)
			require.Len(t, res.Changes, 1)
			require.Equal(t, permission.Granted, res.Changes[0].Type)

			ex := e.explain(t, tc.contact)
			require.True(t, ex.Callable)
			require.Equal(t, permission.SourceReconcile, ex.Entry.Source, "Explain says Meta's answer made it")
			if tc.status == "permanent" {
				require.Equal(t, permission.Permanent, ex.Entry.Kind)
			} else {
				require.Equal(t, tc.expires, ex.Entry.ExpiresAt)
			}
			ev := reconciled(ex)
			require.Len(t, ev, 1)
			require.Equal(t, start, ev[0].At)

			// Checking again finds nothing: the list agrees now.
			rev := e.tr.Revision()
			res, err = e.rec.CheckContact(ctx, channel, tc.contact)
			require.NoError(t, err)
			require.Empty(t, res.Drift)
			require.Empty(t, res.Recorded)
			require.Equal(t, rev, e.tr.Revision())
			require.Equal(t, int64(1), e.rec.Stats().Drift[reconcile.MissedAccept])
			require.Equal(t, int64(2), e.rec.Stats().Checks)
		})
	}
}

func TestMissedRevoke(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
	e.grant(t, phone, start.Add(-time.Hour), start.Add(6*24*time.Hour), false)
	require.True(t, e.explain(t, phone).Callable)
	// Meta never heard of it (the fake's default), or it lapsed there.

	res, err := e.rec.CheckContact(ctx, channel, phone)
	require.NoError(t, err)
	require.Equal(t, []reconcile.DriftKind{reconcile.MissedRevoke}, kinds(res))
	require.True(t, res.Before.Callable)
	require.False(t, res.After.Callable)
	require.Equal(t, string(permission.StatusRevokedReconciled), res.After.Status)

	ex := e.explain(t, phone)
	require.False(t, ex.Callable)
	require.Equal(t, permission.StatusRevokedReconciled, ex.Status)
	ev := reconciled(ex)
	require.Len(t, ev, 1)
	require.Equal(t, permission.RevokeReconciled, ev[0].Reason)
	page, err := e.tr.Eligible(ctx, channel, permission.Query{})
	require.NoError(t, err)
	require.Empty(t, page.Entries)

	// A temporary permission Meta reports already over is none.
	e.grant(t, bsuid, start.Add(-time.Hour), start.Add(24*time.Hour), false)
	e.meta(t, bsuid, "temporary", start.Add(time.Hour))
	e.clk.Add(2 * time.Hour)
	res, err = e.rec.CheckContact(ctx, channel, bsuid)
	require.NoError(t, err)
	require.Equal(t, []reconcile.DriftKind{reconcile.MissedRevoke}, kinds(res))
}

func TestWrongExpiry(t *testing.T) {
	ctx := context.Background()
	t.Run("Meta's later", func(t *testing.T) {
		e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
		e.grant(t, phone, start.Add(-time.Hour), start.Add(24*time.Hour), false)
		e.meta(t, phone, "temporary", start.Add(6*24*time.Hour))
		res, err := e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Equal(t, []reconcile.DriftKind{reconcile.WrongExpiry}, kinds(res))
		require.Len(t, res.Recorded, 1, "a longer grant suffices")
		require.Equal(t, start.Add(6*24*time.Hour), e.explain(t, phone).Entry.ExpiresAt)
		require.Equal(t, permission.Extended, res.Changes[0].Type)
	})
	t.Run("Meta's earlier", func(t *testing.T) {
		e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
		e.grant(t, phone, start.Add(-time.Hour), start.Add(6*24*time.Hour), false)
		metaEnd := start.Add(2 * time.Hour)
		e.meta(t, phone, "temporary", metaEnd)
		res, err := e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Equal(t, []reconcile.DriftKind{reconcile.WrongExpiry}, kinds(res))
		require.Len(t, res.Recorded, 2, "revoke ours, then Meta's grant")
		ex := e.explain(t, phone)
		require.True(t, ex.Callable, "still callable until Meta's expiry")
		require.Equal(t, metaEnd, ex.Entry.ExpiresAt)
		require.Equal(t, permission.SourceReconcile, ex.Entry.Source)
		page, err := e.tr.Eligible(ctx, channel, permission.Query{ExpiringWithin: 3 * time.Hour})
		require.NoError(t, err)
		require.Len(t, page.Entries, 1, "listed as expiring soon")

		// At Meta's expiry it lapses as expired, not revoked.
		e.clk.Set(metaEnd.Add(time.Second))
		_, err = e.tr.Sweep(ctx, e.clk.Now())
		require.NoError(t, err)
		ex = e.explain(t, phone)
		require.False(t, ex.Callable)
		require.Equal(t, permission.StatusExpired, ex.Status)

		// And Meta agrees: nothing more to record.
		res, err = e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Empty(t, res.Drift)
	})
	t.Run("Meta temporary, ours permanent", func(t *testing.T) {
		e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
		e.grant(t, phone, start.Add(-time.Hour), time.Time{}, true)
		e.meta(t, phone, "temporary", start.Add(3*24*time.Hour))
		res, err := e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Equal(t, []reconcile.DriftKind{reconcile.WrongExpiry}, kinds(res))
		ex := e.explain(t, phone)
		require.Equal(t, permission.Temporary, ex.Entry.Kind)
		require.Equal(t, start.Add(3*24*time.Hour), ex.Entry.ExpiresAt)
	})
	t.Run("within tolerance agrees", func(t *testing.T) {
		e := newEnv(t, reconcile.Config{ExpiryTolerance: time.Minute}, cloudapi.Config{})
		e.grant(t, phone, start.Add(-time.Hour), start.Add(24*time.Hour), false)
		e.meta(t, phone, "temporary", start.Add(24*time.Hour+30*time.Second))
		res, err := e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Empty(t, res.Drift)
		require.Equal(t, start.Add(24*time.Hour), e.explain(t, phone).Entry.ExpiresAt)
	})
}

func TestMetaSaysPermanent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
	e.grant(t, phone, start.Add(-time.Hour), start.Add(24*time.Hour), false)
	e.meta(t, phone, "permanent", time.Time{})
	res, err := e.rec.CheckContact(ctx, channel, phone)
	require.NoError(t, err)
	require.Equal(t, []reconcile.DriftKind{reconcile.MetaPermanent}, kinds(res))
	ex := e.explain(t, phone)
	require.Equal(t, permission.Permanent, ex.Entry.Kind)
	require.Equal(t, permission.SourceReconcile, ex.Entry.Source)
	require.Equal(t, permission.Permanent, res.After.Kind)
	require.Equal(t, int64(1), e.rec.Stats().Drift[reconcile.MetaPermanent])
}

func TestUnconfirmedCallbackConfirmed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
	call := start.Add(-time.Hour)
	_, err := e.tr.Record(ctx, permission.Event{Type: permission.EventInboundCall, Channel: channel, Contact: phone, At: call, ID: "wacid.1"})
	require.NoError(t, err)
	ex := e.explain(t, phone)
	require.True(t, ex.Callable)
	require.True(t, ex.Entry.Unconfirmed)
	e.meta(t, phone, "temporary", ex.Entry.ExpiresAt.Add(-10*time.Second))

	res, err := e.rec.CheckContact(ctx, channel, phone)
	require.NoError(t, err)
	require.Equal(t, []reconcile.DriftKind{reconcile.ConfirmedCallback}, kinds(res))
	ex = e.explain(t, phone)
	require.True(t, ex.Callable)
	require.False(t, ex.Entry.Unconfirmed, "Meta's answer confirms it")
}

func TestBudgetDrift(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
	// Another tool sent a request the tracker never heard of.
	_, err := e.api.SendPermissionRequest(ctx, channel, cloudapi.PermissionRequest{To: cloudapi.Recipient{Phone: phone}})
	require.NoError(t, err)
	res, err := e.rec.CheckContact(ctx, channel, phone)
	require.NoError(t, err)
	require.Equal(t, []reconcile.DriftKind{reconcile.RequestBudget, reconcile.RequestBudget}, kinds(res))
	day := res.Drift[0].Budget
	require.Equal(t, "PT24H", day.TimePeriod)
	require.Equal(t, 1, day.CurrentUsage)
	require.Equal(t, 0, day.MetaLeft)
	require.Equal(t, 1, day.OursLeft)
	require.Equal(t, start.Add(24*time.Hour), day.FreeAt, "Meta's limit_expiration_time")
	week := res.Drift[1].Budget
	require.Equal(t, "P7D", week.TimePeriod)
	require.Equal(t, 1, week.MetaLeft)
	require.Equal(t, 2, week.OursLeft)
	require.Equal(t, int64(2), e.rec.Stats().Drift[reconcile.RequestBudget])

	// The request Meta counts is recorded as usage, in Meta's day window
	// (it leaves ours when Meta's limit frees), and it is in the week's
	// count too: one event corrects both windows.
	require.Len(t, res.Recorded, 1)
	u := res.Recorded[0]
	require.Equal(t, permission.EventRequestSent, u.Type)
	require.Equal(t, permission.SourceReconcile, u.Source)
	require.Equal(t, permission.OriginReconcile, u.Origin)
	require.Equal(t, start, u.At, "limit_expiration_time minus 24 h")
	d, err := e.tr.CanRequest(ctx, channel, phone, e.clk.Now())
	require.NoError(t, err)
	require.False(t, d.Allowed, "Meta's limit is the tracker's now")
	require.Equal(t, 0, d.Limits.RequestsLeftDay)
	require.Equal(t, 1, d.Limits.RequestsLeftWeek)
	pend, err := e.tr.CountPending(channel, e.clk.Now())
	require.NoError(t, err)
	require.Zero(t, pend, "usage Meta counted is no pending request")

	// Checking again finds nothing to correct.
	res, err = e.rec.CheckContact(ctx, channel, phone)
	require.NoError(t, err)
	require.Empty(t, res.Drift)
	require.Empty(t, res.Recorded)

	// When Meta's day window frees, ours does too.
	e.clk.Add(24*time.Hour + time.Second)
	d, err = e.tr.CanRequest(ctx, channel, phone, e.clk.Now())
	require.NoError(t, err)
	require.Equal(t, 1, d.Limits.RequestsLeftDay)
}

func TestRoundPriorities(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{
		SampleSize: 2,
		Candidates: func(context.Context, string) ([]string, error) { return []string{"16500000007", "16500000001"}, nil },
	}, cloudapi.Config{})
	long := start.Add(6 * 24 * time.Hour)
	e.grant(t, "16500000001", start.Add(-time.Hour), start.Add(2*time.Hour), false) // expiring soon
	_, err := e.tr.Record(ctx, permission.Event{Type: permission.EventInboundCall, Channel: channel, Contact: "16500000002", At: start.Add(-time.Minute), ID: "wacid.2"})
	require.NoError(t, err) // unconfirmed
	e.grant(t, "16500000003", start.Add(-time.Hour), long, false)
	for i, id := range []string{"wacid.3a", "wacid.3b"} {
		_, err := e.tr.Record(ctx, permission.Event{Type: permission.EventBusinessCall, Channel: channel, Contact: "16500000003",
			At: start.Add(time.Duration(i-30) * time.Minute), ID: id})
		require.NoError(t, err) // unanswered: streak 2
	}
	for _, c := range []string{"16500000006", "16500000004", "16500000005"} {
		e.grant(t, c, start.Add(-time.Hour), long, false)
	}

	rep, err := e.rec.Round(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"16500000001", "16500000002", "16500000003", "16500000007", "16500000004", "16500000005"}, e.gets.contacts(),
		"expiring, unconfirmed, streak, candidates (deduplicated), then the sample")
	require.Equal(t, 6, rep.Checked)
	require.Equal(t, 5, rep.Drifted, "Meta knows none of the five listed; the candidate agrees")
}

func TestSampleRotates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{SampleSize: 2}, cloudapi.Config{})
	long := start.Add(6 * 24 * time.Hour)
	for _, c := range []string{"16500000003", "16500000001", "16500000002"} {
		e.grant(t, c, start.Add(-time.Hour), long, false)
		e.meta(t, c, "temporary", long)
	}
	for range 3 {
		_, err := e.rec.Round(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, []string{"16500000001", "16500000002", "16500000003", "16500000001", "16500000002", "16500000003"}, e.gets.contacts())
	require.Equal(t, int64(6), e.rec.Stats().Checks)
	require.Empty(t, e.rec.Stats().Drift[reconcile.WrongExpiry])
}

func TestRateLimitHonoured(t *testing.T) {
	ctx := context.Background()
	var waits []time.Duration
	var e *env
	e = newEnv(t, reconcile.Config{Rate: 2, Burst: 2, SampleSize: 10, OnWait: func(d time.Duration) {
		waits = append(waits, d)
		e.clk.Add(d)
	}}, cloudapi.Config{})
	for i := range 6 {
		e.grant(t, "1650000000"+string(rune('0'+i)), start.Add(-time.Hour), start.Add(6*24*time.Hour), false)
	}
	_, err := e.rec.Round(ctx)
	require.NoError(t, err)
	at := e.gets.times()
	require.Len(t, at, 6)
	require.Equal(t, start, at[0])
	require.Equal(t, start, at[1], "a burst of 2")
	for i := 2; i < len(at); i++ {
		// A token bucket: at most Burst + Rate*t in any span t.
		require.GreaterOrEqual(t, at[i].Sub(at[0]), time.Duration(i-1)*500*time.Millisecond, "request %d too early", i)
		require.Equal(t, 500*time.Millisecond, at[i].Sub(at[i-1]), "then one per 1/Rate")
	}
	require.Len(t, waits, 4)
	require.Equal(t, start.Add(2*time.Second), e.clk.Now())
}

func TestRateLimited613(t *testing.T) {
	ctx := context.Background()
	t.Run("backoff, then the answer", func(t *testing.T) {
		var retries []time.Duration
		var e *env
		e = newEnv(t, reconcile.Config{}, cloudapi.Config{InitialBackoff: time.Second, OnRetry: func(_ int, wait time.Duration, _ error) {
			retries = append(retries, wait)
			e.clk.Add(wait)
		}})
		e.meta(t, phone, "temporary", start.Add(3*24*time.Hour))
		e.fake.RateLimitNext(2, 0)
		res, err := e.rec.CheckContact(ctx, channel, phone)
		require.NoError(t, err)
		require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, retries)
		require.Equal(t, []reconcile.DriftKind{reconcile.MissedAccept}, kinds(res))
		require.Equal(t, start, res.CheckedAt, "the instant Meta was first asked")
		require.Equal(t, start.Add(3*time.Second), e.clk.Now())
		require.Equal(t, int64(0), e.rec.Stats().RateLimited)
	})
	t.Run("retries exhausted: the round stops, nothing recorded", func(t *testing.T) {
		e := newEnv(t, reconcile.Config{}, cloudapi.Config{MaxRetries: -1})
		e.grant(t, "16500000001", start.Add(-time.Hour), start.Add(2*time.Hour), false)
		e.grant(t, "16500000002", start.Add(-time.Hour), start.Add(3*time.Hour), false)
		rev := e.tr.Revision()
		e.fake.RateLimitNext(1, 0)
		rep, err := e.rec.Round(ctx)
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 613, apiErr.Code)
		require.Equal(t, reconcile.RoundReport{Failed: 1}, rep)
		require.Equal(t, []string{"16500000001"}, e.gets.contacts(), "the second is not asked")
		require.Equal(t, rev, e.tr.Revision())
		st := e.rec.Stats()
		require.Equal(t, int64(1), st.RateLimited)
		require.Equal(t, int64(1), st.Errors)
		require.True(t, e.explain(t, "16500000001").Callable)
	})
}

func TestSyncSettings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{}, cloudapi.Config{})
	inbound := func(contact, id string) bool {
		t.Helper()
		_, err := e.tr.Record(ctx, permission.Event{Type: permission.EventInboundCall, Channel: channel, Contact: contact, At: e.clk.Now(), ID: id})
		require.NoError(t, err)
		return e.explain(t, contact).Callable
	}
	e.fake.SetCallingSettings(channel, cloudapitest.CallingSettings{CallbackPermissionStatus: "DISABLED"})
	require.NoError(t, e.rec.SyncSettings(ctx))
	require.Equal(t, int64(1), e.rec.Stats().CallbackSettings)
	e.clk.Add(time.Minute)
	require.False(t, inbound("16500000001", "wacid.1"), "DISABLED: a call grants nothing")

	e.clk.Add(time.Minute)
	require.NoError(t, e.rec.SyncSettings(ctx))
	require.Equal(t, int64(1), e.rec.Stats().CallbackSettings, "unchanged: not recorded again")

	e.fake.SetCallingSettings(channel, cloudapitest.CallingSettings{CallbackPermissionStatus: "ENABLED"})
	e.clk.Add(time.Minute)
	require.NoError(t, e.rec.SyncSettings(ctx))
	require.Equal(t, int64(2), e.rec.Stats().CallbackSettings)
	e.clk.Add(time.Minute)
	require.True(t, inbound("16500000002", "wacid.2"), "ENABLED: the call grants a callback")
}

func TestSyncSettingsError(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{Channels: []string{"999", channel}}, cloudapi.Config{})
	err := e.rec.SyncSettings(ctx)
	var apiErr *cloudapi.Error
	require.ErrorAs(t, err, &apiErr, "the unknown number fails")
	require.Equal(t, int64(1), e.rec.Stats().CallbackSettings, "the other channel is still read")
}

func TestRunLoops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rounds := make(chan time.Duration)
	var e *env
	e = newEnv(t, reconcile.Config{Interval: time.Hour, OnWait: func(d time.Duration) {
		if d == time.Hour {
			rounds <- d
		}
		e.clk.Add(d)
	}}, cloudapi.Config{})
	e.grant(t, phone, start.Add(-time.Hour), start.Add(2*time.Hour), false)
	done := make(chan error, 1)
	go func() { done <- e.rec.Run(ctx) }()
	<-rounds // first round done: the contact was revoked
	require.False(t, e.explain(t, phone).Callable)
	e.meta(t, phone, "permanent", time.Time{})
	<-rounds // the second round has no listed contact to ask about
	require.Equal(t, []string{phone}, e.gets.contacts())
	cancel()
	go func() {
		for range rounds {
		}
	}()
	require.ErrorIs(t, <-done, context.Canceled)
	close(rounds)
	require.Equal(t, int64(1), e.rec.Stats().Drift[reconcile.MissedRevoke])
	require.Equal(t, int64(1), e.rec.Stats().CallbackSettings)
}

func TestNewValidates(t *testing.T) {
	_, err := reconcile.New(reconcile.Config{})
	require.ErrorIs(t, err, reconcile.ErrInvalidConfig)
}

func TestConcurrentChecksRecordOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, reconcile.Config{Burst: 8}, cloudapi.Config{})
	e.grant(t, phone, start.Add(-time.Hour), start.Add(6*24*time.Hour), false)
	var wg sync.WaitGroup
	results := make([]reconcile.Result, 4)
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() { results[i], errs[i] = e.rec.CheckContact(ctx, channel, phone) })
	}
	wg.Wait()
	drifted := 0
	for i, r := range results {
		require.NoError(t, errs[i])
		drifted += len(r.Drift)
	}
	require.Equal(t, 1, drifted, "the first check corrects, the others agree")
	require.Len(t, reconciled(e.explain(t, phone)), 1, "one revocation recorded")
	require.Equal(t, int64(1), e.rec.Stats().Drift[reconcile.MissedRevoke])
	require.Equal(t, int64(4), e.rec.Stats().Checks)
}

func TestCheckContactCancelled(t *testing.T) {
	e := newEnv(t, reconcile.Config{Rate: 1, OnWait: func(time.Duration) {}}, cloudapi.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := e.rec.CheckContact(ctx, channel, phone) // takes the only token
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := e.rec.CheckContact(ctx, channel, phone) // waits a second on the mock clock
		done <- err
	}()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Len(t, e.gets.contacts(), 1)
}
