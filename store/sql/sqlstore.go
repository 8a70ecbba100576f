package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callready/callready/store"
)

// Defaults of Config fields left zero.
const (
	DefaultTablePrefix  = "callready_"
	DefaultRetention    = 1 << 16
	DefaultPollInterval = 250 * time.Millisecond
	DefaultMaxRetries   = 10
)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Dialect of the database. Default DialectAuto: detected from the
	// driver, then by probing the server.
	Dialect Dialect
	// TablePrefix is prepended to every table name, optionally with a
	// schema ("crm.callready_"), so the tables can live in a CRM's own
	// database. Default DefaultTablePrefix ("callready_").
	TablePrefix string
	// Retention is how many of the newest change-log rows are kept; older
	// rows are deleted by the transaction that appends past them, and
	// reading them yields store.ErrCompacted. Default DefaultRetention
	// (65,536).
	Retention int
	// PollInterval is how often Wait reads the latest revision. Default
	// DefaultPollInterval (250 ms).
	PollInterval time.Duration
	// MaxRetries bounds how many times Update retries a transaction that
	// failed with a PostgreSQL serialization failure or deadlock. Default
	// DefaultMaxRetries (10).
	MaxRetries int
	// SkipMigrations makes Open check that the schema is current instead of
	// migrating it, for hosts that run Migrations with their own tool.
	SkipMigrations bool
}

// Store is a store.Store on a *sql.DB. It is safe for concurrent use. It
// does not own the *sql.DB: closing the Store leaves the database open.
type Store struct {
	db        *sql.DB
	dialect   Dialect
	prefix    string
	retention int64
	poll      time.Duration
	retries   int

	// SQLite allows one writer at a time: writers of this Store queue here
	// instead of spinning in SQLite's busy handler.
	wsem chan struct{}
	// stmts keeps SQLite's write statements prepared (nil on PostgreSQL,
	// where pgx caches prepared statements itself).
	stmts *stmtCache

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once

	// Queries, built once for the dialect and prefix.
	qMetaLock, qMetaRead, qMetaSet, qPrune, qGet, qTxGet, qLoad, qChanges string

	notifyChannel string // PostgreSQL: NOTIFY channel of committed changes

	an analyzer // PostgreSQL: ANALYZE as the ledger grows (analyze.go)
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Notifier  = (*Store)(nil)
	_ store.GetManyTx = (*tx)(nil)
)

// Open returns a Store on db, detecting the dialect if cfg.Dialect is
// DialectAuto, and migrates the schema (or, with cfg.SkipMigrations, checks
// that it is current).
func Open(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	prefix, err := checkPrefix(cfg.TablePrefix)
	if err != nil {
		return nil, err
	}
	d := cfg.Dialect
	switch d {
	case DialectAuto:
		if d, err = detect(ctx, db); err != nil {
			return nil, err
		}
	case SQLite, Postgres:
	default:
		return nil, fmt.Errorf("sqlstore: unknown dialect %q", d)
	}
	s := &Store{
		db: db, dialect: d, prefix: prefix,
		retention: int64(orDefault(cfg.Retention, DefaultRetention)),
		poll:      orDefault(cfg.PollInterval, DefaultPollInterval),
		retries:   orDefault(cfg.MaxRetries, DefaultMaxRetries),
		wsem:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.notifyChannel = notifyChannel(prefix)
	p := prefix
	s.qMetaRead = "SELECT revision FROM " + p + "meta WHERE id = 1"
	s.qMetaLock = s.qMetaRead + d.forUpdate()
	if d == SQLite {
		// A write as the transaction's first statement takes SQLite's
		// write lock before anything is read.
		s.qMetaLock = "UPDATE " + p + "meta SET revision = revision WHERE id = 1 RETURNING revision"
		s.stmts = newStmtCache(db)
	}
	s.qMetaSet = d.rebind("UPDATE " + p + "meta SET revision = ? WHERE id = 1")
	s.qPrune = d.rebind("DELETE FROM " + p + "changes WHERE revision <= ?")
	s.qGet = d.rebind("SELECT " + stateCols + " FROM " + p + "pairs WHERE channel = ? AND contact = ?")
	s.qTxGet = s.qGet + d.forUpdate()
	s.qLoad = "SELECT channel, contact, " + stateCols + " FROM " + p + "pairs"
	s.qChanges = d.rebind("SELECT " + changeCols + " FROM " + p + "changes WHERE revision > ? ORDER BY revision LIMIT ?")

	if d == SQLite {
		// WAL lets readers run while one writer commits. It is a property
		// of the database file, so setting it once here is enough; an
		// in-memory database keeps its "memory" journal.
		if _, err := db.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
			return nil, fmt.Errorf("sqlstore: enabling WAL: %w", err)
		}
	}
	if cfg.SkipMigrations {
		err = s.checkSchema(ctx)
	} else {
		err = s.Migrate(ctx)
	}
	if err != nil {
		return nil, err
	}
	if d == Postgres {
		if err := s.startAnalyzer(ctx); err != nil {
			return nil, fmt.Errorf("sqlstore: reading the ledger's size: %w", err)
		}
	}
	return s, nil
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Dialect returns the dialect in use.
func (s *Store) Dialect() Dialect { return s.dialect }

// TablePrefix returns the table-name prefix in use.
func (s *Store) TablePrefix() string { return s.prefix }

// NotifyChannel returns the PostgreSQL NOTIFY channel on which every
// transaction that appends changes announces, at commit, its last revision
// (as decimal text). It is derived from the table prefix: lowercased, with
// "changes" appended ("callready_" → "callready_changes"); when the prefix
// names a schema or the name would pass 63 bytes, the dot becomes an
// underscore, the name is cut to 54 bytes and a hash of the prefix is
// appended ("crm.callready_" → "crm_callready_changes_" + 8 hex digits),
// so two prefixes never share a channel in practice. The result is a valid
// identifier of at most 63 bytes. SQLite sends no notification.
func (s *Store) NotifyChannel() string { return s.notifyChannel }

func notifyChannel(prefix string) string {
	p := strings.ToLower(prefix) // unquoted identifiers fold to lower case
	name := strings.ReplaceAll(p, ".", "_") + "changes"
	if !strings.Contains(p, ".") && len(name) <= 63 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(p))
	return fmt.Sprintf("%s_%08x", name[:min(len(name), 54)], h.Sum32())
}

// Done returns a channel closed when the Store is closed, for wrappers
// that implement Wait differently (package pglisten).
func (s *Store) Done() <-chan struct{} { return s.done }

// Close makes later calls fail with store.ErrClosed, wakes Wait callers
// and, on SQLite, waits for the write in flight to end before closing the
// statements it kept prepared. It does not close the *sql.DB. It is
// idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.an.wg.Wait() // an ANALYZE in flight ends with s.done
		if s.stmts != nil {
			// Wait for the write in flight, which may be using them.
			s.wsem <- struct{}{}
			s.stmts.close()
			<-s.wsem
		}
	})
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// querier is what *sql.Tx and *sql.Conn (inside a manual BEGIN) share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in one write transaction and commits it if fn returns nil.
//
// On SQLite the transaction starts with BEGIN IMMEDIATE on a dedicated
// connection, whatever the DSN's _txlock: it takes the write lock up front,
// so a reader can never fail to upgrade to a writer with SQLITE_BUSY
// halfway through. On PostgreSQL it is a READ COMMITTED transaction: the
// lock on the meta row (see tx.begin) serializes writers, and each
// statement after it sees what earlier writers committed.
func (s *Store) inTx(ctx context.Context, fn func(q querier) error) error {
	return s.write(ctx, fn, func() error { return s.onConn(ctx, "BEGIN IMMEDIATE", "COMMIT", fn) })
}

// updateTx is inTx for Update, the hot path. On SQLite it is a *sql.Tx
// whose statements run prepared (stmtCache), and fn's first statement
// must write (tx.begin's UPDATE of the meta row): a write takes the lock
// before anything is read, as BEGIN IMMEDIATE would, whatever the DSN's
// _txlock.
func (s *Store) updateTx(ctx context.Context, fn func(q querier) error) error {
	return s.write(ctx, fn, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlstore: begin: %w", err)
		}
		q := &cachedTx{tx: tx, cache: s.stmts}
		if err := commitAfter(tx, q, fn); err != nil {
			return err
		}
		s.stmts.prepare(ctx, q.missed)
		return nil
	})
}

// write runs fn in a PostgreSQL transaction, or runs sqlite (fn in a
// SQLite transaction) in this Store's single writer slot.
func (s *Store) write(ctx context.Context, fn func(q querier) error, sqlite func() error) error {
	if s.dialect == Postgres {
		return s.postgresTx(ctx, fn)
	}
	select {
	case s.wsem <- struct{}{}:
		defer func() { <-s.wsem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	return sqlite()
}

// postgresTx runs fn in a READ COMMITTED transaction.
func (s *Store) postgresTx(ctx context.Context, fn func(q querier) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	return commitAfter(tx, tx, fn)
}

// commitAfter runs fn on q, tx's querier, and commits tx if fn returns
// nil (else rolls it back).
func commitAfter(tx *sql.Tx, q querier, fn func(q querier) error) error {
	if err := fn(q); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// onConn runs fn between begin and end statements on one connection of
// the pool (SQLite only), rolling back when fn or end fails.
func (s *Store) onConn(ctx context.Context, begin, end string, fn func(q querier) error) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: connection: %w", err)
	}
	defer func() {
		if err != nil {
			// Roll back even when ctx is done; a connection left inside a
			// transaction must not go back to the pool.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr != nil {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		_ = conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("sqlstore: %s: %w", strings.ToLower(begin), err)
	}
	if err := fn(conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, end); err != nil {
		return fmt.Errorf("sqlstore: %s: %w", strings.ToLower(end), err)
	}
	return nil
}

// readTx runs fn in a read-only transaction that sees one snapshot:
// REPEATABLE READ on PostgreSQL, a deferred transaction on SQLite (WAL
// readers see the database as of their first read).
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	if s.dialect == Postgres {
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return fmt.Errorf("sqlstore: begin: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		return fn(tx)
	}
	return s.onConn(ctx, "BEGIN", "COMMIT", fn)
}

// Update runs fn in one database transaction: the states it puts and the
// changes it appends commit together or not at all. On PostgreSQL a
// serialization failure or deadlock retries the whole transaction, up to
// Config.MaxRetries times.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		events := 0
		err := s.updateTx(ctx, func(q querier) error {
			t := &tx{s: s, q: q, puts: make(map[store.Key]*put)}
			defer t.closeStmts()
			if err := t.begin(ctx); err != nil {
				return err
			}
			if err := fn(t); err != nil {
				return err
			}
			events = len(t.events)
			return t.flush(ctx)
		})
		if err == nil {
			s.wrote(events)
		}
		if err == nil || s.dialect != Postgres || attempt >= s.retries || !retryable(err) {
			return err
		}
		// Back off a little, with jitter, so that retried writers spread out.
		d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return err
		}
	}
}

// Get returns the committed state of one pair.
func (s *Store) Get(ctx context.Context, k store.Key) (store.State, error) {
	if err := s.check(ctx); err != nil {
		return store.State{}, err
	}
	return getState(ctx, s.db, s.qGet, k)
}

func getState(ctx context.Context, q querier, query string, k store.Key) (store.State, error) {
	var r stateRow
	err := q.QueryRowContext(ctx, query, k.Channel, k.Contact).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return store.State{}, fmt.Errorf("sqlstore: %s/%s: %w", k.Channel, k.Contact, store.ErrNotFound)
	}
	if err != nil {
		return store.State{}, fmt.Errorf("sqlstore: reading %s/%s: %w", k.Channel, k.Contact, err)
	}
	return r.state()
}

// Load reads every pair and the latest revision from one snapshot. fn runs
// while the read transaction is open: it must not write to this Store
// (on SQLite with a one-connection pool it would wait forever).
func (s *Store) Load(ctx context.Context, fn func(store.Key, store.State) error) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var rev int64
	err := s.readTx(ctx, func(q querier) error {
		if err := q.QueryRowContext(ctx, s.qMetaRead).Scan(&rev); err != nil {
			return fmt.Errorf("sqlstore: reading the revision: %w", err)
		}
		return scanPairs(ctx, q, "loading pairs", s.qLoad, nil, fn)
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// Changes returns up to limit change-log rows after a revision. Revisions
// are contiguous (a rolled-back transaction gives its revisions back), so
// a first row other than after+1 means that revision was pruned.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, s.qChanges, after, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
		}
		if len(out) == 0 && c.Revision != after+1 {
			return nil, fmt.Errorf("sqlstore: revision %d: %w (oldest kept is %d)", after+1, store.ErrCompacted, c.Revision)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
	}
	return out, nil
}

// Wait implements store.Notifier by polling the latest revision every
// Config.PollInterval, so it also sees commits of other processes.
func (s *Store) Wait(ctx context.Context, after int64) error {
	var timer *time.Timer
	for {
		if err := s.check(ctx); err != nil {
			return err
		}
		var rev int64
		if err := s.db.QueryRowContext(ctx, s.qMetaRead).Scan(&rev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("sqlstore: reading the revision: %w", err)
		}
		if rev > after {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(s.poll)
			defer timer.Stop()
		} else {
			timer.Reset(s.poll)
		}
		select {
		case <-timer.C:
		case <-s.done:
			return store.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// put is a state written by a Tx, kept until flush.
type put struct {
	state store.State
	args  []any
}

// tx buffers puts and appends and writes them in a few multi-row
// statements when fn returns, to save round trips.
type tx struct {
	s       *Store
	q       querier
	puts    map[store.Key]*put
	order   []store.Key // puts in first-write order
	changes [][]any
	events  [][]any                     // ledger rows to insert
	added   map[store.EventRef]struct{} // their dedupe keys
	base    int64                       // revision when the transaction began
	rev     int64                       // last revision assigned
	stmts   map[string]*sql.Stmt        // prepared by host writes (TxQuerier)
}

// begin locks the meta row and reads the latest revision. The lock is
// held until commit, so every writer appends after the previous one
// committed: revisions commit in increasing order, and a reader that sees
// revision n also sees every revision below n.
func (t *tx) begin(ctx context.Context) error {
	if err := t.q.QueryRowContext(ctx, t.s.qMetaLock).Scan(&t.base); err != nil {
		return fmt.Errorf("sqlstore: locking the revision counter: %w", err)
	}
	t.rev = t.base
	return nil
}

func (t *tx) Get(ctx context.Context, k store.Key) (store.State, error) {
	if p, ok := t.puts[k]; ok {
		return cloneState(p.state), nil
	}
	return getState(ctx, t.q, t.s.qTxGet, k)
}

// getManyChunk bounds the keys of one GetMany statement (two bound
// parameters each); a power of two for pow2Chunks (SQLite).
const getManyChunk = 512

// GetMany reads the pairs among keys, up to getManyChunk keys per SELECT,
// locking the rows FOR UPDATE on PostgreSQL like Get (SQLite's write
// transaction is already exclusive). Pairs put earlier in the transaction
// come from the buffer.
//
// On SQLite it is a WHERE (channel, contact) IN (…). On PostgreSQL each
// key is looked up alone (a LATERAL subquery with LIMIT 1 beside a VALUES
// list): the planner, left to itself with the statistics of a table that
// grew since the last ANALYZE, scanned every pair of the channel for an
// IN list, 2 ms per batch of 32 webhooks at 20,000 pairs.
func (t *tx) GetMany(ctx context.Context, keys []store.Key) (map[store.Key]store.State, error) {
	out := make(map[store.Key]store.State, len(keys))
	var missing []store.Key
	for _, k := range keys {
		if p, ok := t.puts[k]; ok {
			out[k] = cloneState(p.state)
		} else {
			missing = append(missing, k)
		}
	}
	s := t.s
	for chunk := range chunks(s.dialect, missing, getManyChunk) {
		var b strings.Builder
		args := make([]any, 0, 2*len(chunk))
		if s.dialect == Postgres {
			b.WriteString("SELECT p.* FROM (VALUES ")
			for i, k := range chunk {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "($%d::text,$%d::text)", 2*i+1, 2*i+2)
				args = append(args, k.Channel, k.Contact)
			}
			b.WriteString(") AS k(channel, contact) CROSS JOIN LATERAL (SELECT channel, contact, " + stateCols + " FROM " + s.prefix +
				"pairs WHERE channel = k.channel AND contact = k.contact LIMIT 1 FOR UPDATE) p")
		} else {
			b.WriteString("SELECT channel, contact, " + stateCols + " FROM " + s.prefix + "pairs WHERE (channel, contact) IN (")
			for i, k := range chunk {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?,?)")
				args = append(args, k.Channel, k.Contact)
			}
			b.WriteByte(')')
		}
		if err := t.getMany(ctx, b.String(), args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *tx) getMany(ctx context.Context, query string, args []any, out map[store.Key]store.State) error {
	return scanPairs(ctx, t.q, "reading pairs", query, args, func(k store.Key, st store.State) error {
		out[k] = st
		return nil
	})
}

// scanPairs runs a query selecting channel, contact and the state columns,
// and calls fn for each row.
func scanPairs(ctx context.Context, q querier, what, query string, args []any, fn func(store.Key, store.State) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	defer rows.Close()
	var k store.Key
	var r stateRow
	dest := append([]any{&k.Channel, &k.Contact}, r.dest()...)
	for rows.Next() {
		r = stateRow{}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("sqlstore: %s: %w", what, err)
		}
		st, err := r.state()
		if err != nil {
			return err
		}
		if err := fn(k, st); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	return nil
}

func (t *tx) Put(ctx context.Context, k store.Key, st store.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	args, err := pairArgs(k, &st)
	if err != nil {
		return fmt.Errorf("sqlstore: put %s/%s: %w", k.Channel, k.Contact, err)
	}
	if _, ok := t.puts[k]; !ok {
		t.order = append(t.order, k)
	}
	t.puts[k] = &put{state: cloneState(st), args: args}
	return nil
}

func (t *tx) Append(ctx context.Context, c store.Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.Revision = t.rev + 1
	args, err := changeArgs(&c)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: append: %w", err)
	}
	t.rev = c.Revision
	t.changes = append(t.changes, args)
	return c.Revision, nil
}

// Rows per multi-row statement: well under SQLite's 32,766 and
// PostgreSQL's 65,535 bound parameters, and powers of two for pow2Chunks (SQLite).
const (
	pairChunk   = 256
	changeChunk = 512
	ledgerChunk = 512
)

// ledgerConflict makes a redelivered event a no-op.
const ledgerConflict = " ON CONFLICT (channel, dedupe) DO NOTHING"

func (t *tx) flush(ctx context.Context) error {
	s := t.s
	if s.dialect == Postgres && len(t.changes) <= changeChunk && len(t.order) <= pairChunk && len(t.events) <= ledgerChunk {
		return t.flushOne(ctx)
	}
	for rows := range chunks(s.dialect, t.events, ledgerChunk) {
		q := insertSQL(s.dialect, s.prefix+"ledger", ledgerCols, numLedgerCols, len(rows), ledgerConflict)
		if _, err := t.q.ExecContext(ctx, q, flatten(rows)...); err != nil {
			return fmt.Errorf("sqlstore: appending to the ledger: %w", err)
		}
	}
	for rows := range chunks(s.dialect, t.changes, changeChunk) {
		q := insertSQL(s.dialect, s.prefix+"changes", changeCols, numChangeCols, len(rows), "")
		if _, err := t.q.ExecContext(ctx, q, flatten(rows)...); err != nil {
			return fmt.Errorf("sqlstore: appending changes: %w", err)
		}
	}
	if len(t.order) > 0 {
		for chunk := range chunks(s.dialect, t.pairRows(), pairChunk) {
			q := insertSQL(s.dialect, s.prefix+"pairs", pairCols, numPairCols, len(chunk), upsertPairs)
			if _, err := t.q.ExecContext(ctx, q, flatten(chunk)...); err != nil {
				return fmt.Errorf("sqlstore: writing pairs: %w", err)
			}
		}
	}
	if t.rev == t.base {
		return nil
	}
	if _, err := t.q.ExecContext(ctx, s.qMetaSet, t.rev); err != nil {
		return fmt.Errorf("sqlstore: advancing the revision: %w", err)
	}
	if cut := t.rev - s.retention; cut > 0 {
		if _, err := t.q.ExecContext(ctx, s.qPrune, cut); err != nil {
			return fmt.Errorf("sqlstore: pruning changes: %w", err)
		}
	}
	if s.dialect == Postgres {
		if _, err := t.q.ExecContext(ctx, "SELECT pg_notify($1, $2)", s.notifyChannel, strconv.FormatInt(t.rev, 10)); err != nil {
			return fmt.Errorf("sqlstore: notifying: %w", err)
		}
	}
	return nil
}

// flushOne writes everything in one PostgreSQL statement, saving round
// trips: the ledger rows, the change rows, the counter, the pruning and the pairs upsert
// are data-modifying CTEs of a SELECT pg_notify(…). They touch different
// rows, so their shared snapshot does not matter.
func (t *tx) flushOne(ctx context.Context) error {
	s := t.s
	var b strings.Builder
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	values := func(rows [][]any) {
		for i, r := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j, v := range r {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(arg(v))
			}
			b.WriteByte(')')
		}
	}
	if t.rev == t.base && len(t.events) == 0 {
		if len(t.order) == 0 {
			return nil
		}
		b.WriteString("INSERT INTO " + s.prefix + "pairs (" + pairCols + ") VALUES ")
		values(t.pairRows())
		b.WriteString(upsertPairs)
	} else if t.rev == t.base {
		b.WriteString("WITH l AS (INSERT INTO " + s.prefix + "ledger (" + ledgerCols + ") VALUES ")
		values(t.events)
		b.WriteString(ledgerConflict + ")")
		if len(t.order) > 0 {
			b.WriteString(" INSERT INTO " + s.prefix + "pairs (" + pairCols + ") VALUES ")
			values(t.pairRows())
			b.WriteString(upsertPairs)
		} else {
			b.WriteString(" SELECT 1")
		}
	} else {
		b.WriteString("WITH ")
		if len(t.events) > 0 {
			b.WriteString("l AS (INSERT INTO " + s.prefix + "ledger (" + ledgerCols + ") VALUES ")
			values(t.events)
			b.WriteString(ledgerConflict + "), ")
		}
		b.WriteString("c AS (INSERT INTO " + s.prefix + "changes (" + changeCols + ") VALUES ")
		values(t.changes)
		b.WriteString("), m AS (UPDATE " + s.prefix + "meta SET revision = " + arg(t.rev) + " WHERE id = 1)")
		if cut := t.rev - s.retention; cut > 0 {
			b.WriteString(", d AS (DELETE FROM " + s.prefix + "changes WHERE revision <= " + arg(cut) + ")")
		}
		if len(t.order) > 0 {
			b.WriteString(", p AS (INSERT INTO " + s.prefix + "pairs (" + pairCols + ") VALUES ")
			values(t.pairRows())
			b.WriteString(upsertPairs + ")")
		}
		// NOTIFY is queued with the transaction and delivered at commit
		// only; the data-modifying CTEs run although nothing reads them.
		b.WriteString(" SELECT pg_notify(" + arg(s.notifyChannel) + ", " + arg(strconv.FormatInt(t.rev, 10)) + ")")
	}
	q := b.String()
	if _, err := t.q.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("sqlstore: writing pairs and changes: %w", err)
	}
	return nil
}

// pairRows returns the encoded puts in first-write order.
func (t *tx) pairRows() [][]any {
	rows := make([][]any, len(t.order))
	for i, k := range t.order {
		rows[i] = t.puts[k].args
	}
	return rows
}

// upsertPairs replaces every non-key column of an existing pair.
var upsertPairs = func() string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (channel, contact) DO UPDATE SET ")
	for i, c := range strings.Split(stateCols, ", ") {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c + " = excluded." + c)
	}
	return b.String()
}()

// insertSQL builds a multi-row INSERT of n rows.
func insertSQL(d Dialect, table, cols string, ncols, n int, tail string) string {
	var b strings.Builder
	b.Grow(len(table) + len(cols) + n*(ncols*5+4) + len(tail) + 32)
	b.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES ")
	arg := 0
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range ncols {
			if j > 0 {
				b.WriteByte(',')
			}
			arg++
			if d == Postgres {
				fmt.Fprintf(&b, "$%d", arg)
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(tail)
	return b.String()
}

func flatten(rows [][]any) []any {
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	out := make([]any, 0, n)
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func cloneState(st store.State) store.State {
	st.Data = slices.Clone(st.Data)
	return st
}
