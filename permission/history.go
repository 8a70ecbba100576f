package permission

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/callready/callready/store"
)

// Audit and export: reading the ledger (and the callable list) as a
// stream, without loading either whole.

// DefaultHistoryPageSize is HistoryQuery.PageSize's default.
const DefaultHistoryPageSize = 500

// HistoryQuery selects ledger events of one channel for History.
type HistoryQuery struct {
	Channel string // required
	// Contact, when set, keeps one person's events only.
	Contact string
	// From and To bound the event time: From <= At < To. Zero: unbounded.
	// A From before the ledger's retention horizon fails with
	// ErrBeyondRetention (the events of that time may have been pruned).
	From, To time.Time
	// RecordedFrom and RecordedTo bound the recorded time the same way:
	// RecordedFrom <= RecordedAt < RecordedTo. Zero: unbounded. The order
	// stays by event time; RecordedTo is applied by the store, RecordedFrom
	// by skipping events as they are read.
	RecordedFrom, RecordedTo time.Time
	// After continues a listing after the event whose Cursor it is
	// (exclusive); with the same Channel and Contact it pages a history
	// across requests. A malformed one fails with ErrBadCursor.
	After string
	// PageSize is how many events are read from the store at a time: the
	// memory History holds. Default DefaultHistoryPageSize (500).
	PageSize int
}

// HistoryEvent is one ledger event as History reports it.
type HistoryEvent struct {
	// Seq is the event's position in the ledger (unique per store).
	Seq     int64
	Channel string
	Contact string
	// Type is the event's type; What words it for people: "temporary
	// grant", "permanent grant", "callback grant", "revocation", "inbound
	// call", "request sent" or "business call".
	Type EventType
	What string
	// At is the event time; ExpiresAt, for grants (and inbound calls that
	// gave a callback grant), until when it granted; Permanent, a
	// permanent grant; Connected, for calls, that it was picked up.
	At        time.Time
	ExpiresAt time.Time
	Permanent bool
	Connected bool
	Source    Source
	Reason    RevokeReason
	// ID is Meta's message or call id, and Context the id of the message
	// or call the event answers (the permission request a reply accepts).
	ID      string
	Context string
	// Origin is where it came from: a webhook, the host, a reconcile
	// correction, or a migration.
	Origin Origin
	// RecordedAt is when the tracker recorded it, and Revision the pair's
	// change-log revision once it was applied.
	RecordedAt time.Time
	Revision   int64
}

// History streams the ledger events q selects, oldest event time first
// (ties in recording order), reading the store one page at a time: memory
// stays at one page however long the history. Stop ranging to stop
// reading. An error (a store failure, ctx done, a bad query,
// ErrBeyondRetention, ErrClosed) is yielded once, with a zero event, and
// ends the sequence.
//
//	for ev, err := range tr.History(ctx, permission.HistoryQuery{Channel: ch, Contact: c}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.At, ev.What, ev.RecordedAt)
//	}
//
// For "was the contact callable at T, and did we know it then?" use
// Explain with KnownAt; for the callable list of a past instant, Callable
// (or Eligible) with a past Now.
func (t *Tracker) History(ctx context.Context, q HistoryQuery) iter.Seq2[HistoryEvent, error] {
	return func(yield func(HistoryEvent, error) bool) {
		if err := t.checkHistory(q); err != nil {
			yield(HistoryEvent{}, err)
			return
		}
		size := q.PageSize
		if size <= 0 {
			size = DefaultHistoryPageSize
		}
		sq := store.LedgerQuery{Channel: q.Channel, Contact: q.Contact, From: q.From.UTC(), To: q.To.UTC(), Limit: size}
		if q.After != "" {
			c, err := decodeHistoryCursor(q.After)
			if err != nil {
				yield(HistoryEvent{}, err)
				return
			}
			sq.After = c
		}
		// The store bounds RecordedAt <= RecordedBy; RecordedTo is
		// exclusive, so the store's bound is checked again below.
		if !q.RecordedTo.IsZero() {
			sq.RecordedBy = q.RecordedTo.UTC()
		}
		for {
			if err := ctx.Err(); err != nil {
				yield(HistoryEvent{}, err)
				return
			}
			page, err := t.store.Ledger(ctx, sq)
			if err != nil {
				yield(HistoryEvent{}, err)
				return
			}
			for i := range page {
				e := &page[i]
				if !q.RecordedFrom.IsZero() && e.RecordedAt.Before(q.RecordedFrom) {
					continue
				}
				if !q.RecordedTo.IsZero() && !e.RecordedAt.Before(q.RecordedTo) {
					continue
				}
				if !yield(historyEvent(e), nil) {
					return
				}
			}
			if len(page) < size {
				return
			}
			last := page[len(page)-1]
			sq.After = store.LedgerCursor{At: last.At, Seq: last.Seq}
		}
	}
}

// Cursor is the event's position in its listing, for HistoryQuery.After.
func (e HistoryEvent) Cursor() string {
	b := make([]byte, 0, 17)
	b = append(b, 'h')
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeHistoryCursor(s string) (store.LedgerCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != 'h' {
		return store.LedgerCursor{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return store.LedgerCursor{
		At:  time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9]))).UTC(),
		Seq: int64(binary.BigEndian.Uint64(b[9:17])),
	}, nil
}

func (t *Tracker) checkHistory(q HistoryQuery) error {
	if q.Channel == "" {
		return errors.New("permission: History needs a channel")
	}
	if t.closed() {
		return ErrClosed
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return errors.New("permission: History: To is before From")
	}
	if !q.RecordedFrom.IsZero() && !q.RecordedTo.IsZero() && q.RecordedTo.Before(q.RecordedFrom) {
		return errors.New("permission: History: RecordedTo is before RecordedFrom")
	}
	if !q.From.IsZero() {
		return t.checkHorizon(q.From.UTC(), t.clock.Now())
	}
	return nil
}

func historyEvent(e *store.LedgerEvent) HistoryEvent {
	typ := eventTypeByName[e.Type]
	h := HistoryEvent{
		Seq: e.Seq, Channel: e.Key.Channel, Contact: e.Key.Contact, Type: typ,
		At: e.At, ExpiresAt: e.ExpiresAt, Permanent: e.Permanent, Connected: e.Connected,
		Source: Source(e.Source), Reason: RevokeReason(e.Reason), ID: e.ID, Context: e.Context,
		Origin: Origin(e.Origin), RecordedAt: e.RecordedAt, Revision: e.Revision,
	}
	switch typ {
	case EventRevoke:
		h.What = "revocation"
	case EventInboundCall:
		h.What = "inbound call"
	case EventRequestSent:
		h.What = "request sent"
		if e.Source == string(SourceReconcile) {
			h.What = "request counted by Meta"
		}
	case EventBusinessCall:
		h.What = "business call"
		if e.Source == string(SourceReconcile) {
			h.What = "call counted by Meta"
		}
	default:
		switch {
		case e.Permanent:
			h.What = "permanent grant"
		case Source(e.Source) == SourceCallback:
			h.What = "callback grant"
		default:
			h.What = "temporary grant"
		}
	}
	return h
}

// Callable streams every contact of channel callable at q.Now (the
// tracker's clock when zero), in q.Order, honouring q's filters
// (ExpiringWithin, WithCallsLeft); q.Limit is the page size read at a time
// (default MaxPageSize) and q.Cursor is ignored. An error is yielded once
// and ends the sequence.
//
// At the present instant it walks the live index page by page (see
// Eligible): memory stays at one page however long the list, and entries
// that change while it runs are listed as they are when their page is
// read. A Now in the past folds the channel's ledger once, as Eligible
// does (memory grows with the channel's events), then streams the result;
// instants before the retention horizon fail with ErrBeyondRetention.
func (t *Tracker) Callable(ctx context.Context, channel string, q Query) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if q.Limit <= 0 {
			q.Limit = MaxPageSize
		}
		q.Cursor = ""
		clockNow := t.clock.Now()
		if q.Now.IsZero() {
			q.Now = clockNow
		}
		if !q.Now.Before(clockNow) {
			var buf []Entry // each page overwrites the last: entries are yielded as copies
			for {
				page, err := t.AppendEligible(ctx, buf, channel, q)
				if err != nil {
					yield(Entry{}, err)
					return
				}
				for _, e := range page.Entries {
					if !yield(e, nil) {
						return
					}
				}
				if page.NextCursor == "" {
					return
				}
				buf, q.Cursor = page.Entries, page.NextCursor
			}
		}
		// The past: check the query as Eligible does, then fold once.
		if q.Order == "" {
			q.Order = OrderExpiring
		}
		var err error
		switch {
		case t.closed():
			err = ErrClosed
		case q.Order != OrderExpiring && q.Order != OrderRecent:
			err = fmt.Errorf("permission: unknown order %q", q.Order)
		case q.ExpiringWithin < 0:
			err = fmt.Errorf("permission: negative ExpiringWithin %s", q.ExpiringWithin)
		default:
			err = t.checkHorizon(q.Now, clockNow)
		}
		if err != nil {
			yield(Entry{}, err)
			return
		}
		c, err := t.channelAt(ctx, channel, q.Now)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		q.Limit = min(q.Limit, MaxPageSize)
		var after *row
		for {
			if err := ctx.Err(); err != nil {
				yield(Entry{}, err)
				return
			}
			page := listPage(c, q, after, nil)
			for _, e := range page.Entries {
				if !yield(e, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			it, err := decodeCursor(page.NextCursor, q.Order)
			if err != nil {
				yield(Entry{}, err)
				return
			}
			after = &it
		}
	}
}
