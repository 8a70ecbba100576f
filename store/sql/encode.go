package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/callready/callready/store"
)

// The range of instants an int64 of Unix nanoseconds holds (1678 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

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

// activityJSON is the stored form of one store.Activity.
type activityJSON struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	At   int64  `json:"at"` // Unix nanoseconds
}

func encodeActivity(as []store.Activity) (any, error) {
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]activityJSON, len(as))
	for i, a := range as {
		if a.At.Before(minTime) || a.At.After(maxTime) {
			return nil, fmt.Errorf("sqlstore: activity time %s outside the storable range", a.At.Format(time.RFC3339))
		}
		out[i] = activityJSON{Kind: a.Kind, ID: a.ID, At: a.At.UnixNano()}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encoding activity: %w", err)
	}
	return string(b), nil
}

func decodeActivity(s sql.NullString) ([]store.Activity, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var in []activityJSON
	if err := json.Unmarshal([]byte(s.String), &in); err != nil {
		return nil, fmt.Errorf("sqlstore: decoding activity: %w", err)
	}
	out := make([]store.Activity, len(in))
	for i, a := range in {
		out[i] = store.Activity{Kind: a.Kind, ID: a.ID, At: time.Unix(0, a.At).UTC()}
	}
	return out, nil
}

// pairCols are the columns of the pairs table, in the order of pairArgs.
const pairCols = "channel, contact, temporary_at, temporary_expires_at, temporary_source, temporary_event_id, " +
	"permanent_at, permanent_expires_at, permanent_source, permanent_event_id, " +
	"revoked_at, revoked_reason, revoked_event_id, expiry_noted, activity, revision"

const numPairCols = 16

// stateCols are the pairs columns that make up a store.State.
const stateCols = "temporary_at, temporary_expires_at, temporary_source, temporary_event_id, " +
	"permanent_at, permanent_expires_at, permanent_source, permanent_event_id, " +
	"revoked_at, revoked_reason, revoked_event_id, expiry_noted, activity, revision"

// pairArgs encodes one row of the pairs table.
func pairArgs(k store.Key, s *store.State) ([]any, error) {
	var ts [6]any
	for i, t := range []time.Time{s.Temporary.At, s.Temporary.ExpiresAt, s.Permanent.At, s.Permanent.ExpiresAt, s.Revoked.At, s.ExpiryNoted} {
		n, err := nanos(t)
		if err != nil {
			return nil, err
		}
		ts[i] = n
	}
	act, err := encodeActivity(s.Activity)
	if err != nil {
		return nil, err
	}
	return []any{
		k.Channel, k.Contact,
		ts[0], ts[1], s.Temporary.Source, s.Temporary.EventID,
		ts[2], ts[3], s.Permanent.Source, s.Permanent.EventID,
		ts[4], s.Revoked.Reason, s.Revoked.EventID,
		ts[5], act, s.Revision,
	}, nil
}

// stateRow receives the stateCols of one row.
type stateRow struct {
	tempAt, tempExp, permAt, permExp, revAt, noted sql.NullInt64
	activity                                       sql.NullString
	s                                              store.State
}

func (r *stateRow) dest() []any {
	return []any{
		&r.tempAt, &r.tempExp, &r.s.Temporary.Source, &r.s.Temporary.EventID,
		&r.permAt, &r.permExp, &r.s.Permanent.Source, &r.s.Permanent.EventID,
		&r.revAt, &r.s.Revoked.Reason, &r.s.Revoked.EventID, &r.noted, &r.activity, &r.s.Revision,
	}
}

func (r *stateRow) state() (store.State, error) {
	s := r.s
	s.Temporary.At, s.Temporary.ExpiresAt = fromNanos(r.tempAt), fromNanos(r.tempExp)
	s.Permanent.At, s.Permanent.ExpiresAt = fromNanos(r.permAt), fromNanos(r.permExp)
	s.Revoked.At, s.ExpiryNoted = fromNanos(r.revAt), fromNanos(r.noted)
	var err error
	s.Activity, err = decodeActivity(r.activity)
	return s, err
}

// changeCols are the columns of the changes table, in the order of changeArgs.
const changeCols = "revision, type, channel, contact, at, kind, source, granted_at, expires_at, calls_left, unanswered_streak"

const numChangeCols = 11

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
	return []any{c.Revision, c.Type, c.Key.Channel, c.Key.Contact, at, c.Kind, c.Source, granted, expires, c.CallsLeft, c.UnansweredStreak}, nil
}

func scanChange(rows *sql.Rows) (store.Change, error) {
	var c store.Change
	var at, granted, expires sql.NullInt64
	if err := rows.Scan(&c.Revision, &c.Type, &c.Key.Channel, &c.Key.Contact, &at, &c.Kind, &c.Source, &granted, &expires, &c.CallsLeft, &c.UnansweredStreak); err != nil {
		return c, err
	}
	c.At, c.GrantedAt, c.ExpiresAt = fromNanos(at), fromNanos(granted), fromNanos(expires)
	return c, nil
}
