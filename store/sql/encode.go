package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/callready/callready/store"
)

// The range of instants an int64 of Unix nanoseconds holds (1678 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// minNanos is the smallest storable instant, in SQL comparisons standing
// for "no time".
const minNanos = math.MinInt64

// nanos encodes t as Unix nanoseconds, or NULL for the zero time.
func nanos(t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("sqlstore: time %s outside the storable range (%d to %d)", t.Format(time.RFC3339), minTime.Year(), maxTime.Year())
	}
	return t.UnixNano(), nil
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// pairCols are the columns of the pairs table the store writes, in the
// order of pairArgs. (Version 1's per-slot columns stay, unused, so that a
// host's own tooling reading them does not break.)
const pairCols = "channel, contact, state, revision"

const numPairCols = 4

// stateCols are the pairs columns that make up a store.State.
const stateCols = "state, revision"

// pairArgs encodes one row of the pairs table.
func pairArgs(k store.Key, s *store.State) ([]any, error) {
	var data any
	if s.Data != nil {
		data = s.Data
	}
	return []any{k.Channel, k.Contact, data, s.Revision}, nil
}

// stateRow receives the stateCols of one row.
type stateRow struct {
	s store.State
}

func (r *stateRow) dest() []any { return []any{&r.s.Data, &r.s.Revision} }

func (r *stateRow) state() (store.State, error) {
	s := r.s
	if s.Data != nil {
		s.Data = slices.Clone(s.Data) // drivers may reuse the buffer
	}
	return s, nil
}

// ledgerCols are the columns of the ledger table, in the order of
// ledgerArgs (seq, assigned by the database, is read last).
const ledgerCols = "channel, contact, dedupe, type, event_id, context, at, expires_at, flags, source, reason, origin, recorded_at, revision, aliases"

const numLedgerCols = 15

// encodeList stores a list of identifiers as a JSON array, NULL when empty.
func encodeList(l []string) (any, error) {
	if len(l) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeList(s sql.NullString) ([]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s.String), &l); err != nil {
		return nil, fmt.Errorf("sqlstore: decoding identifiers: %w", err)
	}
	return l, nil
}

// Bits of the ledger's flags column.
const (
	flagPermanent = 1
	flagConnected = 2
)

func ledgerArgs(e *store.LedgerEvent) ([]any, error) {
	var ts [3]any
	for i, t := range []time.Time{e.At, e.ExpiresAt, e.RecordedAt} {
		n, err := nanos(t)
		if err != nil {
			return nil, err
		}
		ts[i] = n
	}
	flags := 0
	if e.Permanent {
		flags |= flagPermanent
	}
	if e.Connected {
		flags |= flagConnected
	}
	aliases, err := encodeList(e.Aliases)
	if err != nil {
		return nil, err
	}
	return []any{e.Key.Channel, e.Key.Contact, e.Dedupe, e.Type, e.ID, e.Context, ts[0], ts[1], flags, e.Source, e.Reason, e.Origin, ts[2], e.Revision, aliases}, nil
}

func scanLedger(rows *sql.Rows) (store.LedgerEvent, error) {
	var e store.LedgerEvent
	var at, exp, rec sql.NullInt64
	var flags int
	var aliases sql.NullString
	if err := rows.Scan(&e.Key.Channel, &e.Key.Contact, &e.Dedupe, &e.Type, &e.ID, &e.Context, &at, &exp, &flags,
		&e.Source, &e.Reason, &e.Origin, &rec, &e.Revision, &aliases, &e.Seq); err != nil {
		return e, err
	}
	var err error
	if e.Aliases, err = decodeList(aliases); err != nil {
		return e, err
	}
	e.At, e.ExpiresAt, e.RecordedAt = fromNanos(at), fromNanos(exp), fromNanos(rec)
	e.Permanent, e.Connected = flags&flagPermanent != 0, flags&flagConnected != 0
	return e, nil
}

// changeCols are the columns of the changes table, in the order of changeArgs.
const changeCols = "revision, type, channel, contact, at, kind, source, granted_at, expires_at, calls_left, unanswered_streak, wake, wa_id, user_id, replaces"

const numChangeCols = 15

func changeArgs(c *store.Change) ([]any, error) {
	at, err := nanos(c.At)
	if err != nil {
		return nil, err
	}
	granted, err := nanos(c.GrantedAt)
	if err != nil {
		return nil, err
	}
	expires, err := nanos(c.ExpiresAt)
	if err != nil {
		return nil, err
	}
	wake, err := nanos(c.Wake)
	if err != nil {
		return nil, err
	}
	replaces, err := encodeList(c.Replaces)
	if err != nil {
		return nil, err
	}
	return []any{c.Revision, c.Type, c.Key.Channel, c.Key.Contact, at, c.Kind, c.Source, granted, expires, c.CallsLeft, c.UnansweredStreak, wake,
		c.WaID, c.UserID, replaces}, nil
}

func scanChange(rows *sql.Rows) (store.Change, error) {
	var c store.Change
	var at, granted, expires, wake sql.NullInt64
	var replaces sql.NullString
	if err := rows.Scan(&c.Revision, &c.Type, &c.Key.Channel, &c.Key.Contact, &at, &c.Kind, &c.Source, &granted, &expires, &c.CallsLeft, &c.UnansweredStreak, &wake,
		&c.WaID, &c.UserID, &replaces); err != nil {
		return c, err
	}
	var err error
	if c.Replaces, err = decodeList(replaces); err != nil {
		return c, err
	}
	c.At, c.GrantedAt, c.ExpiresAt, c.Wake = fromNanos(at), fromNanos(granted), fromNanos(expires), fromNanos(wake)
	return c, nil
}
