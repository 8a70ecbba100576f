package webhook

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
)

// ObjectWhatsApp is the envelope's object for WhatsApp Business Accounts.
// Bodies with another object are not for this handler: Parse returns an
// empty Batch for them.
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
	Name   string // profile name, when value.contacts carried one
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
	// Connected reports whether the call is known to have been picked up.
	Connected bool
	// Raw is the item exactly as received.
	Raw json.RawMessage
}

// MessageStatus is one statuses[] item about a message the business sent.
type MessageStatus struct {
	Channel   string
	Contact   Contact // the recipient
	ID        string  // wamid.… of the message
	Status    string  // "sent", "delivered", "read", "failed", …
	Timestamp time.Time
	Raw       json.RawMessage
}

// ErrMalformed reports a body that is not valid JSON, has a wrong-typed
// field, or carries a permission or call item that cannot be attributed
// (no channel, user, time or id). Parse wraps it.
var ErrMalformed = errors.New("webhook: malformed body")

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
// is ignored.
type envelope struct {
	Object  string `json:"object"`
	Entries []struct {
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type changeValue struct {
	Metadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []contactJSON     `json:"contacts"`
	Messages []json.RawMessage `json:"messages"`
	Calls    []json.RawMessage `json:"calls"`
	Statuses []json.RawMessage `json:"statuses"`
}

type contactJSON struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID   string `json:"wa_id"`
	UserID string `json:"user_id"`
}

type messageJSON struct {
	ID         string   `json:"id"`
	From       string   `json:"from"`
	FromUserID string   `json:"from_user_id"`
	Timestamp  unixTime `json:"timestamp"`
	Type       string   `json:"type"`
	Context    *struct {
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

type callJSON struct {
	ID         string   `json:"id"`
	Event      string   `json:"event"`
	Direction  string   `json:"direction"`
	Timestamp  unixTime `json:"timestamp"`
	From       string   `json:"from"`
	To         string   `json:"to"`
	FromUserID string   `json:"from_user_id"`
	ToUserID   string   `json:"to_user_id"`
	Status     string   `json:"status"`
	StartTime  unixTime `json:"start_time"`
	EndTime    unixTime `json:"end_time"`
	Duration   seconds  `json:"duration"`
}

type statusJSON struct {
	ID              string   `json:"id"`
	Type            string   `json:"type"`
	Status          string   `json:"status"`
	Timestamp       unixTime `json:"timestamp"`
	RecipientID     string   `json:"recipient_id"`
	RecipientUserID string   `json:"recipient_user_id"`
}

// Direction values of calls.
const (
	UserInitiated     = "USER_INITIATED"
	BusinessInitiated = "BUSINESS_INITIATED"
)

// Parse extracts the events, messages and calls of one webhook body. It is
// pure: no I/O, no clock. It returns an error wrapping ErrMalformed, and no
// Batch, when the body is not JSON, a field has the wrong type, or a
// permission or call item lacks what an event needs. Unknown fields,
// change fields and message types are ignored; every event it returns is
// valid for permission.Tracker.Record.
func Parse(body []byte) (Batch, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Batch{}, malformed("%v", err)
	}
	var b Batch
	if env.Object != ObjectWhatsApp {
		return b, nil
	}
	for i, entry := range env.Entries {
		for j, ch := range entry.Changes {
			if ch.Field != "messages" && ch.Field != "calls" {
				continue
			}
			if err := b.addValue(ch.Value); err != nil {
				return Batch{}, fmt.Errorf("entry[%d].changes[%d]: %w", i, j, err)
			}
		}
	}
	return b, nil
}

func (b *Batch) addValue(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var v changeValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return malformed("value: %v", err)
	}
	p := parser{b: b, v: &v, channel: v.Metadata.PhoneNumberID}
	if id := v.Metadata.PhoneNumberID; id != "" && !slices.ContainsFunc(b.Channels, func(c Channel) bool { return c.ID == id }) {
		b.Channels = append(b.Channels, Channel{ID: id, DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber})
	}
	for _, x := range v.Contacts {
		c := ChannelContact{Channel: v.Metadata.PhoneNumberID, Contact: Contact{WaID: x.WaID, UserID: x.UserID, Name: x.Profile.Name}}
		if c.Contact.Key() != "" && c.Channel != "" && !slices.Contains(b.Contacts, c) {
			b.Contacts = append(b.Contacts, c)
		}
	}
	for i, m := range v.Messages {
		if err := p.message(m); err != nil {
			return fmt.Errorf("messages[%d]: %w", i, err)
		}
	}
	for i, c := range v.Calls {
		if err := p.call(c); err != nil {
			return fmt.Errorf("calls[%d]: %w", i, err)
		}
	}
	for i, s := range v.Statuses {
		if err := p.status(s); err != nil {
			return fmt.Errorf("statuses[%d]: %w", i, err)
		}
	}
	return nil
}

type parser struct {
	b       *Batch
	v       *changeValue
	channel string
}

// contact completes a user's identity from value.contacts, matched by
// phone or BSUID; with neither, a lone contact is the user.
func (p *parser) contact(waID, userID string) Contact {
	c := Contact{WaID: waID, UserID: userID}
	for _, x := range p.v.Contacts {
		if (waID != "" && x.WaID == waID) || (userID != "" && x.UserID == userID) {
			c.Name = x.Profile.Name
			if c.WaID == "" {
				c.WaID = x.WaID
			}
			if c.UserID == "" {
				c.UserID = x.UserID
			}
			return c
		}
	}
	if waID == "" && userID == "" && len(p.v.Contacts) == 1 {
		x := p.v.Contacts[0]
		return Contact{WaID: x.WaID, UserID: x.UserID, Name: x.Profile.Name}
	}
	return c
}

// event checks e against the tracker's rules before it is returned, so a
// body either yields only valid events or fails as a whole.
func (p *parser) event(e permission.Event) error {
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
	p.b.Events = append(p.b.Events, e)
	return nil
}

func (p *parser) message(raw json.RawMessage) error {
	var m messageJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return malformed("%v", err)
	}
	contact := p.contact(m.From, m.FromUserID)
	if m.Type != "interactive" || m.Interactive == nil || m.Interactive.Type != "call_permission_reply" {
		msg := Message{
			Channel: p.channel, Contact: contact, ID: m.ID, Timestamp: m.Timestamp.t,
			Type: m.Type, Raw: raw,
		}
		if m.Type == "text" && m.Text != nil {
			msg.Text = m.Text.Body
		}
		if m.Context != nil {
			msg.ContextID = m.Context.ID
		}
		p.b.Messages = append(p.b.Messages, msg)
		return nil
	}
	r := m.Interactive.Reply
	if r == nil {
		return malformed("call_permission_reply without its object")
	}
	e := permission.Event{Channel: p.channel, Contact: contact.Key(), At: m.Timestamp.t, ID: m.ID}
	contextID := ""
	if m.Context != nil {
		contextID = m.Context.ID
	}
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
		// A permission fact we cannot read: refuse the body so Meta
		// re-delivers it (to an upgraded handler) rather than lose it.
		return malformed("unknown call_permission_reply response %q", r.Response)
	}
	return p.event(e)
}

func (p *parser) call(raw json.RawMessage) error {
	var c callJSON
	if err := json.Unmarshal(raw, &c); err != nil {
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
	if biz := p.v.Metadata.DisplayPhoneNumber; biz != "" && phone == biz {
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
		Raw: raw,
	}
	// Meta sends start_time, end_time and duration only for calls that were
	// picked up. A connect alone proves nothing: it comes before the answer.
	call.Connected = call.Event == "terminate" &&
		(c.Duration.d > 0 || !c.StartTime.t.IsZero() || call.Status == "COMPLETED")
	p.b.Calls = append(p.b.Calls, call)

	if call.Event != "connect" && call.Event != "terminate" {
		return nil
	}
	e := permission.Event{Channel: p.channel, Contact: call.Contact.Key(), At: call.Timestamp, ID: call.ID, Connected: call.Connected}
	switch dir {
	case UserInitiated:
		e.Type = permission.EventInboundCall
	case BusinessInitiated:
		if call.Event != "terminate" {
			return nil // the outcome comes with terminate or a status
		}
		e.Type = permission.EventBusinessCall
	default:
		return malformed("unknown call direction %q", c.Direction)
	}
	return p.event(e)
}

func (p *parser) status(raw json.RawMessage) error {
	var s statusJSON
	if err := json.Unmarshal(raw, &s); err != nil {
		return malformed("%v", err)
	}
	contact := p.contact(s.RecipientID, s.RecipientUserID)
	if !strings.EqualFold(s.Type, "call") {
		p.b.Statuses = append(p.b.Statuses, MessageStatus{
			Channel: p.channel, Contact: contact, ID: s.ID, Status: s.Status, Timestamp: s.Timestamp.t, Raw: raw,
		})
		return nil
	}
	st := strings.ToUpper(s.Status)
	call := Call{
		Channel: p.channel, Contact: contact, ID: s.ID, Event: "status", Direction: BusinessInitiated,
		Status: st, Timestamp: s.Timestamp.t, Connected: st == "ACCEPTED", Raw: raw,
	}
	p.b.Calls = append(p.b.Calls, call)
	if st != "ACCEPTED" && st != "REJECTED" {
		return nil // RINGING says nothing about the outcome
	}
	return p.event(permission.Event{
		Type: permission.EventBusinessCall, Channel: p.channel, Contact: contact.Key(),
		At: call.Timestamp, ID: call.ID, Connected: call.Connected,
	})
}
