package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/export"
	"github.com/callready/callready/internal/pgtest"
)

// onEachDB runs a test against the server on SQLite and on PostgreSQL (a
// schema of its own on CALLREADY_TEST_POSTGRES; skipped without it,
// required under CI).
func onEachDB(t *testing.T, test func(t *testing.T, newEnv func(start time.Time, adjust func(*serverOptions)) *testEnv)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, func(start time.Time, adjust func(*serverOptions)) *testEnv {
			return newTestEnvWith(t, filepath.Join(t.TempDir(), "callready.db"), start, adjust)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		test(t, func(start time.Time, adjust func(*serverOptions)) *testEnv {
			return newTestEnvWith(t, freshPostgres(t, dsn), start, adjust)
		})
	})
}

// freshPostgres creates a schema for one test, dropped at cleanup, and
// returns a DSN whose search_path is that schema: the permission store's
// and the inbox's tables land in it.
func freshPostgres(t *testing.T, dsn string) string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "srv_" + hex.EncodeToString(b[:])
	_, err = db.Exec("CREATE SCHEMA " + schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	})
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// download GETs path with the token and extra headers, and returns the
// response (body read) for the caller's checks.
func (e *testEnv) download(path string, header map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, string(b)
}

func readCSV(t *testing.T, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err, body)
	return recs
}

func readNDJSON(t *testing.T, body string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	return out
}

func errorOf(t *testing.T, e *testEnv, path string) (int, string) {
	t.Helper()
	var out struct{ Error string }
	code := e.get(path, &out)
	return code, out.Error
}

const (
	ana   = "34612000001"
	bruno = "34612000002"
	carla = "34612000003"
)

// lateRevoke: Ana accepted at 09:00; the agent dialled at 14:05; Ana had
// declined at 14:00, but Meta's webhook for it was recorded at 14:07.
// Bruno holds a grant throughout; Carla was granted at 14:03.
func lateRevoke(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) (e *testEnv, dial time.Time) {
	day := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	e = newEnv(at(9, 0), nil)
	e.grant(chA, "Ana Ruiz", ana, "wamid.ana1", at(9, 0), at(9, 0).Add(7*24*time.Hour))
	e.grant(chA, "Bruno Díaz", bruno, "wamid.bruno1", at(9, 0), at(9, 0).Add(7*24*time.Hour))
	e.clock.Set(at(14, 3))
	e.grant(chA, "=cmd|' /C calc'!A0", carla, "wamid.carla1", at(14, 3), at(14, 3).Add(24*time.Hour))
	e.clock.Set(at(14, 7))
	e.reject(chA, "Ana Ruiz", ana, "wamid.ana2", at(14, 0))
	e.clock.Set(at(15, 0))
	return e, at(14, 5)
}

func TestContactAsOf(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e, dial := lateRevoke(t, newEnv)
		base := "/api/channels/" + chA.id + "/contacts/" + ana
		stamp := url.QueryEscape(dial.Format(time.RFC3339))

		// The truth at 14:05: the decline had happened.
		var truth explanationJSON
		require.Equal(t, http.StatusOK, e.get(base+"?at="+stamp, &truth))
		assert.Equal(t, dial, truth.At)
		assert.Nil(t, truth.KnownAt)
		assert.False(t, truth.Callable)
		assert.Equal(t, "rejected", truth.Status)
		assert.False(t, truth.CanCall)
		require.NotEmpty(t, truth.History)
		last := truth.History[len(truth.History)-1]
		assert.Equal(t, "revocation", last.What)
		assert.Equal(t, dial.Add(-5*time.Minute), last.At, "event time 14:00")
		require.NotNil(t, last.RecordedAt)
		assert.Equal(t, dial.Add(2*time.Minute), *last.RecordedAt, "recorded at 14:07")
		assert.Equal(t, "webhook", last.Origin)
		assert.Equal(t, "wamid.ana2", last.EventID)
		assert.Equal(t, "wamid.request.wamid.ana2", last.Context)

		// What the agent could know at 14:05: still callable.
		var known explanationJSON
		require.Equal(t, http.StatusOK, e.get(base+"?at="+stamp+"&known_at="+stamp, &known))
		assert.True(t, known.Callable)
		assert.Equal(t, "temporary", known.Status)
		assert.True(t, known.CanCall)
		require.NotNil(t, known.KnownAt)
		assert.Equal(t, dial, *known.KnownAt)
		for _, ev := range known.History {
			assert.NotEqual(t, "revocation", ev.What, "the revocation was not recorded yet")
			assert.Equal(t, "wamid.ana1", ev.EventID)
		}

		// Without at: now (15:00), rejected.
		var now explanationJSON
		require.Equal(t, http.StatusOK, e.get(base, &now))
		assert.Equal(t, e.clock.Now().UTC(), now.At)
		assert.Equal(t, "rejected", now.Status)

		for q, want := range map[string]string{
			"?at=yesterday":                        "at: want an RFC 3339 time",
			"?known_at=2026-03-03":                 "known_at: want an RFC 3339 time",
			"?at=2020-01-01T00:00:00Z":             "beyond retention",
			"?at=2026-03-03T14:05:00Z&known_at=x1": "known_at:",
		} {
			code, msg := errorOf(t, e, base+q)
			assert.Equal(t, http.StatusBadRequest, code, q)
			assert.Contains(t, msg, want, q)
		}
	})
}

func TestContactHistory(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e, dial := lateRevoke(t, newEnv)
		e.missedCall(chA, "Ana Ruiz", ana, "wacid.ana3", dial.Add(50*time.Minute))
		base := "/api/channels/" + chA.id + "/contacts/" + ana + "/history"
		type page struct {
			Contact    string             `json:"contact"`
			Name       string             `json:"name"`
			Events     []historyEventJSON `json:"events"`
			NextCursor string             `json:"next_cursor"`
		}
		var all page
		require.Equal(t, http.StatusOK, e.get(base, &all))
		assert.Equal(t, "Ana Ruiz", all.Name)
		assert.Empty(t, all.NextCursor)
		var whats []string
		for _, ev := range all.Events {
			whats = append(whats, ev.What)
			assert.Equal(t, ana, ev.Contact)
			assert.Equal(t, "webhook", ev.Origin)
			assert.Positive(t, ev.Seq)
			assert.False(t, ev.RecordedAt.Before(ev.At), "recorded after it happened")
		}
		assert.Equal(t, []string{"temporary grant", "revocation", "inbound call"}, whats, "oldest first")
		assert.Equal(t, "grant", all.Events[0].Type)
		assert.Equal(t, "wamid.ana1", all.Events[0].EventID)
		require.NotNil(t, all.Events[0].ExpiresAt)
		assert.Equal(t, dial.Add(2*time.Minute), all.Events[1].RecordedAt)
		assert.Equal(t, "rejected", all.Events[1].Reason)

		// Paged one at a time: the same events.
		var paged []historyEventJSON
		cursor := ""
		for range 10 {
			var p page
			require.Equal(t, http.StatusOK, e.get(base+"?limit=1&cursor="+cursor, &p))
			paged = append(paged, p.Events...)
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		assert.Equal(t, all.Events, paged)

		// An event-time range.
		var r page
		require.Equal(t, http.StatusOK, e.get(base+"?from="+url.QueryEscape(dial.Add(-time.Hour).Format(time.RFC3339))+
			"&to="+url.QueryEscape(dial.Format(time.RFC3339)), &r))
		require.Len(t, r.Events, 1)
		assert.Equal(t, "revocation", r.Events[0].What)

		assert.Equal(t, http.StatusNotFound, e.get("/api/channels/"+chA.id+"/contacts/34699999999/history", nil))
		for q, want := range map[string]string{
			"?cursor=zzz":                "cursor:",
			"?limit=0":                   "limit:",
			"?from=soon":                 "from: want an RFC 3339 time",
			"?from=2020-01-01T00:00:00Z": "beyond retention",
			"?from=2026-03-04T00:00:00Z&to=2026-03-03T00:00:00Z": "to: must be after from",
		} {
			code, msg := errorOf(t, e, base+q)
			assert.Equal(t, http.StatusBadRequest, code, q)
			assert.Contains(t, msg, want, q)
		}
	})
}

func TestCallableExport(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e, dial := lateRevoke(t, newEnv)
		base := "/api/channels/" + chA.id + "/callable"

		for _, how := range []struct {
			query  string
			header map[string]string
		}{{"?format=csv", nil}, {"", map[string]string{"Accept": "text/csv"}}} {
			resp, body := e.download(base+how.query, how.header)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Equal(t, `attachment; filename="callable-`+chA.id+`-20260303T150000Z.csv"`, resp.Header.Get("Content-Disposition"))
			recs := readCSV(t, body)
			assert.Equal(t, export.CallableColumns, recs[0], "a header row naming the columns")
			var contacts []string
			for _, r := range recs[1:] {
				contacts = append(contacts, r[1])
				if r[1] == carla {
					assert.Equal(t, `'=cmd|' /C calc'!A0`, r[2], "a formula in a profile name is defused")
					assert.Equal(t, "2026-03-03T14:03:00Z", r[5])
				}
				if r[1] == bruno {
					assert.Equal(t, "Bruno Díaz", r[2])
					assert.Equal(t, "request", r[4])
				}
			}
			assert.Equal(t, []string{carla, bruno}, contacts, "soonest expiry first; Ana declined")
		}

		// The list as it was at 14:05 (Ana declined at 14:00, Carla was
		// granted at 14:03), as NDJSON.
		resp, body := e.download(base+"?format=ndjson&at="+url.QueryEscape(dial.Format(time.RFC3339)), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		assert.Contains(t, resp.Header.Get("Content-Disposition"), "callable-"+chA.id+"-20260303T140500Z.ndjson")
		var contacts []string
		for _, m := range readNDJSON(t, body) {
			contacts = append(contacts, m["contact"].(string))
			assert.Len(t, m, len(export.CallableColumns))
		}
		assert.ElementsMatch(t, []string{bruno, carla}, contacts)
		// At 13:55: Ana and Bruno.
		_, body = e.download(base+"?format=ndjson&at="+url.QueryEscape(dial.Add(-10*time.Minute).Format(time.RFC3339)), nil)
		contacts = nil
		for _, m := range readNDJSON(t, body) {
			contacts = append(contacts, m["contact"].(string))
		}
		assert.ElementsMatch(t, []string{ana, bruno}, contacts, "13:55: before the decline and Carla's grant")

		// The page's filters: an export holds what a tab shows.
		for q, want := range map[string][]string{
			"&q=bruno":            {bruno},
			"&q=612+000+003":      {carla},
			"&source=request":     {carla, bruno},
			"&source=permanent":   nil,
			"&calls=left":         {carla, bruno},
			"&calls=none":         nil,
			"&order=recent":       {carla, bruno},
			"&expiring_within=2h": nil,
		} {
			resp, body := e.download(base+"?format=csv"+q, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			var got []string
			for _, r := range readCSV(t, body)[1:] {
				got = append(got, r[1])
			}
			assert.Equal(t, want, got, q)
		}

		// The JSON page takes at= too.
		var page struct {
			Contacts []contactJSON `json:"contacts"`
		}
		require.Equal(t, http.StatusOK, e.get(base+"?at="+url.QueryEscape(dial.Add(-10*time.Minute).Format(time.RFC3339)), &page))
		assert.Len(t, page.Contacts, 2)

		for q, want := range map[string]string{
			"?format=xml":                         "format: want csv, ndjson or json",
			"?format=csv&at=noon":                 "at: want an RFC 3339 time",
			"?format=csv&at=2020-01-01T00:00:00Z": "beyond retention",
			"?at=2020-01-01T00:00:00Z":            "beyond retention",
			"?format=csv&order=sideways":          "order:",
			"?format=ndjson&expiring_within=-1h":  "expiring_within:",
		} {
			code, msg := errorOf(t, e, base+q)
			assert.Equal(t, http.StatusBadRequest, code, q)
			assert.Contains(t, msg, want, q)
		}
	})
}

func TestLedgerExport(t *testing.T) {
	onEachDB(t, func(t *testing.T, newEnv func(time.Time, func(*serverOptions)) *testEnv) {
		e, dial := lateRevoke(t, newEnv)
		base := "/api/channels/" + chA.id + "/ledger"
		from := url.QueryEscape(dial.Add(-time.Hour).Format(time.RFC3339))
		to := url.QueryEscape(dial.Format(time.RFC3339))

		resp, body := e.download(base+"?format=csv&from="+from+"&to="+to, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, `attachment; filename="ledger-`+chA.id+`-from-20260303T130500Z-to-20260303T140500Z.csv"`, resp.Header.Get("Content-Disposition"))
		recs := readCSV(t, body)
		assert.Equal(t, export.HistoryColumns, recs[0])
		require.Len(t, recs, 3, "Ana's decline (14:00) and Carla's grant (14:03)")
		col := func(name string) int {
			for i, c := range export.HistoryColumns {
				if c == name {
					return i
				}
			}
			t.Fatalf("no column %s", name)
			return -1
		}
		assert.Equal(t, []string{ana, "revoke", "2026-03-03T14:00:00Z", "2026-03-03T14:07:00Z", "Ana Ruiz"},
			[]string{recs[1][col("contact")], recs[1][col("type")], recs[1][col("at")], recs[1][col("recorded_at")], recs[1][col("name")]})
		assert.Equal(t, carla, recs[2][col("contact")])

		// The whole ledger, NDJSON (the default), oldest first.
		resp, body = e.download(base, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		lines := readNDJSON(t, body)
		require.Len(t, lines, 4)
		prev := ""
		for _, m := range lines {
			assert.GreaterOrEqual(t, m["at"].(string), prev)
			prev = m["at"].(string)
		}

		for q, want := range map[string]string{
			"?format=xlsx":                          "format:",
			"?format=json":                          "format: want csv or ndjson",
			"?from=monday":                          "from: want an RFC 3339 time",
			"?to=" + from + "&from=" + to:           "to: must be after from",
			"?from=2020-01-01T00:00:00Z&format=csv": "beyond retention",
		} {
			code, msg := errorOf(t, e, base+q)
			assert.Equal(t, http.StatusBadRequest, code, q)
			assert.Contains(t, msg, want, q)
		}
		assert.Equal(t, http.StatusNotFound, e.get("/api/channels/999/ledger", nil))
	})
}

// logSink collects the server's log messages.
type logSink struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }
func (l *logSink) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if m == msg {
			return true
		}
	}
	return false
}
