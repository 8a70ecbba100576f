package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// inbox is the CRM side of the server: the channels it has heard of, the
// contacts' names and the chat history, kept in the same database as the
// permissions but in tables of its own. The permission library knows
// nothing of it.
type inbox struct {
	db       *sql.DB
	postgres bool

	mu       sync.RWMutex
	channels map[string]string // channel id → display phone number, mirrors server_channels
}

// chatMessage is one line of a contact's chat history.
type chatMessage struct {
	ID        string    `json:"id"`
	Channel   string    `json:"-"`
	Contact   string    `json:"-"`
	Direction string    `json:"direction"` // "in" (from the user), "out" (from the business) or "event"
	Type      string    `json:"type"`      // Meta's message type, or "call" / "permission" for events
	Body      string    `json:"body"`
	At        time.Time `json:"at"`
}

// channelInfo is one business number the server has heard of.
type channelInfo struct {
	Channel string
	Display string
}

var inboxSchema = []string{
	`CREATE TABLE IF NOT EXISTS server_channels (
		channel TEXT PRIMARY KEY,
		display_phone_number TEXT NOT NULL DEFAULT '',
		seen_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS server_contacts (
		channel TEXT NOT NULL,
		contact TEXT NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		seen_at BIGINT NOT NULL,
		PRIMARY KEY (channel, contact))`,
	`CREATE TABLE IF NOT EXISTS server_messages (
		channel TEXT NOT NULL,
		id TEXT NOT NULL,
		contact TEXT NOT NULL,
		direction TEXT NOT NULL,
		type TEXT NOT NULL,
		body TEXT NOT NULL,
		at_ms BIGINT NOT NULL,
		PRIMARY KEY (channel, id))`,
	`CREATE INDEX IF NOT EXISTS server_messages_by_contact ON server_messages (channel, contact, at_ms)`,
}

// openInbox creates the tables when missing and loads the channel list.
func openInbox(ctx context.Context, db *sql.DB, postgres bool) (*inbox, error) {
	in := &inbox{db: db, postgres: postgres, channels: make(map[string]string)}
	if err := createInboxSchema(ctx, db, postgres); err != nil {
		return nil, fmt.Errorf("inbox schema: %w", err)
	}
	return in, in.reload(ctx)
}

// reload reads the channels from the database: other servers on the same
// database learn channels too.
func (in *inbox) reload(ctx context.Context) error {
	rows, err := in.db.QueryContext(ctx, `SELECT channel, display_phone_number FROM server_channels`)
	if err != nil {
		return fmt.Errorf("inbox: loading channels: %w", err)
	}
	defer rows.Close()
	channels := make(map[string]string)
	for rows.Next() {
		var id, display string
		if err := rows.Scan(&id, &display); err != nil {
			return err
		}
		channels[id] = display
	}
	if err := rows.Err(); err != nil {
		return err
	}
	in.mu.Lock()
	in.channels = channels
	in.mu.Unlock()
	return nil
}

// createInboxSchema creates the inbox tables in one transaction. On
// PostgreSQL an advisory lock serializes servers starting together on a
// fresh database: concurrent CREATE TABLE IF NOT EXISTS can otherwise fail
// on the catalog's unique index.
func createInboxSchema(ctx context.Context, db *sql.DB, postgres bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('callready server_ schema'))"); err != nil {
			return err
		}
	}
	for _, q := range inboxSchema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// q rewrites ? placeholders as $1, $2, … for PostgreSQL.
func (in *inbox) q(query string) string {
	if !in.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// execer runs a write: the *sql.DB, or the permission tracker's
// transaction (sqlstore.TxQuerier).
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// inboxRows are the inbox rows one webhook body adds, written together in
// the transaction that records the body's permission events (see
// webhooks.go), so they are durable before the 200 and cost no commit of
// their own.
type inboxRows struct {
	channels []channelInfo // channels new to the cache, or with a new display number
	contacts []contactRow
	messages []chatMessage
	at       time.Time // when the server saw them: the rows' seen_at
}

// contactRow is a contact seen in a body, with its profile name if any.
type contactRow struct {
	channel, contact, name string
}

func (r *inboxRows) empty() bool {
	return len(r.channels) == 0 && len(r.contacts) == 0 && len(r.messages) == 0
}

// addChannel adds a channel row unless the cache (or r) has it already
// with that display number: every webhook names its channel.
func (in *inbox) addChannel(r *inboxRows, channel, display string) {
	in.mu.RLock()
	old, known := in.channels[channel]
	in.mu.RUnlock()
	if known && (display == "" || display == old) {
		return
	}
	for i, c := range r.channels {
		if c.Channel == channel {
			if display != "" {
				r.channels[i].Display = display
			}
			return
		}
	}
	r.channels = append(r.channels, channelInfo{Channel: channel, Display: display})
}

// addContact adds a contact row; a contact seen twice in a body keeps one
// row, with the name if either had one.
func (r *inboxRows) addContact(channel, contact, name string) {
	for i, c := range r.contacts {
		if c.channel == channel && c.contact == contact {
			if name != "" {
				r.contacts[i].name = name
			}
			return
		}
	}
	r.contacts = append(r.contacts, contactRow{channel, contact, name})
}

// merge appends o's rows to r, a contact, channel or message named twice
// keeping one row (a name or display number over none, the first message
// of an id), as one multi-row statement needs: PostgreSQL refuses to
// update a row twice in one INSERT … ON CONFLICT DO UPDATE.
func (r *inboxRows) merge(o *inboxRows) {
	if o.at.After(r.at) {
		r.at = o.at // the latest sighting
	}
	for _, c := range o.channels {
		if i := slices.IndexFunc(r.channels, func(x channelInfo) bool { return x.Channel == c.Channel }); i < 0 {
			r.channels = append(r.channels, c)
		} else if c.Display != "" {
			r.channels[i].Display = c.Display
		}
	}
	for _, c := range o.contacts {
		r.addContact(c.channel, c.contact, c.name)
	}
	for _, m := range o.messages {
		if !slices.ContainsFunc(r.messages, func(x chatMessage) bool { return x.Channel == m.Channel && x.ID == m.ID }) {
			r.messages = append(r.messages, m)
		}
	}
}

// rowsInsert is one table's multi-row INSERT of inboxRows.
type rowsInsert struct {
	head, tail string // before the VALUES rows, after them
	n          int
	row        func(i int) []any
}

// maxRowsPerInsert bounds one SQLite INSERT's rows: a batch's rows go in
// runs of a power of two up to it, so a few statement texts (prepared
// once by the tracker's store) serve every batch.
const maxRowsPerInsert = 64

// write writes r through q, in one transaction of the caller's (it is the
// batch of every webhook of a group commit, see webhooks.go): on SQLite,
// multi-row INSERTs per table; on PostgreSQL, one statement for the three
// tables (one round trip).
func (in *inbox) write(ctx context.Context, q execer, r *inboxRows) error {
	if r.empty() {
		return nil
	}
	ms := r.at.UnixMilli()
	inserts := []rowsInsert{{
		head: `INSERT INTO server_channels (channel, display_phone_number, seen_at) VALUES `,
		tail: ` ON CONFLICT (channel) DO UPDATE SET
			display_phone_number = CASE WHEN excluded.display_phone_number <> '' THEN excluded.display_phone_number ELSE server_channels.display_phone_number END,
			seen_at = excluded.seen_at`,
		n:   len(r.channels),
		row: func(i int) []any { return []any{r.channels[i].Channel, r.channels[i].Display, ms} },
	}, {
		head: `INSERT INTO server_contacts (channel, contact, name, seen_at) VALUES `,
		tail: ` ON CONFLICT (channel, contact) DO UPDATE SET
			name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE server_contacts.name END,
			seen_at = excluded.seen_at`,
		n:   len(r.contacts),
		row: func(i int) []any { c := r.contacts[i]; return []any{c.channel, c.contact, c.name, ms} },
	}, {
		head: `INSERT INTO server_messages (channel, id, contact, direction, type, body, at_ms) VALUES `,
		tail: ` ON CONFLICT (channel, id) DO NOTHING`,
		n:    len(r.messages),
		row: func(i int) []any {
			m := r.messages[i]
			return []any{m.Channel, m.ID, m.Contact, m.Direction, m.Type, m.Body, m.At.UnixMilli()}
		},
	}}
	var b strings.Builder
	var args []any
	if in.postgres {
		b.WriteString("WITH ")
		for i, ins := range inserts {
			if ins.n == 0 {
				continue
			}
			if len(args) > 0 {
				b.WriteString(", ")
			}
			b.WriteString("w" + strconv.Itoa(i) + " AS (")
			args = ins.values(&b, args, 0, ins.n, true)
			b.WriteString(")")
		}
		b.WriteString(" SELECT 1")
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("inbox: saving a webhook's rows: %w", err)
		}
		return nil
	}
	for _, ins := range inserts {
		for from := 0; from < ins.n; {
			k := min(maxRowsPerInsert, 1<<(bits.Len(uint(ins.n-from))-1))
			b.Reset()
			args = ins.values(&b, args[:0], from, k, false)
			if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
				return fmt.Errorf("inbox: saving a webhook's rows: %w", err)
			}
			from += k
		}
	}
	return nil
}

// values writes the INSERT of rows from … from+k-1 to b and appends their
// arguments to args; dollar numbers the placeholders PostgreSQL's way.
func (ins rowsInsert) values(b *strings.Builder, args []any, from, k int, dollar bool) []any {
	b.WriteString(ins.head)
	for i := from; i < from+k; i++ {
		if i > from {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, a := range ins.row(i) {
			if j > 0 {
				b.WriteString(", ")
			}
			args = append(args, a)
			if dollar {
				b.WriteString("$" + strconv.Itoa(len(args)))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(ins.tail)
	return args
}

// committed updates the channel cache once r's transaction committed.
func (in *inbox) committed(r *inboxRows) {
	if len(r.channels) == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range r.channels {
		if old, known := in.channels[c.Channel]; !known || c.Display != "" && c.Display != old {
			in.channels[c.Channel] = c.Display
		}
	}
}

// noteChannel records a channel (and its display number when known). It
// writes only when something is new, since every webhook calls it.
func (in *inbox) noteChannel(ctx context.Context, channel, display string, now time.Time) error {
	r := inboxRows{at: now}
	in.addChannel(&r, channel, display)
	if r.empty() {
		return nil
	}
	if err := in.write(ctx, in.db, &r); err != nil {
		return err
	}
	in.committed(&r)
	return nil
}

// noteContact records that a contact exists on a channel, with its profile
// name when the webhook carried one (an empty name never erases a known one).
func (in *inbox) noteContact(ctx context.Context, channel, contact, name string, now time.Time) error {
	return in.write(ctx, in.db, &inboxRows{contacts: []contactRow{{channel, contact, name}}, at: now})
}

// addMessage stores one chat line; a redelivered webhook adds nothing.
func (in *inbox) addMessage(ctx context.Context, m chatMessage) error {
	return in.write(ctx, in.db, &inboxRows{messages: []chatMessage{m}, at: m.At})
}

// maxHistory bounds one chat history answer: the newest lines win.
const maxHistory = 500

// messages returns a contact's newest chat lines, oldest first.
func (in *inbox) messages(ctx context.Context, channel, contact string) ([]chatMessage, error) {
	rows, err := in.db.QueryContext(ctx, in.q(`SELECT id, direction, type, body, at_ms FROM server_messages
		WHERE channel = ? AND contact = ? ORDER BY at_ms DESC, id DESC LIMIT ?`), channel, contact, maxHistory)
	if err != nil {
		return nil, fmt.Errorf("inbox: reading messages: %w", err)
	}
	defer rows.Close()
	out := []chatMessage{}
	for rows.Next() {
		m := chatMessage{Channel: channel, Contact: contact}
		var ms int64
		if err := rows.Scan(&m.ID, &m.Direction, &m.Type, &m.Body, &ms); err != nil {
			return nil, err
		}
		m.At = time.UnixMilli(ms).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// names returns the known names of some contacts of a channel.
func (in *inbox) names(ctx context.Context, channel string, contacts []string) (map[string]string, error) {
	out := make(map[string]string, len(contacts))
	if len(contacts) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(contacts)+1)
	args = append(args, channel)
	for _, c := range contacts {
		args = append(args, c)
	}
	query := `SELECT contact, name FROM server_contacts WHERE channel = ? AND contact IN (?` +
		strings.Repeat(", ?", len(contacts)-1) + `)`
	rows, err := in.db.QueryContext(ctx, in.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("inbox: reading names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, n string
		if err := rows.Scan(&c, &n); err != nil {
			return nil, err
		}
		out[c] = n
	}
	return out, rows.Err()
}

// contact reports whether the server has heard of a contact, and its name.
func (in *inbox) contact(ctx context.Context, channel, contact string) (name string, known bool, err error) {
	err = in.db.QueryRowContext(ctx, in.q(`SELECT name FROM server_contacts WHERE channel = ? AND contact = ?`),
		channel, contact).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("inbox: reading contact: %w", err)
	}
	return name, true, nil
}

// channelList returns the known channels, sorted by id.
func (in *inbox) channelList() []channelInfo {
	in.mu.RLock()
	defer in.mu.RUnlock()
	out := make([]channelInfo, 0, len(in.channels))
	for id, d := range in.channels {
		out = append(out, channelInfo{Channel: id, Display: d})
	}
	slices.SortFunc(out, func(a, b channelInfo) int { return strings.Compare(a.Channel, b.Channel) })
	return out
}

// knownChannel reports whether the server has heard of channel, asking
// the database when the cache has not (another server may have).
func (in *inbox) knownChannel(ctx context.Context, channel string) bool {
	in.mu.RLock()
	_, ok := in.channels[channel]
	in.mu.RUnlock()
	if ok || in.reload(ctx) != nil {
		return ok
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	_, ok = in.channels[channel]
	return ok
}

func (in *inbox) ping(ctx context.Context) error { return in.db.PingContext(ctx) }
