package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	want := store.State{Temporary: store.Grant{At: epoch, ExpiresAt: at}, Activity: []store.Activity{{Kind: "request", At: epoch}}}
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, k, want) }))
	got, err := s.Get(ctx, k)
	require.NoError(t, err)
	require.True(t, got.Temporary.At.Equal(epoch) && !got.Temporary.At.IsZero())
	require.True(t, got.Temporary.ExpiresAt.Equal(at))
	require.Equal(t, time.UTC, got.Temporary.ExpiresAt.Location())
	require.True(t, got.Activity[0].At.Equal(epoch))
	require.True(t, got.Permanent.At.IsZero())

	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.Put(ctx, k, store.State{Revoked: store.Revocation{At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}})
	})
	require.ErrorContains(t, err, "outside the storable range")
}
