package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
	sqlstore "github.com/callready/callready/store/sql"
)

// The five wrong answers of the pre-ledger core (issue 12), on every
// store: memory, SQLite and PostgreSQL.

const regCh = "106540352242922"

var day = 24 * time.Hour

// allStores runs each with a function that opens a tracker on one shared
// store (a second call opens a second tracker on the same store).
func allStores(t *testing.T, each func(t *testing.T, open func(clk clock.Clock, shared bool) *permission.Tracker)) {
	trackerOn := func(t *testing.T, st store.Store, clk clock.Clock, shared bool) *permission.Tracker {
		tr, err := permission.New(context.Background(), permission.Config{Store: st, Clock: clk, Shared: shared})
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	t.Run("memory", func(t *testing.T) {
		st := memory.New(memory.Config{})
		each(t, func(clk clock.Clock, shared bool) *permission.Tracker { return trackerOn(t, st, clk, shared) })
	})
	for _, mk := range []func(testing.TB) target{sqliteTarget, postgresTarget} {
		tg := mk(t)
		t.Run(tg.name, func(t *testing.T) {
			db, err := sql.Open(tg.driver, tg.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			st, err := sqlstore.Open(context.Background(), db, sqlstore.Config{TablePrefix: tg.prefix})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			each(t, func(clk clock.Clock, shared bool) *permission.Tracker { return trackerOn(t, st, clk, shared) })
		})
	}
}

func mock(at time.Time) *clock.Mock {
	c := clock.NewMock()
	c.Set(at)
	return c
}

func record(t *testing.T, tr *permission.Tracker, clk *clock.Mock, events ...permission.Event) {
	t.Helper()
	for _, e := range events {
		if e.At.After(clk.Now()) {
			clk.Set(e.At)
		}
	}
	_, err := tr.Record(context.Background(), events...)
	require.NoError(t, err)
}

func listed(t *testing.T, tr *permission.Tracker, now time.Time) map[string]permission.Entry {
	t.Helper()
	p, err := tr.Eligible(context.Background(), regCh, permission.Query{Now: now, Limit: permission.MaxPageSize})
	require.NoError(t, err)
	out := map[string]permission.Entry{}
	for _, e := range p.Entries {
		out[e.Contact] = e
	}
	return out
}

// As-of answers: profile grant on day 0, revoke on day 1, new grant on
// day 5. At day 2 the contact was not callable.
func TestRegressionAsOfIgnoresLaterGrants(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0)
		tr := open(clk, false)
		record(t, tr, clk,
			permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0, Permanent: true, Source: permission.SourceProfile})
		record(t, tr, clk, permission.Event{Type: permission.EventRevoke, Channel: regCh, Contact: "u", At: t0.Add(day), Reason: permission.RevokeProfile})
		record(t, tr, clk, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0.Add(5 * day), ID: "wamid.later"})
		x, err := tr.Explain(context.Background(), regCh, "u", t0.Add(2*day))
		require.NoError(t, err)
		assert.False(t, x.Callable, x.Reason)
		assert.Equal(t, permission.StatusRevokedProfile, x.Status)
		assert.NotContains(t, listed(t, tr, t0.Add(2*day)), "u", "the past listing cites no future grant")
		assert.Contains(t, listed(t, tr, t0.Add(6*day)), "u")
	})
}

// A later, shorter grant never shortens a longer one: a 16-day expiry,
// then a missed call on day 1.
func TestRegressionShorterGrantDoesNotShorten(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0)
		tr := open(clk, false)
		record(t, tr, clk, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0, ExpiresAt: t0.Add(16 * day), ID: "wamid.long"})
		record(t, tr, clk, permission.Event{Type: permission.EventInboundCall, Channel: regCh, Contact: "u", At: t0.Add(day), ID: "wacid.missed"})
		clk.Set(t0.Add(9 * day))
		_, err := tr.Sweep(context.Background(), clk.Now())
		require.NoError(t, err)
		e, ok := listed(t, tr, clk.Now())["u"]
		require.True(t, ok, "still callable on day 9")
		assert.Equal(t, t0.Add(16*day), e.ExpiresAt)
	})
}

// The callback grant of a call ends at Meta's expiration_timestamp, not an
// hour later for an hour-long call.
func TestRegressionCallbackEndsAtMetasExpiry(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0)
		tr := open(clk, false)
		call := "wacid.long"
		metaExpiry := t0.Add(7 * day)
		record(t, tr, clk,
			permission.Event{Type: permission.EventInboundCall, Channel: regCh, Contact: "u", At: t0, ID: call, Connected: true}, // start_time
			permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0.Add(time.Hour), ID: "wamid.auto",
				Source: permission.SourceCallback, Context: call, ExpiresAt: metaExpiry})
		e, ok := listed(t, tr, clk.Now())["u"]
		require.True(t, ok)
		assert.Equal(t, metaExpiry, e.ExpiresAt)
		assert.Equal(t, t0, e.GrantedAt, "the grant starts with the call")
		clk.Set(metaExpiry)
		_, err := tr.Sweep(context.Background(), clk.Now())
		require.NoError(t, err)
		assert.NotContains(t, listed(t, tr, clk.Now()), "u")
	})
}

// The unanswered streak restarts at a revocation: after Meta's automatic
// revoke and a fresh grant there is no warning.
func TestRegressionStreakRestartsAtRevocation(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0)
		tr := open(clk, false)
		record(t, tr, clk, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0, ID: "wamid.g1"})
		for i, id := range []string{"wacid.1", "wacid.2", "wacid.3", "wacid.4"} {
			record(t, tr, clk, permission.Event{Type: permission.EventBusinessCall, Channel: regCh, Contact: "u", At: t0.Add(time.Duration(i+1) * time.Hour), ID: id})
		}
		record(t, tr, clk, permission.Event{Type: permission.EventRevoke, Channel: regCh, Contact: "u", At: t0.Add(5 * time.Hour), Reason: permission.RevokeAutomatic})
		record(t, tr, clk, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0.Add(6 * time.Hour), ID: "wamid.g2"})
		x, err := tr.Explain(context.Background(), regCh, "u", time.Time{})
		require.NoError(t, err)
		require.True(t, x.Callable)
		assert.Zero(t, x.Limits.UnansweredStreak)
		assert.Empty(t, x.Limits.Warning)
		assert.Zero(t, listed(t, tr, clk.Now())["u"].UnansweredStreak)
	})
}

// A change of calls left alone reaches every shared tracker's list: a
// connected business call, then the slot freeing 24 h later.
func TestRegressionSharedTrackersSeeBudgetChanges(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0)
		a, b := open(clk, true), open(clk, true)
		b.Start() // follows a's commits
		ctx := context.Background()
		record(t, a, clk, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: "u", At: t0, ExpiresAt: t0.Add(7 * day), ID: "wamid.g"})
		changes, err := a.Record(ctx, permission.Event{Type: permission.EventBusinessCall, Channel: regCh, Contact: "u", At: t0, ID: "wacid.out", Connected: true})
		require.NoError(t, err)
		require.Len(t, changes, 1)
		assert.Equal(t, permission.Updated, changes[0].Type)
		sub, err := b.Subscribe(permission.SubscribeOptions{Channel: regCh, After: changes[0].Revision - 1})
		require.NoError(t, err)
		defer sub.Close()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := sub.Next(wctx)
		require.NoError(t, err)
		assert.Equal(t, permission.Updated, c.Type)
		assert.Equal(t, 99, c.Entry.CallsLeft)
		require.Eventually(t, func() bool { return listed(t, b, clk.Now())["u"].CallsLeft == 99 }, 10*time.Second, time.Millisecond,
			"the other tracker lists the new budget")

		// The clock frees the slot: a change too, seen by both.
		clk.Set(t0.Add(day))
		_, err = a.Sweep(ctx, clk.Now())
		require.NoError(t, err)
		c, err = sub.Next(wctx)
		require.NoError(t, err)
		assert.Equal(t, permission.Updated, c.Type)
		assert.Equal(t, 100, c.Entry.CallsLeft)
		assert.Equal(t, t0.Add(day), c.At)
	})
}
