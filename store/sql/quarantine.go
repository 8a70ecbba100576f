package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/callready/callready/webhook"
)

// quarantineMigration creates the table of webhook items the handler set
// aside (webhook.Quarantine). Version 3: version 2 is reserved for the
// event ledger; the two do not depend on each other (see Migrations).
func quarantineMigration(d Dialect, p string) Migration {
	blob := "BLOB"
	if d == Postgres {
		blob = "BYTEA"
	}
	// An index name takes no schema on PostgreSQL (it lives in its
	// table's); on SQLite the schema goes on the index, not the table.
	schema, bare, _ := strings.Cut(p, ".")
	if bare == "" && !strings.Contains(p, ".") {
		schema, bare = "", p
	}
	index := `CREATE INDEX ` + bare + `quarantine_received ON ` + p + `quarantine (received_at, id)`
	if d == SQLite && schema != "" {
		index = `CREATE INDEX ` + schema + `.` + bare + `quarantine_received ON ` + bare + `quarantine (received_at, id)`
	}
	return Migration{
		Version: 3,
		Name:    "webhook quarantine",
		Statements: []string{
			// received_at is BIGINT nanoseconds since the Unix epoch (UTC).
			// raw is bytes: a body may hold what TEXT refuses.
			`CREATE TABLE ` + p + `quarantine (
	id TEXT PRIMARY KEY,
	received_at BIGINT NOT NULL,
	path TEXT NOT NULL,
	error TEXT NOT NULL,
	raw ` + blob + ` NOT NULL
)`,
			index,
			`INSERT INTO ` + p + `migrations (version, name) VALUES (3, 'webhook quarantine')`,
		},
	}
}

// Quarantine is a webhook.Quarantine in the Store's database (table
// <prefix>quarantine, created by migration 3). Items older than the
// retention are deleted by the Put that finds them, and never listed.
type Quarantine struct {
	s   *Store
	cfg webhook.QuarantineConfig

	qInsert, qPrune, qFirst, qAfter, qCount string
}

var _ webhook.Quarantine = (*Quarantine)(nil)

// Quarantine returns the webhook quarantine kept in the Store's database;
// cfg's zero fields take their defaults (30 days' retention, the system
// clock). Pass it as webhook.Config.Quarantine.
func (s *Store) Quarantine(cfg webhook.QuarantineConfig) *Quarantine {
	p, d := s.prefix, s.dialect
	const cols = "id, received_at, path, error, raw"
	return &Quarantine{
		s: s, cfg: cfg.WithDefaults(),
		qInsert: d.rebind("INSERT INTO " + p + "quarantine (" + cols + ") VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"),
		qPrune:  d.rebind("DELETE FROM " + p + "quarantine WHERE received_at < ?"),
		qFirst:  d.rebind("SELECT " + cols + " FROM " + p + "quarantine WHERE received_at >= ? ORDER BY received_at DESC, id DESC LIMIT ?"),
		qAfter: d.rebind("SELECT " + cols + " FROM " + p + "quarantine WHERE received_at >= ? AND (received_at < ? OR (received_at = ? AND id < ?))" +
			" ORDER BY received_at DESC, id DESC LIMIT ?"),
		qCount: d.rebind("SELECT COUNT(*) FROM " + p + "quarantine WHERE received_at >= ?"),
	}
}

// storableText makes s fit a TEXT column of either dialect: valid UTF-8,
// no NUL bytes.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Put stores items in one transaction, keeping an item already held (same
// ID) as it is, and deletes the items past the retention.
func (q *Quarantine) Put(ctx context.Context, items []webhook.QuarantinedItem) error {
	if err := q.s.check(ctx); err != nil {
		return err
	}
	now := q.cfg.Clock.Now().UTC()
	items = webhook.NormalizeQuarantined(items, now)
	return q.s.inTx(ctx, func(tx querier) error {
		for _, it := range items {
			at, err := nanos(it.ReceivedAt)
			if err != nil {
				return err
			}
			raw := it.Raw
			if raw == nil {
				raw = []byte{}
			}
			if _, err := tx.ExecContext(ctx, q.qInsert, storableText(it.ID), at, storableText(it.Path), storableText(it.Error), []byte(raw)); err != nil {
				return fmt.Errorf("sqlstore: quarantine: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, q.qPrune, now.Add(-q.cfg.Retention).UnixNano()); err != nil {
			return fmt.Errorf("sqlstore: quarantine retention: %w", err)
		}
		return nil
	})
}

// List returns a page of the items within the retention, newest first.
func (q *Quarantine) List(ctx context.Context, cursor string, limit int) ([]webhook.QuarantinedItem, string, error) {
	if err := q.s.check(ctx); err != nil {
		return nil, "", err
	}
	limit = webhook.QuarantinePageSize(limit)
	cutoff := q.cfg.Clock.Now().Add(-q.cfg.Retention).UnixNano()
	var rows *sql.Rows
	var err error
	if cursor == "" {
		rows, err = q.s.db.QueryContext(ctx, q.qFirst, cutoff, limit+1)
	} else {
		at, id, derr := webhook.DecodeQuarantineCursor(cursor)
		if derr != nil {
			return nil, "", derr
		}
		n := at.UnixNano()
		rows, err = q.s.db.QueryContext(ctx, q.qAfter, cutoff, n, n, id, limit+1)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: quarantine: %w", err)
	}
	defer rows.Close()
	var items []webhook.QuarantinedItem
	for rows.Next() {
		var it webhook.QuarantinedItem
		var at int64
		var raw []byte
		if err := rows.Scan(&it.ID, &at, &it.Path, &it.Error, &raw); err != nil {
			return nil, "", fmt.Errorf("sqlstore: quarantine: %w", err)
		}
		it.ReceivedAt, it.Raw = time.Unix(0, at).UTC(), raw
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlstore: quarantine: %w", err)
	}
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	last := items[limit-1]
	return items, webhook.EncodeQuarantineCursor(last.ReceivedAt, last.ID), nil
}

// Len counts the items within the retention, for metrics.
func (q *Quarantine) Len(ctx context.Context) (int, error) {
	if err := q.s.check(ctx); err != nil {
		return 0, err
	}
	var n int
	if err := q.s.db.QueryRowContext(ctx, q.qCount, q.cfg.Clock.Now().Add(-q.cfg.Retention).UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: quarantine: %w", err)
	}
	return n, nil
}
