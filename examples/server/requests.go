package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
)

// The request lifecycle in the server: the Request permission action, the
// Pending and Re-ask tabs and the bulk re-ask (README.md, "Permission
// requests").

// permissionSender is the part of cloudapi.Client that sends requests.
type permissionSender interface {
	SendPermissionRequest(ctx context.Context, phoneNumberID string, req cloudapi.PermissionRequest) (cloudapi.SendResult, error)
	SendPermissionTemplate(ctx context.Context, phoneNumberID string, req cloudapi.TemplateRequest) (cloudapi.SendResult, error)
}

// serviceWindow is Meta's customer-service window: a free-form message
// may be sent within 24 h of the user's last message.
const serviceWindow = 24 * time.Hour

// requestBody is the free-form request's text above Meta's buttons.
const requestBody = "We would like to call you on WhatsApp about your conversation with us. May we?"

// Ways a request is sent.
const (
	viaMessage  = "message"  // free-form interactive call_permission_request, inside the window
	viaTemplate = "template" // the configured template, outside it
)

// sender returns the Cloud API client that sends requests, nil when none.
func (s *server) sender() permissionSender {
	snd, _ := s.opts.Meta.API.(permissionSender)
	return snd
}

// requestVia says how a request to the contact would go now: a free-form
// message inside the 24 h window (known from the inbox's last inbound
// message), else the template; "" with the reason when neither can.
func (s *server) requestVia(ctx context.Context, channel, inboxKey string, now time.Time) (via, why string, err error) {
	if s.sender() == nil || !slices.Contains(s.opts.Meta.Channels, channel) {
		return "", "Meta's Cloud API is not configured for this number: set CALLREADY_META_TOKEN and CALLREADY_META_PHONE_NUMBER_IDS (or run with -demo)", nil
	}
	last, ok, err := s.inbox.lastInbound(ctx, channel, inboxKey)
	if err != nil {
		return "", "", err
	}
	if ok && now.Sub(last) < serviceWindow {
		return viaMessage, "", nil
	}
	if s.opts.Meta.Template == "" {
		return "", "outside the 24 h customer-service window, and no template is configured (CALLREADY_META_TEMPLATE)", nil
	}
	return viaTemplate, "", nil
}

// lastInbound is the time of the contact's last message to the business.
func (in *inbox) lastInbound(ctx context.Context, channel, contact string) (time.Time, bool, error) {
	var ms sql.NullInt64
	err := in.db.QueryRowContext(ctx, in.q(`SELECT MAX(at_ms) FROM server_messages WHERE channel = ? AND contact = ? AND direction = 'in'`),
		channel, contact).Scan(&ms)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("inbox: reading the last inbound message: %w", err)
	}
	if !ms.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(ms.Int64).UTC(), true, nil
}

type pendingJSON struct {
	Contact   string    `json:"contact"`
	Name      string    `json:"name"`
	WaID      string    `json:"wa_id"`
	UserID    string    `json:"user_id"`
	RequestID string    `json:"request_id"`
	SentAt    time.Time `json:"sent_at"`
	LapsesAt  time.Time `json:"lapses_at"`
}

func toPendingJSON(p permission.PendingEntry, name string) pendingJSON {
	return pendingJSON{Contact: p.Contact, Name: name, WaID: p.WaID, UserID: p.UserID, RequestID: p.RequestID,
		SentAt: p.SentAt.UTC(), LapsesAt: p.LapsesAt.UTC()}
}

func pendingInboxKey(p permission.PendingEntry) string { return cmp.Or(p.WaID, p.Contact) }

// requestJSON answers the Request permission action.
type requestJSON struct {
	Channel   string    `json:"channel"`
	Contact   string    `json:"contact"`
	RequestID string    `json:"request_id"`
	Via       string    `json:"via"` // message or template
	SentAt    time.Time `json:"sent_at"`
	LapsesAt  time.Time `json:"lapses_at"`
}

// refusedJSON is a request not sent: 409 with why.
type refusedJSON struct {
	Error string `json:"error"`
	// Reason: in_flight, pending, a permission.Reason of CanRequest
	// (request_limit_24h, request_limit_7d, permanent_granted), or
	// not_configured / no_template.
	Reason  string       `json:"reason"`
	RetryAt *time.Time   `json:"retry_at"`
	Pending *pendingJSON `json:"pending,omitempty"`
}

// sendTo sends one permission request to contact through the tracker's
// idempotent SendRequest, the way requestVia chose, and writes it to the
// chat history.
func (s *server) sendTo(ctx context.Context, channel, contact string) (requestJSON, error) {
	now := s.clock.Now()
	p, err := s.tracker.Person(ctx, channel, contact)
	if err != nil {
		return requestJSON{}, err
	}
	key := cmp.Or(p.WaID, p.Contact)
	via, why, err := s.requestVia(ctx, channel, key, now)
	if err != nil {
		return requestJSON{}, err
	}
	if via == "" {
		return requestJSON{}, &notSendable{why: why, configured: s.sender() != nil && slices.Contains(s.opts.Meta.Channels, channel)}
	}
	to := cloudapi.Recipient{Phone: p.WaID, UserID: p.UserID}
	if to.Phone == "" && to.UserID == "" {
		to.Phone = contact
	}
	snd := s.sender()
	sent, err := s.tracker.SendRequest(ctx, channel, contact, func(ctx context.Context) (string, error) {
		var res cloudapi.SendResult
		var err error
		if via == viaMessage {
			res, err = snd.SendPermissionRequest(ctx, channel, cloudapi.PermissionRequest{To: to, Body: requestBody})
		} else {
			res, err = snd.SendPermissionTemplate(ctx, channel, cloudapi.TemplateRequest{To: to, Name: s.opts.Meta.Template, Language: s.opts.Meta.TemplateLanguage})
		}
		return res.MessageID, err
	})
	if err != nil && sent.RequestID == "" {
		return requestJSON{}, err
	}
	body := "[Call permission request] " + requestBody
	if via == viaTemplate {
		body = "[Call permission request] template " + s.opts.Meta.Template + " (" + s.opts.Meta.TemplateLanguage + ")"
	}
	if aerr := s.inbox.addMessage(context.WithoutCancel(ctx), chatMessage{ID: sent.RequestID, Channel: channel, Contact: key,
		Direction: "out", Type: "interactive", Body: body, At: sent.SentAt}); aerr != nil && err == nil {
		err = aerr
	}
	out := requestJSON{Channel: channel, Contact: sent.Contact, RequestID: sent.RequestID, Via: via, SentAt: sent.SentAt.UTC(), LapsesAt: sent.LapsesAt.UTC()}
	return out, err
}

// notSendable: no way to send a request to this contact now.
type notSendable struct {
	why        string
	configured bool
}

func (e *notSendable) Error() string { return e.why }

// requestPermission is the Request permission action:
// POST /api/channels/{channel}/contacts/{contact}/request.
func (s *server) requestPermission(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	contact := r.PathValue("contact")
	if !validContact(contact) {
		writeError(w, http.StatusBadRequest, "bad contact: want a wa_id (digits) or a BSUID")
		return
	}
	out, err := s.sendTo(r.Context(), ch, contact)
	if err != nil {
		s.requestFailed(w, r, ch, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// requestFailed answers a request that was not sent.
func (s *server) requestFailed(w http.ResponseWriter, r *http.Request, ch string, err error) {
	status, body := s.refusal(r.Context(), ch, err)
	if status == 0 {
		s.storeFailed(w, r, err)
		return
	}
	if body.RetryAt != nil && status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(*body.RetryAt).Seconds())+1))
	}
	writeJSON(w, status, body)
}

// refusal maps why a request was not sent to a status and a body; 0 for a
// storage failure.
func (s *server) refusal(ctx context.Context, ch string, err error) (int, refusedJSON) {
	var re *permission.RequestError
	var ns *notSendable
	var apiErr *cloudapi.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &ns):
		reason, status := "no_template", http.StatusConflict
		if !ns.configured {
			reason, status = "not_configured", http.StatusServiceUnavailable
		}
		return status, refusedJSON{Error: ns.why, Reason: reason}
	case errors.As(err, &re):
		out := refusedJSON{Error: re.Error(), Reason: string(re.Decision.Reason), RetryAt: timeOrNil(re.Decision.RetryAt)}
		switch {
		case errors.Is(err, permission.ErrRequestInFlight):
			out.Reason, out.Error, out.RetryAt = "in_flight", "another agent is sending a request to this contact right now", timeOrNil(re.ClaimedUntil)
		case errors.Is(err, permission.ErrPending):
			name, _, _ := s.inbox.contact(ctx, ch, pendingInboxKey(re.Pending))
			p := toPendingJSON(re.Pending, name)
			out.Reason, out.Pending, out.RetryAt = "pending", &p, timeOrNil(re.Pending.LapsesAt)
			out.Error = "a request is pending: the user has not answered yet"
		default:
			out.Error = requestReasonText(re.Decision.Reason)
		}
		return http.StatusConflict, out
	case errors.As(err, &apiErr):
		if apiErr.RateLimited() {
			out := refusedJSON{Error: "Meta's rate limit: try again shortly", Reason: "rate_limited"}
			if apiErr.RetryAfter > 0 {
				out.RetryAt = timeOrNil(s.clock.Now().Add(apiErr.RetryAfter))
			}
			return http.StatusTooManyRequests, out
		}
		reason := "meta_error"
		if pr, ok := apiErr.Reason(); ok {
			reason = string(pr)
		}
		s.log.Warn("permission request", "channel", ch, "err", err)
		return http.StatusBadGateway, refusedJSON{Error: "Meta answered: " + apiErr.Message, Reason: reason}
	case errors.As(err, &urlErr):
		s.log.Warn("permission request", "channel", ch, "err", err)
		return http.StatusBadGateway, refusedJSON{Error: "Meta could not be reached", Reason: "unreachable"}
	}
	return 0, refusedJSON{}
}

func requestReasonText(r permission.Reason) string {
	switch r {
	case permission.ReasonRequestLimitDay:
		return "Meta allows one permission request per 24 h"
	case permission.ReasonRequestLimitWeek:
		return "Meta allows two permission requests per 7 days"
	case permission.ReasonPermanentHeld:
		return "the user already gave a permanent permission"
	}
	return "request not allowed: " + string(r)
}

// listPending is the Pending tab: GET /api/channels/{channel}/pending.
func (s *server) listPending(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	now := s.clock.Now()
	q := permission.PendingQuery{Now: now, Cursor: r.URL.Query().Get("cursor")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > permission.MaxPageSize {
			writeError(w, http.StatusBadRequest, "limit: want an integer from 1 to "+strconv.Itoa(permission.MaxPageSize))
			return
		}
		q.Limit = n
	}
	page, err := s.tracker.Pending(r.Context(), ch, q)
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	keys := make([]string, len(page.Entries))
	for i, p := range page.Entries {
		keys[i] = pendingInboxKey(p)
	}
	names, err := s.inbox.names(r.Context(), ch, keys)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	out := make([]pendingJSON, len(page.Entries))
	for i, p := range page.Entries {
		out[i] = toPendingJSON(p, names[keys[i]])
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": ch, "revision": page.Revision, "now": now.UTC(), "pending": out, "next_cursor": page.NextCursor})
}

type reaskJSON struct {
	Contact       string     `json:"contact"`
	Name          string     `json:"name"`
	WaID          string     `json:"wa_id"`
	UserID        string     `json:"user_id"`
	Reason        string     `json:"reason"` // expired or revoked
	Status        string     `json:"status"` // expired, rejected, revoked_profile, …
	LapsedAt      time.Time  `json:"lapsed_at"`
	CanRequest    bool       `json:"can_request"`
	RequestReason string     `json:"request_reason"`
	AllowedAt     *time.Time `json:"allowed_at"`
}

// reaskQuery reads ?within=, ?declined_for= (Go durations), ?limit= and
// ?cursor=.
func reaskQuery(v url.Values, now time.Time) (permission.ReaskQuery, error) {
	q := permission.ReaskQuery{Now: now, Cursor: v.Get("cursor")}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{{"within", &q.Within}, {"declined_for", &q.DeclinedFor}} {
		if s := v.Get(f.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return q, fmt.Errorf("%s: want a positive duration such as 168h, got %q", f.name, s)
			}
			*f.dst = d
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > permission.MaxPageSize {
			return q, errors.New("limit: want an integer from 1 to " + strconv.Itoa(permission.MaxPageSize))
		}
		q.Limit = n
	}
	return q, nil
}

func reaskInboxKey(e permission.ReaskEntry) string { return cmp.Or(e.WaID, e.Contact) }

// listReask is the Re-ask tab: GET /api/channels/{channel}/reask.
func (s *server) listReask(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	now := s.clock.Now()
	q, err := reaskQuery(r.URL.Query(), now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.tracker.Reask(r.Context(), ch, q)
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	keys := make([]string, len(page.Entries))
	for i, e := range page.Entries {
		keys[i] = reaskInboxKey(e)
	}
	names, err := s.inbox.names(r.Context(), ch, keys)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	out := make([]reaskJSON, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = reaskJSON{Contact: e.Contact, Name: names[keys[i]], WaID: e.WaID, UserID: e.UserID, Reason: string(e.Reason), Status: string(e.Status),
			LapsedAt: e.LapsedAt.UTC(), CanRequest: e.Decision.Allowed, RequestReason: string(e.Decision.Reason), AllowedAt: timeOrNil(e.AllowedAt)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": ch, "now": now.UTC(), "contacts": out, "next_cursor": page.NextCursor})
}

type reaskResultJSON struct {
	Contact   string `json:"contact"`
	Name      string `json:"name"`
	Sent      bool   `json:"sent"`
	RequestID string `json:"request_id,omitempty"`
	Via       string `json:"via,omitempty"`
	// Reason and Error say why not, when not sent (as the Request
	// permission action's 409 and 502 answers do).
	Reason  string     `json:"reason,omitempty"`
	Error   string     `json:"error,omitempty"`
	RetryAt *time.Time `json:"retry_at,omitempty"`
}

// reaskAll is the bulk action: POST /api/channels/{channel}/reask sends a
// request to everyone on the Re-ask list (same query parameters, limit
// default 50) whom the limits allow, and reports per person.
func (s *server) reaskAll(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	q, err := reaskQuery(r.URL.Query(), s.clock.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.sender() == nil || !slices.Contains(s.opts.Meta.Channels, ch) {
		writeError(w, http.StatusServiceUnavailable, "Meta's Cloud API is not configured for this number: set CALLREADY_META_TOKEN and CALLREADY_META_PHONE_NUMBER_IDS (or run with -demo)")
		return
	}
	page, err := s.tracker.Reask(r.Context(), ch, q)
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	out := make([]reaskResultJSON, 0, len(page.Entries))
	sent := 0
	for _, e := range page.Entries {
		name, _, err := s.inbox.contact(r.Context(), ch, reaskInboxKey(e))
		if err != nil {
			s.storeFailed(w, r, err)
			return
		}
		res := reaskResultJSON{Contact: e.Contact, Name: name}
		if !e.Decision.Allowed {
			res.Reason, res.Error, res.RetryAt = string(e.Decision.Reason), requestReasonText(e.Decision.Reason), timeOrNil(e.AllowedAt)
			out = append(out, res)
			continue
		}
		got, err := s.sendTo(r.Context(), ch, e.Contact)
		switch {
		case err == nil:
			res.Sent, res.RequestID, res.Via = true, got.RequestID, got.Via
			sent++
		case r.Context().Err() != nil:
			return // the client went away
		default:
			status, body := s.refusal(r.Context(), ch, err)
			if status == 0 {
				s.storeFailed(w, r, err)
				return
			}
			res.Reason, res.Error, res.RetryAt = body.Reason, body.Error, body.RetryAt
		}
		out = append(out, res)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": ch, "sent": sent, "not_sent": len(out) - sent, "results": out})
}

// pendingEventJSON is the data of a pending or pending_ended SSE event
// (streams opened with ?pending=1).
type pendingEventJSON struct {
	pendingJSON
	Channel  string    `json:"channel"`
	Type     string    `json:"type"`
	Revision int64     `json:"revision"`
	At       time.Time `json:"at"`
	// Ended: answered or lapsed (pending_ended only).
	Ended    string   `json:"ended,omitempty"`
	Replaces []string `json:"replaces,omitempty"`
}

func (s *server) pendingEvent(ctx context.Context, c permission.Change) (pendingEventJSON, error) {
	p := c.Pending
	name, _, err := s.inbox.contact(ctx, p.Channel, pendingInboxKey(p))
	if err != nil {
		return pendingEventJSON{}, err
	}
	return pendingEventJSON{pendingJSON: toPendingJSON(p, name), Channel: p.Channel, Type: string(c.Type), Revision: c.Revision,
		At: c.At.UTC(), Ended: string(p.Ended), Replaces: c.Replaces}, nil
}

// demoTemplate is the template -demo sends outside the 24 h window when
// CALLREADY_META_TEMPLATE is not set.
const demoTemplate = "callready_demo_call_permission"

// demoReplyAfter is how long the demo's simulated users take to answer.
const demoReplyAfter = 4 * time.Second

// demoAutoReply is how the demo's simulated users answer the requests
// the server sends through the fake Meta: from the user's number, three in
// four accept (one of those for good), the others never answer.
func demoAutoReply(req cloudapitest.Request) (cloudapitest.Reply, bool) {
	h := fnv.New32a()
	h.Write([]byte(cmp.Or(req.Phone, req.UserID)))
	switch h.Sum32() % 8 {
	case 0, 1:
		return cloudapitest.Reply{}, false
	case 2:
		return cloudapitest.Reply{Accept: true, Permanent: true, After: demoReplyAfter}, true
	}
	return cloudapitest.Reply{Accept: true, After: demoReplyAfter}, true
}

func (s *server) writePendingChange(ctx context.Context, w io.Writer, c permission.Change) error {
	ev, err := s.pendingEvent(ctx, c)
	if err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", c.Type, c.Revision, data)
	return err
}

// explainRequest adds the request lifecycle to a contact's explanation:
// the pending request and how a new one would be sent (only for now, not
// for a past instant).
func (s *server) explainRequest(ctx context.Context, out *explanationJSON, ch, contact, inboxKey string, at, now time.Time) error {
	if !at.Equal(now) {
		return nil
	}
	p, ok, err := s.tracker.PendingRequest(ctx, ch, contact, now)
	if err != nil {
		return err
	}
	if ok {
		name, _, err := s.inbox.contact(ctx, ch, pendingInboxKey(p))
		if err != nil {
			return err
		}
		pj := toPendingJSON(p, name)
		out.Pending = &pj
	}
	via, why, err := s.requestVia(ctx, ch, inboxKey, now)
	if err != nil {
		return err
	}
	out.RequestVia, out.RequestBlocked = via, why
	return nil
}
