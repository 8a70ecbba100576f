package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/store"
)

// knownChunk bounds the dedupe keys of one Known statement; a power of
// two for pow2Chunks (SQLite).
const knownChunk = 512

// Known reports which refs are in the ledger or appended earlier in this
// transaction, with one SELECT per channel and knownChunk keys.
func (t *tx) Known(ctx context.Context, refs []store.EventRef) (map[store.EventRef]bool, error) {
	out := make(map[store.EventRef]bool)
	byChannel := map[string][]string{}
	for _, r := range refs {
		if _, ok := t.added[r]; ok {
			out[r] = true
			continue
		}
		byChannel[r.Channel] = append(byChannel[r.Channel], r.Dedupe)
	}
	s := t.s
	for channel, keys := range byChannel {
		for chunk := range chunks(s.dialect, keys, knownChunk) {
			args := make([]any, 0, len(chunk)+1)
			args = append(args, channel)
			for _, k := range chunk {
				args = append(args, k)
			}
			rows, err := t.q.QueryContext(ctx, s.knownSQL(len(chunk)), args...)
			if err != nil {
				return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
				}
				out[store.EventRef{Channel: channel, Dedupe: d}] = true
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
			}
		}
	}
	return out, nil
}

// knownSQL selects the dedupe keys among n (parameters 2…n+1) that the
// ledger holds on a channel (parameter 1).
func (s *Store) knownSQL(n int) string {
	var b strings.Builder
	b.WriteString("SELECT dedupe FROM " + s.prefix + "ledger WHERE channel = ? AND dedupe IN (")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
	}
	b.WriteByte(')')
	return s.dialect.rebind(b.String())
}

// AppendEvent buffers e for the flush at commit (ON CONFLICT DO NOTHING
// keeps a redelivery out).
func (t *tx) AppendEvent(ctx context.Context, e store.LedgerEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := store.EventRef{Channel: e.Key.Channel, Dedupe: e.Dedupe}
	if _, ok := t.added[r]; ok {
		return nil
	}
	args, err := ledgerArgs(&e)
	if err != nil {
		return fmt.Errorf("sqlstore: ledger event %s/%s: %w", e.Key.Channel, e.Key.Contact, err)
	}
	if t.added == nil {
		t.added = make(map[store.EventRef]struct{})
	}
	t.added[r] = struct{}{}
	t.events = append(t.events, args)
	return nil
}

// Ledger returns the committed ledger events q selects, ordered by (At,
// Seq), from the (channel, contact, at, seq) or (channel, at, seq) index.
func (s *Store) Ledger(ctx context.Context, q store.LedgerQuery) ([]store.LedgerEvent, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if q.Channel == "" {
		return nil, fmt.Errorf("sqlstore: ledger query without a channel")
	}
	var b strings.Builder
	args := []any{q.Channel}
	b.WriteString("SELECT " + ledgerCols + ", seq FROM " + s.prefix + "ledger WHERE channel = ?")
	if q.Contact != "" {
		b.WriteString(" AND contact = ?")
		args = append(args, q.Contact)
	}
	bound := func(cond string, t time.Time) error {
		n, err := nanos(t)
		if err != nil {
			return err
		}
		b.WriteString(cond)
		args = append(args, n)
		return nil
	}
	for _, c := range []struct {
		cond string
		t    time.Time
	}{{" AND at >= ?", q.From}, {" AND at < ?", q.To}, {" AND recorded_at <= ?", q.RecordedBy}} {
		if !c.t.IsZero() {
			if err := bound(c.cond, c.t); err != nil {
				return nil, err
			}
		}
	}
	if !q.After.At.IsZero() || q.After.Seq != 0 {
		n, err := nanos(q.After.At)
		if err != nil {
			return nil, err
		}
		b.WriteString(" AND (at > ? OR (at = ? AND seq > ?))")
		args = append(args, n, n, q.After.Seq)
	}
	b.WriteString(" ORDER BY at, seq")
	if q.Limit > 0 {
		b.WriteString(" LIMIT " + strconv.Itoa(q.Limit))
	}
	rows, err := s.db.QueryContext(ctx, s.dialect.rebind(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
	}
	defer rows.Close()
	var out []store.LedgerEvent
	for rows.Next() {
		e, err := scanLedger(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: reading the ledger: %w", err)
	}
	return out, nil
}

// PruneLedger deletes, in one statement, the events store.PruneKeeps
// would drop: before the horizon, granting nothing after it, and not a
// revocation that may still end a kept grant of its pair.
func (s *Store) PruneLedger(ctx context.Context, horizon time.Time) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	h, err := nanos(horizon)
	if err != nil {
		return 0, err
	}
	p := s.prefix
	holds := func(a string) string {
		return "((" + a + "flags & " + strconv.Itoa(flagPermanent) + ") <> 0 OR COALESCE(" + a + "expires_at, " + strconv.FormatInt(minNanos, 10) + ") > ?)"
	}
	q := "DELETE FROM " + p + "ledger WHERE at < ? AND NOT " + holds("") +
		" AND NOT (type = '" + store.LedgerRevoke + "' AND EXISTS (SELECT 1 FROM " + p + "ledger g WHERE g.channel = " + p + "ledger.channel" +
		" AND g.contact = " + p + "ledger.contact AND g.at < ? AND g.at <= " + p + "ledger.at AND " + holds("g.") + "))"
	var n int64
	err = s.inTx(ctx, func(qr querier) error {
		res, err := qr.ExecContext(ctx, s.dialect.rebind(q), h, h, h, h)
		if err != nil {
			return fmt.Errorf("sqlstore: pruning the ledger: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
