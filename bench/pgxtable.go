package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgxTable is the indexed-table alternative on PostgreSQL through pgx's
// native interface (one pgx.Conn, statements prepared by name) instead of
// database/sql: the same table, index and SQL as SQLTable, without the
// database/sql layer (its connection pool, driver.Value conversions and
// Rows wrappers).
type PgxTable struct {
	conn   *pgx.Conn
	schema string
	table  string
}

// Names of the prepared statements.
const (
	pgxPage      = "bench_page"
	pgxPageAfter = "bench_page_after"
	pgxUpsert    = "bench_upsert"
)

// NewPgxTable creates the table in a fresh schema of the database at dsn,
// dropped by Close.
func NewPgxTable(ctx context.Context, dsn string) (*PgxTable, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	t := &PgxTable{conn: conn, schema: "bench_" + randHex()}
	t.table = t.schema + ".grants"
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+t.schema); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	pg := &SQLTable{pg: true}
	for _, s := range []string{fmt.Sprintf(tableDDL, t.table), fmt.Sprintf(indexDDL, "grants_channel_expires", t.table)} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Close()
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	for name, q := range map[string]string{pgxPage: pageSQL, pgxPageAfter: pageAfterQ, pgxUpsert: upsertSQL} {
		if _, err := conn.Prepare(ctx, name, pg.rebind(fmt.Sprintf(q, t.table))); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// Load copies the grants in with COPY (pgx.CopyFrom), then runs ANALYZE.
func (t *PgxTable) Load(ctx context.Context, w Workload) error {
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == w.N {
			return nil, nil
		}
		g := w.Grant(i)
		i++
		return []any{g.Channel, g.Contact, g.GrantedAt.UnixNano(), g.ExpiresAt.UnixNano()}, nil
	})
	n, err := t.conn.CopyFrom(ctx, pgx.Identifier{t.schema, "grants"}, []string{"channel", "contact", "granted_at", "expires_at"}, src)
	if err != nil {
		return err
	}
	if n != int64(w.N) {
		return fmt.Errorf("copied %d rows, want %d", n, w.N)
	}
	_, err = t.conn.Exec(ctx, "ANALYZE "+t.table)
	return err
}

func (t *PgxTable) Record(ctx context.Context, g Grant) error {
	_, err := t.conn.Exec(ctx, pgxUpsert, g.Channel, g.Contact, g.GrantedAt.UnixNano(), g.ExpiresAt.UnixNano())
	return err
}

func (t *PgxTable) Page(ctx context.Context, channel string, now time.Time, after *Row) ([]Row, error) {
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = t.conn.Query(ctx, pgxPage, channel, now.UnixNano())
	} else {
		rows, err = t.conn.Query(ctx, pgxPageAfter, channel, afterBound(now, after), after.ExpiresAt, after.Contact)
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

// Expire deletes every due row with DELETE … RETURNING and calls a
// callback for each returned row.
func (t *PgxTable) Expire(ctx context.Context, now time.Time) (int, error) {
	rows, err := t.conn.Query(ctx, fmt.Sprintf("DELETE FROM %s WHERE expires_at <= $1 RETURNING channel, contact", t.table), now.UnixNano())
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

func (t *PgxTable) Close() error {
	ctx := context.Background()
	t.conn.Exec(ctx, "DROP SCHEMA "+t.schema+" CASCADE")
	return t.conn.Close(ctx)
}
