package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Dialect is the SQL flavour of the database behind a Store.
type Dialect string

const (
	// DialectAuto detects the dialect: first from the driver's type name
	// (modernc.org/sqlite, mattn/go-sqlite3, pgx's stdlib, lib/pq), then by
	// probing the server with sqlite_version() and version().
	DialectAuto Dialect = ""
	// SQLite: SQLite 3.35 or later (for RETURNING and UPSERT).
	SQLite Dialect = "sqlite"
	// Postgres: PostgreSQL 12 or later.
	Postgres Dialect = "postgres"
)

// detect tells the dialect of db.
func detect(ctx context.Context, db *sql.DB) (Dialect, error) {
	name := strings.ToLower(reflect.TypeOf(db.Driver()).String())
	switch {
	case strings.Contains(name, "sqlite"):
		return SQLite, nil
	case strings.Contains(name, "stdlib.driver"), strings.Contains(name, "pq.driver"), strings.Contains(name, "pgx"):
		return Postgres, nil
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err == nil {
		return SQLite, nil
	}
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&v); err == nil && strings.HasPrefix(v, "PostgreSQL") {
		return Postgres, nil
	}
	return "", fmt.Errorf("sqlstore: cannot detect the SQL dialect of driver %s: set Config.Dialect", name)
}

// rebind turns the ? placeholders of q into PostgreSQL's $1, $2, ….
// Queries in this package never hold a literal question mark.
func (d Dialect) rebind(q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// forUpdate is the row-locking suffix of a SELECT. SQLite needs none: its
// write transactions are serialized (BEGIN IMMEDIATE).
func (d Dialect) forUpdate() string {
	if d == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// retryable reports whether err is a PostgreSQL serialization failure
// (40001) or deadlock (40P01), after which the whole transaction may be
// retried. Drivers expose the SQLSTATE through a SQLState method (pgx's
// *pgconn.PgError, lib/pq's *pq.Error), so no driver is imported.
func retryable(err error) bool {
	var s interface{ SQLState() string }
	if !errors.As(err, &s) {
		return false
	}
	switch s.SQLState() {
	case "40001", "40P01":
		return true
	}
	return false
}
