package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/webhook"
)

// maxWebhookBody is the largest body /webhook accepts (Meta documents
// 3 MB).
const maxWebhookBody = webhook.DefaultMaxBodyBytes

// newWebhookHandler builds /webhook: the library's handler records the
// permission events; the server keeps channels, names and the chat history
// around it. Every inbox row of a body is written in the tracker's
// transaction (permission.Tracker.RecordRows): with the body's events when
// it has some, else in a group commit of their own, so the rows are
// durable before the 200; each group-committed batch of webhooks costs one
// commit, and its rows a few multi-row statements (writeRows), not a few
// per webhook.
func newWebhookHandler(s *server) (http.Handler, error) {
	h, err := webhook.New(webhook.Config{
		AppSecret:    s.opts.AppSecret,
		VerifyToken:  s.opts.VerifyToken,
		Recorder:     recorder{s},
		Quarantine:   s.quarantine,
		Clock:        s.clock,
		OnBatch:      s.learn,
		MaxBodyBytes: maxWebhookBody,
		Logger:       s.opts.WebhookLogger,
	})
	if err != nil {
		return nil, err
	}
	s.metrics.webhookStats = h.Stats
	s.metrics.reg.MustRegister(newQuarantineMetrics(s, h.Stats))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body's rows travel from OnBatch to the Recorder in the
		// request's context.
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, &bodyRows{})))
	}), nil
}

// bodyKey is the context key of a request's *bodyRows.
type bodyKey struct{}

// bodyRows carries the inbox rows learn found in a body to the Record
// call that writes them with the body's events.
type bodyRows struct {
	rows *inboxRows // nil once written
}

// learn notes the channels (with their display numbers), the contacts'
// profile names, the messages and the call lines of a verified body. A
// body with permission events leaves them for the Recorder, which writes
// them in the events' transaction, so a new contact's "granted" event
// never reaches the page without a name; any other body writes them now.
func (s *server) learn(ctx context.Context, b webhook.Batch) error {
	now := s.clock.Now()
	rows := &inboxRows{}
	for _, c := range b.Channels {
		s.inbox.addChannel(rows, c.ID, c.DisplayPhoneNumber)
	}
	for _, c := range b.Contacts {
		rows.addContact(c.Channel, c.Contact.Key(), c.Contact.Name)
	}
	for _, m := range b.Messages {
		messageRows(rows, m, now)
	}
	for _, c := range b.Calls {
		callRows(rows, c, now)
	}
	if br, ok := ctx.Value(bodyKey{}).(*bodyRows); ok && len(b.Events) > 0 {
		br.rows = rows
		return nil
	}
	return s.writeInbox(ctx, rows, now)
}

// writeInbox writes rows in the tracker's next group commit, with no
// events of their own.
func (s *server) writeInbox(ctx context.Context, rows *inboxRows, now time.Time) error {
	if rows.empty() {
		return nil
	}
	rows.at = now
	if _, err := s.tracker.RecordRows(ctx, rows); err != nil {
		return err
	}
	s.inbox.committed(rows)
	return nil
}

// writeRows is the tracker's Config.HostRows: it writes the inbox rows
// of every webhook of a group commit (*inboxRows, each recorded with
// RecordRows) in the batch's transaction, merged, in a few multi-row
// statements.
func (s *server) writeRows(ctx context.Context, tx store.Tx, rows []any) error {
	q, ok := sqlstore.TxQuerier(tx)
	if !ok {
		return errors.New("inbox: the permission store is not a SQL store")
	}
	all := rows[0].(*inboxRows)
	if len(rows) > 1 {
		all = &inboxRows{}
		for _, r := range rows {
			all.merge(r.(*inboxRows))
		}
	}
	return s.inbox.write(ctx, q, all)
}

// recorder is the tracker as the webhook handler's Recorder. It records
// the events with the body's inbox rows and a chat line for each
// permission reply, so an agent reads "accepted calls" in the conversation
// where it happened, all in one transaction.
type recorder struct{ s *server }

func (r recorder) Record(ctx context.Context, events ...permission.Event) ([]permission.Change, error) {
	s := r.s
	now := s.clock.Now()
	rows := &inboxRows{}
	br, _ := ctx.Value(bodyKey{}).(*bodyRows)
	if br != nil && br.rows != nil {
		*rows = inboxRows{
			channels: slices.Clone(br.rows.channels),
			contacts: slices.Clone(br.rows.contacts),
			messages: slices.Clone(br.rows.messages),
		}
	}
	for _, e := range events {
		body, ok := describeEvent(e)
		if !ok {
			continue
		}
		s.inbox.addChannel(rows, e.Channel, "")
		rows.addContact(e.Channel, e.Contact, "")
		id := e.ID
		if id == "" { // profile changes and automatic revokes carry no id
			id = fmt.Sprintf("%s@%d", e.Type, e.At.UnixMilli())
		}
		rows.messages = append(rows.messages, chatMessage{
			ID: "permission:" + id, Channel: e.Channel, Contact: e.Contact,
			Direction: "event", Type: "permission", Body: body, At: e.At,
		})
	}
	var changes []permission.Change
	var err error
	if rows.empty() {
		changes, err = s.tracker.Record(ctx, events...)
	} else {
		rows.at = now
		changes, err = s.tracker.RecordRows(ctx, rows, events...)
	}
	switch {
	case err == nil:
		s.inbox.committed(rows)
		if br != nil {
			br.rows = nil
		}
		return changes, nil
	case errors.Is(err, permission.ErrInvalidEvent) && br != nil && br.rows != nil:
		// The handler records the events one by one next, and may refuse
		// them all: the body's own rows go now.
		if werr := s.writeInbox(ctx, br.rows, now); werr != nil {
			return nil, werr
		}
		br.rows = nil
	}
	return nil, err
}

// describeEvent words a permission reply for the chat history. Call events
// are described by onCall, which sees more of the call.
func describeEvent(e permission.Event) (string, bool) {
	switch e.Type {
	case permission.EventGrant:
		how := map[permission.Source]string{
			permission.SourceRequest:  "Accepted the call permission request",
			permission.SourceCallback: "Call-back permission granted after their call",
			permission.SourceProfile:  "Allowed calls from the business profile",
		}[e.Source]
		if how == "" {
			how = "Granted call permission"
		}
		if e.Permanent {
			return how + " (permanent)", true
		}
		exp := e.ExpiresAt
		if exp.IsZero() {
			return how + " (temporary)", true
		}
		return how + " (temporary, until " + exp.UTC().Format(time.RFC3339) + ")", true // the page shows it in the agent's zone
	case permission.EventRevoke:
		switch e.Reason {
		case permission.RevokeProfile:
			return "Switched calls off from the business profile", true
		case permission.RevokeAutomatic:
			return "Meta revoked call permission after unanswered calls", true
		default:
			return "Declined the call permission request", true
		}
	}
	return "", false
}

// messageRows adds an incoming message to the chat history.
func messageRows(rows *inboxRows, m webhook.Message, now time.Time) {
	key := m.Contact.Key()
	if key == "" || m.ID == "" {
		return // not attributable: nothing to show
	}
	rows.addContact(m.Channel, key, m.Contact.Name)
	body := m.Text
	if m.Type != "text" || body == "" {
		body = "[" + m.Type + " message]"
	}
	at := m.Timestamp
	if at.IsZero() {
		at = now
	}
	rows.messages = append(rows.messages, chatMessage{
		ID: m.ID, Channel: m.Channel, Contact: key, Direction: "in", Type: m.Type, Body: body, At: at,
	})
}

// callRows adds a line for a call that ended (or a business call the user
// rejected) to the chat history.
func callRows(rows *inboxRows, c webhook.Call, now time.Time) {
	key := c.Contact.Key()
	if key == "" || c.ID == "" {
		return
	}
	inbound := strings.EqualFold(c.Direction, "USER_INITIATED")
	var body string
	switch {
	case c.Event == "terminate" && inbound && c.Connected:
		body = "Called the business (answered, " + c.Duration.Round(time.Second).String() + ")"
	case c.Event == "terminate" && inbound:
		body = "Called the business (missed)"
	case c.Event == "terminate" && c.Connected:
		body = "Business call (answered, " + c.Duration.Round(time.Second).String() + ")"
	case c.Event == "terminate":
		body = "Business call (not answered)"
	case c.Event == "status" && strings.EqualFold(c.Status, "REJECTED"):
		body = "Rejected a business call"
	default:
		return // connects and ringing: the terminate tells the outcome
	}
	at := c.Timestamp
	if at.IsZero() {
		at = now
	}
	rows.addContact(c.Channel, key, c.Contact.Name)
	dir := "in"
	if !inbound {
		dir = "out"
	}
	rows.messages = append(rows.messages, chatMessage{
		ID: "call:" + c.ID + ":" + c.Event + ":" + strings.ToLower(c.Status), Channel: c.Channel, Contact: key,
		Direction: dir, Type: "call", Body: body, At: at,
	})
}
