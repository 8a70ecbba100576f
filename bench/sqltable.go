package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// EnvPostgres names the variable holding the DSN of a PostgreSQL database
// the benchmarks may create schemas in (scripts/pg.sh start prints it).
const EnvPostgres = "CALLREADY_TEST_POSTGRES"

// SQLiteDSN is the DSN the store/sql tests use for modernc.org/sqlite: WAL,
// synchronous=NORMAL and a busy timeout.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
}

// SQLTable is the indexed-table alternative: one row per grant, an index on
// (channel, expires_at, contact), and a keyset query per page view:
//
//	SELECT contact, expires_at FROM grants
//	WHERE channel = ? AND expires_at > ? ORDER BY expires_at, contact LIMIT 50
//
// and after a cursor (the last row of the previous page):
//
//	... WHERE channel = ? AND expires_at >= ? AND (expires_at, contact) > (?, ?)
//	ORDER BY expires_at, contact LIMIT 50
//
// where the first bound is max(now+1ns, the cursor's expiry): with
// "expires_at > now" instead, SQLite starts its index range at now and
// filters every row up to the cursor (a page deep in a 1M listing then
// costs ~0.2 s); PostgreSQL plans both forms as one range.
type SQLTable struct {
	db       *sql.DB
	pg       bool
	table    string
	cleanup  func()
	page     *sql.Stmt
	after    *sql.Stmt
	upsert   *sql.Stmt
	expireQ  string
	bulkRows int
}

// NewSQLiteTable creates the table in a new database file under dir.
func NewSQLiteTable(ctx context.Context, dir string) (*SQLTable, error) {
	path := filepath.Join(dir, "grants-"+randHex()+".db")
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, err
	}
	t := &SQLTable{db: db, table: "grants", bulkRows: 2000, cleanup: func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
	}}
	return t, t.init(ctx)
}

// NewPostgresTable creates the table in a fresh schema of the database at
// dsn, dropped by Close.
func NewPostgresTable(ctx context.Context, dsn string) (*SQLTable, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	schema := "bench_" + randHex()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return nil, err
	}
	t := &SQLTable{db: db, pg: true, table: schema + ".grants", bulkRows: 5000}
	t.cleanup = func() { db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }
	return t, t.init(ctx)
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (t *SQLTable) rebind(q string) string {
	if !t.pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The SQL both SQL alternatives run, with ? placeholders.
const (
	tableDDL    = "CREATE TABLE %s (channel TEXT NOT NULL, contact TEXT NOT NULL, granted_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (channel, contact))"
	indexDDL    = "CREATE INDEX %s ON %s (channel, expires_at, contact)"
	pageSQL     = "SELECT contact, expires_at FROM %s WHERE channel = ? AND expires_at > ? ORDER BY expires_at, contact LIMIT 50"
	pageAfterQ  = "SELECT contact, expires_at FROM %s WHERE channel = ? AND expires_at >= ? AND (expires_at, contact) > (?, ?) ORDER BY expires_at, contact LIMIT 50"
	upsertSQL   = "INSERT INTO %s (channel, contact, granted_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (channel, contact) DO UPDATE SET granted_at = excluded.granted_at, expires_at = excluded.expires_at"
	expireSQL   = "DELETE FROM %s WHERE expires_at <= ? RETURNING channel, contact"
	insertShape = "INSERT INTO %s (channel, contact, granted_at, expires_at) VALUES "
)

func (t *SQLTable) init(ctx context.Context) error {
	idx := strings.ReplaceAll(t.table, ".", ".idx_") + "_channel_expires"
	if t.pg {
		idx = "grants_channel_expires" // an index name cannot be schema-qualified in PostgreSQL
	}
	stmts := []string{fmt.Sprintf(tableDDL, t.table), fmt.Sprintf(indexDDL, idx, t.table)}
	for _, s := range stmts {
		if _, err := t.db.ExecContext(ctx, s); err != nil {
			t.Close()
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	var err error
	t.page, err = t.db.PrepareContext(ctx, t.rebind(fmt.Sprintf(pageSQL, t.table)))
	if err == nil {
		t.after, err = t.db.PrepareContext(ctx, t.rebind(fmt.Sprintf(pageAfterQ, t.table)))
	}
	if err == nil {
		t.upsert, err = t.db.PrepareContext(ctx, t.rebind(fmt.Sprintf(upsertSQL, t.table)))
	}
	if err != nil {
		t.Close()
		return err
	}
	t.expireQ = t.rebind(fmt.Sprintf(expireSQL, t.table))
	return nil
}

// Load inserts the grants with multi-row INSERTs in one transaction, then
// refreshes the planner's statistics.
func (t *SQLTable) Load(ctx context.Context, w Workload) error {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	args := make([]any, 0, 4*t.bulkRows)
	for i := 0; i < w.N; i += t.bulkRows {
		k := min(t.bulkRows, w.N-i)
		args = args[:0]
		var q strings.Builder
		q.WriteString(fmt.Sprintf(insertShape, t.table))
		for j := range k {
			g := w.Grant(i + j)
			if j > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?)")
			args = append(args, g.Channel, g.Contact, g.GrantedAt.UnixNano(), g.ExpiresAt.UnixNano())
		}
		if _, err := tx.ExecContext(ctx, t.rebind(q.String()), args...); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = t.db.ExecContext(ctx, "ANALYZE")
	return err
}

func (t *SQLTable) Record(ctx context.Context, g Grant) error {
	_, err := t.upsert.ExecContext(ctx, g.Channel, g.Contact, g.GrantedAt.UnixNano(), g.ExpiresAt.UnixNano())
	return err
}

func (t *SQLTable) Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	var rows *sql.Rows
	var err error
	if after == nil {
		rows, err = t.page.QueryContext(ctx, channel, now.UnixNano())
	} else {
		rows, err = t.after.QueryContext(ctx, channel, afterBound(now, after), after.ExpiresAt, after.Contact)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Row, 0, PageSize)
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Contact, &r.ExpiresAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// afterBound is the lower bound of expires_at for a page after a cursor
// at now: max(now+1ns, the cursor's expiry).
func afterBound(now time.Time, after *Row) int64 {
	return max(now.UnixNano()+1, after.ExpiresAt)
}

// Expire deletes every due row with DELETE … RETURNING and calls a
// callback for each returned row.
func (t *SQLTable) Expire(ctx context.Context, now time.Time) (int, error) {
	rows, err := t.db.QueryContext(ctx, t.expireQ, now.UnixNano())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var delivered atomic.Int64
	onExpired := func(channel, contact string) { delivered.Add(1) }
	var ch, contact string
	for rows.Next() {
		if err := rows.Scan(&ch, &contact); err != nil {
			return int(delivered.Load()), err
		}
		onExpired(ch, contact)
	}
	return int(delivered.Load()), rows.Err()
}

func (t *SQLTable) Close() error {
	for _, st := range []*sql.Stmt{t.page, t.after} {
		if st != nil {
			st.Close()
		}
	}
	if t.upsert != nil {
		t.upsert.Close()
	}
	if t.cleanup != nil {
		t.cleanup()
	}
	return t.db.Close()
}

// PostgresDSN returns the DSN in CALLREADY_TEST_POSTGRES, or "" when unset.
func PostgresDSN() string { return os.Getenv(EnvPostgres) }
