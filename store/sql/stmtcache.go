package sqlstore

import (
	"context"
	"database/sql"
	"iter"
	"slices"
	"strings"
	"sync"
)

// maxCachedStmts bounds the statements a Store keeps prepared. The write
// path needs about 60 texts (pow2Chunks keeps each multi-row statement to
// ten sizes); the rest of the room is for a host's own writes.
const maxCachedStmts = 256

// maxCachedParams bounds the placeholders of a statement kept prepared: a
// larger one (64 ledger rows and more, as bulk loads send) is parsed
// once per that many rows anyway, and its compiled program would be kept
// by every connection that ran it.
const maxCachedParams = 1024

// stmtCache keeps the texts SQLite write transactions run prepared on the
// *sql.DB, so that each connection compiles a statement once instead of
// SQLite parsing it again in every transaction (the parser was an eighth
// of the reference server's CPU). database/sql prepares a cached statement
// lazily on each connection a transaction runs it on.
//
// A text seen for the first time runs unprepared and is prepared after
// that transaction commits: preparing on the *sql.DB needs a free
// connection, and with SetMaxOpenConns(1) the transaction holds the only
// one.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt)}
}

// get returns query's prepared statement, or nil when it has none yet.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

// prepare prepares the queries not yet cached, while room lasts. A query
// that fails to prepare is left out: it already ran (and failed or not)
// in its transaction, and it keeps running unprepared.
func (c *stmtCache) prepare(ctx context.Context, queries []string) {
	for _, q := range queries {
		c.mu.Lock()
		_, have := c.stmts[q]
		full := c.closed || len(c.stmts) >= maxCachedStmts
		c.mu.Unlock()
		if have || full || strings.Count(q, "?") > maxCachedParams {
			continue
		}
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, have := c.stmts[q]; have || c.closed {
			_ = st.Close()
		} else {
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes every cached statement; later prepares keep nothing.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
}

// cachedTx runs a SQLite write transaction's statements through the
// cache, and notes the texts it missed for stmtCache.prepare.
type cachedTx struct {
	tx     *sql.Tx
	cache  *stmtCache
	missed []string
}

// stmt returns query prepared for this transaction: the cached statement
// bound to it, or nil after noting the miss.
func (q *cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := q.cache.get(query); st != nil {
		return q.tx.StmtContext(ctx, st)
	}
	q.missed = append(q.missed, query)
	return nil
}

func (q *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}

// PrepareContext returns the cached statement bound to the transaction,
// or one prepared for the transaction alone (closed with it) on a miss.
func (q *cachedTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st, nil
	}
	return q.tx.PrepareContext(ctx, query)
}

// chunks splits s into the chunks of one multi-row statement each: on
// SQLite by pow2Chunks, on PostgreSQL into as few as limit allows, since
// there each statement is a round trip inside the serialized commit (and
// pgx keeps each text it sees prepared).
func chunks[T any](d Dialect, s []T, limit int) iter.Seq[[]T] {
	if d == Postgres {
		return slices.Chunk(s, limit)
	}
	return pow2Chunks(s, limit)
}

// pow2Chunks splits s into consecutive chunks whose lengths are powers of
// two no larger than limit (itself a power of two), largest first, so that
// the multi-row statements built for them come from a few texts that stay
// prepared: 37 rows are sent as 32, 4 and 1.
func pow2Chunks[T any](s []T, limit int) iter.Seq[[]T] {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			n := limit
			for n > len(s) {
				n /= 2
			}
			if !yield(s[:n:n]) {
				return
			}
			s = s[n:]
		}
	}
}
