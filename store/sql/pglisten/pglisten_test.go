package pglisten_test

import (
	"github.com/callready/callready/internal/pgtest"

	"context"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/sql/pglisten"
)

// allChanges reads the whole change log.
func allChanges(t testing.TB, st store.Store) []store.Change {
	t.Helper()
	var out []store.Change
	after := int64(0)
	for {
		page, err := st.Changes(context.Background(), after, 500)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Revision
	}
}

// drain reads a subscriber until it delivered revision last, checking that
// revisions come in order and that none repeats.
func drain(t testing.TB, sub *permission.Subscription, last int64) []int64 {
	t.Helper()
	var got []int64
	for sub.Revision() < last {
		c := next(t, sub)
		if len(got) > 0 {
			require.Greater(t, c.Revision, got[len(got)-1], "revisions in order, each once")
		}
		got = append(got, c.Revision)
	}
	return got
}

func TestNotifyChannel(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	prefix := freshPrefix(t, dsn)
	sq, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix})
	require.NoError(t, err)
	defer sq.Close()
	name := sq.NotifyChannel()
	assert.LessOrEqual(t, len(name), 63)
	assert.Regexp(t, `^[a-z_][a-z0-9_]*$`, name)
	assert.NotEqual(t, "l_x_callready_changes", name, "a schema-qualified prefix gets a hash suffix")

	_, err = pglisten.New(ctx, sq, pglisten.Config{})
	require.Error(t, err, "ConnString is required")
}

// TestWait checks the store.Notifier contract: a commit by another store
// wakes Wait, a rolled-back transaction does not, cancellation and Close
// end it.
func TestWait(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	a := openInstance(t, dsn, prefix, mockClock(t0), options{noStart: true})
	b := openInstance(t, dsn, prefix, mockClock(t0), options{noStart: true, polling: true})
	appendOne := func(fail error) error {
		return b.sq.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.Append(ctx, store.Change{Type: "granted", Key: store.Key{Channel: "c", Contact: "u"}, At: t0}); err != nil {
				return err
			}
			return fail
		})
	}

	woke := make(chan error, 1)
	go func() { woke <- a.ls.Wait(ctx, 0) }()
	require.NoError(t, appendOne(nil))
	require.NoError(t, <-woke, "a commit elsewhere wakes Wait")
	require.NoError(t, a.ls.Wait(ctx, 0), "Wait returns at once when a greater revision is known")

	boom := errors.New("boom")
	require.ErrorIs(t, appendOne(boom), boom)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, a.ls.Wait(short, 1), context.DeadlineExceeded, "a rolled-back transaction notifies nothing")

	// A batch too large for one statement notifies too.
	go func() { woke <- a.ls.Wait(ctx, 1) }()
	require.NoError(t, b.sq.Update(ctx, func(tx store.Tx) error {
		for i := range 600 {
			if _, err := tx.Append(ctx, store.Change{Type: "granted", Key: store.Key{Channel: "c", Contact: fmt.Sprint(i)}, At: t0}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, <-woke)

	cctx, cancel := context.WithCancel(ctx)
	go func() { woke <- a.ls.Wait(cctx, 601) }()
	cancel()
	require.ErrorIs(t, <-woke, context.Canceled)

	go func() { woke <- a.ls.Wait(ctx, 601) }()
	require.NoError(t, a.ls.Close())
	require.ErrorIs(t, <-woke, store.ErrClosed)
	require.NoError(t, a.ls.Close(), "Close is idempotent")
	require.ErrorIs(t, a.ls.Wait(ctx, 0), store.ErrClosed)
}

// TestGrantAppearsEverywhere: a grant recorded on A reaches B's and C's
// lists and subscribers through NOTIFY (their polling interval is a
// minute).
func TestGrantAppearsEverywhere(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	clk := mockClock(t0)
	a := openInstance(t, dsn, prefix, clk, options{})
	b := openInstance(t, dsn, prefix, clk, options{})
	c := openInstance(t, dsn, prefix, clk, options{})
	subB, err := b.tr.Subscribe(permission.SubscribeOptions{Channel: ch, After: b.tr.Revision()})
	require.NoError(t, err)
	subC, err := c.tr.Subscribe(permission.SubscribeOptions{After: c.tr.Revision()})
	require.NoError(t, err)

	changes, err := a.tr.Record(ctx, grant("u1", t0, 24*time.Hour))
	require.NoError(t, err)
	require.Len(t, changes, 1)
	for _, sub := range []*permission.Subscription{subB, subC} {
		got := next(t, sub)
		assert.Equal(t, permission.Granted, got.Type)
		assert.Equal(t, changes[0].Revision, got.Revision)
		assert.Equal(t, "u1", got.Entry.Contact)
	}
	for _, in := range []*instance{b, c} {
		assert.Equal(t, []string{"u1"}, contacts(listing(t, in.tr, ch, time.Time{})))
		assert.Equal(t, changes[0].Revision, in.tr.Revision())
	}

	// And back: B's revocation reaches A and C.
	subA, err := a.tr.Subscribe(permission.SubscribeOptions{After: a.tr.Revision()})
	require.NoError(t, err)
	_, err = b.tr.Record(ctx, permission.Event{Type: permission.EventRevoke, Channel: ch, Contact: "u1", At: t0.Add(time.Minute), Reason: permission.RevokeRejected})
	require.NoError(t, err)
	assert.Equal(t, permission.Revoked, next(t, subA).Type)
	assert.Equal(t, permission.Revoked, next(t, subC).Type)
	assert.Empty(t, listing(t, a.tr, ch, time.Time{}))
	assert.Empty(t, listing(t, c.tr, ch, time.Time{}))
}

// TestConcurrentWritersConverge: writers on three instances record the
// same random events, shuffled, duplicated and batched differently. Every
// instance ends with the same lists, equal to what the store says, and
// each instance's subscriber delivered every change of the log exactly
// once, in revision order.
func TestConcurrentWritersConverge(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	clk := mockClock(t0.Add(48 * time.Hour))
	var ins []*instance
	var subs []*permission.Subscription
	for range 3 {
		in := openInstance(t, dsn, prefix, clk, options{subBuffer: 1 << 20})
		sub, err := in.tr.Subscribe(permission.SubscribeOptions{After: in.tr.Revision()})
		require.NoError(t, err)
		ins, subs = append(ins, in), append(subs, sub)
	}
	start := ins[0].tr.Revision()

	events := randomEvents(mrand.New(mrand.NewPCG(11, 12)), 200)
	var wg sync.WaitGroup
	for i, in := range ins {
		for w := range 3 { // three writers per instance: group commit mixes them
			r := mrand.New(mrand.NewPCG(uint64(i), uint64(w)))
			mine := shuffledWithDuplicates(r, events)
			wg.Go(func() {
				for len(mine) > 0 {
					n := min(1+r.IntN(3), len(mine))
					_, err := in.tr.Record(ctx, mine[:n]...)
					assert.NoError(t, err)
					mine = mine[n:]
				}
			})
		}
	}
	wg.Wait()

	log := allChanges(t, ins[0].sq)
	require.NotEmpty(t, log)
	last := log[len(log)-1].Revision
	var want []int64
	for _, c := range log {
		switch permission.ChangeType(c.Type) {
		case permission.Scheduled: // index-only: never delivered
			continue
		case permission.ChangePending, permission.ChangePendingEnded: // only to subscribers that ask for them
			continue
		}
		if c.Revision > start {
			want = append(want, c.Revision)
		}
	}
	for i := range ins {
		assert.Equal(t, want, drain(t, subs[i], last), "instance %d delivered every change once, in order", i)
		assert.Equal(t, last, ins[i].tr.Revision())
	}
	agree(t, dsn, prefix, clk.Now(), ins...)
}

// agree checks that every instance lists the same entries as a tracker
// freshly loaded from the store, and that each pair's Explain (read from
// the store) says callable exactly when it is listed.
func agree(t *testing.T, dsn, prefix string, now time.Time, ins ...*instance) {
	t.Helper()
	ref := openInstance(t, dsn, prefix, mockClock(now), options{noStart: true, polling: true})
	ctx := context.Background()
	for _, channel := range []string{ch, "106540352242923"} {
		want := listing(t, ref.tr, channel, now)
		listed := map[string]bool{}
		for _, e := range want {
			listed[e.Contact] = true
		}
		for i, in := range ins {
			assert.Equal(t, want, listing(t, in.tr, channel, now), "instance %d lists what the store says on %s", i, channel)
		}
		for n := range 12 {
			contact := fmt.Sprintf("c%d", n)
			for i, in := range ins {
				x, err := in.tr.Explain(ctx, channel, contact, now)
				require.NoError(t, err)
				assert.Equal(t, listed[contact], x.Callable, "instance %d: %s/%s", i, channel, contact)
			}
		}
	}
}

// TestLateInstanceCatchesUp: an instance opened after writes starts from
// the store's state and follows from there.
func TestLateInstanceCatchesUp(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	clk := mockClock(t0)
	a := openInstance(t, dsn, prefix, clk, options{})
	for i := range 30 {
		_, err := a.tr.Record(ctx, grant(fmt.Sprintf("u%02d", i), t0, time.Duration(i+1)*time.Hour))
		require.NoError(t, err)
	}
	late := openInstance(t, dsn, prefix, clk, options{})
	require.Equal(t, a.tr.Revision(), late.tr.Revision())
	require.Equal(t, listing(t, a.tr, ch, time.Time{}), listing(t, late.tr, ch, time.Time{}))

	// A subscriber of the late instance replays the log from any retained
	// revision, then follows live.
	sub, err := late.tr.Subscribe(permission.SubscribeOptions{After: 10})
	require.NoError(t, err)
	_, err = a.tr.Record(ctx, grant("u99", t0, 0))
	require.NoError(t, err)
	got := drain(t, sub, a.tr.Revision())
	require.Len(t, got, 21)
	require.Contains(t, contacts(listing(t, late.tr, ch, time.Time{})), "u99")
}

// TestFallBehindRetentionRelists: an instance that misses more changes
// than the log retains rebuilds its index from the store, and its
// subscribers end with ErrResync.
func TestFallBehindRetentionRelists(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	clk := mockClock(t0)
	a := openInstance(t, dsn, prefix, clk, options{retention: 4})
	b := openInstance(t, dsn, prefix, clk, options{retention: 4, noStart: true}) // not following yet
	sub, err := b.tr.Subscribe(permission.SubscribeOptions{After: b.tr.Revision()})
	require.NoError(t, err)
	for i := range 10 {
		_, err := a.tr.Record(ctx, grant(fmt.Sprintf("u%d", i), t0, 0))
		require.NoError(t, err)
	}
	b.tr.Start()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = sub.Next(tctx)
	require.ErrorIs(t, err, permission.ErrResync)
	require.Len(t, listing(t, b.tr, ch, time.Time{}), 10)
	require.Equal(t, a.tr.Revision(), b.tr.Revision())

	// Re-subscribed from the rebuilt list, it follows again.
	sub, err = b.tr.Subscribe(permission.SubscribeOptions{After: b.tr.Revision()})
	require.NoError(t, err)
	_, err = a.tr.Record(ctx, grant("u10", t0, 0))
	require.NoError(t, err)
	require.Equal(t, "u10", next(t, sub).Entry.Contact)
}

// TestExpiryRecordedOnce: each instance sweeps with its own clock; the
// expiry is written to the shared log once and reaches every instance.
func TestExpiryRecordedOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	var ins []*instance
	var subs []*permission.Subscription
	for range 3 {
		in := openInstance(t, dsn, prefix, mockClock(t0), options{})
		sub, err := in.tr.Subscribe(permission.SubscribeOptions{After: in.tr.Revision()})
		require.NoError(t, err)
		ins, subs = append(ins, in), append(subs, sub)
	}
	_, err := ins[0].tr.Record(ctx, grant("u1", t0, time.Hour))
	require.NoError(t, err)
	for _, sub := range subs {
		require.Equal(t, permission.Granted, next(t, sub).Type)
	}

	var total atomic.Int64
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Go(func() {
			n, err := in.tr.Sweep(ctx, t0.Add(time.Hour))
			assert.NoError(t, err)
			total.Add(int64(n))
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, total.Load(), "one expiry recorded, not one per instance")
	log := allChanges(t, ins[0].sq)
	require.Len(t, log, 2)
	assert.Equal(t, string(permission.Expired), log[1].Type)
	assert.Equal(t, "u1", log[1].Key.Contact)
	for i, sub := range subs {
		c := next(t, sub)
		assert.Equal(t, permission.Expired, c.Type, "instance %d", i)
		assert.Equal(t, log[1].Revision, c.Revision)
		assert.Empty(t, listing(t, ins[i].tr, ch, t0.Add(time.Hour)))
	}
}

// TestHealthCheck: quiet periods longer than HealthInterval ping the
// connection instead of dropping it, and notifications still arrive.
func TestHealthCheck(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	prefix := freshPrefix(t, dsn)
	w := openInstance(t, dsn, prefix, mockClock(t0), options{noStart: true, polling: true})
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	sq, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix})
	require.NoError(t, err)
	ls, err := pglisten.New(ctx, sq, pglisten.Config{ConnString: dsn, HealthInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	defer ls.Close()

	quiet, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // about 15 health checks
	defer cancel()
	require.ErrorIs(t, ls.Wait(quiet, 0), context.DeadlineExceeded)
	_, err = w.tr.Record(ctx, grant("u1", t0, 0))
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, ls.Wait(wctx, 0))
	require.EqualValues(t, 1, ls.Connects(), "health checks keep the connection")
}
