package sqlstore

import (
	"context"
	"database/sql"

	"github.com/callready/callready/store"
)

// Querier runs statements inside a Store's write transaction: a *sql.Tx
// on PostgreSQL, the *sql.Conn holding BEGIN IMMEDIATE on SQLite.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	// PrepareContext prepares a statement for this transaction only: a
	// host that writes many rows of one shape in a batch parses it once.
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// TxQuerier returns the database transaction beneath stx, a store.Tx of a
// Store's Update (as permission.HostWrite receives it), so a host's own
// rows commit or roll back with the tracker's: statements run through it
// are part of the same transaction. It reports false for a transaction of
// another store.
//
// Statements use the database's own placeholders (? on SQLite, $1 on
// PostgreSQL). On PostgreSQL a failed statement aborts the transaction:
// return its error rather than carrying on. Do not keep the Querier after
// the write returns, and do not use the *sql.DB meanwhile for writes (on
// SQLite they would wait for the lock this transaction holds).
func TxQuerier(stx store.Tx) (Querier, bool) {
	t, ok := stx.(*tx)
	if !ok {
		return nil, false
	}
	q, ok := t.q.(Querier) // *sql.Tx or *sql.Conn: both are
	return q, ok
}
