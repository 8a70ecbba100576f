package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/export"
	"github.com/callready/callready/permission"
)

var t0 = time.Date(2026, 3, 3, 14, 5, 0, 0, time.UTC)

func entries(n int) iter.Seq2[permission.Entry, error] {
	return func(yield func(permission.Entry, error) bool) {
		for i := range n {
			e := permission.Entry{Channel: "ch", Contact: "3461200" + string(rune('0'+i%10)) + string(rune('a'+i/10)),
				Kind: permission.Temporary, Source: permission.SourceRequest, GrantedAt: t0, ExpiresAt: t0.Add(time.Hour), CallsLeft: 5}
			if i%2 == 1 {
				e.Kind, e.ExpiresAt = permission.Permanent, time.Time{}
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

func TestCallableCSV(t *testing.T) {
	var buf bytes.Buffer
	var batches [][]string
	flushes := 0
	n, err := export.Callable(context.Background(), &buf, entries(5), export.Options{
		Batch: 2,
		Names: func(_ context.Context, cs []string) (map[string]string, error) {
			batches = append(batches, append([]string(nil), cs...))
			return map[string]string{cs[0]: "=HYPERLINK(\"x\")"}, nil
		},
		Flush: func() error { flushes++; return nil },
	})
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.Equal(t, []int{2, 2, 1}, []int{len(batches[0]), len(batches[1]), len(batches[2])}, "names looked up a batch at a time")
	assert.Equal(t, 3, flushes)
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 6)
	assert.Equal(t, export.CallableColumns, recs[0])
	assert.Equal(t, []string{"ch", batches[0][0], `'=HYPERLINK("x")`, "temporary", "request", "2026-03-03T14:05:00Z", "2026-03-03T15:05:00Z", "5", "0", "", "", "false"}, recs[1],
		"a formula is defused")
	assert.Equal(t, "", recs[2][2], "no name")
	assert.Equal(t, "", recs[2][6], "permanent: no expiry")
}

func TestEmptyCSVHasHeader(t *testing.T) {
	var buf bytes.Buffer
	n, err := export.Callable(context.Background(), &buf, entries(0), export.Options{})
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	assert.Equal(t, strings.Join(export.CallableColumns, ",")+"\n", buf.String())
}

func TestHistoryNDJSON(t *testing.T) {
	evs := func(yield func(permission.HistoryEvent, error) bool) {
		yield(permission.HistoryEvent{Seq: 7, Channel: "ch", Contact: "c", Type: permission.EventRevoke, What: "revocation",
			At: t0, RecordedAt: t0.Add(2 * time.Minute), Reason: permission.RevokeProfile, Origin: permission.OriginWebhook, Revision: 3}, nil)
	}
	var buf bytes.Buffer
	n, err := export.History(context.Background(), &buf, evs, export.Options{Format: export.NDJSON})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 1)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	assert.Len(t, got, len(export.HistoryColumns), "every column, by name")
	assert.Equal(t, map[string]any{
		"seq": 7.0, "channel": "ch", "contact": "c", "name": "", "type": "revoke", "what": "revocation",
		"at": "2026-03-03T14:05:00Z", "recorded_at": "2026-03-03T14:07:00Z", "expires_at": nil, "permanent": false,
		"connected": false, "source": "", "reason": "profile", "event_id": "", "context": "", "origin": "webhook", "revision": 3.0,
	}, got)
}

type failWriter struct{ after, n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n++; w.n > w.after {
		return 0, errors.New("client went away")
	}
	return len(p), nil
}

func TestStopsOnErrors(t *testing.T) {
	ctx := context.Background()
	_, err := export.Callable(ctx, &failWriter{after: 1}, entries(10), export.Options{Batch: 1, Format: export.NDJSON})
	assert.ErrorContains(t, err, "client went away")

	boom := errors.New("store down")
	bad := func(yield func(permission.Entry, error) bool) {
		if yield(permission.Entry{Contact: "a"}, nil) {
			yield(permission.Entry{}, boom)
		}
	}
	n, err := export.Callable(ctx, &bytes.Buffer{}, bad, export.Options{})
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 0, n, "the partial batch is not written")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = export.Callable(cctx, &bytes.Buffer{}, entries(4), export.Options{Batch: 2})
	assert.ErrorIs(t, err, context.Canceled)

	_, err = export.Callable(ctx, &bytes.Buffer{}, entries(1), export.Options{Format: "xml"})
	assert.ErrorIs(t, err, export.ErrUnknownFormat)
}

func TestParseFormat(t *testing.T) {
	f, err := export.ParseFormat("CSV")
	require.NoError(t, err)
	assert.Equal(t, export.CSV, f)
	f, err = export.ParseFormat("ndjson")
	require.NoError(t, err)
	assert.Equal(t, "application/x-ndjson", f.ContentType())
	_, err = export.ParseFormat("json")
	assert.ErrorIs(t, err, export.ErrUnknownFormat)
}

// FuzzNames: whatever a profile name holds, the CSV parses back to one row
// of the right width with the name intact (apostrophe-prefixed when a
// spreadsheet would run it), and the NDJSON line is valid JSON holding it.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"Beatriz Lima", "=1+1", "a,b\"c\nd", "\r\n", "@x", "-", "\x00", "é中"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		names := func(context.Context, []string) (map[string]string, error) {
			return map[string]string{"3461200" + "0a": name}, nil
		}
		var buf bytes.Buffer
		_, err := export.Callable(context.Background(), &buf, entries(1), export.Options{Names: names})
		require.NoError(t, err)
		recs, err := csv.NewReader(&buf).ReadAll()
		require.NoError(t, err)
		require.Len(t, recs, 2)
		require.Len(t, recs[1], len(export.CallableColumns))
		want := name
		if name != "" && strings.ContainsRune("=+-@\t\r", rune(name[0])) {
			want = "'" + name
		}
		// encoding/csv reads \r\n inside a quoted field back as \n.
		assert.Equal(t, strings.ReplaceAll(want, "\r\n", "\n"), recs[1][2])

		buf.Reset()
		_, err = export.Callable(context.Background(), &buf, entries(1), export.Options{Names: names, Format: export.NDJSON})
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
		if strings.ToValidUTF8(name, "\uFFFD") == name {
			assert.Equal(t, name, got["name"])
		}
	})
}
