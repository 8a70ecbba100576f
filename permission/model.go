package permission

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callready/callready/store"
)

// Kind is how long a grant lasts.
type Kind string

const (
	Temporary Kind = "temporary" // ends at its expiry (168 h after approval by default)
	Permanent Kind = "permanent" // lasts until the user revokes it
)

// Source says how a grant was obtained.
type Source string

const (
	// SourceRequest: the user accepted a call permission request.
	SourceRequest Source = "request"
	// SourceCallback: Meta's automatic callback grant after the user called.
	SourceCallback Source = "callback"
	// SourceInboundCall: the implicit callback grant of a user-initiated
	// call, answered or missed, seen before (or without) Meta's reply.
	SourceInboundCall Source = "inbound_call"
	// SourceProfile: the user switched calls on from the business profile.
	SourceProfile Source = "profile"
	// SourceReconcile: Meta's call_permissions answer said the user holds
	// a permission the ledger did not show (a webhook that never arrived).
	SourceReconcile Source = "reconcile"
)

// RevokeReason says why permission ended before its time.
type RevokeReason string

const (
	RevokeRejected  RevokeReason = "rejected"  // the user rejected a request
	RevokeProfile   RevokeReason = "profile"   // switched off from the business profile
	RevokeAutomatic RevokeReason = "automatic" // Meta revoked it after unanswered calls
	// RevokeReconciled: Meta's call_permissions answer said no permission
	// while the ledger showed one (a revoke or reject webhook was missed).
	RevokeReconciled RevokeReason = "reconciled"
)

// Origin is where a recorded event came from.
type Origin string

const (
	OriginHost      Origin = "host"      // recorded by the host's own code (the default)
	OriginWebhook   Origin = "webhook"   // parsed from one of Meta's webhooks
	OriginReconcile Origin = "reconcile" // a correction from Meta's call_permissions answer
	OriginMigrated  Origin = "migrated"  // rebuilt from a pre-ledger state by a migration
)

// EventType is what an Event reports.
type EventType uint8

const (
	// EventGrant: the user granted permission (accepted request, profile
	// switch-on, or Meta's automatic callback reply).
	EventGrant EventType = iota + 1
	// EventRevoke: a reject, a profile switch-off or Meta's automatic revoke.
	EventRevoke
	// EventInboundCall: the user called the business (answered or missed).
	// It grants a temporary callback permission from the call's time when
	// callback permission is enabled for the channel. Set Connected when the
	// call was picked up: it also resets the request limits.
	EventInboundCall
	// EventRequestSent: the host sent a call permission request (ID is the
	// message id). Counts against the request limits. With Source
	// SourceReconcile it is a request Meta counted that no event of ours
	// explains: it counts against the limits only (it is not pending).
	EventRequestSent
	// EventBusinessCall: a business-initiated call ended. Connected reports
	// whether the user picked up; unanswered or rejected calls build the
	// unanswered streak. With Source SourceReconcile it is a call Meta
	// counted against the call limit that no event of ours explains: it
	// takes a call slot and nothing else.
	EventBusinessCall
	// EventIdentity: Meta showed that the identifiers of the event (Contact
	// and Aliases) name one person: a user_changed_number or
	// user_changed_user_id system message. It grants nothing; the person
	// keeps their history under the new identifiers, and the old ones stay
	// resolvable.
	EventIdentity
	// EventCallbackSetting: the channel's callback permission setting
	// (Meta's callback_permission_status) is Callback from At on. It names
	// no contact. Whether an inbound call grants a callback depends on the
	// setting in effect at the call's start; the latest setting by event
	// time wins, whatever the order they arrive in.
	EventCallbackSetting
)

// CallbackStatus is a channel's callback permission setting.
type CallbackStatus string

const (
	CallbackUnknown  CallbackStatus = "unknown"  // never reported (Meta's NOT_SET): calls grant, unconfirmed
	CallbackEnabled  CallbackStatus = "enabled"  // calls grant a callback permission
	CallbackDisabled CallbackStatus = "disabled" // calls grant nothing until Meta's reply says otherwise
)

var eventTypeNames = map[EventType]string{
	EventGrant: "grant", EventRevoke: "revoke", EventInboundCall: "inbound_call",
	EventRequestSent: "request_sent", EventBusinessCall: "business_call", EventCallbackSetting: "callback_setting",
	EventIdentity: "identity",
}

func (t EventType) String() string {
	if s, ok := eventTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one fact about a (channel, contact) pair, as reported by Meta's
// webhooks or by the host. The tracker's state is a function of the set of
// events it has seen: duplicates and arrival order do not matter.
type Event struct {
	Type    EventType
	Channel string // business phone number id (metadata.phone_number_id)
	Contact string // the user's wa_id, or BSUID when no phone is known
	// Aliases are the user's other identifiers that Meta showed with this
	// event (the BSUID beside a wa_id, a parent BSUID, a new number): all
	// name one person of the channel, whose events count together.
	Aliases []string
	At      time.Time // when it happened, by Meta's timestamp
	// ID is Meta's message (wamid.…) or call (wacid.…) id. Optional for
	// grants and revokes; required for EventRequestSent and call events so
	// that duplicates count once.
	ID string

	// Grants only.
	Permanent bool      // permanent grant (no expiry)
	ExpiresAt time.Time // temporary grants: Meta's expiration_timestamp; zero means At + TTL
	// Source: SourceRequest, SourceCallback, SourceProfile or
	// SourceReconcile (default SourceRequest). Also SourceReconcile on
	// EventRequestSent and EventBusinessCall: usage Meta counted.
	Source Source

	// Revokes only (default RevokeRejected).
	Reason RevokeReason

	// Call events only: the call was picked up.
	Connected bool

	// Context is the id of the message or call this event answers (Meta's
	// context.id): the request a permission reply accepts or rejects, or the
	// call an automatic callback grant follows. Kept as evidence; a
	// callback grant whose Context names an inbound call is the same grant
	// as that call's (see the README's "How it decides").
	Context string
	// Origin says where the event came from, for the ledger: OriginWebhook,
	// OriginHost (default), OriginReconcile or OriginMigrated.
	Origin Origin

	// EventCallbackSetting only: the setting from At on.
	Callback CallbackStatus

	noCallback bool // set by Record when the channel's callback grants are off
}

// Entry is one callable contact of a channel.
type Entry struct {
	Channel   string
	Contact   string
	Kind      Kind
	Source    Source
	GrantedAt time.Time
	ExpiresAt time.Time // zero for permanent grants

	// Unconfirmed is set for a grant derived from the user's call alone
	// (Source SourceInboundCall): Meta's automatic callback reply for that
	// call has not arrived yet. It is listed at once while the channel's
	// callback setting is enabled or unknown (Config.ConfirmedCallbacksOnly
	// lists only confirmed ones).
	Unconfirmed bool

	// WaID and UserID are the person's phone number (digits) and BSUID, as
	// far as Meta has shown them; either may be empty. Contact is one of
	// the person's identifiers: the newest BSUID when one is known (Meta
	// recommends it), else the newest phone number.
	WaID, UserID string

	// CallsLeft is how many business-initiated calls may still connect in
	// the current call window, and UnansweredStreak how many calls in a row
	// went unanswered (see Limits), both as of the listing or change.
	CallsLeft        int
	UnansweredStreak int
}

// UnconfirmedReason says, for people, why an entry is unconfirmed; empty
// when it is not.
func (e Entry) UnconfirmedReason() string {
	if !e.Unconfirmed {
		return ""
	}
	return "granted by the user's call; Meta's automatic callback reply has not confirmed it yet"
}

// ChangeType is what happened to a callable entry.
type ChangeType string

const (
	Granted  ChangeType = "granted"  // the contact became callable
	Extended ChangeType = "extended" // still callable, the entry changed (later expiry, now permanent, …)
	Revoked  ChangeType = "revoked"  // the user (or Meta) ended the permission
	Expired  ChangeType = "expired"  // a temporary permission reached its expiry
	// Updated: still callable with the same grant; only the call budget
	// changed (calls left, unanswered streak and so its warning), by an
	// event or by the clock (a call leaving the call window). Replace the
	// row, as for Extended.
	Updated ChangeType = "updated"
	// Scheduled is internal to the change log: the pair's next wake-up
	// instant moved and nothing listed changed. Trackers apply it to their
	// index; Subscribe never delivers it and Record never returns it.
	Scheduled ChangeType = "scheduled"
)

// Change is one change to the callable list. Revisions increase in the
// order changes are committed.
type Change struct {
	Revision int64
	Type     ChangeType
	At       time.Time // event time, or the expiry instant for Expired
	// Replaces lists contacts that were listed for the same person under
	// another identifier (two identifiers joined into one person, or the
	// person's Contact changed). A subscriber removes those rows and
	// applies the change to Entry.Contact, in one step, so the person is
	// never shown twice nor lost.
	Replaces []string
	// Entry is the entry after the change, or for Revoked and Expired the
	// entry that ended. For the pending list's changes it names the person
	// only (Channel, Contact, WaID, UserID).
	Entry Entry
	// Pending is the request, for ChangePending and ChangePendingEnded.
	Pending PendingEntry
}

// Errors callers branch on. Returned errors wrap them: use errors.Is.
var (
	// ErrInvalidEvent: the event is malformed; nothing was recorded.
	ErrInvalidEvent = errors.New("permission: invalid event")
	// ErrClosed: the tracker was closed.
	ErrClosed = errors.New("permission: tracker closed")
	// ErrLagged: a subscriber fell too far behind and was cut off. Resume
	// with Subscribe from the last revision received, or re-list.
	ErrLagged = errors.New("permission: subscriber lagged behind")
	// ErrResync: the revisions a subscriber asked to resume from are no
	// longer retained; call Eligible and subscribe from its revision.
	ErrResync = errors.New("permission: changes no longer retained, re-list")
	// ErrBeyondRetention: the question is about an instant older than the
	// ledger keeps (Config.LedgerRetention).
	ErrBeyondRetention = errors.New("permission: instant before the ledger's retention horizon")
	// ErrBadCursor: a page cursor was not produced by this tracker's
	// Eligible for the same query.
	ErrBadCursor = errors.New("permission: bad cursor")
	// ErrNoHostRows: RecordRows was called on a tracker without
	// Config.HostRows.
	ErrNoHostRows = errors.New("permission: RecordRows needs Config.HostRows")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// maxAliases bounds the identifiers one event may join.
const maxAliases = 8

// NormalizeContact turns a phone number as a CRM writes it ("+34 612-34-56
// 78") into Meta's wa_id digits; other identifiers (BSUIDs) are returned
// unchanged.
func NormalizeContact(id string) string {
	if allDigits(id) {
		return id // the common case, without a copy
	}
	digits := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == '+' && len(digits) == 0, c == ' ', c == '-', c == '(', c == ')':
		default:
			return id // not a phone number
		}
	}
	if len(digits) == 0 {
		return id
	}
	return string(digits)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// MaxIDLength is the longest identifier (channel, contact, event id,
// context id) an event may carry, in bytes: every adapter stores it.
const MaxIDLength = 256

// Validate reports whether Record would accept e, with an error wrapping
// ErrInvalidEvent when not. Callers that record items one by one (the
// webhook handler's quarantine) use it to set bad items aside first.
func (e Event) Validate() error {
	_, err := e.validate(DefaultTTL)
	return err
}

// checkID refuses what some adapter cannot store: NUL bytes (PostgreSQL
// TEXT), invalid UTF-8, and identifiers over MaxIDLength.
func checkID(what, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid("empty %s", what)
	case len(v) > MaxIDLength:
		return invalid("%s longer than %d bytes", what, MaxIDLength)
	case !utf8.ValidString(v):
		return invalid("%s is not valid UTF-8", what)
	case strings.IndexByte(v, 0) >= 0:
		return invalid("%s contains a NUL byte", what)
	}
	return nil
}

// validate checks an event and returns it normalized (UTC, defaults filled).
func (e Event) validate(ttl time.Duration) (Event, error) {
	for _, f := range []struct {
		what, v  string
		required bool
	}{{"channel", e.Channel, true}, {"contact", e.Contact, e.Type != EventCallbackSetting}, {"event id", e.ID, false}, {"context id", e.Context, false}} {
		if err := checkID(f.what, f.v, f.required); err != nil {
			return e, err
		}
	}
	e.Contact = NormalizeContact(e.Contact)
	if len(e.Aliases) > 0 {
		if e.Type == EventCallbackSetting {
			return e, invalid("callback setting with aliases")
		}
		if len(e.Aliases) > maxAliases {
			return e, invalid("more than %d aliases", maxAliases)
		}
		aliases := make([]string, 0, len(e.Aliases))
		for _, a := range e.Aliases {
			if err := checkID("alias", a, true); err != nil {
				return e, err
			}
			if a = NormalizeContact(a); a != e.Contact && !slices.Contains(aliases, a) {
				aliases = append(aliases, a)
			}
		}
		slices.Sort(aliases)
		e.Aliases = aliases
	}
	if e.Type == EventIdentity && len(e.Aliases) == 0 {
		return e, invalid("identity event without aliases")
	}
	if e.Origin == "" {
		e.Origin = OriginHost
	}
	switch e.Origin {
	case OriginHost, OriginWebhook, OriginReconcile, OriginMigrated:
	default:
		return e, invalid("unknown origin %q", e.Origin)
	}
	if e.At.IsZero() {
		return e, invalid("zero event time")
	}
	// The index keys times as unix nanoseconds: years 1678 to 2262.
	if !fitsNanos(e.At) || !fitsNanos(e.At.Add(ttl)) || (!e.ExpiresAt.IsZero() && !fitsNanos(e.ExpiresAt)) {
		return e, invalid("time out of range (years 1678 to 2262): %s", e.At.Format(time.RFC3339))
	}
	// Times are kept at the precision every store keeps (store.Precision),
	// so a redelivery compares equal whatever the adapter.
	e.At = e.At.UTC().Round(0).Truncate(store.Precision)
	if !e.ExpiresAt.IsZero() {
		e.ExpiresAt = e.ExpiresAt.UTC().Round(0).Truncate(store.Precision)
	}
	switch e.Type {
	case EventGrant:
		if e.Source == "" {
			e.Source = SourceRequest
		}
		switch e.Source {
		case SourceRequest, SourceCallback, SourceProfile, SourceReconcile:
		case SourceInboundCall:
			return e, invalid("source %q comes from EventInboundCall, not EventGrant", e.Source)
		default:
			return e, invalid("unknown source %q", e.Source)
		}
		if e.Permanent {
			if !e.ExpiresAt.IsZero() {
				return e, invalid("permanent grant with an expiry")
			}
		} else if e.ExpiresAt.IsZero() {
			e.ExpiresAt = e.At.Add(ttl)
		} else if !e.ExpiresAt.After(e.At) {
			return e, invalid("expiry %s not after grant time %s", e.ExpiresAt.Format(time.RFC3339), e.At.Format(time.RFC3339))
		}
	case EventRevoke:
		if e.Reason == "" {
			e.Reason = RevokeRejected
		}
		switch e.Reason {
		case RevokeRejected, RevokeProfile, RevokeAutomatic, RevokeReconciled:
		default:
			return e, invalid("unknown revoke reason %q", e.Reason)
		}
	case EventInboundCall, EventRequestSent, EventBusinessCall:
		if e.ID == "" {
			return e, invalid("%s event without an id", e.Type)
		}
		switch {
		case e.Source == "":
		case e.Source == SourceReconcile && e.Type != EventInboundCall:
		default:
			return e, invalid("source %q on a %s event (only %q, for usage Meta counted)", e.Source, e.Type, SourceReconcile)
		}
	case EventIdentity:
		// Only identifiers (checked above).
	case EventCallbackSetting:
		if e.Contact != "" {
			return e, invalid("callback setting of a channel names no contact (got %q)", e.Contact)
		}
		switch e.Callback {
		case CallbackEnabled, CallbackDisabled, CallbackUnknown:
		default:
			return e, invalid("unknown callback setting %q", e.Callback)
		}
	default:
		return e, invalid("unknown event type %d", e.Type)
	}
	if e.Type != EventCallbackSetting && e.Callback != "" {
		return e, invalid("%s event with a callback setting", e.Type)
	}
	if e.Type != EventGrant && (e.Permanent || !e.ExpiresAt.IsZero()) {
		return e, invalid("%s event with grant fields", e.Type)
	}
	return e, nil
}

// fitsNanos reports whether t is an index key: representable in unix
// nanoseconds, strictly inside the int64 range, whose ends the index
// reserves (math.MaxInt64 marks permanent entries, and grant times are
// negated).
func fitsNanos(t time.Time) bool {
	n := t.UnixNano()
	return n > math.MinInt64 && n < math.MaxInt64 && time.Unix(0, n).Equal(t)
}
