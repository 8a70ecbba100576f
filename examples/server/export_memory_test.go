package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/export"
	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

// memoryServer serves the export handlers over a tracker on store/memory
// holding n callable contacts of chA (a SQL store would take minutes to
// fill with a million; the present-instant export reads the tracker's
// index either way), with the inbox on SQLite, behind a real listener.
func memoryServer(t *testing.T, n int, log *slog.Logger, g *gate) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	clk := clock.NewMock()
	clk.Set(start)
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{}), Clock: clk, Limits: limits})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	batch := make([]permission.Event, 0, 1000)
	for i := range n {
		batch = append(batch, permission.Event{Type: permission.EventGrant, Channel: chA.id, Contact: fmt.Sprintf("34%09d", i),
			At: start, ExpiresAt: start.Add(time.Hour + time.Duration(i)*400*time.Millisecond)})
		if len(batch) == cap(batch) || i == n-1 {
			_, err := tr.Record(ctx, batch...)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	db, _, err := openDB(ctx, filepath.Join(t.TempDir(), "inbox.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	in, err := openInbox(ctx, db, false)
	require.NoError(t, err)
	require.NoError(t, in.noteChannel(ctx, chA.id, chA.display, start))
	require.NoError(t, in.noteContact(ctx, chA.id, "34000000000", "First Contact", start))
	s := &server{opts: serverOptions{APIToken: testToken}, clock: clk, log: log, tracker: tr, inbox: in}
	mux := http.NewServeMux()
	mux.Handle("GET /api/channels/{channel}/callable", s.auth(s.listCallable, false))
	hs := httptest.NewUnstartedServer(mux)
	if g != nil {
		hs.Listener = gatedListener{hs.Listener, g}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return hs
}

// gate stops the server's writes on demand, so the test measures the heap
// while the server is blocked: nothing it allocates then is mistaken for
// what it keeps.
type gate struct {
	mu sync.Mutex
	// readEnded is closed when a read of the server's fails: the client
	// closed the connection.
	readEnded chan struct{}
	readOnce  sync.Once
	stop      chan struct{} // non-nil: writes wait until it is closed
	blocked   chan struct{} // gets a value when a write waits
}

func (g *gate) pause() {
	g.mu.Lock()
	g.stop, g.blocked = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
}

// waitBlocked waits until the server's next write is held at the gate.
func (g *gate) waitBlocked() {
	g.mu.Lock()
	b := g.blocked
	g.mu.Unlock()
	<-b
}

func (g *gate) resume() {
	g.mu.Lock()
	close(g.stop)
	g.stop = nil
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	stop, blocked := g.stop, g.blocked
	g.mu.Unlock()
	if stop != nil {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-stop
	}
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return gatedConn{c, l.g}, err
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.g.readOnce.Do(func() { close(c.g.readEnded) })
	}
	return n, err
}

func (c gatedConn) Write(p []byte) (int, error) {
	c.g.wait()
	return c.Conn.Write(p)
}

func getCSV(t *testing.T, ctx context.Context, hs *httptest.Server) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/api/channels/"+chA.id+"/callable?format=csv", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := hs.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestCallableExportConstantMemory streams a million callable rows as CSV
// and samples the live heap (after a GC) as the rows arrive: it grows by
// a few batches, not by the ~90 MB the file holds nor the entries' size.
func TestCallableExportConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a tracker with 1M grants; skipped with -short")
	}
	n := 1_000_000
	if raceEnabled {
		n = 100_000 // the same property; the 1M run is the test without -race
	}
	g := &gate{readEnded: make(chan struct{})}
	hs := memoryServer(t, n, slog.New(slog.DiscardHandler), g)
	base := liveHeap()
	resp := getCSV(t, context.Background(), hs)
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	header, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, strings.Join(export.CallableColumns, ",")+"\n", header)
	rows, bytes := 0, int64(len(header))
	var peak uint64
	var first string
	var samples []string
	var growths []int64
	sample := 100_000
	if raceEnabled {
		sample = 10_000
	}
	for {
		line, err := r.ReadSlice('\n')
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if rows == 0 {
			first = string(line)
		}
		rows++
		bytes += int64(len(line))
		if rows%sample == 0 && rows < n {
			// Measure while the server is held at its next write.
			g.pause()
			g.waitBlocked()
			h := liveHeap()
			g.resume()
			samples = append(samples, fmt.Sprintf("%.1f", (float64(h)-float64(base))/1e6))
			growths = append(growths, int64(h)-int64(base))
			peak = max(peak, h)
		}
	}
	assert.Equal(t, n, rows)
	assert.Equal(t, chA.id+",34000000000,First Contact,temporary,request,2026-03-03T09:00:00Z,2026-03-03T10:00:00Z,100,0,34000000000,,false\n", first,
		"soonest expiry first, with the inbox's name")
	growth := int64(peak) - int64(base)
	t.Logf("heap growth (MB) every %d rows: %s", sample, strings.Join(samples, " "))
	t.Logf("%d rows, %.1f MB of CSV; live heap %.1f MB before, peak growth %.2f MB while streaming",
		rows, float64(bytes)/1e6, float64(base)/1e6, float64(growth)/1e6)
	require.Len(t, growths, n/sample-1)
	// Buffering the list would add ~150 MB of entries; the file is ~95 MB.
	assert.Less(t, growth, int64(4<<20), "a few batches, far below the list's and the file's size")
	if len(growths) > 1 {
		assert.Less(t, slices.Max(growths)-slices.Min(growths), int64(1<<20),
			"the heap does not grow with the rows sent: 100k rows in, as after 900k")
	}
}

// TestExportHonoursDisconnect: a client that leaves after the header ends
// the export; the server stops reading the list.
func TestExportHonoursDisconnect(t *testing.T) {
	sink := &logSink{}
	g := &gate{readEnded: make(chan struct{})}
	hs := memoryServer(t, 20_000, slog.New(sink), g)
	ctx, cancel := context.WithCancel(context.Background())
	resp := getCSV(t, ctx, hs)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, strings.Join(export.CallableColumns, ",")+"\n", line, "rows arrive before the list is read whole")
	// Hold the server at its next write, leave, and let it go on once it
	// has seen the connection close.
	g.pause()
	g.waitBlocked()
	cancel()
	resp.Body.Close()
	<-g.readEnded
	g.resume()
	require.Eventually(t, func() bool { return sink.has("export ended: client went away") }, 20*time.Second, 10*time.Millisecond)
}
