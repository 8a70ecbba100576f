package sqlstore_test

import (
	"github.com/callready/callready/internal/pgtest"

	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	sqlstore "github.com/callready/callready/store/sql"
)

// sqliteDSN is the DSN doc.go recommends for modernc.org/sqlite.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
}

func openSQLiteDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// newSQLite returns a store on a fresh database file.
func newSQLite(t testing.TB, cfg sqlstore.Config) *sqlstore.Store {
	t.Helper()
	db := openSQLiteDB(t, filepath.Join(t.TempDir(), "callready.db"))
	s, err := sqlstore.Open(context.Background(), db, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

var pgPools sync.Map // DSN → *sql.DB, shared by the tests of this binary

func postgresDB(t testing.TB) *sql.DB {
	t.Helper()
	dsn := pgtest.DSN(t)
	if db, ok := pgPools.Load(dsn); ok {
		return db.(*sql.DB)
	}
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	if prev, loaded := pgPools.LoadOrStore(dsn, db); loaded {
		db.Close()
		return prev.(*sql.DB)
	}
	return db
}

// freshSchema creates a schema of its own for one test, dropped at
// cleanup, and returns a table prefix inside it: tests run in parallel and
// can be re-run against the same database.
func freshSchema(t testing.TB, db *sql.DB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	_, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	return schema + ".callready_"
}

// newPostgres returns a store on fresh tables of the test server.
func newPostgres(t testing.TB, cfg sqlstore.Config) *sqlstore.Store {
	t.Helper()
	db := postgresDB(t)
	cfg.TablePrefix = freshSchema(t, db)
	s, err := sqlstore.Open(context.Background(), db, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}
