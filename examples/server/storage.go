package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite", pure Go

	sqlstore "github.com/callready/callready/store/sql"
)

// openDB opens the database named by -db: a postgres:// DSN through pgx,
// anything else as a SQLite file (created when missing).
func openDB(ctx context.Context, dsn string) (db *sql.DB, postgres bool, err error) {
	if isPostgres(dsn) {
		db, err = sql.Open("pgx", dsn)
		postgres = true
	} else {
		db, err = sql.Open("sqlite", sqliteDSN(dsn))
	}
	if err != nil {
		return nil, false, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// database/sql opens lazily: connect now so a wrong DSN fails at start.
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		// Drivers' messages may span lines (pgx lists every address tried).
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return nil, false, fmt.Errorf("cannot open %s: %s", describeDB(dsn), msg)
	}
	return db, postgres, nil
}

// sqliteDSN adds the pragmas every connection of the pool needs: WAL so
// readers never block the writer, synchronous(FULL) so that a webhook
// acknowledged with 200 survives a power loss too (one fsync per group
// commit), a busy timeout so concurrent writers wait instead of failing,
// foreign keys, and statement journals in memory rather than in a
// temporary file per multi-row statement (store/sql's doc).
func sqliteDSN(path string) string {
	if strings.HasPrefix(path, "file:") && strings.Contains(path, "_pragma") {
		return path // the operator chose
	}
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Add("_pragma", "temp_store(MEMORY)")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(path, "file:") {
		path = "file:" + path
	}
	return path + sep + v.Encode()
}

// describeDB names a database for messages without its password.
func describeDB(dsn string) string {
	if !isPostgres(dsn) {
		return "SQLite database " + dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "PostgreSQL database"
	}
	return "PostgreSQL database " + u.Redacted()
}

// openStore opens the permission store on db, creating or upgrading its
// tables (prefix callready_; the inbox's tables use server_).
func openStore(ctx context.Context, db *sql.DB, postgres bool) (*sqlstore.Store, error) {
	d := sqlstore.SQLite
	if postgres {
		d = sqlstore.Postgres
	}
	st, err := sqlstore.Open(ctx, db, sqlstore.Config{Dialect: d})
	if err != nil {
		return nil, fmt.Errorf("permission store: %w", err)
	}
	return st, nil
}
