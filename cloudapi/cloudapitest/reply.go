package cloudapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/webhook"
)

// Reply is a simulated user's answer to a permission request.
type Reply struct {
	// Accept grants permission; false rejects.
	Accept bool
	// Permanent makes an accept permanent; otherwise it is temporary, for
	// PermissionTTL from the moment it is given.
	Permanent bool
	// After delays the answer, measured on the server's clock: with a
	// clock.Mock, the answer comes when the test advances the clock past
	// it. Zero answers at once.
	After time.Duration
	// Lost changes Meta's state (what GET call_permissions answers) but
	// posts no webhook: a delivery the host missed.
	Lost bool
	// ID is the reply message's wamid; default a fresh one.
	ID string
}

// Delivery is the outcome of a scheduled reply or a posted status.
type Delivery struct {
	done chan struct{}
	err  error
	body []byte
}

func newDelivery() *Delivery { return &Delivery{done: make(chan struct{})} }

func (d *Delivery) finish(body []byte, err error) {
	d.body, d.err = body, err
	close(d.done)
}

// Done is closed once the reply was given (and its webhook answered).
func (d *Delivery) Done() <-chan struct{} { return d.done }

// Err is nil when the webhook was answered 2xx (or the reply was Lost on
// purpose), else why not: ErrLapsed, ErrClosed, a transport error, or the
// receiver's status. Valid once Done is closed.
func (d *Delivery) Err() error {
	<-d.done
	return d.err
}

// Body is the signed webhook body that was posted (nil for a Lost reply or
// a reply that could not be given). Valid once Done is closed.
func (d *Delivery) Body() []byte {
	<-d.done
	return d.body
}

// Wait waits for the delivery and returns Err, or ctx's error.
func (d *Delivery) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reply makes the user who received request requestID (a wamid the server
// returned) answer it after r.After, by posting a signed
// call_permission_reply webhook to the webhook URL, shaped exactly like
// Meta's, with context.id = requestID. Meta's state changes when the
// answer is given. It fails at once with ErrUnknownRequest,
// ErrUndeliverable, ErrLapsed, ErrNoWebhookURL or ErrClosed; a request that
// lapses during the delay finishes the Delivery with ErrLapsed.
func (s *Server) Reply(requestID string, r Reply) (*Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	req := s.requests[requestID]
	if req == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRequest, requestID)
	}
	if req.Undelivered {
		return nil, fmt.Errorf("%w: %q", ErrUndeliverable, requestID)
	}
	if s.lapsedLocked(req, s.clk.Now()) {
		return nil, fmt.Errorf("%w: %q", ErrLapsed, requestID)
	}
	if !r.Lost && s.webhookURL == "" {
		return nil, ErrNoWebhookURL
	}
	d := newDelivery()
	req.deliveries = append(req.deliveries, d)
	s.posts.Add(1)
	if r.After <= 0 {
		go s.answer(req, r, d, nil)
		return d, nil
	}
	var t *clock.Timer
	ready := make(chan struct{})
	t = s.clk.AfterFunc(r.After, func() {
		<-ready
		s.answer(req, r, d, t)
	})
	s.timers[t] = struct{}{}
	close(ready)
	return d, nil
}

// lapsedLocked: a request lapses RequestTTL after the user's first answer
// or, unanswered, after delivery, and when the user answers a newer one.
func (s *Server) lapsedLocked(req *request, now time.Time) bool {
	from := req.SentAt
	if !req.answeredAt.IsZero() {
		from = req.answeredAt
	}
	if !now.Before(from.Add(s.cfg.RequestTTL)) {
		return true
	}
	a := s.pairLocked(req.Channel, req.user).answered
	return a != nil && a.seq > req.seq
}

// answer gives reply r to req at the server's now; it runs on the timer's
// goroutine (t) or its own (t nil).
func (s *Server) answer(req *request, r Reply, d *Delivery, t *clock.Timer) {
	defer s.posts.Done()
	now := s.clk.Now()
	s.mu.Lock()
	if t != nil {
		delete(s.timers, t)
	}
	if s.closed {
		s.mu.Unlock()
		d.finish(nil, ErrClosed)
		return
	}
	if s.lapsedLocked(req, now) {
		s.mu.Unlock()
		d.finish(nil, fmt.Errorf("%w: %q", ErrLapsed, req.ID))
		return
	}
	p := s.pairLocked(req.Channel, req.user)
	switch {
	case r.Accept && r.Permanent:
		p.perm = Permission{Status: "permanent"}
	case r.Accept:
		if s.permLocked(p, now).Status != "permanent" {
			p.perm = Permission{Status: "temporary", ExpiresAt: now.Add(s.cfg.PermissionTTL)}
		}
	default:
		p.perm = Permission{Status: "no_permission"}
	}
	if req.answeredAt.IsZero() {
		req.answeredAt = now
	}
	if p.answered == nil || p.answered.seq < req.seq {
		p.answered = req
	}
	id := r.ID
	if id == "" {
		id = s.nextID("wamid.")
	}
	body := s.replyBodyLocked(req, r, id, now)
	url := s.webhookURL
	s.mu.Unlock()
	if r.Lost {
		d.finish(nil, nil)
		return
	}
	if url == "" {
		d.finish(nil, ErrNoWebhookURL)
		return
	}
	d.finish(body, s.post(url, body))
}

// postAsync posts body in the background, reporting a failure to OnError
// and to the returned Delivery.
func (s *Server) postAsync(body []byte) *Delivery {
	d := newDelivery()
	s.mu.Lock()
	url, closed := s.webhookURL, s.closed
	if !closed {
		s.posts.Add(1)
	}
	s.mu.Unlock()
	if closed {
		d.finish(nil, ErrClosed)
		return d
	}
	go func() {
		defer s.posts.Done()
		err := ErrNoWebhookURL
		if url != "" {
			err = s.post(url, body)
		}
		if err != nil && s.cfg.OnError != nil {
			s.cfg.OnError(err)
		}
		if err != nil {
			body = nil
		}
		d.finish(body, err)
	}()
	return d
}

// Deliveries lists, in order, the webhook deliveries about the request
// requestID: its replies (from Reply or Config.AutoReply), or the failed
// status (error 131026) of a request to a user on an old app. Nil for an
// unknown request.
func (s *Server) Deliveries(requestID string) []*Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.requests[requestID]; r != nil {
		return slices.Clone(r.deliveries)
	}
	return nil
}

// post sends body, signed, to url; a non-2xx answer is an error.
func (s *Server) post(url string, body []byte) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cloudapitest: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, s.cfg.AppSecret))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("cloudapitest: webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cloudapitest: webhook answered %s", resp.Status)
	}
	return nil
}

// The webhook envelope, field for field and in Meta's order (see
// shared/fixtures/webhooks/permission-accept-temporary.json).
type (
	envelope struct {
		Object string  `json:"object"`
		Entry  []entry `json:"entry"`
	}
	entry struct {
		ID      string   `json:"id"`
		Changes []change `json:"changes"`
	}
	change struct {
		Field string `json:"field"`
		Value value  `json:"value"`
	}
	value struct {
		MessagingProduct string        `json:"messaging_product"`
		Metadata         metadata      `json:"metadata"`
		Contacts         []contact     `json:"contacts,omitempty"`
		Messages         []message     `json:"messages,omitempty"`
		Statuses         []statusEntry `json:"statuses,omitempty"`
	}
	metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	}
	contact struct {
		Profile *profile `json:"profile,omitempty"`
		WaID    string   `json:"wa_id,omitempty"`
		UserID  string   `json:"user_id,omitempty"`
	}
	profile struct {
		Name string `json:"name"`
	}
	message struct {
		From        string         `json:"from,omitempty"`
		FromUserID  string         `json:"from_user_id,omitempty"`
		ID          string         `json:"id"`
		Timestamp   string         `json:"timestamp"`
		Context     messageContext `json:"context"`
		Type        string         `json:"type"`
		Interactive struct {
			Type  string          `json:"type"`
			Reply permissionReply `json:"call_permission_reply"`
		} `json:"interactive"`
	}
	messageContext struct {
		From string `json:"from"`
		ID   string `json:"id"`
	}
	permissionReply struct {
		Response            string `json:"response"`
		IsPermanent         *bool  `json:"is_permanent,omitempty"`
		ExpirationTimestamp string `json:"expiration_timestamp,omitempty"`
		ResponseSource      string `json:"response_source"`
	}
	statusEntry struct {
		ID              string        `json:"id"`
		Status          string        `json:"status"`
		Timestamp       string        `json:"timestamp"`
		RecipientID     string        `json:"recipient_id,omitempty"`
		RecipientUserID string        `json:"recipient_user_id,omitempty"`
		Errors          []statusError `json:"errors"`
	}
	statusError struct {
		Code      int    `json:"code"`
		Title     string `json:"title"`
		Message   string `json:"message"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	}
)

func (s *Server) envelopeLocked(channel string, v value) []byte {
	display, _ := s.display(channel)
	v.MessagingProduct = "whatsapp"
	v.Metadata = metadata{DisplayPhoneNumber: display, PhoneNumberID: channel}
	b, err := json.Marshal(envelope{
		Object: "whatsapp_business_account",
		Entry:  []entry{{ID: s.cfg.WABAID, Changes: []change{{Field: "messages", Value: v}}}},
	})
	if err != nil {
		panic(err) // only strings, bools and fixed structs: cannot fail
	}
	return b
}

func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func (s *Server) replyBodyLocked(req *request, r Reply, id string, now time.Time) []byte {
	u := req.user.User
	c := contact{WaID: u.Phone, UserID: u.UserID}
	if u.Name != "" {
		c.Profile = &profile{Name: u.Name}
	}
	display, _ := s.display(req.Channel)
	m := message{
		From: u.Phone, FromUserID: u.UserID, ID: id, Timestamp: unixString(now),
		Context: messageContext{From: display, ID: req.ID}, Type: "interactive",
	}
	m.Interactive.Type = "call_permission_reply"
	m.Interactive.Reply = permissionReply{Response: "reject", ResponseSource: "user_action"}
	if r.Accept {
		perm := r.Permanent
		m.Interactive.Reply.Response, m.Interactive.Reply.IsPermanent = "accept", &perm
		if !perm {
			m.Interactive.Reply.ExpirationTimestamp = unixString(now.Add(s.cfg.PermissionTTL))
		}
	}
	return s.envelopeLocked(req.Channel, value{Contacts: []contact{c}, Messages: []message{m}})
}

// failedStatusLocked is the status webhook of a request an old app cannot
// show: status failed with error 131026.
func (s *Server) failedStatusLocked(req *request, now time.Time) []byte {
	e := statusError{Code: 131026, Title: "Message undeliverable", Message: "Message undeliverable"}
	e.ErrorData.Details = "The recipient's WhatsApp version does not support call permission requests."
	return s.envelopeLocked(req.Channel, value{Statuses: []statusEntry{{
		ID: req.ID, Status: "failed", Timestamp: unixString(now),
		RecipientID: req.Phone, RecipientUserID: req.UserID, Errors: []statusError{e},
	}}})
}
