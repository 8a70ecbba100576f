package webhook_test

import (
	"cmp"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

const (
	secret   = "test-app-secret"
	chanMain = "106540352242922"
	chanAlt  = "106540352299999"
	fixtures = "testdata/fixtures"
)

// now is after every fixture's event and before the first expiry.
var now = time.Unix(1767600060, 0).UTC()

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// newTracker returns a tracker on a memory store with a mock clock at now.
func newTracker(t testing.TB) *permission.Tracker {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(now)
	tr, err := permission.New(context.Background(), permission.Config{Store: memory.New(memory.Config{}), Clock: clk})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func newHandler(t testing.TB, cfg webhook.Config) *webhook.Handler {
	t.Helper()
	if cfg.AppSecret == "" {
		cfg.AppSecret = secret
	}
	if cfg.Clock == nil {
		clk := clock.NewMock()
		clk.Set(now)
		cfg.Clock = clk
	}
	h, err := webhook.New(cfg)
	require.NoError(t, err)
	return h
}

// fixtureNames lists the JSON fixtures, sorted.
func fixtureNames(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	sort.Strings(names)
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	require.NoError(t, err)
	return b
}

// post sends body signed to h and returns the status code.
func post(t testing.TB, h http.Handler, body []byte) int {
	t.Helper()
	resp := webhooktest.Serve(h, secret, body)
	resp.Body.Close()
	return resp.StatusCode
}

// spy is a Recorder that remembers what it was given and can fail.
type spy struct {
	mu     sync.Mutex
	next   webhook.Recorder // nil: accept without recording anywhere
	err    error            // returned instead of recording, when set
	calls  int
	events []permission.Event
}

func (s *spy) Record(ctx context.Context, events ...permission.Event) ([]permission.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	var changes []permission.Change
	if s.next != nil {
		var err error
		if changes, err = s.next.Record(ctx, events...); err != nil {
			return nil, err
		}
	}
	s.events = append(s.events, events...)
	return changes, nil
}

func (s *spy) seen() (calls int, events []permission.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]permission.Event(nil), s.events...)
}

// listed is the part of an Entry the fixture tests assert.
type listed struct {
	Contact   string
	Kind      permission.Kind
	Source    permission.Source
	GrantedAt time.Time
	ExpiresAt time.Time
}

func list(t testing.TB, tr *permission.Tracker, channel string) []listed {
	t.Helper()
	p, err := tr.Eligible(context.Background(), channel, permission.Query{Now: now})
	require.NoError(t, err)
	out := []listed{}
	for _, e := range p.Entries {
		// The fixtures name users by phone; an entry is listed under the
		// person's BSUID when Meta sent one, with the phone beside it.
		if e.WaID != "" && e.UserID != "" {
			require.Equal(t, e.UserID, e.Contact, "listed under the BSUID")
		}
		out = append(out, listed{cmp.Or(e.WaID, e.Contact), e.Kind, e.Source, e.GrantedAt, e.ExpiresAt})
	}
	return out
}

func explain(t testing.TB, tr *permission.Tracker, channel, contact string) permission.Explanation {
	t.Helper()
	x, err := tr.Explain(context.Background(), channel, contact, now)
	require.NoError(t, err)
	return x
}

// newQuarantine returns a memory quarantine whose clock stands at now, as
// newHandler's does.
func newQuarantine() *webhook.MemoryQuarantine {
	clk := clock.NewMock()
	clk.Set(now)
	return webhook.NewMemoryQuarantine(webhook.QuarantineConfig{Clock: clk})
}
