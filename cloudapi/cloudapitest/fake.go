package cloudapitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// Defaults of Config's zero fields.
const (
	DefaultAccessToken = "test-access-token"
	DefaultAppSecret   = "test-app-secret"
	DefaultWABAID      = "102290129340398"
	// DefaultPermissionTTL is how long a temporary accept lasts: 168 h.
	DefaultPermissionTTL = 7 * 24 * time.Hour
	// DefaultRequestTTL is how long a request can be answered: 7 days after
	// delivery, or after the user's answer.
	DefaultRequestTTL = 7 * 24 * time.Hour
)

// Errors of the Server's test-facing methods.
var (
	// ErrUnknownRequest: no request with that wamid was sent.
	ErrUnknownRequest = errors.New("cloudapitest: unknown request id")
	// ErrLapsed: the request can no longer be answered (7 days after
	// delivery or after the answer, or the user answered a newer request).
	ErrLapsed = errors.New("cloudapitest: request lapsed")
	// ErrUndeliverable: the request never reached the user (an old app).
	ErrUndeliverable = errors.New("cloudapitest: request was not delivered")
	// ErrNoWebhookURL: a webhook had to be posted but no URL is set.
	ErrNoWebhookURL = errors.New("cloudapitest: no webhook URL set")
	// ErrUnknownUser: no user has that identifier.
	ErrUnknownUser = errors.New("cloudapitest: unknown user")
	// ErrClosed: the Server is closed.
	ErrClosed = errors.New("cloudapitest: server closed")
)

// Config configures a Server. Every field is optional.
type Config struct {
	// AccessToken is the bearer token every request must carry
	// ("Authorization: Bearer …" or ?access_token=). Default
	// DefaultAccessToken.
	AccessToken string
	// AppSecret signs the webhooks the server posts (X-Hub-Signature-256).
	// Default DefaultAppSecret.
	AppSecret string
	// WebhookURL receives the simulated users' replies and message
	// statuses; SetWebhookURL changes it later. Default none: replies
	// then fail with ErrNoWebhookURL, unless lost on purpose.
	WebhookURL string
	// HTTPClient posts the webhooks. Default http.DefaultClient.
	HTTPClient *http.Client
	// Clock is the server's now: request limits, permission expiry and
	// reply delays are measured on it. Default the real clock; tests pass
	// a clock.Mock.
	Clock clock.Clock
	// WABAID is the WhatsApp Business account id in the webhooks' entry[].id.
	// Default DefaultWABAID.
	WABAID string
	// PhoneNumbers maps each business phone number id the server knows to
	// its display number (metadata.display_phone_number). Other ids get
	// Graph's error 100/33. Default nil: every id is known and displays as
	// itself.
	PhoneNumbers map[string]string
	// Templates, when not nil, lists the approved call permission request
	// templates by name; sending another gets error 132001. Default nil:
	// every name is accepted.
	Templates []string
	// RequestsPerDay and RequestsPerWeek are Meta's permission request
	// limits per (number, user): defaults 1 per 24 h and 2 per 7 days. A
	// connected call (ConnectedCall) restarts both windows.
	RequestsPerDay, RequestsPerWeek int
	// CallsPerDay is the start_call cap reported by GET call_permissions.
	// Default 100.
	CallsPerDay int
	// PermissionTTL is a temporary permission's lifetime. Default
	// DefaultPermissionTTL.
	PermissionTTL time.Duration
	// RequestTTL is how long a request stays answerable. Default
	// DefaultRequestTTL.
	RequestTTL time.Duration
	// ExpirationKey is the key of the permission's expiry in GET answers:
	// "expiration_time" (default) or "expiration", the two spellings Meta
	// has been seen to use.
	ExpirationKey string
	// AutoReply, when set, is asked after every accepted send whether the
	// simulated user answers, and how; the reply is scheduled as by Reply.
	// It runs without the server's lock held and must not block.
	AutoReply func(Request) (Reply, bool)
	// CallbackPermissionStatus is every number's
	// calling.callback_permission_status in GET settings until
	// SetCallingSettings changes it: "ENABLED" (default), "DISABLED" or
	// "NOT_SET".
	CallbackPermissionStatus string
	// OnError receives failures of webhook posts that no caller waits for
	// (auto replies, message statuses). Default: ignore them.
	OnError func(error)
}

// User is a simulated WhatsApp user.
type User struct {
	// Phone is the wa_id (digits). Empty for a username user who shows no
	// phone number.
	Phone string
	// UserID is the BSUID. When empty, AddUser makes one from the phone.
	UserID string
	// ParentUserID is an optional parent BSUID; GET accepts it as recipient.
	ParentUserID string
	// Name is the profile name in webhooks.
	Name string
	// OldApp makes the user's app too old for permission requests: a send
	// to them succeeds, then a failed status with error 131026 is posted.
	OldApp bool
}

// Request is a permission request the server accepted.
type Request struct {
	ID       string // the wamid returned to the sender
	Channel  string // phone_number_id
	Phone    string // the user's wa_id, empty for a username user
	UserID   string // the user's BSUID
	Template string // the template's name; empty for a free-form request
	Language string // the template's language code
	// Body is the free-form request's body text; Parameters the template's
	// named parameters.
	Body       string
	Parameters map[string]string
	SentAt     time.Time
	// Undelivered is set for a user on an old app: the request never showed.
	Undelivered bool
}

// Permission is the server's model of one user's permission on a number.
type Permission struct {
	Status    string    // "no_permission", "temporary" or "permanent"
	ExpiresAt time.Time // the temporary permission's end
}

// Server is a fake of Meta's Cloud API endpoints for call permissions:
// POST /<version>/<PHONE_NUMBER_ID>/messages (call permission requests,
// free-form and template) and GET /<version>/<PHONE_NUMBER_ID>/call_permissions.
// Any version prefix is accepted. It is safe for concurrent use.
type Server struct {
	cfg  Config
	clk  clock.Clock
	http *httptest.Server

	ctx    context.Context // canceled by Close: aborts webhook posts
	cancel context.CancelFunc
	posts  sync.WaitGroup // webhook posts and AfterFunc callbacks in flight

	mu         sync.Mutex
	closed     bool
	webhookURL string
	seq        int64
	users      []*user
	byID       map[string]*user // phone, BSUID and parent BSUID
	pairs      map[pairKey]*pair
	requests   map[string]*request
	order      []*request // every request, in send order
	timers     map[*clock.Timer]struct{}
	rateLimits []rateLimit
	failures   []Failure
	templates  map[string]bool
	settings   map[string]CallingSettings // by phone number id; absent: defaultSettings
}

type user struct{ User }

type pairKey struct {
	channel string
	user    *user
}

type pair struct {
	perm     Permission
	resetAt  time.Time   // last connected call: earlier requests do not count
	requests []time.Time // counted requests, oldest first
	calls    []time.Time // connected business-initiated calls
	answered *request    // the newest request the user answered
}

type request struct {
	Request
	user       *user
	seq        int64       // send order
	answeredAt time.Time   // the user's first answer
	deliveries []*Delivery // webhooks about it: replies, or the failed status
}

type rateLimit struct{ retryAfter time.Duration }

// Failure is an error the server answers the next request with (FailNext).
type Failure struct {
	// HTTPStatus of the answer. Default 400.
	HTTPStatus int
	// Code, Subcode, Type, Message and Details fill Meta's error envelope.
	Code, Subcode int
	Type, Message string
	Details       string
	// Raw, when set, is sent as the body instead of an envelope (a proxy's
	// error page), with Content-Type text/html.
	Raw string
}

// New starts a Server on a loopback port. Close it when done.
func New(cfg Config) *Server {
	if cfg.AccessToken == "" {
		cfg.AccessToken = DefaultAccessToken
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = DefaultAppSecret
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.WABAID == "" {
		cfg.WABAID = DefaultWABAID
	}
	if cfg.RequestsPerDay <= 0 {
		cfg.RequestsPerDay = 1
	}
	if cfg.RequestsPerWeek <= 0 {
		cfg.RequestsPerWeek = 2
	}
	if cfg.CallsPerDay <= 0 {
		cfg.CallsPerDay = 100
	}
	if cfg.PermissionTTL <= 0 {
		cfg.PermissionTTL = DefaultPermissionTTL
	}
	if cfg.RequestTTL <= 0 {
		cfg.RequestTTL = DefaultRequestTTL
	}
	if cfg.CallbackPermissionStatus == "" {
		cfg.CallbackPermissionStatus = "ENABLED"
	}
	if cfg.ExpirationKey == "" {
		cfg.ExpirationKey = "expiration_time"
	}
	s := &Server{
		cfg: cfg, clk: cfg.Clock, webhookURL: cfg.WebhookURL,
		byID: map[string]*user{}, pairs: map[pairKey]*pair{}, requests: map[string]*request{},
		timers: map[*clock.Timer]struct{}{},
	}
	if cfg.Templates != nil {
		s.templates = map[string]bool{}
		for _, t := range cfg.Templates {
			s.templates[t] = true
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL, for cloudapi.Config.BaseURL.
func (s *Server) URL() string { return s.http.URL }

// Client is an *http.Client for the server (the loopback listener).
func (s *Server) Client() *http.Client { return s.http.Client() }

// AccessToken is the token the server accepts.
func (s *Server) AccessToken() string { return s.cfg.AccessToken }

// AppSecret is the secret the server signs webhooks with.
func (s *Server) AppSecret() string { return s.cfg.AppSecret }

// Close stops pending replies, waits for webhook posts in flight (which it
// aborts), and shuts the HTTP server down. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.posts.Done() // its callback will never run
		}
	}
	clear(s.timers)
	s.mu.Unlock()
	s.cancel()
	s.posts.Wait()
	s.http.Close()
}

// SetWebhookURL sets where webhooks are posted from now on.
func (s *Server) SetWebhookURL(url string) {
	s.mu.Lock()
	s.webhookURL = url
	s.mu.Unlock()
}

// AddUser registers a simulated user. A user without UserID gets a BSUID
// made from the phone. Sends to unknown identifiers register users too, so
// AddUser is needed only for names, parent ids, old apps, or a username
// user known by BSUID alone.
func (s *Server) AddUser(u User) error {
	if u.Phone == "" && u.UserID == "" {
		return errors.New("cloudapitest: a user needs a phone or a user id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []string{u.Phone, u.UserID, u.ParentUserID} {
		if id != "" && s.byID[id] != nil {
			return fmt.Errorf("cloudapitest: identifier %q is already taken", id)
		}
	}
	s.addUserLocked(u)
	return nil
}

func (s *Server) addUserLocked(u User) *user {
	if u.UserID == "" {
		u.UserID = "ZZ.FAKE" + u.Phone
	}
	p := &user{u}
	s.users = append(s.users, p)
	for _, id := range []string{u.Phone, u.UserID, u.ParentUserID} {
		if id != "" {
			s.byID[id] = p
		}
	}
	return p
}

// SetOldApp marks the user known by id (phone, BSUID or parent BSUID) as on
// an app too old to show permission requests, or not.
func (s *Server) SetOldApp(id string, old bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	if u == nil {
		return fmt.Errorf("%w: %q", ErrUnknownUser, id)
	}
	u.OldApp = old
	return nil
}

// Permission is the server's current answer for the user known by id on
// channel (what GET call_permissions reports).
func (s *Server) Permission(channel, id string) Permission {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	if u == nil {
		return Permission{Status: "no_permission"}
	}
	return s.permLocked(s.pairLocked(channel, u), s.clk.Now())
}

// SetPermission overwrites Meta's state of a user's permission without any
// webhook, as when a webhook was lost or Meta's view drifted from the
// host's: the thing a reconciler must find. The user is registered if
// unknown. A temporary Permission with no ExpiresAt lasts PermissionTTL.
func (s *Server) SetPermission(channel, id string, p Permission) error {
	switch p.Status {
	case "no_permission", "permanent":
		p.ExpiresAt = time.Time{}
	case "temporary":
		if p.ExpiresAt.IsZero() {
			p.ExpiresAt = s.clk.Now().Add(s.cfg.PermissionTTL)
		}
	default:
		return fmt.Errorf("cloudapitest: unknown permission status %q", p.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	if u == nil {
		u = s.addUserLocked(identify(id))
	}
	s.pairLocked(channel, u).perm = p
	return nil
}

// identify makes a User from a lone identifier: a BSUID has a dot
// ("US.1349…"), a phone number is digits.
func identify(id string) User {
	if strings.Contains(id, ".") {
		return User{UserID: id}
	}
	return User{Phone: id}
}

// ConnectedCall reports a call between the number and the user that
// connected, at the server's now: both request windows restart, as at
// Meta. A business-initiated call also counts against start_call's cap.
func (s *Server) ConnectedCall(channel, id string, businessInitiated bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	if u == nil {
		return fmt.Errorf("%w: %q", ErrUnknownUser, id)
	}
	p := s.pairLocked(channel, u)
	now := s.clk.Now()
	p.resetAt, p.requests = now, nil
	if businessInitiated {
		p.calls = append(p.calls, now)
	}
	return nil
}

// RateLimitNext makes the next n requests fail with HTTP 429: code 613 on
// GET call_permissions, 130429 on sends. A positive retryAfter is sent as
// Retry-After (whole seconds).
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.rateLimits = append(s.rateLimits, rateLimit{retryAfter})
	}
}

// FailNext queues f as the answer to the next authenticated request, after
// any queued rate limits.
func (s *Server) FailNext(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f)
}

// Requests returns every request the server accepted, in send order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.order))
	for i, r := range s.order {
		out[i] = r.Request
		out[i].Parameters = maps.Clone(r.Parameters)
	}
	return out
}

func (s *Server) pairLocked(channel string, u *user) *pair {
	k := pairKey{channel, u}
	p := s.pairs[k]
	if p == nil {
		p = &pair{perm: Permission{Status: "no_permission"}}
		s.pairs[k] = p
	}
	return p
}

// permLocked is the pair's permission at now: an expired temporary one is
// no permission.
func (s *Server) permLocked(p *pair, now time.Time) Permission {
	if p.perm.Status == "temporary" && !now.Before(p.perm.ExpiresAt) {
		return Permission{Status: "no_permission"}
	}
	return p.perm
}

// window counts the times in ts within d before now, and the oldest of them.
func window(ts []time.Time, now time.Time, d time.Duration) (n int, oldest time.Time) {
	for _, t := range ts {
		if now.Sub(t) < d {
			if n == 0 {
				oldest = t
			}
			n++
		}
	}
	return n, oldest
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return prefix + "HBgLRkFLRQ" + strconv.FormatInt(s.seq, 36) + "AA"
}

// --- HTTP ---

// graphError is Meta's error envelope.
type graphError struct {
	Message   string            `json:"message"`
	Type      string            `json:"type"`
	Code      int               `json:"code"`
	Subcode   int               `json:"error_subcode,omitempty"`
	ErrorData *graphErrorDetail `json:"error_data,omitempty"`
	FBTraceID string            `json:"fbtrace_id"`
}

type graphErrorDetail struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

func (s *Server) writeError(w http.ResponseWriter, status int, e graphError) {
	s.mu.Lock()
	e.FBTraceID = s.nextID("Afake")
	s.mu.Unlock()
	if e.Type == "" {
		e.Type = "OAuthException"
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func invalidParam(msg string) graphError {
	return graphError{Code: 100, Message: "(#100) " + msg, ErrorData: &graphErrorDetail{"whatsapp", msg}}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// /<version>/<phone number id>/<edge>
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if !s.authorized(w, r) {
		return
	}
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "v") {
		s.writeError(w, http.StatusBadRequest, graphError{Code: 100, Subcode: 33, Type: "GraphMethodException",
			Message: "Unsupported request - method type: " + strings.ToLower(r.Method)})
		return
	}
	channel, edge := parts[1], parts[2]
	route := r.Method + " " + edge
	if route != "POST messages" && route != "GET call_permissions" && route != "GET settings" {
		s.writeError(w, http.StatusBadRequest, graphError{Code: 100, Subcode: 33, Type: "GraphMethodException",
			Message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not support this operation", strings.ToLower(r.Method), channel)})
		return
	}
	if s.injected(w, edge) {
		return
	}
	if _, ok := s.display(channel); !ok {
		s.writeError(w, http.StatusBadRequest, graphError{Code: 100, Subcode: 33, Type: "GraphMethodException",
			Message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation", strings.ToLower(r.Method), channel)})
		return
	}
	switch edge {
	case "messages":
		s.send(w, r, channel)
	case "settings":
		s.getSettings(w, channel)
	default:
		s.getPermissions(w, r, channel)
	}
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.URL.Query().Get("access_token")
	}
	if token == "" {
		s.writeError(w, http.StatusBadRequest, graphError{Code: 2500,
			Message: "An active access token must be used to query information about the current user."})
		return false
	}
	if token != s.cfg.AccessToken {
		s.writeError(w, http.StatusUnauthorized, graphError{Code: 190,
			Message: "Invalid OAuth access token - Cannot parse access token"})
		return false
	}
	return true
}

// injected answers with a queued rate limit or failure, if any.
func (s *Server) injected(w http.ResponseWriter, edge string) bool {
	s.mu.Lock()
	var rl *rateLimit
	var f *Failure
	if len(s.rateLimits) > 0 {
		rl = &s.rateLimits[0]
		s.rateLimits = s.rateLimits[1:]
	} else if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	s.mu.Unlock()
	switch {
	case rl != nil:
		if rl.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((rl.retryAfter+time.Second-1)/time.Second)))
		}
		e := graphError{Code: 613, Message: "(#613) Calls to this api have exceeded the rate limit."}
		if edge == "messages" {
			e = graphError{Code: 130429, Message: "(#130429) Rate limit hit",
				ErrorData: &graphErrorDetail{"whatsapp", "Cloud API message throughput has been reached."}}
		}
		s.writeError(w, http.StatusTooManyRequests, e)
		return true
	case f != nil:
		status := f.HTTPStatus
		if status == 0 {
			status = http.StatusBadRequest
		}
		if f.Raw != "" {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			w.Write([]byte(f.Raw))
			return true
		}
		e := graphError{Code: f.Code, Subcode: f.Subcode, Type: f.Type, Message: f.Message}
		if f.Details != "" {
			e.ErrorData = &graphErrorDetail{"whatsapp", f.Details}
		}
		s.writeError(w, status, e)
		return true
	}
	return false
}

func (s *Server) display(channel string) (string, bool) {
	if s.cfg.PhoneNumbers == nil {
		return channel, channel != ""
	}
	d, ok := s.cfg.PhoneNumbers[channel]
	return d, ok
}

// sendBody is the payload of POST messages the server accepts: exactly the
// fields of Meta's call permission requests (spec §9); anything else is
// refused with error 100.
type sendBody struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type"`
	To               string `json:"to"`
	Recipient        string `json:"recipient"`
	Type             string `json:"type"`
	Interactive      *struct {
		Type string `json:"type"`
		Body *struct {
			Text string `json:"text"`
		} `json:"body"`
		Action *struct {
			Name string `json:"name"`
		} `json:"action"`
	} `json:"interactive"`
	Template *struct {
		Name     string `json:"name"`
		Language *struct {
			Code string `json:"code"`
		} `json:"language"`
		Components []struct {
			Type       string `json:"type"`
			Parameters []struct {
				Type          string `json:"type"`
				ParameterName string `json:"parameter_name"`
				Text          string `json:"text"`
			} `json:"parameters"`
		} `json:"components"`
	} `json:"template"`
}

func (b *sendBody) check() (string, bool) {
	switch {
	case b.MessagingProduct != "whatsapp":
		return "messaging_product must be whatsapp", false
	case b.RecipientType != "individual":
		return "recipient_type must be individual", false
	case b.To == "" && b.Recipient == "":
		return "The parameter to or recipient is required.", false
	}
	switch b.Type {
	case "interactive":
		i := b.Interactive
		if i == nil || i.Type != "call_permission_request" || i.Action == nil || i.Action.Name != "call_permission_request" || b.Template != nil {
			return "interactive.type and interactive.action.name must be call_permission_request", false
		}
		if i.Body != nil && i.Body.Text == "" {
			return "interactive.body.text must not be empty", false
		}
	case "template":
		t := b.Template
		if t == nil || t.Name == "" || t.Language == nil || t.Language.Code == "" || b.Interactive != nil {
			return "template.name and template.language.code are required", false
		}
		for _, c := range t.Components {
			if c.Type != "body" {
				return "only a body component takes parameters in a call permission request template", false
			}
			for _, p := range c.Parameters {
				if p.Type != "text" || p.ParameterName == "" {
					return "body parameters must be named text parameters", false
				}
			}
		}
	default:
		return "type must be interactive or template for a call permission request", false
	}
	return "", true
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, channel string) {
	var b sendBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.writeError(w, http.StatusBadRequest, invalidParam("Invalid parameter: "+err.Error()))
		return
	}
	if msg, ok := b.check(); !ok {
		s.writeError(w, http.StatusBadRequest, invalidParam(msg))
		return
	}
	if b.Type == "template" && s.templates != nil && !s.templates[b.Template.Name] {
		s.writeError(w, http.StatusNotFound, graphError{Code: 132001,
			Message:   "(#132001) Template name does not exist in the translation",
			ErrorData: &graphErrorDetail{"whatsapp", "template name (" + b.Template.Name + ") does not exist in " + b.Template.Language.Code}})
		return
	}
	input := b.To // "to" wins when both are given
	if input == "" {
		input = b.Recipient
	}
	now := s.clk.Now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.writeError(w, http.StatusServiceUnavailable, graphError{Code: 2, Message: "Service temporarily unavailable"})
		return
	}
	u := s.byID[input]
	if u == nil {
		if b.To != "" {
			u = s.addUserLocked(User{Phone: b.To, UserID: b.Recipient})
		} else {
			u = s.addUserLocked(User{UserID: b.Recipient})
		}
	}
	p := s.pairLocked(channel, u)
	if s.permLocked(p, now).Status == "permanent" {
		s.mu.Unlock()
		s.writeError(w, http.StatusBadRequest, graphError{Code: 138017,
			Message:   "(#138017) Call permission request not sent",
			ErrorData: &graphErrorDetail{"whatsapp", "The user has already granted permanent call permission to this business phone number."}})
		return
	}
	day, _ := window(p.requests, now, 24*time.Hour)
	week, _ := window(p.requests, now, 7*24*time.Hour)
	if day >= s.cfg.RequestsPerDay || week >= s.cfg.RequestsPerWeek {
		s.mu.Unlock()
		s.writeError(w, http.StatusBadRequest, graphError{Code: 138009,
			Message:   "(#138009) Call permission request limit reached",
			ErrorData: &graphErrorDetail{"whatsapp", requestLimitDetails(day >= s.cfg.RequestsPerDay, s.cfg)}})
		return
	}
	s.seq++
	req := &request{user: u, seq: s.seq, Request: Request{
		ID: s.nextID("wamid."), Channel: channel, Phone: u.Phone, UserID: u.UserID,
		SentAt: now, Undelivered: u.OldApp,
	}}
	if b.Type == "interactive" {
		if b.Interactive.Body != nil {
			req.Body = b.Interactive.Body.Text
		}
	} else {
		req.Template, req.Language = b.Template.Name, b.Template.Language.Code
		for _, c := range b.Template.Components {
			for _, prm := range c.Parameters {
				if req.Parameters == nil {
					req.Parameters = map[string]string{}
				}
				req.Parameters[prm.ParameterName] = prm.Text
			}
		}
	}
	if !u.OldApp {
		p.requests = append(p.requests, now)
	}
	s.requests[req.ID] = req
	s.order = append(s.order, req)
	contact := map[string]string{"input": input, "user_id": u.UserID}
	if u.Phone != "" {
		contact["wa_id"] = u.Phone
	}
	if u.ParentUserID != "" {
		contact["parent_user_id"] = u.ParentUserID
	}
	var status []byte
	if u.OldApp {
		status = s.failedStatusLocked(req, now)
	}
	s.mu.Unlock()
	if status != nil {
		// Started before the answer is written so that Deliveries lists
		// it once the sender knows the wamid; Meta's status may overtake
		// the answer too.
		d := s.postAsync(status)
		s.mu.Lock()
		req.deliveries = append(req.deliveries, d)
		s.mu.Unlock()
	}

	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []map[string]string{contact},
		"messages":          []map[string]string{{"id": req.ID}},
	})
	if status != nil {
		return
	}
	if s.cfg.AutoReply != nil {
		if reply, ok := s.cfg.AutoReply(req.Request); ok {
			if _, err := s.Reply(req.ID, reply); err != nil && s.cfg.OnError != nil {
				s.cfg.OnError(err)
			}
		}
	}
}

func (s *Server) getPermissions(w http.ResponseWriter, r *http.Request, channel string) {
	q := r.URL.Query()
	id := q.Get("user_wa_id")
	if id == "" {
		id = q.Get("recipient")
	}
	if id == "" {
		s.writeError(w, http.StatusBadRequest, invalidParam("The parameter user_wa_id or recipient is required."))
		return
	}
	now := s.clk.Now()
	s.mu.Lock()
	var p *pair
	if u := s.byID[id]; u != nil {
		p = s.pairLocked(channel, u)
	} else {
		p = &pair{perm: Permission{Status: "no_permission"}}
	}
	perm := s.permLocked(p, now)
	permJSON := map[string]any{"status": perm.Status}
	if perm.Status == "temporary" {
		permJSON[s.cfg.ExpirationKey] = perm.ExpiresAt.Unix()
	}
	limit := func(period string, d time.Duration, maxAllowed int, ts []time.Time) (map[string]any, bool) {
		n, oldest := window(ts, now, d)
		l := map[string]any{"time_period": period, "max_allowed": maxAllowed, "current_usage": n}
		if n >= maxAllowed {
			l["limit_expiration_time"] = oldest.Add(d).Unix()
		}
		return l, n < maxAllowed
	}
	day, dayOK := limit("PT24H", 24*time.Hour, s.cfg.RequestsPerDay, p.requests)
	week, weekOK := limit("P7D", 7*24*time.Hour, s.cfg.RequestsPerWeek, p.requests)
	calls, callsOK := limit("PT24H", 24*time.Hour, s.cfg.CallsPerDay, p.calls)
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"permission":        permJSON,
		"actions": []map[string]any{
			{"action_name": "send_call_permission_request", "can_perform_action": perm.Status != "permanent" && dayOK && weekOK,
				"limits": []map[string]any{day, week}},
			{"action_name": "start_call", "can_perform_action": perm.Status != "no_permission" && callsOK,
				"limits": []map[string]any{calls}},
		},
	})
}

// requestLimitDetails names the window a refused request hit, as Meta's
// error details do.
func requestLimitDetails(daily bool, cfg Config) string {
	if daily {
		return fmt.Sprintf("Limit of %d permission request per 24 hours reached for this user.", cfg.RequestsPerDay)
	}
	return fmt.Sprintf("Limit of %d permission requests per 7 days reached for this user.", cfg.RequestsPerWeek)
}
