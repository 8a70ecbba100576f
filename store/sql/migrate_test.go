package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
)

func TestOpenDetectsDialectAndMigratesOnce(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		db, err := sql.Open(tg.driver, tg.dsn)
		require.NoError(t, err)
		defer db.Close()
		for range 2 { // a second Open finds the schema current
			st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
			require.NoError(t, err)
			require.EqualValues(t, tg.name, st.Dialect())
			require.Equal(t, tg.prefix, st.TablePrefix())
			require.NoError(t, st.Migrate(ctx))
		}
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tg.prefix+"migrations").Scan(&n))
		migs, err := sqlstore.Migrations(sqlstore.Dialect(tg.name), tg.prefix)
		require.NoError(t, err)
		require.Equal(t, len(migs), n)

		// A schema newer than this package is refused.
		_, err = db.ExecContext(ctx, "INSERT INTO "+tg.prefix+"migrations (version, name) VALUES (99, 'future')")
		require.NoError(t, err)
		_, err = sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
		require.ErrorContains(t, err, "newer")
	})
}

// TestHostRunsMigrations: a host applies Migrations with its own tool and
// opens with SkipMigrations.
func TestHostRunsMigrations(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		db, err := sql.Open(tg.driver, tg.dsn)
		require.NoError(t, err)
		defer db.Close()
		_, err = sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix, SkipMigrations: true})
		require.Error(t, err, "SkipMigrations on an empty database")

		migs, err := sqlstore.Migrations(sqlstore.Dialect(tg.name), tg.prefix)
		require.NoError(t, err)
		require.NotEmpty(t, migs)
		require.Contains(t, migs[0].SQL(), tg.prefix+"pairs")
		for _, m := range migs {
			for _, stmt := range m.Statements {
				_, err := db.ExecContext(ctx, stmt)
				require.NoError(t, err, stmt)
			}
		}
		st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix, SkipMigrations: true, Dialect: sqlstore.Dialect(tg.name)})
		require.NoError(t, err)
		require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, store.Key{Channel: "c", Contact: "u"}, store.State{}) }))
	})
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "x.db"))
	for _, p := range []string{"bad-prefix", "a.b.c", "x; DROP TABLE y", "1abc"} {
		_, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: p})
		require.ErrorContains(t, err, "TablePrefix", p)
	}
	_, err := sqlstore.Open(ctx, db, sqlstore.Config{Dialect: "oracle"})
	require.ErrorContains(t, err, "dialect")
	_, err = sqlstore.Open(ctx, nil, sqlstore.Config{})
	require.Error(t, err)
	_, err = sqlstore.Migrations(sqlstore.DialectAuto, "")
	require.Error(t, err)
}

// TestTimes: instants keep nanoseconds, the Unix epoch is not the zero
// time, and instants an int64 of nanoseconds cannot hold are refused.
func TestTimes(t *testing.T) {
	ctx := context.Background()
	s := newSQLite(t, sqlstore.Config{})
	k := store.Key{Channel: "c", Contact: "u"}
	epoch := time.Unix(0, 0)
	at := time.Date(2026, 1, 5, 9, 0, 0, 123456789, time.FixedZone("X", 3600))
	want := store.LedgerEvent{Key: k, Dedupe: "d", Type: "grant", At: epoch, ExpiresAt: at, RecordedAt: at}
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.AppendEvent(ctx, want) }))
	got, err := s.Ledger(ctx, store.LedgerQuery{Channel: "c"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.True(t, got[0].At.Equal(epoch) && !got[0].At.IsZero())
	require.True(t, got[0].ExpiresAt.Equal(at))
	require.Equal(t, time.UTC, got[0].ExpiresAt.Location())

	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.AppendEvent(ctx, store.LedgerEvent{Key: k, Dedupe: "e", At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
	})
	require.ErrorContains(t, err, "outside the storable range")
}

// TestMigrationBringsVersion1Forward: a database written by version 1 (per
// pair slots and activity, no ledger) opens on the current schema; its
// states become migrated ledger rows, and a tracker lists the same
// contacts, with the activity still counted.
func TestMigrationBringsVersion1Forward(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		db, err := sql.Open(tg.driver, tg.dsn)
		require.NoError(t, err)
		defer db.Close()
		migs, err := sqlstore.Migrations(sqlstore.Dialect(tg.name), tg.prefix)
		require.NoError(t, err)
		for _, stmt := range migs[0].Statements {
			_, err := db.ExecContext(ctx, stmt)
			require.NoError(t, err, stmt)
		}
		ns := func(t time.Time) int64 { return t.UnixNano() }
		p := tg.prefix
		for _, q := range []struct {
			sql  string
			args []any
		}{
			// Temporary grant, still running, with a connected business call.
			{`INSERT INTO ` + p + `pairs (channel, contact, temporary_at, temporary_expires_at, temporary_source, temporary_event_id, activity, revision) VALUES ('ch', 'temp', $1, $2, 'request', 'wamid.t', $3, 1)`,
				[]any{ns(t0.Add(-time.Hour)), ns(t0.Add(6 * 24 * time.Hour)), `[{"kind":"call_connected","id":"wacid.c","at":` + strconv.FormatInt(ns(t0.Add(-time.Minute)), 10) + `}]`}},
			// Permanent grant.
			{`INSERT INTO ` + p + `pairs (channel, contact, permanent_at, permanent_source, permanent_event_id, revision) VALUES ('ch', 'perm', $1, 'profile', 'wamid.p', 2)`,
				[]any{ns(t0.Add(-48 * time.Hour))}},
			// Revoked after its grant.
			{`INSERT INTO ` + p + `pairs (channel, contact, temporary_at, temporary_expires_at, temporary_source, revoked_at, revoked_reason, revision) VALUES ('ch', 'gone', $1, $2, 'request', $3, 'rejected', 3)`,
				[]any{ns(t0.Add(-2 * time.Hour)), ns(t0.Add(5 * 24 * time.Hour)), ns(t0.Add(-time.Hour))}},
			{`UPDATE ` + p + `meta SET revision = 3`, nil},
		} {
			stmt := q.sql
			if tg.name == "sqlite" {
				stmt = strings.NewReplacer("$1", "?", "$2", "?", "$3", "?").Replace(stmt)
			}
			_, err := db.ExecContext(ctx, stmt, q.args...)
			require.NoError(t, err, stmt)
		}

		st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
		require.NoError(t, err)
		defer st.Close()
		evs, err := st.Ledger(ctx, store.LedgerQuery{Channel: "ch"})
		require.NoError(t, err)
		require.Len(t, evs, 5, "three grants, one revocation, one call")
		for _, e := range evs {
			require.Equal(t, "migrated", e.Origin)
		}
		clk := clock.NewMock()
		clk.Set(t0)
		tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
		require.NoError(t, err)
		defer tr.Close()
		p2, err := tr.Eligible(ctx, "ch", permission.Query{})
		require.NoError(t, err)
		var got []string
		for _, e := range p2.Entries {
			got = append(got, e.Contact)
		}
		require.Equal(t, []string{"temp", "perm"}, got)
		require.Equal(t, 99, p2.Entries[0].CallsLeft, "the migrated call still counts")
		x, err := tr.Explain(ctx, "ch", "gone", time.Time{})
		require.NoError(t, err)
		require.Equal(t, permission.StatusRejected, x.Status)
		// A second tracker finds the states rebuilt: no change twice.
		rev := tr.Revision()
		tr2, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
		require.NoError(t, err)
		defer tr2.Close()
		require.Equal(t, rev, tr2.Revision())
	})
}
