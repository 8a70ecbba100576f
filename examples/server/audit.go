package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/export"
	"github.com/callready/callready/permission"
)

// Audit and export: the contact answer as of an instant, a person's
// ledger, and streamed exports of the callable list and of the ledger.

// parseInstant reads an RFC 3339 time parameter; a missing one is zero.
func parseInstant(v url.Values, name string) (time.Time, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want an RFC 3339 time such as 2026-03-03T14:05:00Z, got %q", name, s)
	}
	return t.UTC(), nil
}

// badQuery answers the errors a caller can fix with 400 and the rest as a
// storage failure.
func (s *server) badQuery(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, permission.ErrBeyondRetention):
		writeError(w, http.StatusBadRequest, "beyond retention: "+strings.TrimPrefix(err.Error(), permission.ErrBeyondRetention.Error()+": ")+
			"; the ledger no longer holds that time")
	case errors.Is(err, permission.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "cursor: not from this listing, or corrupted")
	default:
		s.storeFailed(w, r, err)
	}
}

// streamFormat is the export format a request asks for: ?format= first,
// then an Accept of text/csv or application/x-ndjson. ok is false when it
// asks for none (the JSON page).
func streamFormat(r *http.Request) (f export.Format, ok bool, err error) {
	if v := r.URL.Query().Get("format"); v != "" {
		if v == "json" {
			return "", false, nil
		}
		f, err := export.ParseFormat(v)
		if err != nil {
			return "", false, errors.New("format: want csv, ndjson or json, got " + strconv.Quote(v))
		}
		return f, true, nil
	}
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, "text/csv"):
		return export.CSV, true, nil
	case strings.Contains(accept, "application/x-ndjson"):
		return export.NDJSON, true, nil
	}
	return "", false, nil
}

// startStream sets the headers of a download named name (without the
// extension) and returns the export options that flush each batch.
func (s *server) startStream(w http.ResponseWriter, r *http.Request, f export.Format, name string) export.Options {
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+"."+string(f)+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	return export.Options{Format: f, Flush: rc.Flush}
}

// streamFailed ends a stream whose status is already sent: the error is
// logged (unless the client left) and the connection cut, so the client
// sees a truncated download rather than a complete-looking file.
func (s *server) streamFailed(r *http.Request, rows int, err error) {
	if r.Context().Err() != nil {
		s.log.Info("export ended: client went away", "path", r.URL.Path, "rows", rows)
		return
	}
	s.log.Error("export failed", "path", r.URL.Path, "rows", rows, "err", err)
	panic(http.ErrAbortHandler)
}

// fileStamp names an instant in a file name.
func fileStamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// callableQuery reads the listing parameters shared by the JSON page and
// the export.
func callableQuery(v url.Values, now time.Time) (permission.Query, error) {
	q := permission.Query{Cursor: v.Get("cursor"), Now: now}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > permission.MaxPageSize {
			return q, errors.New("limit: want an integer from 1 to " + strconv.Itoa(permission.MaxPageSize))
		}
		q.Limit = n
	}
	switch o := v.Get("order"); o {
	case "", "expiring":
		q.Order = permission.OrderExpiring
	case "recent":
		q.Order = permission.OrderRecent
	default:
		return q, errors.New("order: want expiring or recent")
	}
	if ew := v.Get("expiring_within"); ew != "" {
		d, err := time.ParseDuration(ew)
		if err != nil || d <= 0 {
			return q, errors.New("expiring_within: want a positive duration such as 24h")
		}
		q.ExpiringWithin = d
	}
	at, err := parseInstant(v, "at")
	if err != nil {
		return q, err
	}
	if !at.IsZero() {
		q.Now = at
	}
	return q, nil
}

// callableFilter is what the page's filters keep besides order and
// expiry (source=, calls=, confirmed=, q=), so an export holds the rows a
// tab shows.
type callableFilter struct {
	source    string // request, callback, profile, permanent
	calls     string // left, none
	confirmed string // unconfirmed, confirmed
	q         string // name or number, as the page's search box matches
}

func parseCallableFilter(v url.Values) (callableFilter, error) {
	f := callableFilter{source: v.Get("source"), calls: v.Get("calls"), confirmed: v.Get("confirmed"), q: strings.ToLower(strings.TrimSpace(v.Get("q")))}
	switch f.confirmed {
	case "", "unconfirmed", "confirmed":
	default:
		return f, errors.New("confirmed: want unconfirmed or confirmed")
	}
	switch f.source {
	case "", "request", "callback", "profile", "permanent":
	default:
		return f, errors.New("source: want request, callback, profile or permanent")
	}
	switch f.calls {
	case "", "left", "none":
	default:
		return f, errors.New("calls: want left or none")
	}
	return f, nil
}

func (f callableFilter) any() bool { return f != callableFilter{} }

// keeps mirrors the page's matches().
func (f callableFilter) keeps(e permission.Entry, name string) bool {
	if f.q != "" {
		digits := strings.Map(func(r rune) rune {
			if strings.ContainsRune(" +()-", r) {
				return -1
			}
			return r
		}, f.q)
		byName := strings.Contains(strings.ToLower(name), f.q)
		byContact := false
		for _, id := range []string{e.Contact, e.WaID, e.UserID} {
			byContact = byContact || (id != "" && (strings.Contains(strings.ToLower(id), f.q) || (isDigits(digits) && strings.Contains(id, digits))))
		}
		if !byName && !byContact {
			return false
		}
	}
	if (f.confirmed == "unconfirmed" && !e.Unconfirmed) || (f.confirmed == "confirmed" && e.Unconfirmed) {
		return false
	}
	switch f.source {
	case "request":
		if e.Source != permission.SourceRequest || e.Kind == permission.Permanent {
			return false
		}
	case "callback":
		if e.Source != permission.SourceCallback && e.Source != permission.SourceInboundCall {
			return false
		}
	case "profile":
		if e.Source != permission.SourceProfile {
			return false
		}
	case "permanent":
		if e.Kind != permission.Permanent {
			return false
		}
	}
	switch f.calls {
	case "left":
		return e.CallsLeft > 0
	case "none":
		return e.CallsLeft == 0
	}
	return true
}

// filtered keeps the entries f keeps, reading names a batch at a time when
// the search needs them.
func (s *server) filtered(ctx context.Context, ch string, seq iter.Seq2[permission.Entry, error], f callableFilter) iter.Seq2[permission.Entry, error] {
	return func(yield func(permission.Entry, error) bool) {
		batch := make([]permission.Entry, 0, export.DefaultBatch)
		emit := func() bool {
			var names map[string]string
			if f.q != "" {
				contacts := make([]string, len(batch))
				for i, e := range batch {
					contacts[i] = inboxKey(e)
				}
				var err error
				if names, err = s.inbox.names(ctx, ch, contacts); err != nil {
					yield(permission.Entry{}, err)
					return false
				}
			}
			for _, e := range batch {
				if f.keeps(e, names[inboxKey(e)]) && !yield(e, nil) {
					return false
				}
			}
			batch = batch[:0]
			return true
		}
		for e, err := range seq {
			if err != nil {
				yield(permission.Entry{}, err)
				return
			}
			if batch = append(batch, e); len(batch) == cap(batch) && !emit() {
				return
			}
		}
		emit()
	}
}

// exportCallable streams the channel's whole callable list at q.Now.
func (s *server) exportCallable(w http.ResponseWriter, r *http.Request, ch string, q permission.Query, f export.Format) {
	ctx := r.Context()
	filter, err := parseCallableFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	entries := s.tracker.Callable(ctx, ch, q)
	if filter.any() {
		entries = s.filtered(ctx, ch, entries, filter)
	}
	// The first entry (or error) decides the status: a bad instant is
	// still a 400, not a broken download.
	next, stop := iter.Pull2(entries)
	defer stop()
	first, err, more := next()
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	o := s.startStream(w, r, f, "callable-"+ch+"-"+fileStamp(q.Now))
	o.Names = func(ctx context.Context, contacts []string) (map[string]string, error) {
		return s.inbox.names(ctx, ch, contacts)
	}
	rows, err := export.Callable(ctx, w, resumed(first, more, next), o)
	if err != nil {
		s.streamFailed(r, rows, err)
	}
}

// historyEventJSON is one ledger event as the API shows it.
type historyEventJSON struct {
	Seq        int64      `json:"seq"`
	Contact    string     `json:"contact"`
	Type       string     `json:"type"`
	What       string     `json:"what"`
	At         time.Time  `json:"at"`
	RecordedAt time.Time  `json:"recorded_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Permanent  bool       `json:"permanent"`
	Connected  bool       `json:"connected"`
	Source     string     `json:"source,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	EventID    string     `json:"event_id,omitempty"`
	Context    string     `json:"context,omitempty"`
	Origin     string     `json:"origin"`
	Revision   int64      `json:"revision"`
}

func toHistoryJSON(e permission.HistoryEvent) historyEventJSON {
	return historyEventJSON{
		Seq: e.Seq, Contact: e.Contact, Type: e.Type.String(), What: e.What, At: e.At.UTC(), RecordedAt: e.RecordedAt.UTC(),
		ExpiresAt: timeOrNil(e.ExpiresAt), Permanent: e.Permanent, Connected: e.Connected,
		Source: string(e.Source), Reason: string(e.Reason), EventID: e.ID, Context: e.Context,
		Origin: string(e.Origin), Revision: e.Revision,
	}
}

// historyQuery reads from= and to= (event time) into q.
func historyRange(v url.Values, q *permission.HistoryQuery) error {
	var err error
	if q.From, err = parseInstant(v, "from"); err != nil {
		return err
	}
	if q.To, err = parseInstant(v, "to"); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return errors.New("to: must be after from")
	}
	return nil
}

// contactHistory pages one person's ledger, oldest first.
func (s *server) contactHistory(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	contact := r.PathValue("contact")
	v := r.URL.Query()
	q := permission.HistoryQuery{Channel: ch, Contact: contact, After: v.Get("cursor")}
	limit := 100
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > permission.MaxPageSize {
			writeError(w, http.StatusBadRequest, "limit: want an integer from 1 to "+strconv.Itoa(permission.MaxPageSize))
			return
		}
		limit = n
	}
	if err := historyRange(v, &q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.PageSize = limit + 1 // one more tells whether there is a next page
	events := []historyEventJSON{}
	next := ""
	for ev, err := range s.tracker.History(r.Context(), q) {
		if err != nil {
			s.badQuery(w, r, err)
			return
		}
		if len(events) == limit {
			next = permission.HistoryEvent{At: events[limit-1].At, Seq: events[limit-1].Seq}.Cursor()
			break
		}
		events = append(events, toHistoryJSON(ev))
	}
	name, known, err := s.inbox.contact(r.Context(), ch, contact)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	if !known && len(events) == 0 && q.After == "" {
		writeError(w, http.StatusNotFound, "unknown contact "+strconv.Quote(contact))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"channel": ch, "contact": contact, "name": name, "events": events, "next_cursor": next,
	})
}

// channelLedger streams the channel's ledger in an event-time range.
func (s *server) channelLedger(w http.ResponseWriter, r *http.Request) {
	ch, ok := s.channelOr404(w, r)
	if !ok {
		return
	}
	v := r.URL.Query()
	f, stream, err := streamFormat(r)
	if err == nil && !stream {
		f = export.NDJSON // the ledger is always a stream
		if v.Get("format") == "json" {
			err = errors.New("format: want csv or ndjson")
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := permission.HistoryQuery{Channel: ch, Contact: v.Get("contact"), PageSize: 1000}
	if err := historyRange(v, &q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	next, stop := iter.Pull2(s.tracker.History(ctx, q))
	defer stop()
	first, err, more := next()
	if err != nil {
		s.badQuery(w, r, err)
		return
	}
	name := "ledger-" + ch
	if !q.From.IsZero() {
		name += "-from-" + fileStamp(q.From)
	}
	if !q.To.IsZero() {
		name += "-to-" + fileStamp(q.To)
	}
	o := s.startStream(w, r, f, name)
	o.Names = func(ctx context.Context, contacts []string) (map[string]string, error) {
		return s.inbox.names(ctx, ch, contacts)
	}
	rows, err := export.History(ctx, w, resumed(first, more, next), o)
	if err != nil {
		s.streamFailed(r, rows, err)
	}
}

// resumed is a pulled sequence again, its first element (read before the
// response started, so that an error could still be a 400) included.
func resumed[T any](first T, more bool, next func() (T, error, bool)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		if !more || !yield(first, nil) {
			return
		}
		for {
			e, err, ok := next()
			if !ok || !yield(e, err) || err != nil {
				return
			}
		}
	}
}
