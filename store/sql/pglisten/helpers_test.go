package pglisten_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/sql/pglisten"
)

var admin struct {
	sync.Mutex
	db *sql.DB
}

func TestMain(m *testing.M) {
	code := m.Run()
	admin.Lock()
	if admin.db != nil {
		admin.db.Close()
	}
	admin.Unlock()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// freshPrefix creates a schema of its own for one test on the server at
// dsn, dropped at cleanup, and returns a table prefix inside it.
func freshPrefix(t testing.TB, dsn string) string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "l_" + hex.EncodeToString(b[:])
	_, err = db.ExecContext(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	return schema + ".callready_"
}

// instance is one app instance: its own pool, store and tracker.
type instance struct {
	db *sql.DB
	sq *sqlstore.Store
	ls *pglisten.Store // nil: polling only
	tr *permission.Tracker
}

type options struct {
	retention  int
	poll       time.Duration // tracker's and sqlstore's PollInterval
	polling    bool          // no listener: sqlstore's polling Wait
	noStart    bool
	subBuffer  int
	minBackoff time.Duration
}

func openInstance(t testing.TB, dsn, prefix string, clk clock.Clock, o options) *instance {
	t.Helper()
	ctx := context.Background()
	if o.poll == 0 {
		o.poll = time.Minute // NOTIFY alone must carry changes
	}
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	in := &instance{db: db}
	in.sq, err = sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix, Retention: o.retention, PollInterval: o.poll})
	require.NoError(t, err)
	cfg := permission.Config{Store: in.sq, Clock: clk, Shared: true, PollInterval: o.poll, SubscriberBuffer: o.subBuffer}
	if !o.polling {
		in.ls, err = pglisten.New(ctx, in.sq, pglisten.Config{ConnString: dsn, MinBackoff: o.minBackoff, MaxBackoff: 10 * o.minBackoff})
		require.NoError(t, err)
		cfg.Store = in.ls
	}
	in.tr, err = permission.New(ctx, cfg)
	require.NoError(t, err)
	if !o.noStart {
		in.tr.Start()
	}
	t.Cleanup(in.close)
	return in
}

func (in *instance) close() {
	in.tr.Close()
	if in.ls != nil {
		in.ls.Close()
	}
	in.sq.Close()
	in.db.Close()
}

// t0 is when the tests' events happen.
var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

const ch = "106540352242922"

func mockClock(at time.Time) *clock.Mock {
	clk := clock.NewMock()
	clk.Set(at)
	return clk
}

func grant(contact string, at time.Time, ttl time.Duration) permission.Event {
	e := permission.Event{Type: permission.EventGrant, Channel: ch, Contact: contact, At: at, ID: "wamid." + contact}
	if ttl == 0 {
		e.Permanent = true
	} else {
		e.ExpiresAt = at.Add(ttl)
	}
	return e
}

// next waits for a subscriber's next change, failing after 10 s.
func next(t testing.TB, sub *permission.Subscription) permission.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sub.Next(ctx)
	require.NoError(t, err)
	return c
}

// listing returns every eligible entry of a channel.
func listing(t testing.TB, tr *permission.Tracker, channel string, now time.Time) []permission.Entry {
	t.Helper()
	var out []permission.Entry
	q := permission.Query{Now: now, Limit: 500}
	for {
		p, err := tr.Eligible(context.Background(), channel, q)
		require.NoError(t, err)
		out = append(out, p.Entries...)
		if p.NextCursor == "" {
			return out
		}
		q.Cursor = p.NextCursor
	}
}

func contacts(es []permission.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Contact
	}
	slices.Sort(out)
	return out
}

// randomEvents draws events over two channels and a few contacts from a
// small universe of times and ids, so that ties, duplicates and collisions
// are common (the idea of permission's merge property test).
func randomEvents(r *mrand.Rand, n int) []permission.Event {
	channels := []string{ch, "106540352242923"}
	at := func() time.Time { return t0.Add(time.Duration(r.IntN(20)) * 12 * time.Hour) }
	id := func(p string) string { return fmt.Sprintf("%s.%d", p, r.IntN(6)) }
	out := make([]permission.Event, 0, n)
	for range n {
		e := permission.Event{Channel: channels[r.IntN(2)], Contact: fmt.Sprintf("c%d", r.IntN(12)), At: at()}
		switch r.IntN(7) {
		case 0:
			e.Type, e.ID = permission.EventGrant, id("wamid")
			e.Source = []permission.Source{permission.SourceRequest, permission.SourceCallback, permission.SourceProfile}[r.IntN(3)]
			if r.IntN(2) == 0 {
				e.ExpiresAt = e.At.Add(time.Duration(1+r.IntN(200)) * time.Hour)
			}
		case 1:
			e.Type, e.Permanent = permission.EventGrant, true
			e.Source = []permission.Source{permission.SourceRequest, permission.SourceProfile}[r.IntN(2)]
		case 2:
			e.Type = permission.EventRevoke
			e.Reason = []permission.RevokeReason{permission.RevokeRejected, permission.RevokeProfile, permission.RevokeAutomatic}[r.IntN(3)]
		case 3:
			e.Type, e.ID, e.Connected = permission.EventInboundCall, id("wacid"), r.IntN(2) == 0
		case 4:
			e.Type, e.ID = permission.EventRequestSent, id("wamid.req")
		default:
			e.Type, e.ID, e.Connected = permission.EventBusinessCall, id("wacid.out"), r.IntN(2) == 0
		}
		out = append(out, e)
	}
	return out
}

// shuffledWithDuplicates returns a permutation of events with some repeated.
func shuffledWithDuplicates(r *mrand.Rand, events []permission.Event) []permission.Event {
	out := slices.Clone(events)
	for range r.IntN(len(events) + 1) {
		out = append(out, events[r.IntN(len(events))])
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
