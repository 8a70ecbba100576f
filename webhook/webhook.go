package webhook

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
)

// DefaultMaxBodyBytes is the body limit when Config.MaxBodyBytes is zero:
// 4 MiB, above the 3 MB Meta documents for a payload.
const DefaultMaxBodyBytes = 4 << 20

// Recorder records events durably. *permission.Tracker implements it.
type Recorder interface {
	// Record records all events atomically, or none; an error wrapping
	// permission.ErrInvalidEvent means the events themselves are at fault.
	Record(ctx context.Context, events ...permission.Event) ([]permission.Change, error)
}

var _ Recorder = (*permission.Tracker)(nil)

// Config configures a Handler.
type Config struct {
	// AppSecret is the Meta app secret POST bodies are signed with.
	// Required.
	AppSecret string
	// VerifyToken answers the GET verification handshake. Empty refuses
	// every handshake (403).
	VerifyToken string
	// Recorder receives the tracker events of each body, all in one call
	// (one call per event if it refuses the batch with
	// permission.ErrInvalidEvent, so the events it refuses are quarantined
	// alone). Required: usually the *permission.Tracker.
	Recorder Recorder
	// Quarantine keeps the parts of verified bodies that cannot be
	// recorded (see Batch.Quarantined), before anything of the body is
	// recorded. Default: a MemoryQuarantine, lost on restart; a host with
	// a database should pass a durable one (sqlstore's Store.Quarantine).
	Quarantine Quarantine
	// Clock stamps quarantined items' ReceivedAt. Default: the system
	// clock.
	Clock clock.Clock
	// OnBatch, when set, receives every verified and parsed body before its
	// events are recorded: the place to store what a host needs to show
	// the coming changes (channel numbers, contact names) so subscribers
	// never see a change before its context. An error makes the handler
	// answer 503 and record nothing (the body's quarantined items are kept
	// already; a re-delivery stores them once).
	OnBatch func(context.Context, Batch) error
	// OnMessage, when set, receives every incoming message that is not a
	// permission reply (text and all other types), after the body's events
	// are recorded. An error makes the handler answer 503, so Meta
	// re-delivers the whole body: recording is idempotent, and the host
	// must dedupe messages by Message.ID.
	OnMessage func(context.Context, Message) error
	// OnCall, when set, receives every call item (connect, terminate, call
	// status), inbound and business-initiated, after recording; errors as
	// for OnMessage.
	OnCall func(context.Context, Call) error
	// OnStatus, when set, receives the statuses of messages the business
	// sent (sent, delivered, read, failed), after recording; errors as for
	// OnMessage.
	OnStatus func(context.Context, MessageStatus) error
	// OnSetting, when set, receives the callback-permission settings of
	// account_settings_update changes, after recording; errors as for
	// OnMessage. (They are in the Batch OnBatch gets, too.)
	OnSetting func(context.Context, ChannelSetting) error
	// MaxBodyBytes bounds a POST body; larger bodies get 413. Default
	// DefaultMaxBodyBytes (4 MiB).
	MaxBodyBytes int64
	// Logger receives one record per request: rejections at Warn (store
	// failures at Error), deliveries at Info with counts only, and event ids
	// at Debug. No names, phone numbers or message text are logged.
	// Default: discard.
	Logger *slog.Logger
}

// Reason is why the handler refused a request, as counted in Stats.
type Reason string

const (
	ReasonMissingSignature Reason = "missing_signature" // 401
	ReasonBadSignature     Reason = "bad_signature"     // 403
	ReasonBadVerifyToken   Reason = "bad_verify_token"  // 403 on the GET handshake
	ReasonTooLarge         Reason = "too_large"         // 413
	ReasonBadJSON          Reason = "bad_json"          // 400: see ErrMalformed
	ReasonWrongObject      Reason = "wrong_object"      // 400: see ErrWrongObject
	ReasonStoreError       Reason = "store_error"       // 503: the Recorder failed
	ReasonQuarantineError  Reason = "quarantine_error"  // 503: the Quarantine failed
	ReasonCallbackError    Reason = "callback_error"    // 503: OnBatch, OnMessage, OnCall, OnStatus or OnSetting failed
	ReasonMethod           Reason = "method"            // 405
	ReasonReadError        Reason = "read_error"        // 400: the body could not be read
)

var reasons = [...]Reason{
	ReasonMissingSignature, ReasonBadSignature, ReasonBadVerifyToken, ReasonTooLarge, ReasonBadJSON,
	ReasonWrongObject, ReasonStoreError, ReasonQuarantineError, ReasonCallbackError, ReasonMethod, ReasonReadError,
}

// Stats are the handler's counters since New, for a host to export.
type Stats struct {
	Received int64 // POST requests received
	Accepted int64 // POST requests answered 200
	Recorded int64 // events recorded (counted once Record succeeded)
	Changes  int64 // callable-list changes those events caused
	// Quarantined counts items handed to the Quarantine (counted once Put
	// succeeded; a re-delivered item counts again, though the Quarantine
	// keeps it once).
	Quarantined int64
	// Rejected counts refused requests by reason; every Reason is present.
	Rejected map[Reason]int64
}

// Handler serves Meta's webhook endpoint: the GET verification handshake
// and signed POST deliveries. Mount it on any router. It is safe for
// concurrent use.
type Handler struct {
	cfg Config
	log *slog.Logger

	received, accepted, recorded, changes, quarantined atomic.Int64
	rejected                                           [len(reasons)]atomic.Int64
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.AppSecret == "" {
		return nil, errors.New("webhook: Config.AppSecret is required")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("webhook: Config.Recorder is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Quarantine == nil {
		cfg.Quarantine = NewMemoryQuarantine(QuarantineConfig{Clock: cfg.Clock})
	}
	return &Handler{cfg: cfg, log: cfg.Logger}, nil
}

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() Stats {
	s := Stats{
		Received: h.received.Load(), Accepted: h.accepted.Load(),
		Recorded: h.recorded.Load(), Changes: h.changes.Load(), Quarantined: h.quarantined.Load(),
		Rejected: make(map[Reason]int64, len(reasons)),
	}
	for i, r := range reasons {
		s.Rejected[r] = h.rejected[i].Load()
	}
	return s
}

// ServeHTTP answers GET with the verification handshake and POST with a
// delivery; any other method gets 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.handshake(w, r)
	case http.MethodPost:
		h.receive(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.reject(r.Context(), w, http.StatusMethodNotAllowed, ReasonMethod, nil)
	}
}

func (h *Handler) handshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := q.Get("hub.verify_token")
	if h.cfg.VerifyToken == "" || q.Get("hub.mode") != "subscribe" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(h.cfg.VerifyToken)) != 1 {
		h.reject(r.Context(), w, http.StatusForbidden, ReasonBadVerifyToken, nil)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, q.Get("hub.challenge"))
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook: verification handshake accepted")
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h.received.Add(1)
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		h.reject(ctx, w, http.StatusUnauthorized, ReasonMissingSignature, ErrMissingSignature)
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.reject(ctx, w, http.StatusRequestEntityTooLarge, ReasonTooLarge, nil)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBodyBytes+1))
	if err != nil {
		h.reject(ctx, w, http.StatusBadRequest, ReasonReadError, err)
		return
	}
	if int64(len(body)) > h.cfg.MaxBodyBytes {
		h.reject(ctx, w, http.StatusRequestEntityTooLarge, ReasonTooLarge, nil)
		return
	}
	if err := Verify(body, sig, h.cfg.AppSecret); err != nil {
		if errors.Is(err, ErrMissingSignature) {
			h.reject(ctx, w, http.StatusUnauthorized, ReasonMissingSignature, err)
		} else {
			h.reject(ctx, w, http.StatusForbidden, ReasonBadSignature, err)
		}
		return
	}
	batch, err := Parse(body)
	switch {
	case errors.Is(err, ErrWrongObject):
		h.reject(ctx, w, http.StatusBadRequest, ReasonWrongObject, err)
		return
	case err != nil:
		h.reject(ctx, w, http.StatusBadRequest, ReasonBadJSON, err)
		return
	}
	now := h.cfg.Clock.Now().UTC()
	// What cannot be recorded is kept first: once the good events are
	// recorded, the body is answered 200 and not delivered again.
	if !h.quarantine(ctx, w, batch.Quarantined, now) {
		return
	}
	if f := h.cfg.OnBatch; f != nil {
		if err := f(ctx, batch); err != nil {
			h.reject(ctx, w, http.StatusServiceUnavailable, ReasonCallbackError, fmt.Errorf("OnBatch: %w", err))
			return
		}
	}
	recorded := 0
	if len(batch.Events) > 0 {
		changes, err := h.cfg.Recorder.Record(ctx, batch.Events...)
		n := len(batch.Events)
		if errors.Is(err, permission.ErrInvalidEvent) {
			// The Recorder refuses some event Validate passed (a stricter
			// Recorder): record them one by one, quarantine the refused.
			var refused []QuarantinedItem
			changes, refused, err = h.recordEach(ctx, &batch)
			if err == nil && !h.quarantine(ctx, w, refused, now) {
				return
			}
			batch.Quarantined = append(batch.Quarantined, refused...)
			n -= len(refused)
		}
		if err != nil {
			// Not recorded: 503 makes Meta retry the delivery later.
			h.reject(ctx, w, http.StatusServiceUnavailable, ReasonStoreError, err)
			return
		}
		recorded = n
		h.recorded.Add(int64(n))
		h.changes.Add(int64(len(changes)))
		if h.log.Enabled(ctx, slog.LevelDebug) {
			for _, e := range batch.Events {
				h.log.LogAttrs(ctx, slog.LevelDebug, "webhook: event recorded",
					slog.String("type", e.Type.String()), slog.String("channel", e.Channel), slog.String("id", e.ID))
			}
		}
	}
	if err := h.callbacks(ctx, &batch); err != nil {
		h.reject(ctx, w, http.StatusServiceUnavailable, ReasonCallbackError, err)
		return
	}
	h.accepted.Add(1)
	w.WriteHeader(http.StatusOK)
	h.log.LogAttrs(ctx, slog.LevelInfo, "webhook: delivery recorded",
		slog.Int("events", recorded), slog.Int("messages", len(batch.Messages)),
		slog.Int("calls", len(batch.Calls)), slog.Int("statuses", len(batch.Statuses)),
		slog.Int("settings", len(batch.Settings)), slog.Int("quarantined", len(batch.Quarantined)))
}

// quarantine puts items, stamped with now, into the Quarantine. On failure
// it answers 503 and reports false.
func (h *Handler) quarantine(ctx context.Context, w http.ResponseWriter, items []QuarantinedItem, now time.Time) bool {
	if len(items) == 0 {
		return true
	}
	for i := range items {
		if items[i].ReceivedAt.IsZero() {
			items[i].ReceivedAt = now
		}
	}
	if err := h.cfg.Quarantine.Put(ctx, items); err != nil {
		h.reject(ctx, w, http.StatusServiceUnavailable, ReasonQuarantineError, err)
		return false
	}
	h.quarantined.Add(int64(len(items)))
	for _, it := range items {
		// Paths and errors name no person: errors quote only field names
		// and enum values.
		h.log.LogAttrs(ctx, slog.LevelWarn, "webhook: item quarantined",
			slog.String("path", it.Path), slog.String("err", it.Error), slog.String("id", it.ID))
	}
	return true
}

// recordEach records the events of b one at a time, returning the items of
// those the Recorder refuses as invalid. Any other error stops it.
func (h *Handler) recordEach(ctx context.Context, b *Batch) ([]permission.Change, []QuarantinedItem, error) {
	var changes []permission.Change
	var refused []QuarantinedItem
	for i, e := range b.Events {
		c, err := h.cfg.Recorder.Record(ctx, e)
		switch {
		case errors.Is(err, permission.ErrInvalidEvent):
			src := source{path: fmt.Sprintf("events[%d]", i)}
			if i < len(b.sources) {
				src = b.sources[i]
			}
			refused = append(refused, QuarantinedItem{ID: QuarantineID(src.raw), Path: src.path, Error: err.Error(), Raw: src.raw})
		case err != nil:
			return nil, nil, err
		default:
			changes = append(changes, c...)
		}
	}
	return changes, refused, nil
}

// callbacks hands the host what is not a tracker event, in body order per
// kind. They run after recording, so a host that reacts to a message sees
// the callable list already updated.
func (h *Handler) callbacks(ctx context.Context, b *Batch) error {
	if f := h.cfg.OnMessage; f != nil {
		for _, m := range b.Messages {
			if err := f(ctx, m); err != nil {
				return fmt.Errorf("OnMessage %s: %w", m.ID, err)
			}
		}
	}
	if f := h.cfg.OnCall; f != nil {
		for _, c := range b.Calls {
			if err := f(ctx, c); err != nil {
				return fmt.Errorf("OnCall %s: %w", c.ID, err)
			}
		}
	}
	if f := h.cfg.OnStatus; f != nil {
		for _, s := range b.Statuses {
			if err := f(ctx, s); err != nil {
				return fmt.Errorf("OnStatus %s: %w", s.ID, err)
			}
		}
	}
	if f := h.cfg.OnSetting; f != nil {
		for _, s := range b.Settings {
			if err := f(ctx, s); err != nil {
				return fmt.Errorf("OnSetting %s: %w", s.Channel, err)
			}
		}
	}
	return nil
}

func (h *Handler) reject(ctx context.Context, w http.ResponseWriter, code int, reason Reason, err error) {
	for i, r := range reasons {
		if r == reason {
			h.rejected[i].Add(1)
		}
	}
	level := slog.LevelWarn
	if code >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{slog.Int("status", code), slog.String("reason", string(reason))}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	h.log.LogAttrs(ctx, level, "webhook: request refused", attrs...)
	http.Error(w, http.StatusText(code), code)
}
