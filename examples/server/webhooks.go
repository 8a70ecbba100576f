package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
)

// maxWebhookBody is the largest body /webhook accepts (Meta documents
// 3 MB).
const maxWebhookBody = webhook.DefaultMaxBodyBytes

// newWebhookHandler builds /webhook: the library's handler records the
// permission events; the server keeps channels, names and the chat history
// around it.
func newWebhookHandler(s *server) (http.Handler, error) {
	h, err := webhook.New(webhook.Config{
		AppSecret:    s.opts.AppSecret,
		VerifyToken:  s.opts.VerifyToken,
		Recorder:     recorder{s},
		Quarantine:   s.quarantine,
		Clock:        s.clock,
		OnBatch:      s.learn,
		OnMessage:    s.onMessage,
		OnCall:       s.onCall,
		MaxBodyBytes: maxWebhookBody,
		Logger:       s.opts.WebhookLogger,
	})
	if err != nil {
		return nil, err
	}
	s.metrics.webhookStats = h.Stats
	s.metrics.reg.MustRegister(newQuarantineMetrics(s, h.Stats))
	return h, nil
}

// learn notes the channels (with their display numbers) and the contacts'
// profile names of a verified body before its events are recorded, so a
// new contact's "granted" event never reaches the page without a name.
func (s *server) learn(ctx context.Context, b webhook.Batch) error {
	now := s.clock.Now()
	for _, c := range b.Channels {
		if err := s.inbox.noteChannel(ctx, c.ID, c.DisplayPhoneNumber, now); err != nil {
			return err
		}
	}
	for _, c := range b.Contacts {
		if err := s.inbox.noteContact(ctx, c.Channel, c.Contact.Key(), c.Contact.Name, now); err != nil {
			return err
		}
	}
	return nil
}

// recorder is the tracker as the webhook handler's Recorder, adding the
// permission replies to the chat history once they are recorded, so an
// agent reads "accepted calls" in the conversation where it happened.
type recorder struct{ s *server }

func (r recorder) Record(ctx context.Context, events ...permission.Event) ([]permission.Change, error) {
	changes, err := r.s.tracker.Record(ctx, events...)
	if err != nil {
		return changes, err
	}
	now := r.s.clock.Now()
	for _, e := range events {
		body, ok := describeEvent(e)
		if !ok {
			continue
		}
		if err := r.s.inbox.noteChannel(ctx, e.Channel, "", now); err != nil {
			return nil, err
		}
		if err := r.s.inbox.noteContact(ctx, e.Channel, e.Contact, "", now); err != nil {
			return nil, err
		}
		id := e.ID
		if id == "" { // profile changes and automatic revokes carry no id
			id = fmt.Sprintf("%s@%d", e.Type, e.At.UnixMilli())
		}
		err := r.s.inbox.addMessage(ctx, chatMessage{
			ID: "permission:" + id, Channel: e.Channel, Contact: e.Contact,
			Direction: "event", Type: "permission", Body: body, At: e.At,
		})
		if err != nil {
			// The events are recorded; failing makes Meta re-deliver, which
			// records nothing twice and retries this line.
			return nil, err
		}
	}
	return changes, nil
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

// onMessage stores an incoming message in the chat history.
func (s *server) onMessage(ctx context.Context, m webhook.Message) error {
	key := m.Contact.Key()
	if key == "" || m.ID == "" {
		return nil // not attributable: nothing to show
	}
	now := s.clock.Now()
	if err := s.inbox.noteContact(ctx, m.Channel, key, m.Contact.Name, now); err != nil {
		return err
	}
	body := m.Text
	if m.Type != "text" || body == "" {
		body = "[" + m.Type + " message]"
	}
	at := m.Timestamp
	if at.IsZero() {
		at = now
	}
	return s.inbox.addMessage(ctx, chatMessage{
		ID: m.ID, Channel: m.Channel, Contact: key, Direction: "in", Type: m.Type, Body: body, At: at,
	})
}

// onCall adds a line for each call that ended (and each business call the
// user rejected) to the chat history.
func (s *server) onCall(ctx context.Context, c webhook.Call) error {
	key := c.Contact.Key()
	if key == "" || c.ID == "" {
		return nil
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
		return nil // connects and ringing: the terminate tells the outcome
	}
	at := c.Timestamp
	if at.IsZero() {
		at = s.clock.Now()
	}
	if err := s.inbox.noteContact(ctx, c.Channel, key, c.Contact.Name, s.clock.Now()); err != nil {
		return err
	}
	dir := "in"
	if !inbound {
		dir = "out"
	}
	return s.inbox.addMessage(ctx, chatMessage{
		ID: "call:" + c.ID + ":" + c.Event + ":" + strings.ToLower(c.Status), Channel: c.Channel, Contact: key,
		Direction: dir, Type: "call", Body: body, At: at,
	})
}
