package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/callready/callready/store"
)

// Querier runs statements inside a Store's write transaction (a *sql.Tx;
// on SQLite its statements run prepared, see PrepareContext).
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	// PrepareContext returns query prepared for this transaction, the same
	// statement for every call with the same query in the transaction (the
	// host writes of one group-committed batch share it, so a row shape
	// written once per webhook is parsed once per batch). On SQLite the
	// Store then keeps the text prepared for later transactions too, up to
	// a few hundred texts. The store closes it when the transaction ends:
	// do not Close it, nor use it after the write returns.
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
	return txQuerier{t}, true
}

// txQuerier is a transaction's Querier: its statements are prepared once
// per transaction and closed with it.
type txQuerier struct{ t *tx }

func (q txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.t.q.ExecContext(ctx, query, args...)
}

func (q txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.t.q.QueryContext(ctx, query, args...)
}

func (q txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.t.q.QueryRowContext(ctx, query, args...)
}

func (q txQuerier) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	t := q.t
	if st := t.stmts[query]; st != nil {
		return st, nil
	}
	p, ok := t.q.(interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	})
	if !ok {
		return nil, fmt.Errorf("sqlstore: %T cannot prepare statements", t.q)
	}
	st, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[query] = st
	return st, nil
}

// closeStmts closes the statements prepared for t, before the transaction
// ends (a statement bound to a cached one only releases its hold on it).
func (t *tx) closeStmts() {
	for _, st := range t.stmts {
		_ = st.Close()
	}
	t.stmts = nil
}
