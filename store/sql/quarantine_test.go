package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

func TestQuarantineConformance(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		webhooktest.RunQuarantine(t, func(t *testing.T, cfg webhook.QuarantineConfig) webhook.Quarantine {
			return newSQLite(t, sqlstore.Config{}).Quarantine(cfg)
		})
	})
	t.Run("sqlite, schema-qualified prefix", func(t *testing.T) {
		webhooktest.RunQuarantine(t, func(t *testing.T, cfg webhook.QuarantineConfig) webhook.Quarantine {
			return newSQLite(t, sqlstore.Config{TablePrefix: "main.cr_"}).Quarantine(cfg)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		webhooktest.RunQuarantine(t, func(t *testing.T, cfg webhook.QuarantineConfig) webhook.Quarantine {
			return newPostgres(t, sqlstore.Config{}).Quarantine(cfg) // schema-qualified prefix
		})
	})
}

func TestQuarantineLenAndClose(t *testing.T) {
	ctx := context.Background()
	s := newSQLite(t, sqlstore.Config{})
	q := s.Quarantine(webhook.QuarantineConfig{})
	require.NoError(t, q.Put(ctx, []webhook.QuarantinedItem{{Path: "a", Error: "e", Raw: []byte(`{"a":1}`)}, {Path: "b", Error: "e", Raw: []byte(`{"b":1}`)}}))
	n, err := q.Len(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	s.Close()
	require.Error(t, q.Put(ctx, nil))
	_, _, err = q.List(ctx, "", 1)
	require.Error(t, err)
}

// TestMigrationsAppliedOutOfOrder: a database that ran a higher version
// first (a branch's migration) gets the lower one it lacks, and a database
// with all versions is current whatever the order they ran in. This is the
// case of the ledger's version 2 arriving after the quarantine's 3.
func TestMigrationsAppliedOutOfOrder(t *testing.T) {
	ctx := context.Background()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "gap.db"))
	migs, err := sqlstore.Migrations(sqlstore.SQLite, "")
	require.NoError(t, err)
	require.Greater(t, len(migs), 1)
	for i := 1; i < len(migs); i++ {
		require.Greater(t, migs[i].Version, migs[i-1].Version, "versions increase")
	}
	// Only the quarantine's migration (3, which depends on none of the
	// others) has run (it needs the migrations table).
	_, err = db.ExecContext(ctx, "CREATE TABLE callready_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
	require.NoError(t, err)
	var last sqlstore.Migration
	for _, m := range migs {
		if m.Version == 3 {
			last = m
		}
	}
	require.NotEmpty(t, last.Statements)
	for _, stmt := range last.Statements {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	_, err = sqlstore.Open(ctx, db, sqlstore.Config{SkipMigrations: true})
	require.ErrorContains(t, err, "has not run", "SkipMigrations notices the missing lower version")
	st, err := sqlstore.Open(ctx, db, sqlstore.Config{})
	require.NoError(t, err)
	st.Close()
	versions := appliedVersions(t, db)
	require.Len(t, versions, len(migs))
	st, err = sqlstore.Open(ctx, db, sqlstore.Config{SkipMigrations: true})
	require.NoError(t, err, "all versions present: current")
	st.Close()
}

func appliedVersions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query("SELECT version FROM callready_migrations ORDER BY version")
	require.NoError(t, err)
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	return vs
}
