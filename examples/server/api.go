package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
)

//go:embed web
var webFiles embed.FS

func (s *server) routes() {
	mux := http.NewServeMux()
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.Handle("GET /", pageHeaders(http.FileServerFS(web)))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /webhook", s.webhook)
	mux.Handle("POST /webhook", s.webhook)
	if !s.opts.MetricsOnOwnAddr {
		mux.Handle("GET /metrics", s.auth(s.metrics.handler().ServeHTTP, false))
	}

	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.auth(h, false)) }
	api("GET /api/channels", s.listChannels)
	api("GET /api/quarantine", s.listQuarantine)
	api("GET /api/channels/{channel}/callable", s.listCallable)
	api("GET /api/channels/{channel}/contacts/{contact}", s.explainContact)
	api("GET /api/channels/{channel}/contacts/{contact}/messages", s.contactMessages)
	api("GET /api/channels/{channel}/contacts/{contact}/history", s.contactHistory)
	api("GET /api/channels/{channel}/ledger", s.channelLedger)
	api("POST /api/channels/{channel}/contacts/{contact}/call", s.callContact)
	api("POST /api/channels/{channel}/contacts/{contact}/check", s.checkContact) // meta.go

	// The request lifecycle (requests.go).
	api("POST /api/channels/{channel}/contacts/{contact}/request", s.requestPermission)
	api("GET /api/channels/{channel}/pending", s.listPending)
	api("GET /api/channels/{channel}/reask", s.listReask)
	api("POST /api/channels/{channel}/reask", s.reaskAll)
	mux.Handle("GET /api/channels/{channel}/events", s.auth(s.events, true))
	mux.Handle("GET /api/events", s.auth(s.events, true))
	// Anything else under /api answers in JSON too, after the token check,
	// so probing without a token learns nothing about the routes.
	api("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	s.mux = mux
}

// pageHeaders keeps the page fresh after an upgrade and confines it to its
// own origin.
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// auth requires the API token as a bearer token. EventSource cannot set
// headers, so streams (queryToken) may pass it as ?token= instead.
func (s *server) auth(h http.HandlerFunc, queryToken bool) http.Handler {
	want := sha256.Sum256([]byte(s.opts.APIToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && queryToken {
			token, ok = r.URL.Query().Get("token"), r.URL.Query().Has("token")
		}
		// Hashing first makes the comparison constant-time whatever the
		// length of the token offered.
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callready"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token")
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// storeFailed answers a failure of the database: logged in full, reported
// without internals.
func (s *server) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	s.log.Error("store failure", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusServiceUnavailable, "storage unavailable, try again")
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	err := s.inbox.ping(ctx)
	if err == nil {
		// Explain reads the permission store: proves it answers too.
		_, err = s.tracker.Explain(ctx, "healthz", "healthz", time.Time{})
	}
	if err != nil {
		s.log.Error("health check failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// contactJSON is one callable contact as the API and the event stream
// show it.
type contactJSON struct {
	Contact          string     `json:"contact"`
	Name             string     `json:"name"`
	Kind             string     `json:"kind"`
	Source           string     `json:"source"`
	GrantedAt        time.Time  `json:"granted_at"`
	ExpiresAt        *time.Time `json:"expires_at"`
	CallsLeft        int        `json:"calls_left"`
	UnansweredStreak int        `json:"unanswered_streak"`
	Warning          string     `json:"warning,omitempty"`
	// Unconfirmed: granted by the user's call alone, before Meta's
	// automatic callback reply (issue 14's contract).
	Unconfirmed       bool   `json:"unconfirmed"`
	UnconfirmedReason string `json:"unconfirmed_reason,omitempty"`
	// The person's phone number and BSUID (either may be empty); contact
	// is one of them: the BSUID when known, else the phone.
	WaID   string `json:"wa_id"`
	UserID string `json:"user_id"`
}

// inboxKey is the identifier the inbox keeps a person's chat under: the
// phone number when known (webhook.Contact.Key), else the BSUID.
func inboxKey(e permission.Entry) string { return cmp.Or(e.WaID, e.Contact) }

// inboxKeyOf resolves any identifier of a person to inboxKey's.
func (s *server) inboxKeyOf(ctx context.Context, channel, id string) (string, error) {
	p, err := s.tracker.Person(ctx, channel, id)
	if err != nil {
		return "", err
	}
	return cmp.Or(p.WaID, p.Contact), nil
}

func toContactJSON(e permission.Entry, name string) contactJSON {
	c := contactJSON{
		Contact: e.Contact, Name: name, Kind: string(e.Kind), Source: string(e.Source),
		GrantedAt: e.GrantedAt.UTC(), ExpiresAt: timeOrNil(e.ExpiresAt),
		CallsLeft: e.CallsLeft, UnansweredStreak: e.UnansweredStreak,
		Warning:     streakWarning(e.UnansweredStreak),
		Unconfirmed: e.Unconfirmed, UnconfirmedReason: e.UnconfirmedReason(),
		WaID: e.WaID, UserID: e.UserID,
	}
	return c
}

// streakWarning words the unanswered streak the way Meta applies it.
func streakWarning(streak int) string {
	switch left := limits.UnansweredRevoke - streak; {
	case streak < limits.UnansweredWarning:
		return ""
	case left <= 0:
		return strconv.Itoa(streak) + " unanswered calls in a row: Meta revokes permission"
	case left == 1:
		return strconv.Itoa(streak) + " unanswered in a row: one more revokes permission"
	default:
		return strconv.Itoa(streak) + " unanswered in a row: " + strconv.Itoa(left) + " more revoke permission"
	}
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

type channelJSON struct {
	Channel     string `json:"channel"`
	Display     string `json:"display_phone_number"`
	Callable    int    `json:"callable"`
	Expiring24h int    `json:"expiring_24h"`
	Pending     int    `json:"pending"` // requests sent, not answered, not lapsed
}

func (s *server) listChannels(w http.ResponseWriter, r *http.Request) {
	out := []channelJSON{}
	now := s.clock.Now()
	if err := s.inbox.reload(r.Context()); err != nil {
		s.storeFailed(w, r, err)
		return
	}
	for _, c := range s.inbox.channelList() {
		n, soon, err := s.tracker.Count(c.Channel, now, 24*time.Hour)
		if err != nil {
			s.storeFailed(w, r, err)
			return
		}
		pending, err := s.tracker.CountPending(c.Channel, now)
		if err != nil {
			s.storeFailed(w, r, err)
			return
		}
		out = append(out, channelJSON{Channel: c.Channel, Display: c.Display, Callable: n, Expiring24h: soon, Pending: pending})
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// channelOr404 checks the {channel} of a request against the channels the
// server has heard of.
func (s *server) channelOr404(w http.ResponseWriter, r *http.Request) (string, bool) {
	ch := r.PathValue("channel")
	if !s.inbox.knownChannel(r.Context(), ch) {
		writeError(w, http.StatusNotFound, "unknown channel "+strconv.Quote(ch))
		return "", false
	}
	return ch, true
}

func (s *server) listCallable(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	f, stream, err := streamFormat(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q, err := callableQuery(r.URL.Query(), s.clock.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if stream {
		s.exportCallable(w, r, ch, q, f)
		return
	}
	page, err := s.tracker.Eligible(r.Context(), ch, q)
	if errors.Is(err, permission.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not from this listing (same order and filter), or corrupted")
		return
	}
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	contacts := make([]string, len(page.Entries))
	for i, e := range page.Entries {
		contacts[i] = inboxKey(e)
	}
	names, err := s.inbox.names(r.Context(), ch, contacts)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	out := make([]contactJSON, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = toContactJSON(e, names[inboxKey(e)])
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"channel":     ch,
		"revision":    page.Revision,
		"now":         q.Now.UTC(), // lets the page align its countdowns with the server's clock
		"contacts":    out,
		"next_cursor": page.NextCursor,
	})
}

type evidenceJSON struct {
	What       string     `json:"what"`
	At         time.Time  `json:"at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Source     string     `json:"source,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	EventID    string     `json:"event_id,omitempty"`
	Context    string     `json:"context,omitempty"`
	Origin     string     `json:"origin,omitempty"`
	RecordedAt *time.Time `json:"recorded_at,omitempty"`
	Revision   int64      `json:"revision,omitempty"`
}

type explanationJSON struct {
	Channel string    `json:"channel"`
	Contact string    `json:"contact"`
	Name    string    `json:"name"`
	Now     time.Time `json:"now"`
	// At is the instant answered (now unless ?at=), and KnownAt, when
	// ?known_at= is given, the instant the answer is limited to: only
	// events recorded by then count.
	At                time.Time      `json:"at"`
	KnownAt           *time.Time     `json:"known_at"`
	Callable          bool           `json:"callable"`
	Status            string         `json:"status"`
	Reason            string         `json:"reason"`
	Since             *time.Time     `json:"since"`
	Kind              *string        `json:"kind"`
	Source            *string        `json:"source"`
	GrantedAt         *time.Time     `json:"granted_at"`
	ExpiresAt         *time.Time     `json:"expires_at"`
	CanCall           bool           `json:"can_call"`
	CallReason        string         `json:"call_reason"`
	CallsLeft         int            `json:"calls_left"`
	CallsFreeAt       *time.Time     `json:"calls_free_at"`
	UnansweredStreak  int            `json:"unanswered_streak"`
	CallsBeforeRevoke int            `json:"calls_before_revoke"`
	Warning           string         `json:"warning,omitempty"`
	CanRequest        bool           `json:"can_request"`
	RequestReason     string         `json:"request_reason"`
	RequestsLeft      int            `json:"requests_left"`
	NextRequestAt     *time.Time     `json:"next_request_at"`
	Unconfirmed       bool           `json:"unconfirmed"`
	UnconfirmedReason string         `json:"unconfirmed_reason,omitempty"`
	History           []evidenceJSON `json:"history"`
	// Pending is the request sent and not answered yet, if any; RequestVia
	// how the Request permission action would send one now (message,
	// template, or "" with RequestBlocked saying why not).
	Pending        *pendingJSON `json:"pending"`
	RequestVia     string       `json:"request_via"`
	RequestBlocked string       `json:"request_blocked,omitempty"`
}

func (s *server) explainContact(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	contact := r.PathValue("contact")
	ctx := r.Context()
	now := s.clock.Now()
	v := r.URL.Query()
	at, err := parseInstant(v, "at")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	knownAt, err := parseInstant(v, "known_at")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if at.IsZero() {
		at = now
	}
	var opts []permission.ExplainOption
	if !knownAt.IsZero() {
		opts = append(opts, permission.KnownAt(knownAt))
	}
	key, err := s.inboxKeyOf(ctx, ch, contact)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	name, known, err := s.inbox.contact(ctx, ch, key)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	x, err := s.tracker.Explain(ctx, ch, contact, at, opts...)
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	if !known && x.Status == permission.StatusNeverGranted && len(x.Evidence) == 0 {
		writeError(w, http.StatusNotFound, "unknown contact "+strconv.Quote(contact))
		return
	}
	call, req := x.CallDecision(), x.RequestDecision()
	out := explanationJSON{
		Channel: ch, Contact: contact, Name: name, Now: now.UTC(), At: at, KnownAt: timeOrNil(knownAt),
		Callable: x.Callable, Status: string(x.Status), Reason: x.Reason, Since: timeOrNil(x.Since),
		CanCall: call.Allowed, CallReason: string(call.Reason),
		CallsLeft: x.Limits.CallsLeft, CallsFreeAt: timeOrNil(x.Limits.CallsFreeAt),
		UnansweredStreak: x.Limits.UnansweredStreak, CallsBeforeRevoke: x.Limits.CallsBeforeRevoke,
		Warning:    x.Limits.Warning,
		CanRequest: req.Allowed, RequestReason: string(req.Reason), RequestsLeft: x.Limits.RequestsLeft,
		NextRequestAt: timeOrNil(x.Limits.NextRequestAt),
		History:       []evidenceJSON{},
	}
	if x.Callable {
		kind, source := string(x.Entry.Kind), string(x.Entry.Source)
		out.Kind, out.Source = &kind, &source
		out.GrantedAt, out.ExpiresAt = timeOrNil(x.Entry.GrantedAt), timeOrNil(x.Entry.ExpiresAt)
		out.Unconfirmed, out.UnconfirmedReason = x.Entry.Unconfirmed, x.Entry.UnconfirmedReason()
	}
	if err := s.explainRequest(ctx, &out, ch, contact, key, at, now); err != nil {
		s.storeFailed(w, r, err)
		return
	}
	for _, ev := range x.Evidence {
		out.History = append(out.History, evidenceJSON{
			What: ev.What, At: ev.At.UTC(), ExpiresAt: timeOrNil(ev.ExpiresAt),
			Source: string(ev.Source), Reason: string(ev.Reason), EventID: ev.EventID,
			Context: ev.Context, Origin: string(ev.Origin), RecordedAt: timeOrNil(ev.RecordedAt), Revision: ev.Revision,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) contactMessages(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	contact := r.PathValue("contact")
	key, err := s.inboxKeyOf(r.Context(), ch, contact)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	name, known, err := s.inbox.contact(r.Context(), ch, key)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	if !known {
		writeError(w, http.StatusNotFound, "unknown contact "+strconv.Quote(contact))
		return
	}
	msgs, err := s.inbox.messages(r.Context(), ch, key)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": contact, "name": name, "messages": msgs})
}

// callJSON answers the Call action: whether the call may be placed at this
// moment (CanCall decides, at the click) and, when it may, the link that
// hands it to the host's dialer.
type callJSON struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"` // allowed, call_limit, expired, revoked, no_permission, no_phone
	// RetryAt: when the call becomes possible again (the call limit frees
	// a slot), if knowable.
	RetryAt *time.Time `json:"retry_at"`
	// EndedAt: when the permission ended (reason expired or revoked).
	EndedAt   *time.Time `json:"ended_at"`
	Status    string     `json:"status"`
	CallsLeft int        `json:"calls_left"`
	// Warning words an unanswered streak close to Meta's revoke.
	Warning string    `json:"warning,omitempty"`
	DialURL string    `json:"dial_url,omitempty"`
	Now     time.Time `json:"now"`
}

func (s *server) callContact(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	contact := r.PathValue("contact")
	now := s.clock.Now()
	d, err := s.tracker.CanCall(r.Context(), ch, contact, now)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	out := callJSON{
		Allowed: d.Allowed, Reason: string(d.Reason), RetryAt: timeOrNil(d.RetryAt),
		CallsLeft: d.Limits.CallsLeft, Warning: d.Limits.Warning, Now: now.UTC(),
	}
	if !d.Allowed {
		x, err := s.tracker.Explain(r.Context(), ch, contact, now)
		if err != nil {
			s.storeFailed(w, r, err)
			return
		}
		out.Status = string(x.Status)
		if !x.Callable {
			out.EndedAt = timeOrNil(x.Since)
		}
	}
	if d.Allowed {
		if strings.Contains(s.opts.DialURL, "{phone}") && !isDigits(contact) {
			// A BSUID without a phone number: Meta's API can call it, a
			// phone dialer cannot.
			out.Allowed, out.Reason = false, "no_phone"
		} else {
			out.DialURL = dialURL(s.opts.DialURL, ch, contact)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
