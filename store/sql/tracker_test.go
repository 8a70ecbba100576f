package sqlstore_test

import (
	"github.com/callready/callready/internal/pgtest"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
)

// t0 is when the tests' events happen.
var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// target is one database that a test reopens: each open returns a new
// *sql.DB on it, as a restarted process would.
type target struct {
	name   string
	driver string
	dsn    string
	prefix string
}

func sqliteTarget(t testing.TB) target {
	return target{name: "sqlite", driver: "sqlite", dsn: sqliteDSN(filepath.Join(t.TempDir(), "callready.db")), prefix: sqlstore.DefaultTablePrefix}
}

func postgresTarget(t testing.TB) target {
	return target{name: "postgres", driver: "pgx", dsn: pgtest.DSN(t), prefix: freshSchema(t, postgresDB(t))}
}

// targets lists SQLite and, when configured, PostgreSQL.
func targets(t *testing.T, each func(t *testing.T, tg target)) {
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); each(t, sqliteTarget(t)) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); each(t, postgresTarget(t)) })
}

type opened struct {
	db *sql.DB
	st *sqlstore.Store
	tr *permission.Tracker
}

func (o *opened) close() {
	o.tr.Close()
	o.st.Close()
	o.db.Close()
}

func (tg target) open(t testing.TB, clk clock.Clock) *opened {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open(tg.driver, tg.dsn)
	require.NoError(t, err)
	st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
	require.NoError(t, err)
	tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
	require.NoError(t, err)
	o := &opened{db: db, st: st, tr: tr}
	t.Cleanup(o.close)
	return o
}

func grant(contact string, at time.Time, ttl time.Duration) permission.Event {
	e := permission.Event{Type: permission.EventGrant, Channel: "106540352242922", Contact: contact, At: at, ID: "wamid." + contact}
	if ttl == 0 {
		e.Permanent = true
	} else {
		e.ExpiresAt = at.Add(ttl)
	}
	return e
}

func eligible(t testing.TB, tr *permission.Tracker) []string {
	t.Helper()
	p, err := tr.Eligible(context.Background(), "106540352242922", permission.Query{Limit: 1000})
	require.NoError(t, err)
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Contact)
	}
	slices.Sort(out)
	return out
}

// allChanges reads the whole change log.
func allChanges(t testing.TB, st store.Store) []store.Change {
	t.Helper()
	var out []store.Change
	after := int64(0)
	for {
		page, err := st.Changes(context.Background(), after, 100)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Revision
	}
}

func countType(cs []store.Change, typ permission.ChangeType) int {
	n := 0
	for _, c := range cs {
		if c.Type == string(typ) {
			n++
		}
	}
	return n
}

// TestRestart: a tracker reopened on an existing database is immediately
// correct; a grant that expired while it was down is not callable, and its
// expiry is recorded exactly once.
func TestRestart(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		clk := clock.NewMock()
		clk.Set(t0)
		o := tg.open(t, clk)
		_, err := o.tr.Record(ctx, grant("u1", t0, time.Hour), grant("u2", t0, 168*time.Hour), grant("u3", t0, 0))
		require.NoError(t, err)
		require.Equal(t, []string{"u1", "u2", "u3"}, eligible(t, o.tr))
		o.close()

		clk.Set(t0.Add(2 * time.Hour)) // u1 expired while nothing ran
		o = tg.open(t, clk)
		require.Equal(t, []string{"u2", "u3"}, eligible(t, o.tr))
		n, err := o.tr.Sweep(ctx, clk.Now())
		require.NoError(t, err)
		require.Equal(t, 1, n)
		cs := allChanges(t, o.st)
		require.Equal(t, 1, countType(cs, permission.Expired))
		last := cs[len(cs)-1]
		require.Equal(t, string(permission.Expired), last.Type)
		require.Equal(t, "u1", last.Key.Contact)
		require.True(t, t0.Add(time.Hour).Equal(last.At))
		require.Equal(t, last.Revision, o.tr.Revision())
		o.close()

		o = tg.open(t, clk)
		require.Equal(t, []string{"u2", "u3"}, eligible(t, o.tr))
		n, err = o.tr.Sweep(ctx, clk.Now())
		require.NoError(t, err)
		require.Zero(t, n, "the expiry was already recorded")
		require.Len(t, allChanges(t, o.st), len(cs))
	})
}

// TestFailedWriteNotHalfApplied: a Record whose transaction fails in the
// database after its change rows were written keeps neither the changes nor
// any state, and the tracker carries on.
func TestFailedWriteNotHalfApplied(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		clk := clock.NewMock()
		clk.Set(t0)
		o := tg.open(t, clk)
		_, err := o.tr.Record(ctx, grant("u0", t0, time.Hour))
		require.NoError(t, err)
		rev := o.tr.Revision()

		// A trigger makes the pairs write, which follows the change-log
		// write in the same transaction, fail for one contact.
		switch tg.name {
		case "sqlite":
			_, err = o.db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON `+tg.prefix+`pairs
				WHEN NEW.contact = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned pair'); END`)
		case "postgres":
			schema, _, _ := strings.Cut(tg.prefix, ".")
			_, err = o.db.ExecContext(ctx, `CREATE FUNCTION `+schema+`.poison() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.contact = 'poison' THEN RAISE EXCEPTION 'poisoned pair'; END IF; RETURN NEW; END $$`)
			require.NoError(t, err)
			_, err = o.db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON `+tg.prefix+`pairs
				FOR EACH ROW EXECUTE FUNCTION `+schema+`.poison()`)
		}
		require.NoError(t, err)

		_, err = o.tr.Record(ctx, grant("u1", t0, time.Hour), grant("poison", t0, time.Hour))
		require.ErrorContains(t, err, "poisoned pair")
		require.Equal(t, []string{"u0"}, eligible(t, o.tr))
		require.Equal(t, rev, o.tr.Revision())
		_, err = o.st.Get(ctx, store.Key{Channel: "106540352242922", Contact: "u1"})
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Len(t, allChanges(t, o.st), 1)

		// The next write takes the next revision: none was lost or reused.
		ch, err := o.tr.Record(ctx, grant("u1", t0, time.Hour))
		require.NoError(t, err)
		require.Len(t, ch, 1)
		require.Equal(t, rev+1, ch[0].Revision)

		// A fresh tracker sees exactly what the first one does.
		o2 := tg.open(t, clk)
		require.Equal(t, []string{"u0", "u1"}, eligible(t, o2.tr))
		require.Equal(t, rev+1, o2.tr.Revision())
	})
}

// TestPostgresServerDown stops a PostgreSQL server of its own under a
// tracker: writes fail while it is down, nothing committed is lost, and
// writes work again once it is back.
func TestPostgresServerDown(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	dsn := srv.DSN
	tg := target{name: "postgres", driver: "pgx", dsn: dsn, prefix: sqlstore.DefaultTablePrefix}

	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	o := tg.open(t, clk)
	_, err := o.tr.Record(ctx, grant("u1", t0, time.Hour), grant("u2", t0, 0))
	require.NoError(t, err)
	rev := o.tr.Revision()

	srv.Crash(t)
	_, err = o.tr.Record(ctx, grant("u3", t0, time.Hour))
	require.Error(t, err, "a write while the server is down must fail")
	_, err = o.tr.Record(ctx, permission.Event{Type: permission.EventRevoke, Channel: "106540352242922", Contact: "u1", At: t0.Add(time.Minute)})
	require.Error(t, err)
	require.Equal(t, []string{"u1", "u2"}, eligible(t, o.tr), "failed writes do not reach the index")
	require.Equal(t, rev, o.tr.Revision())

	srv.Restart(t)
	// The pool may still hold connections to the old server: each failed
	// attempt discards one. The server is ready, so a few attempts suffice.
	for i := 0; ; i++ {
		_, err = o.tr.Record(ctx, grant("u3", t0, time.Hour))
		if err == nil || i == 4 {
			break
		}
	}
	require.NoError(t, err, "writes work again once the server is back")
	require.Equal(t, []string{"u1", "u2", "u3"}, eligible(t, o.tr))

	// Reopened, the database holds what was committed and nothing else.
	o2 := tg.open(t, clk)
	require.Equal(t, []string{"u1", "u2", "u3"}, eligible(t, o2.tr))
	require.Equal(t, o.tr.Revision(), o2.tr.Revision())
	cs := allChanges(t, o2.st)
	require.Len(t, cs, 3)
	require.Equal(t, 3, countType(cs, permission.Granted))
	for i, c := range cs {
		require.EqualValues(t, i+1, c.Revision)
	}
}

// TestSharedWritersNeverSkip: several stores (as several processes would)
// append to one database while a reader follows the log with "revision >
// last": it must see every committed row, in order, without a gap.
func TestSharedWritersNeverSkip(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		const writers, each = 6, 40
		stores := make([]*sqlstore.Store, writers)
		for i := range stores {
			db, err := sql.Open(tg.driver, tg.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			stores[i], err = sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
			require.NoError(t, err)
		}
		errs := make(chan error, writers+1)
		for w, st := range stores {
			go func() {
				for i := range each {
					err := st.Update(ctx, func(tx store.Tx) error {
						for j := range 1 + i%3 {
							c := store.Change{Type: "granted", Key: store.Key{Channel: "c", Contact: fmt.Sprintf("w%d", w)}, At: t0.Add(time.Duration(j) * time.Second), Kind: "permanent"}
							if _, err := tx.Append(ctx, c); err != nil {
								return err
							}
						}
						return tx.Put(ctx, store.Key{Channel: "c", Contact: fmt.Sprintf("w%d-%d", w, i)}, store.State{})
					})
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		total := 0
		for i := range each {
			total += writers * (1 + i%3)
		}
		reader := stores[0]
		var got []int64
		after := int64(0)
		for done := 0; len(got) < total; {
			page, err := reader.Changes(ctx, after, 7)
			require.NoError(t, err, "a reader following the log must never find a gap")
			for _, c := range page {
				after++
				require.Equal(t, after, c.Revision)
				got = append(got, c.Revision)
			}
			if len(page) == 0 {
				if done == writers {
					break // every writer returned: the log is complete
				}
				select {
				case err := <-errs:
					require.NoError(t, err)
					done++
				default:
				}
			}
		}
		require.Len(t, got, total)
	})
}

func TestNotifier(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		open := func() *sqlstore.Store {
			db, err := sql.Open(tg.driver, tg.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix, PollInterval: 5 * time.Millisecond})
			require.NoError(t, err)
			return st
		}
		a, b := open(), open()
		n, err := store.AsNotifier(a)
		require.NoError(t, err)

		woke := make(chan error, 1)
		go func() { woke <- n.Wait(ctx, 0) }()
		require.NoError(t, b.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Append(ctx, store.Change{Type: "granted", Key: store.Key{Channel: "c", Contact: "u"}, At: t0})
			return err
		}))
		require.NoError(t, <-woke, "Wait sees another store's commit")
		require.NoError(t, n.Wait(ctx, 0), "Wait returns at once when the log is ahead")

		cctx, cancel := context.WithCancel(ctx)
		go func() { woke <- n.Wait(cctx, 1) }()
		cancel()
		require.ErrorIs(t, <-woke, context.Canceled)

		go func() { woke <- n.Wait(ctx, 1) }()
		require.NoError(t, a.Close())
		require.ErrorIs(t, <-woke, store.ErrClosed)
		_, err = a.Get(ctx, store.Key{Channel: "c", Contact: "u"})
		require.ErrorIs(t, err, store.ErrClosed)
		require.ErrorIs(t, a.Update(ctx, func(store.Tx) error { return nil }), store.ErrClosed)
		require.NoError(t, a.Close(), "Close is idempotent")
		require.True(t, errors.Is(n.Wait(ctx, 0), store.ErrClosed))
	})
}

// TestSharedSQLite: two trackers on one SQLite file, each with its own
// pool (as two processes on one machine would), follow each other through
// sqlstore's polling Wait: the trackers' own PollInterval is a minute, so
// only Wait's 10 ms polling can carry the changes within the test's
// timeouts. Expiry is recorded once.
func TestSharedSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	clk := clock.NewMock()
	clk.Set(t0)
	open := func() *permission.Tracker {
		st, err := sqlstore.Open(ctx, openSQLiteDB(t, path), sqlstore.Config{PollInterval: 10 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk, Shared: true, PollInterval: time.Minute})
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		tr.Start()
		return tr
	}
	a, b := open(), open()
	subA, err := a.Subscribe(permission.SubscribeOptions{After: a.Revision()})
	require.NoError(t, err)
	subB, err := b.Subscribe(permission.SubscribeOptions{After: b.Revision()})
	require.NoError(t, err)
	next := func(sub *permission.Subscription) permission.Change {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := sub.Next(tctx)
		require.NoError(t, err)
		return c
	}

	_, err = a.Record(ctx, grant("u1", t0, time.Hour))
	require.NoError(t, err)
	require.Equal(t, "u1", next(subB).Entry.Contact)
	require.Equal(t, []string{"u1"}, eligible(t, b))
	_, err = b.Record(ctx, grant("u2", t0, 0))
	require.NoError(t, err)
	require.Equal(t, "u1", next(subA).Entry.Contact)
	require.Equal(t, "u2", next(subA).Entry.Contact)
	require.Equal(t, "u2", next(subB).Entry.Contact)
	require.Equal(t, []string{"u1", "u2"}, eligible(t, a))

	na, err := a.Sweep(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	nb, err := b.Sweep(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, na+nb, "the expiry is recorded once")
	for _, sub := range []*permission.Subscription{subA, subB} {
		c := next(sub)
		require.Equal(t, permission.Expired, c.Type)
		require.Equal(t, "u1", c.Entry.Contact)
	}
	require.Equal(t, a.Revision(), b.Revision())
}
