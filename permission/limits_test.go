package permission

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func requestSent(contact, id string, at time.Time) Event {
	return Event{Type: EventRequestSent, Channel: ch, Contact: contact, ID: id, At: at}
}

func businessCall(contact, id string, at time.Time, connected bool) Event {
	return Event{Type: EventBusinessCall, Channel: ch, Contact: contact, ID: id, At: at, Connected: connected}
}

func TestCallCapWindowEdges(t *testing.T) {
	f := newFixture(t, Config{Limits: LimitsConfig{CallsPerWindow: 2}})
	f.record(permanent("u", t0, SourceRequest))
	f.record(businessCall("u", "wacid.1", t0.Add(time.Hour), true), businessCall("u", "wacid.2", t0.Add(2*time.Hour), true))

	d, err := f.tr.CanCall(f.ctx, ch, "u", t0.Add(3*time.Hour))
	require.NoError(t, err)
	assert.False(t, d.Allowed)
	assert.Equal(t, ReasonCallLimit, d.Reason)
	assert.Equal(t, t0.Add(25*time.Hour), d.RetryAt, "the first call leaves the window 24 h after it")

	d, err = f.tr.CanCall(f.ctx, ch, "u", t0.Add(25*time.Hour-time.Nanosecond))
	require.NoError(t, err)
	assert.False(t, d.Allowed, "1 ns before the window frees")
	d, err = f.tr.CanCall(f.ctx, ch, "u", t0.Add(25*time.Hour))
	require.NoError(t, err)
	assert.True(t, d.Allowed)
	assert.Equal(t, 1, d.Limits.CallsLeft)

	// The listing shows calls left and can hide capped contacts.
	p, err := f.tr.Eligible(f.ctx, ch, Query{Now: t0.Add(3 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	assert.Zero(t, p.Entries[0].CallsLeft)
	p, err = f.tr.Eligible(f.ctx, ch, Query{Now: t0.Add(3 * time.Hour), WithCallsLeft: true})
	require.NoError(t, err)
	assert.Empty(t, p.Entries)
}

func TestCanCallWithoutPermission(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		contact string
		events  []Event
		want    Reason
	}{
		{"never", nil, ReasonNoPermission},
		{"expired", []Event{grant("expired", t0.Add(-30*24*time.Hour))}, ReasonExpired},
		{"rejected", []Event{grant("rejected", t0), revoke("rejected", t0.Add(time.Minute), RevokeRejected)}, ReasonRevoked},
	} {
		if len(tc.events) > 0 {
			f.record(tc.events...)
		}
		d, err := f.tr.CanCall(f.ctx, ch, tc.contact, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.False(t, d.Allowed, tc.contact)
		assert.Equal(t, tc.want, d.Reason, tc.contact)
		assert.True(t, d.RetryAt.IsZero(), "only the user can change this")
	}
}

func TestRequestLimits(t *testing.T) {
	f := newFixture(t, Config{})
	d, err := f.tr.CanRequest(f.ctx, ch, "u", t0)
	require.NoError(t, err)
	assert.True(t, d.Allowed)

	f.record(requestSent("u", "wamid.q1", t0))
	d, err = f.tr.CanRequest(f.ctx, ch, "u", t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, ReasonRequestLimitDay, d.Reason)
	assert.Equal(t, t0.Add(24*time.Hour), d.RetryAt)

	d, err = f.tr.CanRequest(f.ctx, ch, "u", t0.Add(24*time.Hour))
	require.NoError(t, err)
	assert.True(t, d.Allowed, "a day later")
	f.record(requestSent("u", "wamid.q2", t0.Add(24*time.Hour)))

	d, err = f.tr.CanRequest(f.ctx, ch, "u", t0.Add(72*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, ReasonRequestLimitWeek, d.Reason, "two in 7 days")
	assert.Equal(t, t0.Add(7*24*time.Hour), d.RetryAt)

	// A connected call in either direction restarts both windows.
	f.record(inbound("u", "wacid.in", t0.Add(73*time.Hour), true))
	d, err = f.tr.CanRequest(f.ctx, ch, "u", t0.Add(74*time.Hour))
	require.NoError(t, err)
	assert.True(t, d.Allowed, "reset by a connected inbound call")
	f2 := newFixture(t, Config{})
	f2.record(requestSent("v", "wamid.a", t0), requestSent("v", "wamid.b", t0.Add(25*time.Hour)), businessCall("v", "wacid.x", t0.Add(26*time.Hour), true))
	d, err = f2.tr.CanRequest(f2.ctx, ch, "v", t0.Add(27*time.Hour))
	require.NoError(t, err)
	assert.True(t, d.Allowed, "reset by a connected business call")
}

func TestPermanentBlocksRequests(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(permanent("u", t0, SourceProfile))
	d, err := f.tr.CanRequest(f.ctx, ch, "u", t0.Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, d.Allowed)
	assert.Equal(t, ReasonPermanentHeld, d.Reason)
}

func TestUnansweredStreakThenAutomaticRevoke(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("u", t0))
	for i := range 2 {
		f.record(businessCall("u", fmt.Sprintf("wacid.%d", i), t0.Add(time.Duration(i+1)*time.Hour), false))
	}
	x, err := f.tr.Explain(f.ctx, ch, "u", t0.Add(3*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 2, x.Limits.UnansweredStreak)
	assert.Equal(t, 2, x.Limits.CallsBeforeRevoke)
	assert.Equal(t, "2 unanswered in a row: 2 more will revoke permission", x.Limits.Warning)
	p, err := f.tr.Eligible(f.ctx, ch, Query{Now: t0.Add(3 * time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, 2, p.Entries[0].UnansweredStreak)

	// The same call reported again, then as answered by its status: it
	// counts once, as connected, and the streak restarts.
	f.record(businessCall("u", "wacid.1", t0.Add(2*time.Hour), false), businessCall("u", "wacid.1", t0.Add(2*time.Hour+time.Minute), true))
	x, err = f.tr.Explain(f.ctx, ch, "u", t0.Add(3*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 0, x.Limits.UnansweredStreak)
	assert.Equal(t, 99, x.Limits.CallsLeft)

	for i := 2; i < 6; i++ {
		f.record(businessCall("u", fmt.Sprintf("wacid.%d", i), t0.Add(time.Duration(i+2)*time.Hour), false))
	}
	f.record(revoke("u", t0.Add(8*time.Hour), RevokeAutomatic))
	x, err = f.tr.Explain(f.ctx, ch, "u", t0.Add(9*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 0, x.Limits.UnansweredStreak, "the streak restarts at the revocation")
	assert.Equal(t, StatusRevokedAutomatic, x.Status)
	x, err = f.tr.Explain(f.ctx, ch, "u", t0.Add(8*time.Hour-time.Nanosecond))
	require.NoError(t, err)
	assert.Equal(t, 4, x.Limits.UnansweredStreak, "just before Meta's revoke")
	d, err := f.tr.CanCall(f.ctx, ch, "u", t0.Add(9*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, ReasonRevoked, d.Reason)
}

// TestDecisionsNeverExceedCaps: an agent that calls and requests whenever
// the decisions allow never exceeds a cap within any window, whatever
// the timing (property test).
func TestDecisionsNeverExceedCaps(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	lc := LimitsConfig{CallsPerWindow: 3, RequestsPerDay: 1, RequestsPerWeek: 2}
	for iter := range 30 {
		f := newFixture(t, Config{Limits: lc})
		f.record(permanent("u", t0, SourceRequest))
		var calls, requests []time.Time
		now := t0
		for i := range 150 {
			now = now.Add(time.Duration(r.IntN(8*60)) * time.Minute)
			if d, err := f.tr.CanCall(f.ctx, ch, "u", now); err == nil && d.Allowed {
				f.record(businessCall("u", fmt.Sprintf("wacid.%d", i), now, true))
				calls = append(calls, now)
			}
			if d, err := f.tr.CanRequest(f.ctx, "other", "u", now); err == nil && d.Allowed {
				f.record(Event{Type: EventRequestSent, Channel: "other", Contact: "u", ID: fmt.Sprintf("wamid.%d", i), At: now})
				requests = append(requests, now)
			}
		}
		for i := range calls {
			n := 0
			for _, c := range calls[i:] {
				if c.Sub(calls[i]) < 24*time.Hour {
					n++
				}
			}
			require.LessOrEqual(t, n, lc.CallsPerWindow, "iteration %d: calls in 24 h from %s", iter, calls[i])
		}
		for i := range requests {
			day, week := 0, 0
			for _, q := range requests[i:] {
				if q.Sub(requests[i]) < 24*time.Hour {
					day++
				}
				if q.Sub(requests[i]) < 7*24*time.Hour {
					week++
				}
			}
			require.LessOrEqual(t, day, 1, "iteration %d", iter)
			require.LessOrEqual(t, week, 2, "iteration %d", iter)
		}
		require.NotEmpty(t, calls)
		require.NotEmpty(t, requests)
	}
}

// TestUsageMetaCounted: usage a reconciliation recorded (SourceReconcile)
// takes a slot of its limit and does nothing else: a call slot that neither
// resets the request limits nor touches the streak; a request that is not
// pending and is not answered by a reply.
func TestUsageMetaCounted(t *testing.T) {
	f := newFixture(t, Config{Limits: LimitsConfig{CallsPerWindow: 2}})
	f.record(permanent("u", t0, SourceRequest))
	f.record(businessCall("u", "wacid.missed", t0.Add(time.Minute), false))
	call := businessCall("u", "reconcile.start_call.1", t0.Add(time.Hour), true)
	call.Source = SourceReconcile
	f.record(call)
	d, err := f.tr.CanCall(f.ctx, ch, "u", t0.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 1, d.Limits.CallsLeft, "the counted call takes a slot")
	assert.Equal(t, 1, d.Limits.UnansweredStreak, "and is no connected call: the streak stands")
	d, err = f.tr.CanCall(f.ctx, ch, "u", t0.Add(25*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 2, d.Limits.CallsLeft, "the slot frees 24 h after it")

	g := newFixture(t, Config{})
	g.record(grant("v", t0))
	req := requestSent("v", "reconcile.request.1", t0.Add(time.Hour))
	req.Source = SourceReconcile
	g.record(req)
	r, err := g.tr.CanRequest(g.ctx, ch, "v", t0.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 0, r.Limits.RequestsLeftDay)
	assert.Equal(t, 1, r.Limits.RequestsLeftWeek)
	n, err := g.tr.CountPending(ch, t0.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "usage Meta counted is not a pending request")

	// Only SourceReconcile, and only on requests and business calls.
	for _, e := range []Event{
		{Type: EventRequestSent, Channel: ch, Contact: "v", ID: "wamid.2", At: t0, Source: SourceProfile},
		{Type: EventInboundCall, Channel: ch, Contact: "v", ID: "wacid.3", At: t0, Source: SourceReconcile},
	} {
		_, err := g.tr.Record(g.ctx, e)
		assert.ErrorIs(t, err, ErrInvalidEvent, "%s with source %q", e.Type, e.Source)
	}
}
