package webhook

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
)

// ObjectWhatsApp is the envelope's object for WhatsApp Business Accounts.
// Bodies with another object are not for this handler: Parse refuses them
// with ErrWrongObject.
const ObjectWhatsApp = "whatsapp_business_account"

// Batch is what one webhook body carries.
type Batch struct {
	// Events are the tracker events, in body order: permission replies,
	// inbound calls and business-initiated call outcomes.
	Events []permission.Event
	// Messages are the messages[] items that are not permission replies:
	// text and every other type.
	Messages []Message
	// Calls are the calls[] items and the statuses[] items of type "call",
	// including those that produced no event (a business-initiated connect,
	// a RINGING status).
	Calls []Call
	// Statuses are the statuses[] items about outgoing messages (sent,
	// delivered, read, failed).
	Statuses []MessageStatus
	// Channels are the business numbers the body speaks for, once each, in
	// body order.
	Channels []Channel
	// Contacts are the value.contacts[] entries (names and identities), one
	// per channel and user, in body order.
	Contacts []ChannelContact
	// Settings are the callback-permission settings of business numbers
	// that account_settings_update changes reported, in body order.
	Settings []ChannelSetting
	// Quarantined are the parts of the body that could not be read or
	// attributed, or whose event a store could not hold, each raw with its
	// error. Everything else in the body is in the fields above.
	Quarantined []QuarantinedItem

	// sources[i] is the item Events[i] came from, so that an event a
	// Recorder refuses can be quarantined on its own.
	sources []source
}

type source struct {
	path string
	raw  json.RawMessage
}

// CallbackPermission is a business number's callback_permission_status:
// whether a user who calls it gives the business temporary permission to
// call back.
type CallbackPermission string

const (
	CallbackEnabled  CallbackPermission = "ENABLED"
	CallbackDisabled CallbackPermission = "DISABLED"
	// CallbackNotSet: Meta reports no choice yet (seen on newly enabled
	// numbers); GET /<PHONE_NUMBER_ID>/settings is the authority.
	CallbackNotSet CallbackPermission = "NOT_SET"
)

// ChannelSetting is the calling.callback_permission_status of a business
// number as an account_settings_update webhook reported it.
type ChannelSetting struct {
	Channel            string             // the phone_number_id
	CallbackPermission CallbackPermission // ENABLED, DISABLED or NOT_SET
	// At is Meta's time of the change: value.timestamp, or entry.time when
	// the value has none.
	At time.Time
	// Raw is the change value exactly as received.
	Raw json.RawMessage
}

// Channel is a business phone number as Meta's metadata names it.
type Channel struct {
	ID                 string // phone_number_id: the channel of every event
	DisplayPhoneNumber string // e.g. "15550783881"
}

// ChannelContact is a user seen on a channel, with the profile name Meta
// sent for them.
type ChannelContact struct {
	Channel string
	Contact Contact
}

// Contact is a WhatsApp user as Meta reported them.
type Contact struct {
	WaID   string // phone number digits without "+"; empty for username-only users
	UserID string // business-scoped user id (BSUID), e.g. "US.1349…"; present from 2026
	// ParentUserID is the parent BSUID shared across enrolled portfolios
	// (contacts[].parent_user_id), a further alias of the person.
	ParentUserID string
	Name         string // profile name, when value.contacts carried one
}

// Aliases are the identifiers of c other than Key: Meta showed them
// together, so they name one person of the channel.
func (c Contact) Aliases() []string {
	var out []string
	for _, id := range []string{c.WaID, c.UserID, c.ParentUserID} {
		if id != "" && id != c.Key() && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Key is the tracker's contact key: the wa_id, or the BSUID when no phone
// number is known.
func (c Contact) Key() string {
	if c.WaID != "" {
		return c.WaID
	}
	return c.UserID
}

// Message is one incoming messages[] item other than a permission reply.
type Message struct {
	Channel   string // business phone number id (metadata.phone_number_id)
	Contact   Contact
	ID        string // wamid.…
	Timestamp time.Time
	Type      string // "text", "image", "interactive", "button", …
	Text      string // the body of a "text" message
	// ContextID is the id of the message this one replies to, if any.
	ContextID string
	// Raw is the messages[] item exactly as received.
	Raw json.RawMessage
}

// Call is one calls[] item, or one statuses[] item of type "call" (then
// Event is "status").
type Call struct {
	Channel   string
	Contact   Contact // the user, whichever side of the call they are on
	ID        string  // wacid.…
	Event     string  // "connect", "terminate", or "status"
	Direction string  // "USER_INITIATED" or "BUSINESS_INITIATED" (upper case)
	// Status is the terminate status (COMPLETED, FAILED) or the call status
	// (RINGING, ACCEPTED, REJECTED), upper case.
	Status    string
	Timestamp time.Time
	StartTime time.Time     // terminate of a picked-up call only
	EndTime   time.Time     // terminate of a picked-up call only
	Duration  time.Duration // terminate of a picked-up call only
	// Connected reports whether the call is known to have been picked up:
	// a terminate with a duration > 0 or a start_time, or an ACCEPTED
	// status. A COMPLETED terminate without them was not picked up.
	Connected bool
	// Errors are the item's errors[] (call setup or media failures and
	// others). A business call with a technical one (ItemError.Technical)
	// produces no event: it does not count toward the unanswered streak.
	Errors []ItemError
	// Raw is the item exactly as received.
	Raw json.RawMessage
}

// ItemError is one errors[] element of a call or status item.
type ItemError struct {
	Code    int    // e.g. 138021, 131026
	Title   string // title
	Message string // message
	Details string // error_data.details
}

// Technical reports whether the error is one of Meta's call setup or media
// failures (138019 to 138023), which say nothing about whether the user
// would have answered.
func (e ItemError) Technical() bool { return permission.IsCallFailure(e.Code) }

// Reason maps the error to callready's reason for it (see
// permission.MetaErrorReasonOf), reading the message and details for
// 138009's window.
func (e ItemError) Reason() (permission.Reason, bool) {
	return permission.MetaErrorReasonOf(e.Code, e.Message+" "+e.Details)
}

// technicalFailure reports whether any error of the call is technical.
func (c Call) technicalFailure() bool {
	return slices.ContainsFunc(c.Errors, ItemError.Technical)
}

// MessageStatus is one statuses[] item about a message the business sent.
type MessageStatus struct {
	Channel   string
	Contact   Contact // the recipient
	ID        string  // wamid.… of the message
	Status    string  // "sent", "delivered", "read", "failed", …
	Timestamp time.Time
	// Errors are the status's errors[], e.g. 131026 for a permission
	// request sent to an app too old to show it.
	Errors []ItemError
	Raw    json.RawMessage
}

// Errors Parse returns for a body that is wrong as a whole; the handler
// answers them 400. A part of a body that is wrong is quarantined instead
// (Batch.Quarantined), and its error (QuarantinedItem.Error) is built from
// ErrMalformed too.
var (
	// ErrMalformed: the body is not JSON, or its envelope (object, entry)
	// is wrong-typed.
	ErrMalformed = errors.New("webhook: malformed body")
	// ErrWrongObject: the envelope's object is not ObjectWhatsApp.
	ErrWrongObject = errors.New("webhook: not a " + ObjectWhatsApp + " body")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// unixTime decodes Meta's unix-second timestamps, which arrive as strings
// or numbers. null or "" mean absent.
type unixTime struct{ t time.Time }

// Timestamps outside [1, 2^33] (year 2242) are rejected: they are not
// Meta's, and the tracker keeps times as int64 nanoseconds, which end in 2262.
const maxUnix = 1 << 33

func (u *unixTime) UnmarshalJSON(b []byte) error {
	n, ok, err := jsonInt(b)
	if err != nil || !ok {
		return err
	}
	if n < 1 || n > maxUnix {
		return fmt.Errorf("timestamp %d out of range", n)
	}
	u.t = time.Unix(n, 0).UTC()
	return nil
}

// seconds decodes a count of seconds sent as a string or a number.
type seconds struct {
	d   time.Duration
	set bool
}

func (s *seconds) UnmarshalJSON(b []byte) error {
	n, ok, err := jsonInt(b)
	if err != nil || !ok {
		return err
	}
	if n < 0 || n > maxUnix {
		return fmt.Errorf("duration %d out of range", n)
	}
	s.d, s.set = time.Duration(n)*time.Second, true
	return nil
}

// jsonInt reads an integer JSON number or a string holding one. A number
// with a zero fraction (1767168000.0) is accepted; ok is false for null and "".
func jsonInt(b []byte) (n int64, ok bool, err error) {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return 0, false, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, false, err
		}
		if s = strings.TrimSpace(s); s == "" {
			return 0, false, nil
		}
		b = []byte(s)
	}
	s := string(b)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int64(f)) && f >= -maxUnix && f <= maxUnix {
		return int64(f), true, nil
	}
	return 0, false, fmt.Errorf("%q is not a whole number", s)
}

// The JSON shapes. Only the fields callready reads are declared; the rest
// is ignored. Lists are read element by element, so that one element of
// the wrong shape is quarantined alone.
type envelope struct {
	Object  string            `json:"object"`
	Entries []json.RawMessage `json:"entry"`
}

type entryJSON struct {
	Time    json.RawMessage   `json:"time"` // read only for settings changes
	Changes []json.RawMessage `json:"changes"`
}

type changeJSON struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type changeValue struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []json.RawMessage `json:"contacts"`
	Messages []json.RawMessage `json:"messages"`
	Calls    []json.RawMessage `json:"calls"`
	Statuses []json.RawMessage `json:"statuses"`
}

type contactJSON struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID         string `json:"wa_id"`
	UserID       string `json:"user_id"`
	ParentUserID string `json:"parent_user_id"`
}

type messageJSON struct {
	ID               string `json:"id"`
	From             string `json:"from"`
	FromUserID       string `json:"from_user_id"`
	FromParentUserID string `json:"from_parent_user_id"`
	System           *struct {
		Type   string `json:"type"`
		WaID   string `json:"wa_id"`
		UserID string `json:"user_id"`
	} `json:"system"`
	Timestamp unixTime `json:"timestamp"`
	Type      string   `json:"type"`
	Context   *struct {
		ID string `json:"id"`
	} `json:"context"`
	Text *struct {
		Body string `json:"body"`
	} `json:"text"`
	Interactive *struct {
		Type  string `json:"type"`
		Reply *struct {
			Response            string   `json:"response"`
			IsPermanent         bool     `json:"is_permanent"`
			ExpirationTimestamp unixTime `json:"expiration_timestamp"`
			ResponseSource      string   `json:"response_source"`
		} `json:"call_permission_reply"`
	} `json:"interactive"`
}

type errorJSON struct {
	Code      flexInt `json:"code"`
	Title     string  `json:"title"`
	Message   string  `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

func itemErrors(in []errorJSON) []ItemError {
	var out []ItemError
	for _, e := range in {
		out = append(out, ItemError{Code: int(e.Code), Title: e.Title, Message: e.Message, Details: e.ErrorData.Details})
	}
	return out
}

type callJSON struct {
	ID         string      `json:"id"`
	Event      string      `json:"event"`
	Direction  string      `json:"direction"`
	Timestamp  unixTime    `json:"timestamp"`
	From       string      `json:"from"`
	To         string      `json:"to"`
	FromUserID string      `json:"from_user_id"`
	ToUserID   string      `json:"to_user_id"`
	Status     string      `json:"status"`
	StartTime  unixTime    `json:"start_time"`
	EndTime    unixTime    `json:"end_time"`
	Duration   seconds     `json:"duration"`
	Errors     []errorJSON `json:"errors"`
}

type statusJSON struct {
	ID              string      `json:"id"`
	Type            string      `json:"type"`
	Status          string      `json:"status"`
	Timestamp       unixTime    `json:"timestamp"`
	RecipientID     string      `json:"recipient_id"`
	RecipientUserID string      `json:"recipient_user_id"`
	Errors          []errorJSON `json:"errors"`
}

// settingsValue is an account_settings_update value. Meta publishes no
// sample: the calling settings are read under phone_number_settings or
// directly under the value, and the number from phone_number_id (string or
// number) or metadata.phone_number_id.
type settingsValue struct {
	Type          string   `json:"type"`
	Timestamp     unixTime `json:"timestamp"`
	PhoneNumberID flexID   `json:"phone_number_id"`
	Metadata      struct {
		PhoneNumberID flexID `json:"phone_number_id"`
	} `json:"metadata"`
	PhoneNumberSettings *struct {
		Calling *callingJSON `json:"calling"`
	} `json:"phone_number_settings"`
	Calling *callingJSON `json:"calling"`
}

type callingJSON struct {
	CallbackPermissionStatus string `json:"callback_permission_status"`
}

// flexID is an identifier sent as a string or a number.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id %s is neither a string nor a number", b)
	}
	*f = flexID(n.String())
	return nil
}

// flexInt is an error code sent as a number or a string.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	n, _, err := jsonInt(b)
	if err != nil {
		return err
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("code %d out of range", n)
	}
	*f = flexInt(n)
	return nil
}

// Direction values of calls.
const (
	UserInitiated     = "USER_INITIATED"
	BusinessInitiated = "BUSINESS_INITIATED"
)

// Field values of changes that Parse reads; it ignores the others.
const (
	FieldMessages        = "messages"
	FieldCalls           = "calls"
	FieldAccountSettings = "account_settings_update"
)

// Parse extracts the events, messages, calls, statuses and settings of one
// webhook body. It is pure: no I/O, no clock.
//
// It returns an error, and no Batch, only for a body wrong as a whole: not
// JSON, or an envelope (object, entry) of the wrong type (ErrMalformed), or
// another object than ObjectWhatsApp (ErrWrongObject). Any part of the body
// it cannot read or attribute, an item with a wrong-typed field it reads,
// an unknown permission response or call direction, no channel, user, time
// or call id, or an id a store cannot hold, goes to Batch.Quarantined with
// its error; the rest of the body is returned as usual. Unknown fields,
// change fields and message types are ignored. Every event it returns
// passes permission.Event.Validate and has Origin permission.OriginWebhook.
func Parse(body []byte) (Batch, error) {
	// A well-formed body's outer levels are read in one pass: each nested
	// json.Unmarshal of the granular path scans its bytes twice more
	// (validation, then decoding), and reading them at once takes about a
	// third off parsing a Meta body (BenchmarkParse). The two paths give
	// the same Batch for every body (FuzzParseOnePass): the outer levels
	// keep the granular shapes' field types, and their values stay raw.
	var whole struct {
		Object  string `json:"object"`
		Entries []struct {
			Time    json.RawMessage `json:"time"`
			Changes []changeJSON    `json:"changes"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &whole) != nil {
		return parseGranular(body)
	}
	if whole.Object != ObjectWhatsApp {
		return Batch{}, fmt.Errorf("%w: object %q", ErrWrongObject, whole.Object)
	}
	var b Batch
	for i, entry := range whole.Entries {
		for j, ch := range entry.Changes {
			b.addChange(fmt.Sprintf("entry[%d].changes[%d]", i, j), ch, entry.Time)
		}
	}
	return b, nil
}

// parseGranular is Parse for a body with a part of the wrong shape: it
// reads the entries and their changes one by one, so that such a part is
// quarantined alone.
func parseGranular(body []byte) (Batch, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Batch{}, malformed("%v", err)
	}
	if env.Object != ObjectWhatsApp {
		return Batch{}, fmt.Errorf("%w: object %q", ErrWrongObject, env.Object)
	}
	var b Batch
	for i, raw := range env.Entries {
		path := fmt.Sprintf("entry[%d]", i)
		if isNull(raw) {
			continue
		}
		var entry entryJSON
		if err := json.Unmarshal(raw, &entry); err != nil {
			b.quarantine(path, raw, malformed("%v", err))
			continue
		}
		for j, craw := range entry.Changes {
			cpath := fmt.Sprintf("%s.changes[%d]", path, j)
			if isNull(craw) {
				continue
			}
			var ch changeJSON
			if err := json.Unmarshal(craw, &ch); err != nil {
				b.quarantine(cpath, craw, malformed("%v", err))
				continue
			}
			b.addChange(cpath, ch, entry.Time)
		}
	}
	return b, nil
}

// addChange reads one change of an entry (entryTime is the entry's time).
func (b *Batch) addChange(path string, ch changeJSON, entryTime json.RawMessage) {
	switch ch.Field {
	case FieldMessages, FieldCalls:
		b.addValue(path+".value", ch.Value)
	case FieldAccountSettings:
		b.addSettings(path+".value", ch.Value, entryTime)
	}
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func (b *Batch) quarantine(path string, raw json.RawMessage, err error) {
	b.Quarantined = append(b.Quarantined, QuarantinedItem{
		ID: QuarantineID(raw), Path: path, Error: err.Error(), Raw: raw,
	})
}

// storable refuses an identifier some store cannot hold (see
// permission.MaxIDLength); strings from JSON are valid UTF-8 already.
func storable(what, v string) error {
	switch {
	case len(v) > permission.MaxIDLength:
		return malformed("%s longer than %d bytes", what, permission.MaxIDLength)
	case strings.IndexByte(v, 0) >= 0:
		return malformed("%s contains a NUL byte", what)
	}
	return nil
}

func (b *Batch) addValue(path string, raw json.RawMessage) {
	if isNull(raw) {
		return
	}
	var v changeValue
	if err := json.Unmarshal(raw, &v); err != nil {
		b.quarantine(path, raw, malformed("value: %v", err))
		return
	}
	ch := v.Metadata.PhoneNumberID
	if err := storable("metadata.phone_number_id", ch); err != nil {
		b.quarantine(path, raw, err)
		return
	}
	p := parser{b: b, channel: ch, display: v.Metadata.DisplayPhoneNumber}
	if ch != "" && !slices.ContainsFunc(b.Channels, func(c Channel) bool { return c.ID == ch }) {
		b.Channels = append(b.Channels, Channel{ID: ch, DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber})
	}
	for i, x := range v.Contacts {
		cpath := fmt.Sprintf("%s.contacts[%d]", path, i)
		var c contactJSON
		err := json.Unmarshal(x, &c)
		if err != nil {
			err = malformed("%v", err)
		} else if err = cmp.Or(storable("wa_id", c.WaID), storable("user_id", c.UserID)); err == nil {
			p.contacts = append(p.contacts, c)
		}
		if err != nil {
			b.quarantine(cpath, x, err)
			continue
		}
		cc := ChannelContact{Channel: ch, Contact: Contact{WaID: c.WaID, UserID: c.UserID, Name: c.Profile.Name}}
		if cc.Contact.Key() != "" && cc.Channel != "" && !slices.Contains(b.Contacts, cc) {
			b.Contacts = append(b.Contacts, cc)
		}
	}
	items := func(name string, list []json.RawMessage, f func(src source) error) {
		for i, raw := range list {
			src := source{path: fmt.Sprintf("%s.%s[%d]", path, name, i), raw: raw}
			if err := f(src); err != nil {
				b.quarantine(src.path, raw, err)
			}
		}
	}
	items("messages", v.Messages, p.message)
	items("calls", v.Calls, p.call)
	items("statuses", v.Statuses, p.status)
}

func (b *Batch) addSettings(path string, raw, entryTime json.RawMessage) {
	if isNull(raw) {
		return
	}
	var v settingsValue
	if err := json.Unmarshal(raw, &v); err != nil {
		b.quarantine(path, raw, malformed("value: %v", err))
		return
	}
	if v.Type != "" && !strings.EqualFold(v.Type, "PHONE_NUMBER_SETTINGS") {
		return // another kind of account setting
	}
	calling := v.Calling
	if v.PhoneNumberSettings != nil && v.PhoneNumberSettings.Calling != nil {
		calling = v.PhoneNumberSettings.Calling
	}
	if calling == nil || calling.CallbackPermissionStatus == "" {
		return // nothing about callback permission
	}
	s := ChannelSetting{
		Channel:            string(cmp.Or(v.PhoneNumberID, v.Metadata.PhoneNumberID)),
		CallbackPermission: CallbackPermission(strings.ToUpper(strings.TrimSpace(calling.CallbackPermissionStatus))),
		At:                 v.Timestamp.t,
		Raw:                raw,
	}
	if s.At.IsZero() {
		var t unixTime
		if json.Unmarshal(entryTime, &t) == nil {
			s.At = t.t
		}
	}
	var err error
	switch {
	case s.Channel == "":
		err = malformed("settings without phone_number_id")
	case s.At.IsZero():
		err = malformed("settings without timestamp (value.timestamp or entry.time)")
	default:
		err = storable("phone_number_id", s.Channel)
	}
	if err == nil {
		switch s.CallbackPermission {
		case CallbackEnabled, CallbackDisabled, CallbackNotSet:
		default:
			err = malformed("unknown callback_permission_status %q", calling.CallbackPermissionStatus)
		}
	}
	if err != nil {
		b.quarantine(path, raw, err)
		return
	}
	b.Settings = append(b.Settings, s)
	// Recorded with the other events: the tracker keeps the setting as the
	// channel's state, decided by event time.
	b.Events = append(b.Events, permission.Event{
		Type: permission.EventCallbackSetting, Channel: s.Channel, At: s.At, Origin: permission.OriginWebhook,
		Callback: map[CallbackPermission]permission.CallbackStatus{
			CallbackEnabled: permission.CallbackEnabled, CallbackDisabled: permission.CallbackDisabled, CallbackNotSet: permission.CallbackUnknown,
		}[s.CallbackPermission],
	})
}

type parser struct {
	b        *Batch
	channel  string
	display  string // the business's display number
	contacts []contactJSON
}

// contact completes a user's identity from value.contacts, matched by
// phone or BSUID; with neither, a lone contact is the user.
func (p *parser) contact(waID, userID string) Contact {
	c := Contact{WaID: waID, UserID: userID}
	for _, x := range p.contacts {
		if (waID != "" && x.WaID == waID) || (userID != "" && x.UserID == userID) {
			c.Name = x.Profile.Name
			if c.WaID == "" {
				c.WaID = x.WaID
			}
			if c.UserID == "" {
				c.UserID = x.UserID
			}
			c.ParentUserID = x.ParentUserID
			return c
		}
	}
	if waID == "" && userID == "" && len(p.contacts) == 1 {
		x := p.contacts[0]
		return Contact{WaID: x.WaID, UserID: x.UserID, ParentUserID: x.ParentUserID, Name: x.Profile.Name}
	}
	return c
}

// join records that the identifiers of an item name one person, when it
// shows more than one (the events of permission items carry them already).
func (p *parser) join(c Contact, at time.Time, id string, src source) error {
	aliases := c.Aliases()
	if len(aliases) == 0 || at.IsZero() {
		return nil
	}
	return p.checked(permission.Event{Type: permission.EventIdentity, Channel: p.channel, Contact: c.Key(), Aliases: aliases, At: at, ID: id}, src)
}

// checked checks e and adds it to the batch.
func (p *parser) checked(e permission.Event, src source) error {
	if err := p.check(&e); err != nil {
		return err
	}
	p.emit(e, src)
	return nil
}

// identityChange reads a system message: user_changed_number (from is the
// old phone, system.wa_id the new one) or user_changed_user_id (from_user_id
// the old BSUID, system.user_id or system.wa_id the new one). The person
// keeps their history under the new identifier.
func (p *parser) identityChange(typ, waID, userID string, old Contact, m messageJSON, src source) error {
	var next string
	switch strings.ToLower(typ) {
	case "user_changed_number":
		next = waID
	case "user_changed_user_id":
		next = cmp.Or(userID, waID)
	default:
		return nil // another system message: nothing about identity
	}
	if next == "" {
		return malformed("%s without the new identifier", typ)
	}
	if err := storable("new user id", next); err != nil {
		return err
	}
	aliases := append(old.Aliases(), next)
	return p.checked(permission.Event{Type: permission.EventIdentity, Channel: p.channel, Contact: old.Key(), Aliases: aliases, At: m.Timestamp.t, ID: m.ID}, src)
}

// ids checks the identifiers of an item a host may store.
func (p *parser) ids(id string, c Contact) error {
	return cmp.Or(storable("id", id), storable("user id", c.WaID), storable("user id", c.UserID), storable("parent user id", c.ParentUserID))
}

// check completes e (Origin) and checks it against the tracker's rules
// before it is returned, so a body yields only valid events.
func (p *parser) check(e *permission.Event) error {
	e.Origin = permission.OriginWebhook
	switch {
	case e.Channel == "":
		return malformed("no metadata.phone_number_id")
	case e.Contact == "":
		return malformed("no user identity (from, from_user_id, contacts)")
	case e.At.IsZero():
		return malformed("no timestamp")
	case e.ID == "" && e.Type != permission.EventGrant && e.Type != permission.EventRevoke:
		return malformed("no id")
	case !e.Permanent && !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(e.At):
		return malformed("expiration_timestamp not after timestamp")
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func (p *parser) emit(e permission.Event, src source) {
	p.b.Events = append(p.b.Events, e)
	p.b.sources = append(p.b.sources, src)
}

func (p *parser) message(src source) error {
	var m messageJSON
	if err := json.Unmarshal(src.raw, &m); err != nil {
		return malformed("%v", err)
	}
	contact := p.contact(m.From, m.FromUserID)
	if contact.ParentUserID == "" {
		contact.ParentUserID = m.FromParentUserID
	}
	if err := p.ids(m.ID, contact); err != nil {
		return err
	}
	contextID := ""
	if m.Context != nil {
		contextID = m.Context.ID
	}
	if m.Type == "system" && m.System != nil {
		if err := p.identityChange(m.System.Type, m.System.WaID, m.System.UserID, contact, m, src); err != nil {
			return err
		}
	} else if m.Type != "interactive" || m.Interactive == nil || m.Interactive.Type != "call_permission_reply" {
		// An item that shows several identifiers of the user joins them.
		if err := p.join(contact, m.Timestamp.t, m.ID, src); err != nil {
			return err
		}
	}
	if m.Type != "interactive" || m.Interactive == nil || m.Interactive.Type != "call_permission_reply" {
		msg := Message{
			Channel: p.channel, Contact: contact, ID: m.ID, Timestamp: m.Timestamp.t,
			Type: m.Type, ContextID: contextID, Raw: src.raw,
		}
		if m.Type == "text" && m.Text != nil {
			msg.Text = m.Text.Body
		}
		p.b.Messages = append(p.b.Messages, msg)
		return nil
	}
	r := m.Interactive.Reply
	if r == nil {
		return malformed("call_permission_reply without its object")
	}
	e := permission.Event{Channel: p.channel, Contact: contact.Key(), Aliases: contact.Aliases(), At: m.Timestamp.t, ID: m.ID, Context: contextID}
	automatic := strings.EqualFold(r.ResponseSource, "automatic")
	switch strings.ToLower(r.Response) {
	case "accept":
		e.Type = permission.EventGrant
		e.Permanent = r.IsPermanent
		switch {
		case automatic || strings.HasPrefix(contextID, "wacid."):
			e.Source = permission.SourceCallback
		case contextID == "" && r.IsPermanent:
			e.Source = permission.SourceProfile
		default:
			// A temporary accept always answers a request, even if the
			// context went missing.
			e.Source = permission.SourceRequest
		}
		if !r.IsPermanent {
			e.ExpiresAt = r.ExpirationTimestamp.t
		}
	case "reject":
		e.Type = permission.EventRevoke
		switch {
		case automatic:
			e.Reason = permission.RevokeAutomatic
		case contextID == "":
			e.Reason = permission.RevokeProfile
		default:
			e.Reason = permission.RevokeRejected
		}
	default:
		// A permission fact we cannot read: quarantined, so an operator
		// sees it and an upgraded host can replay it.
		return malformed("unknown call_permission_reply response %q", r.Response)
	}
	if err := p.check(&e); err != nil {
		return err
	}
	p.emit(e, src)
	return nil
}

func (p *parser) call(src source) error {
	var c callJSON
	if err := json.Unmarshal(src.raw, &c); err != nil {
		return malformed("%v", err)
	}
	dir := strings.ToUpper(c.Direction)
	// The user is the caller of an inbound call and the callee of an
	// outbound one. Meta's samples sometimes swap from and to, so a side
	// equal to the business number is never the user.
	phone, other, userID := c.From, c.To, c.FromUserID
	if dir == BusinessInitiated {
		phone, other, userID = c.To, c.From, c.ToUserID
	}
	if biz := p.display; biz != "" && phone == biz {
		phone = other
		if phone == biz {
			phone = ""
		}
	}
	if userID == "" {
		userID = cmp.Or(c.FromUserID, c.ToUserID)
	}
	call := Call{
		Channel: p.channel, Contact: p.contact(phone, userID), ID: c.ID,
		Event: strings.ToLower(c.Event), Direction: dir, Status: strings.ToUpper(c.Status),
		Timestamp: c.Timestamp.t, StartTime: c.StartTime.t, EndTime: c.EndTime.t, Duration: c.Duration.d,
		Errors: itemErrors(c.Errors), Raw: src.raw,
	}
	if err := p.ids(call.ID, call.Contact); err != nil {
		return err
	}
	// Meta sends start_time, end_time and duration only for calls that were
	// picked up; a COMPLETED status alone is no proof. A connect proves
	// nothing either: it comes before the answer.
	call.Connected = call.Event == "terminate" && (c.Duration.d > 0 || !c.StartTime.t.IsZero())

	var e *permission.Event
	if call.Event == "connect" || call.Event == "terminate" {
		ev := permission.Event{Channel: p.channel, Contact: call.Contact.Key(), Aliases: call.Contact.Aliases(), At: call.Timestamp, ID: call.ID, Connected: call.Connected}
		switch dir {
		case UserInitiated:
			// The implicit callback grant runs from the call's own start.
			ev.Type = permission.EventInboundCall
			if !call.StartTime.IsZero() {
				ev.At = call.StartTime
			}
			e = &ev
		case BusinessInitiated:
			// The outcome comes with terminate or a status; a technical
			// failure is no outcome.
			if call.Event == "terminate" && !call.technicalFailure() {
				ev.Type = permission.EventBusinessCall
				e = &ev
			}
		default:
			return malformed("unknown call direction %q", c.Direction)
		}
	}
	return p.addCall(call, e, src)
}

// addCall keeps a calls[] or call status item and the event it yields, if
// any: both, or (when the event is refused) neither.
func (p *parser) addCall(call Call, e *permission.Event, src source) error {
	if e != nil {
		if err := p.check(e); err != nil {
			return err
		}
	}
	p.b.Calls = append(p.b.Calls, call)
	if e != nil {
		p.emit(*e, src)
	}
	return nil
}

func (p *parser) status(src source) error {
	var s statusJSON
	if err := json.Unmarshal(src.raw, &s); err != nil {
		return malformed("%v", err)
	}
	contact := p.contact(s.RecipientID, s.RecipientUserID)
	if err := p.ids(s.ID, contact); err != nil {
		return err
	}
	if !strings.EqualFold(s.Type, "call") {
		p.b.Statuses = append(p.b.Statuses, MessageStatus{
			Channel: p.channel, Contact: contact, ID: s.ID, Status: s.Status, Timestamp: s.Timestamp.t,
			Errors: itemErrors(s.Errors), Raw: src.raw,
		})
		return nil
	}
	st := strings.ToUpper(s.Status)
	call := Call{
		Channel: p.channel, Contact: contact, ID: s.ID, Event: "status", Direction: BusinessInitiated,
		Status: st, Timestamp: s.Timestamp.t, Connected: st == "ACCEPTED", Errors: itemErrors(s.Errors), Raw: src.raw,
	}
	var e *permission.Event
	// RINGING says nothing about the outcome, nor does a technical failure.
	if (st == "ACCEPTED" || st == "REJECTED") && !call.technicalFailure() {
		e = &permission.Event{
			Type: permission.EventBusinessCall, Channel: p.channel, Contact: contact.Key(), Aliases: contact.Aliases(),
			At: call.Timestamp, ID: call.ID, Connected: call.Connected,
		}
	}
	return p.addCall(call, e, src)
}
