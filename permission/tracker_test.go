package permission

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

func TestExpiryBoundaryIsExact(t *testing.T) {
	f := newFixture(t, Config{})
	exp := t0.Add(168 * time.Hour)
	f.record(Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0, ExpiresAt: exp})
	assert.Equal(t, []string{"u1"}, f.callable(exp.Add(-time.Nanosecond)), "callable 1 ns before expiry")
	assert.Empty(t, f.callable(exp), "not callable at expiry")

	n, err := f.tr.Sweep(f.ctx, exp.Add(-time.Nanosecond))
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = f.tr.Sweep(f.ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = f.tr.Sweep(f.ctx, exp.Add(time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "an expiry is recorded once")

	x, err := f.tr.Explain(f.ctx, ch, "u1", exp)
	require.NoError(t, err)
	assert.False(t, x.Callable)
	assert.Equal(t, StatusExpired, x.Status)
	assert.Equal(t, exp, x.Since)
}

func TestDefaultTTLWithoutExpiration(t *testing.T) {
	f := newFixture(t, Config{TTL: 48 * time.Hour})
	c := f.record(grant("u1", t0))
	require.Len(t, c, 1)
	assert.Equal(t, t0.Add(48*time.Hour), c[0].Entry.ExpiresAt)
}

func TestPermanentNeverExpires(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(permanent("u1", t0, SourceProfile))
	far := t0.Add(10 * 365 * 24 * time.Hour)
	n, err := f.tr.Sweep(f.ctx, far)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, []string{"u1"}, f.callable(far))
	x, err := f.tr.Explain(f.ctx, ch, "u1", far)
	require.NoError(t, err)
	assert.Equal(t, StatusPermanent, x.Status)
	assert.Equal(t, SourceProfile, x.Entry.Source)
}

func TestMissedInboundCallGrantsCallback(t *testing.T) {
	f := newFixture(t, Config{})
	at := t0.Add(time.Hour)
	c := f.record(inbound("u1", "wacid.1", at, false))
	require.Equal(t, []ChangeType{Granted}, types(c))
	assert.Equal(t, SourceInboundCall, c[0].Entry.Source)
	assert.Equal(t, at.Add(DefaultTTL), c[0].Entry.ExpiresAt)

	// Meta's automatic reply for the same call merges: one entry, not two,
	// now confirmed as a callback grant with Meta's exact expiry.
	c = f.record(Event{Type: EventGrant, Channel: ch, Contact: "u1", At: at, ID: "wamid.r", Source: SourceCallback, ExpiresAt: at.Add(DefaultTTL)})
	require.Equal(t, []ChangeType{Extended}, types(c))
	assert.Equal(t, SourceCallback, c[0].Entry.Source)
	assert.Equal(t, []string{"u1"}, f.callable(at))

	// The call webhook arriving again changes nothing.
	assert.Empty(t, f.record(inbound("u1", "wacid.1", at, false)))
}

func TestCallbackSwitchedOffPerChannel(t *testing.T) {
	f := newFixture(t, Config{})
	require.NoError(t, f.tr.SetCallbackPermission(f.ctx, ch, CallbackDisabled, t0))
	assert.Empty(t, f.record(inbound("u1", "wacid.1", t0, false)))
	assert.Empty(t, f.callable(t0))
	require.NoError(t, f.tr.SetCallbackPermission(f.ctx, ch, CallbackEnabled, t0.Add(time.Second)))
	c := f.record(inbound("u1", "wacid.2", t0.Add(time.Minute), false))
	require.Len(t, c, 1)
	assert.True(t, c[0].Entry.Unconfirmed, "a call alone is unconfirmed")
	// Meta's reply confirms it.
	c = f.record(Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0.Add(time.Minute + time.Second), ID: "wamid.auto",
		Source: SourceCallback, Context: "wacid.2", ExpiresAt: t0.Add(DefaultTTL)})
	require.Len(t, c, 1)
	assert.False(t, c[0].Entry.Unconfirmed)
	// A call while disabled is granted once Meta's reply for it arrives.
	_, err := f.tr.Record(f.ctx, inbound("u2", "wacid.3", t0.Add(500*time.Millisecond), false)) // disabled then
	require.NoError(t, err)
	assert.NotContains(t, f.callable(f.clk.Now()), "u2")
}

// The setting is decided by event time, whatever the order: a DISABLED
// setting that arrives late, older than a call, withdraws the call's
// unconfirmed grant; an ENABLED one that arrives late grants it.
func TestCallbackSettingIsOrderIndependent(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{After: f.tr.Revision()})
	require.NoError(t, err)
	defer sub.Close()
	f.record(inbound("u1", "wacid.1", t0.Add(time.Hour), false))
	assert.Equal(t, []string{"u1"}, f.callable(f.clk.Now()), "unknown setting: listed at once")
	assert.Equal(t, Granted, next(t, sub).Type)

	require.NoError(t, f.tr.SetCallbackPermission(f.ctx, ch, CallbackDisabled, t0))
	assert.Empty(t, f.callable(f.clk.Now()), "disabled before the call: no callback grant")
	assert.Equal(t, Revoked, next(t, sub).Type)

	require.NoError(t, f.tr.SetCallbackPermission(f.ctx, ch, CallbackEnabled, t0.Add(30*time.Minute)))
	assert.Equal(t, []string{"u1"}, f.callable(f.clk.Now()), "enabled again before the call")
	assert.Equal(t, Granted, next(t, sub).Type)

	// The same setting events in another order give the same answer.
	g := newFixture(t, Config{})
	g.clk.Set(f.clk.Now())
	require.NoError(t, g.tr.SetCallbackPermission(g.ctx, ch, CallbackEnabled, t0.Add(30*time.Minute)))
	g.record(inbound("u1", "wacid.1", t0.Add(time.Hour), false))
	require.NoError(t, g.tr.SetCallbackPermission(g.ctx, ch, CallbackDisabled, t0))
	assert.Equal(t, f.callable(f.clk.Now()), g.callable(g.clk.Now()))
	x, err := g.tr.Explain(g.ctx, ch, "u1", time.Time{})
	require.NoError(t, err)
	assert.True(t, x.Callable)
	assert.True(t, x.Entry.Unconfirmed)
}

func TestConfirmedCallbacksOnly(t *testing.T) {
	f := newFixture(t, Config{ConfirmedCallbacksOnly: true})
	assert.Empty(t, f.record(inbound("u1", "wacid.1", t0, true)), "a call alone lists nothing")
	c := f.record(Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0.Add(time.Second), ID: "wamid.auto",
		Source: SourceCallback, Context: "wacid.1", ExpiresAt: t0.Add(DefaultTTL)})
	require.Len(t, c, 1)
	assert.Equal(t, t0, c[0].Entry.GrantedAt, "confirmed: from the call's start")
	assert.False(t, c[0].Entry.Unconfirmed)
}

func TestRevocationOrdering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []Event
		want   Status
	}{
		{"late accept does not resurrect newer reject", []Event{revoke("u", t0.Add(time.Hour), RevokeRejected), grant("u", t0)}, StatusRejected},
		{"late reject ends older grant", []Event{grant("u", t0), revoke("u", t0.Add(time.Hour), RevokeRejected)}, StatusRejected},
		{"grant after reject wins", []Event{revoke("u", t0, RevokeRejected), grant("u", t0.Add(time.Hour))}, StatusTemporary},
		{"reject at the same second wins", []Event{grant("u", t0), revoke("u", t0, RevokeRejected)}, StatusRejected},
		{"profile off ends permanent", []Event{permanent("u", t0, SourceProfile), revoke("u", t0.Add(time.Hour), RevokeProfile)}, StatusRevokedProfile},
		{"automatic revoke", []Event{grant("u", t0), revoke("u", t0.Add(time.Hour), RevokeAutomatic)}, StatusRevokedAutomatic},
		{"permanent after revoke", []Event{revoke("u", t0, RevokeAutomatic), permanent("u", t0.Add(time.Hour), SourceRequest)}, StatusPermanent},
		{"permanent outlives temporary", []Event{permanent("u", t0, SourceRequest), grant("u", t0.Add(time.Hour))}, StatusPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.record(tc.events...)
			x, err := f.tr.Explain(f.ctx, ch, "u", t0.Add(2*time.Hour))
			require.NoError(t, err)
			assert.Equal(t, tc.want, x.Status, x.Reason)
			assert.Equal(t, tc.want == StatusTemporary || tc.want == StatusPermanent, x.Callable)
			assert.NotEmpty(t, x.Evidence)
		})
	}
}

func TestChangeSequence(t *testing.T) {
	f := newFixture(t, Config{})
	c1 := f.record(grant("u", t0))
	c2 := f.record(grant("u", t0.Add(24*time.Hour)))
	c3 := f.record(revoke("u", t0.Add(48*time.Hour), RevokeRejected))
	c4 := f.record(grant("u", t0)) // late duplicate-ish: older than the revoke
	assert.Equal(t, []ChangeType{Granted}, types(c1))
	assert.Equal(t, []ChangeType{Extended}, types(c2))
	assert.Equal(t, []ChangeType{Revoked}, types(c3))
	assert.Empty(t, c4)
	assert.Less(t, c1[0].Revision, c2[0].Revision)
	assert.Less(t, c2[0].Revision, c3[0].Revision)
	assert.Equal(t, c3[0].Revision, f.tr.Revision())
}

func TestRecordAfterUnsweptExpiryReportsExpiryFirst(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("u", t0))
	f.clk.Set(t0.Add(8 * 24 * time.Hour))
	c := f.record(grant("u", t0.Add(8*24*time.Hour)))
	assert.Equal(t, []ChangeType{Expired, Granted}, types(c))
	assert.Equal(t, t0.Add(DefaultTTL), c[0].At)
	n, err := f.tr.Sweep(f.ctx, t0.Add(30*24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the new grant is left to expire")
}

func TestLateGrantAlreadyOverIsSilent(t *testing.T) {
	f := newFixture(t, Config{})
	f.clk.Set(t0.Add(30 * 24 * time.Hour))
	assert.Empty(t, f.record(grant("u", t0)), "a grant that ended before it arrived changes nothing visible")
	n, err := f.tr.Sweep(f.ctx, f.clk.Now())
	require.NoError(t, err)
	assert.Zero(t, n, "and is never reported as expired")
	x, err := f.tr.Explain(f.ctx, ch, "u", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, StatusExpired, x.Status)
}

func TestInvalidEventsStoreNothing(t *testing.T) {
	f := newFixture(t, Config{})
	bad := []Event{
		{Type: EventGrant, Contact: "u", At: t0},
		{Type: EventGrant, Channel: ch, At: t0},
		{Type: EventGrant, Channel: ch, Contact: "u"},
		{Type: EventGrant, Channel: ch, Contact: "u", At: t0, ExpiresAt: t0.Add(-time.Second)},
		{Type: EventGrant, Channel: ch, Contact: "u", At: t0, ExpiresAt: t0},
		{Type: EventGrant, Channel: ch, Contact: "u", At: t0, Permanent: true, ExpiresAt: t0.Add(time.Hour)},
		{Type: EventGrant, Channel: ch, Contact: "u", At: t0, Source: "carrier pigeon"},
		{Type: EventRevoke, Channel: ch, Contact: "u", At: t0, Reason: "bored"},
		{Type: EventInboundCall, Channel: ch, Contact: "u", At: t0},
		{Type: 99, Channel: ch, Contact: "u", At: t0},
		{Type: EventGrant, Channel: ch, Contact: "u", At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Type: EventGrant, Channel: ch, Contact: "u", At: t0, ExpiresAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, e := range bad {
		// A valid event in the same call is not recorded either.
		_, err := f.tr.Record(f.ctx, grant("ok", t0), e)
		require.ErrorIs(t, err, ErrInvalidEvent, "%+v", e)
	}
	_, err := f.store.Get(f.ctx, store.Key{Channel: ch, Contact: "ok"})
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Zero(t, f.tr.Revision())
}

func TestEligibleOrdersAndPages(t *testing.T) {
	f := newFixture(t, Config{})
	// u0..u9 granted an hour apart; p1, p2 permanent.
	for i := range 10 {
		f.record(grant("u"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Hour)))
	}
	f.record(permanent("p1", t0.Add(30*time.Minute), SourceProfile), permanent("p2", t0.Add(90*time.Minute), SourceRequest))
	now := t0.Add(10 * time.Hour)

	assert.Equal(t, []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "p2", "p1"}, f.callable(now))

	var recent []string
	q := Query{Now: now, Order: OrderRecent, Limit: 5}
	for {
		p, err := f.tr.Eligible(f.ctx, ch, q)
		require.NoError(t, err)
		for _, e := range p.Entries {
			recent = append(recent, e.Contact)
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	assert.Equal(t, []string{"u9", "u8", "u7", "u6", "u5", "u4", "u3", "u2", "p2", "u1", "p1", "u0"}, recent)

	// Only those expiring within 3 hours of now: u0..u2 expire at t0+168h+i.
	p, err := f.tr.Eligible(f.ctx, ch, Query{Now: t0.Add(168*time.Hour - time.Minute), ExpiringWithin: 2 * time.Hour})
	require.NoError(t, err)
	var soon []string
	for _, e := range p.Entries {
		soon = append(soon, e.Contact)
	}
	assert.Equal(t, []string{"u0", "u1"}, soon)

	// A cursor from one order is refused by the other.
	p, err = f.tr.Eligible(f.ctx, ch, Query{Now: now, Limit: 1})
	require.NoError(t, err)
	_, err = f.tr.Eligible(f.ctx, ch, Query{Now: now, Order: OrderRecent, Cursor: p.NextCursor})
	require.ErrorIs(t, err, ErrBadCursor)
	_, err = f.tr.Eligible(f.ctx, ch, Query{Cursor: "!!"})
	require.ErrorIs(t, err, ErrBadCursor)

	nCallable, nSoon, _ := f.tr.Count(ch, now, 0)
	assert.Equal(t, 12, nCallable)
	assert.Zero(t, nSoon)
	nCallable, nSoon, _ = f.tr.Count(ch, t0.Add(168*time.Hour-time.Minute), 2*time.Hour)
	assert.Equal(t, 12, nCallable)
	assert.Equal(t, 2, nSoon, "u0 and u1 expire within 2 h")
	nCallable, _, _ = f.tr.Count(ch, t0.Add(200*time.Hour), 0)
	assert.Equal(t, 2, nCallable, "expired, not yet swept: not counted")
	assert.Equal(t, []string{ch}, f.tr.Channels())

	// Unknown channel: empty, not an error.
	p, err = f.tr.Eligible(f.ctx, "nope", Query{})
	require.NoError(t, err)
	assert.Empty(t, p.Entries)
}

func TestChannelsAreSeparate(t *testing.T) {
	f := newFixture(t, Config{})
	other := Event{Type: EventGrant, Channel: "other", Contact: "u1", At: t0}
	f.record(grant("u1", t0), other, revoke("u1", t0.Add(time.Hour), RevokeRejected))
	p, err := f.tr.Eligible(f.ctx, "other", Query{Now: t0.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1, "a revoke on one channel leaves the other alone")
	assert.Empty(t, f.callable(t0.Add(2*time.Hour)))
}

func TestRestartRebuildsIndex(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("short", t0), Event{Type: EventGrant, Channel: ch, Contact: "long", At: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}, permanent("perm", t0, SourceProfile))
	require.NoError(t, f.tr.Close())

	f.clk.Set(t0.Add(10 * 24 * time.Hour))
	tr2, err := New(f.ctx, Config{Store: f.store, Clock: f.clk})
	require.NoError(t, err)
	defer tr2.Close()
	p, err := tr2.Eligible(f.ctx, ch, Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 2)
	assert.Equal(t, "long", p.Entries[0].Contact)
	assert.Equal(t, "perm", p.Entries[1].Contact)
	assert.Equal(t, f.tr.Revision(), tr2.Revision())
	n, err := tr2.Sweep(f.ctx, f.clk.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the grant that expired while down is recorded once")

	tr3, err := New(f.ctx, Config{Store: f.store, Clock: f.clk})
	require.NoError(t, err)
	defer tr3.Close()
	n, err = tr3.Sweep(f.ctx, f.clk.Now())
	require.NoError(t, err)
	assert.Zero(t, n)
}

// failingStore fails every Update while fail is set.
type failingStore struct {
	*memory.Store
	fail bool
}

var errDown = errors.New("database down")

func (s *failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if s.fail {
		return errDown
	}
	return s.Store.Update(ctx, fn)
}

func TestStoreFailureAppliesNothing(t *testing.T) {
	fs := &failingStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: fs})
	f.record(grant("u1", t0))
	fs.fail = true
	_, err := f.tr.Record(f.ctx, grant("u2", t0), revoke("u1", t0.Add(time.Minute), RevokeRejected))
	require.ErrorIs(t, err, errDown)
	assert.Equal(t, []string{"u1"}, f.callable(t0.Add(time.Hour)), "the index is untouched by a failed write")
	fs.fail = false
	c := f.record(grant("u2", t0), revoke("u1", t0.Add(time.Minute), RevokeRejected))
	assert.Equal(t, []ChangeType{Granted, Revoked}, types(c))
}

func TestClosed(t *testing.T) {
	f := newFixture(t, Config{})
	require.NoError(t, f.tr.Close())
	require.NoError(t, f.tr.Close(), "Close is idempotent")
	_, err := f.tr.Record(f.ctx, grant("u", t0))
	require.ErrorIs(t, err, ErrClosed)
	_, err = f.tr.Subscribe(SubscribeOptions{})
	require.ErrorIs(t, err, ErrClosed)
	f.tr.Start() // no effect after Close
}

func TestCancelledRecord(t *testing.T) {
	f := newFixture(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either not recorded (ctx error) or recorded: never a half state.
	_, err := f.tr.Record(ctx, grant("u", t0))
	if err != nil {
		require.ErrorIs(t, err, context.Canceled)
	}
}

func TestNewNeedsStore(t *testing.T) {
	_, err := New(context.Background(), Config{})
	require.Error(t, err)
}

// ambiguousStore commits, then reports a failure: what a database does when
// the connection drops after COMMIT reached it.
type ambiguousStore struct {
	*memory.Store
	lie bool
}

func (s *ambiguousStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := s.Store.Update(ctx, fn); err != nil {
		return err
	}
	if s.lie {
		s.lie = false
		return errDown
	}
	return nil
}

func TestCommitReportedFailedIsCaughtUp(t *testing.T) {
	as := &ambiguousStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: as})
	sub, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	as.lie = true
	_, err = f.tr.Record(f.ctx, grant("u1", t0))
	require.ErrorIs(t, err, errDown)
	assert.Empty(t, f.callable(t0), "the tracker believes the write failed")

	// The next write reveals the revision gap: the tracker reads the log.
	f.record(grant("u2", t0))
	assert.ElementsMatch(t, []string{"u1", "u2"}, f.callable(t0))
	assert.Equal(t, "u1", next(t, sub).Entry.Contact)
	assert.Equal(t, "u2", next(t, sub).Entry.Contact)
	assert.Equal(t, int64(2), f.tr.Revision())
}
