// Package export writes the callable list and the event ledger of a
// permission.Tracker as CSV or NDJSON, as they are read: a dialer, a
// spreadsheet or an auditor gets the whole list, and the writer holds one
// batch of rows in memory however long it is.
//
// Both writers take the streams the tracker gives (Tracker.Callable and
// Tracker.History) and an io.Writer (an http.ResponseWriter, a file). CSV
// starts with a header row naming the columns (CallableColumns,
// HistoryColumns); NDJSON writes one JSON object per line with the same
// names as keys. Times are RFC 3339 in UTC; an absent time is an empty
// cell (CSV) or null (NDJSON).
//
//	rows, err := export.Callable(ctx, w, tr.Callable(ctx, channel, permission.Query{}), export.Options{Format: export.CSV})
package export

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
)

// Format is an export format.
type Format string

const (
	CSV    Format = "csv"    // RFC 4180, a header row first
	NDJSON Format = "ndjson" // one JSON object per line
)

// ErrUnknownFormat: ParseFormat was given a format it does not know.
var ErrUnknownFormat = errors.New("export: unknown format (want csv or ndjson)")

// ParseFormat reads a format name ("csv" or "ndjson", any case).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case CSV, NDJSON:
		return f, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownFormat, s)
}

// ContentType is the MIME type of f.
func (f Format) ContentType() string {
	if f == NDJSON {
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}

// DefaultBatch is Options.Batch's default.
const DefaultBatch = 1000

// Options configures a writer.
type Options struct {
	// Format of the output. Default CSV.
	Format Format
	// Names, when set, looks up the display names of a batch of contacts
	// (the host's CRM); the name column is empty without it. Contacts
	// absent from the map get an empty name.
	Names func(ctx context.Context, contacts []string) (map[string]string, error)
	// Batch is how many rows are gathered before the names are looked up
	// and the rows written: the memory the writer holds. Default
	// DefaultBatch (1000).
	Batch int
	// Flush, when set, is called after each batch is written (an
	// http.ResponseController's Flush), so the reader gets rows as they
	// are read. An error from it ends the export.
	Flush func() error
}

func (o *Options) defaults() error {
	if o.Format == "" {
		o.Format = CSV
	}
	if o.Format != CSV && o.Format != NDJSON {
		return fmt.Errorf("%w: %q", ErrUnknownFormat, o.Format)
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	return nil
}

// CallableColumns names the columns of a callable-list export, in order.
var CallableColumns = []string{"channel", "contact", "name", "kind", "source", "granted_at", "expires_at", "calls_left", "unanswered_streak",
	"wa_id", "user_id", "unconfirmed"}

// HistoryColumns names the columns of a ledger export, in order.
var HistoryColumns = []string{"seq", "channel", "contact", "name", "type", "what", "at", "recorded_at", "expires_at", "permanent",
	"connected", "source", "reason", "event_id", "context", "origin", "revision"}

// Callable writes the entries in o.Format and returns how many rows it
// wrote (the header not counted). It stops at the first error: of the
// stream, of ctx, of Names, or of w (a client that went away).
func Callable(ctx context.Context, w io.Writer, entries iter.Seq2[permission.Entry, error], o Options) (int, error) {
	return write(ctx, w, entries, o, CallableColumns, func(e *permission.Entry) string { return cmp.Or(e.WaID, e.Contact) }, callableRow)
}

// History writes the ledger events in o.Format and returns how many rows
// it wrote (the header not counted). It stops at the first error, as
// Callable does.
func History(ctx context.Context, w io.Writer, events iter.Seq2[permission.HistoryEvent, error], o Options) (int, error) {
	return write(ctx, w, events, o, HistoryColumns, func(e *permission.HistoryEvent) string { return e.Contact }, historyRow)
}

// A cell is a value of one column: text, a time, a number or a flag.
type cell struct {
	s    string
	t    time.Time
	n    int64
	b    bool
	kind byte // 's', 't', 'n', 'b'
}

func str(s string) cell     { return cell{s: s, kind: 's'} }
func tim(t time.Time) cell  { return cell{t: t, kind: 't'} }
func num(n int64) cell      { return cell{n: n, kind: 'n'} }
func flag(b bool) cell      { return cell{b: b, kind: 'b'} }
func (c cell) isZero() bool { return c.kind == 't' && c.t.IsZero() }

func callableRow(e *permission.Entry, name string, row []cell) []cell {
	return append(row, str(e.Channel), str(e.Contact), str(name), str(string(e.Kind)), str(string(e.Source)),
		tim(e.GrantedAt), tim(e.ExpiresAt), num(int64(e.CallsLeft)), num(int64(e.UnansweredStreak)),
		str(e.WaID), str(e.UserID), flag(e.Unconfirmed))
}

func historyRow(e *permission.HistoryEvent, name string, row []cell) []cell {
	return append(row, num(e.Seq), str(e.Channel), str(e.Contact), str(name), str(e.Type.String()), str(e.What),
		tim(e.At), tim(e.RecordedAt), tim(e.ExpiresAt), flag(e.Permanent), flag(e.Connected), str(string(e.Source)),
		str(string(e.Reason)), str(e.ID), str(e.Context), str(string(e.Origin)), num(e.Revision))
}

func write[T any](ctx context.Context, w io.Writer, seq iter.Seq2[T, error], o Options, cols []string,
	contact func(*T) string, row func(*T, string, []cell) []cell) (int, error) {
	if err := o.defaults(); err != nil {
		return 0, err
	}
	out := newEncoder(w, o.Format, cols)
	if err := out.header(); err != nil {
		return 0, err
	}
	batch := make([]T, 0, o.Batch)
	contacts := make([]string, 0, o.Batch)
	cells := make([]cell, 0, len(cols))
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var names map[string]string
		if o.Names != nil {
			contacts = contacts[:0]
			for i := range batch {
				contacts = append(contacts, contact(&batch[i]))
			}
			var err error
			if names, err = o.Names(ctx, contacts); err != nil {
				return err
			}
		}
		for i := range batch {
			cells = row(&batch[i], names[contact(&batch[i])], cells[:0])
			if err := out.row(cells); err != nil {
				return err
			}
		}
		n += len(batch)
		clear(batch) // drop references to the batch's strings
		batch = batch[:0]
		if err := out.flush(); err != nil {
			return err
		}
		if o.Flush != nil {
			return o.Flush()
		}
		return nil
	}
	for v, err := range seq {
		if err != nil {
			return n, err
		}
		batch = append(batch, v)
		if len(batch) == o.Batch {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	return n, out.flush() // the header of an empty export
}

type encoder struct {
	format Format
	cols   []string
	csv    *csv.Writer
	w      io.Writer
	buf    []byte
	rec    []string
}

func newEncoder(w io.Writer, f Format, cols []string) *encoder {
	e := &encoder{format: f, cols: cols, w: w}
	if f == CSV {
		e.csv = csv.NewWriter(w)
		e.rec = make([]string, len(cols))
	}
	return e
}

func (e *encoder) header() error {
	if e.format == CSV {
		return e.csv.Write(e.cols)
	}
	return nil
}

func (e *encoder) row(cells []cell) error {
	if e.format == CSV {
		for i, c := range cells {
			e.rec[i] = csvCell(c)
		}
		return e.csv.Write(e.rec)
	}
	b := append(e.buf[:0], '{')
	for i, c := range cells {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, e.cols[i])
		b = append(b, ':')
		switch {
		case c.isZero():
			b = append(b, "null"...)
		case c.kind == 's':
			b = appendJSONString(b, c.s)
		case c.kind == 't':
			b = append(b, '"')
			b = c.t.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		case c.kind == 'n':
			b = strconv.AppendInt(b, c.n, 10)
		default:
			b = strconv.AppendBool(b, c.b)
		}
	}
	b = append(b, '}', '\n')
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

func (e *encoder) flush() error {
	if e.format == CSV {
		e.csv.Flush()
		return e.csv.Error()
	}
	return nil
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// csvCell formats one CSV cell. Text that a spreadsheet would run as a
// formula (a profile name starting with =, +, -, @, a tab or a carriage
// return) is prefixed with an apostrophe.
func csvCell(c cell) string {
	switch c.kind {
	case 't':
		if c.t.IsZero() {
			return ""
		}
		return c.t.UTC().Format(time.RFC3339Nano)
	case 'n':
		return strconv.FormatInt(c.n, 10)
	case 'b':
		return strconv.FormatBool(c.b)
	}
	if c.s != "" && strings.ContainsRune("=+-@\t\r", rune(c.s[0])) {
		return "'" + c.s
	}
	return c.s
}
