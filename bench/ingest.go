package bench

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/webhook"
)

// IngestConfig configures one webhook ingest run: a tracker on store/sql
// behind webhook.Handler on a loopback HTTP server, and Clients goroutines
// posting signed permission replies (one grant each, a new contact every
// time) until Duration has passed or MaxRequests were sent.
type IngestConfig struct {
	Backend     string // "sqlite" or "postgres"
	Dir         string // SQLite: directory of the database file
	DSN         string // PostgreSQL: database the run creates a schema in
	Clients     int
	Duration    time.Duration
	MaxRequests int // 0: no bound but Duration
}

// IngestResult is what one run measured.
type IngestResult struct {
	Sent, OK int
	Elapsed  time.Duration
	// HTTP holds each successful POST's latency, send → 200 (durable).
	HTTP []time.Duration
	// Notify holds, per grant, the time from the start of its POST to the
	// subscriber receiving its Granted change.
	Notify []time.Duration
	Lagged int // times the subscriber was cut off and resubscribed
}

// EventsPerSecond is the rate of events recorded and answered 200.
func (r IngestResult) EventsPerSecond() float64 {
	return float64(r.OK) / r.Elapsed.Seconds()
}

const ingestSecret = "bench-app-secret"

// grantBody is a Meta call_permission_reply webhook, as in
// webhook/testdata/fixtures/permission-accept-temporary.json.
func grantBody(channel, contact, msgID string, at, exp time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"`)
	b.WriteString(channel)
	b.WriteString(`"},"contacts":[{"profile":{"name":"Bench"},"wa_id":"`)
	b.WriteString(contact)
	b.WriteString(`"}],"messages":[{"from":"`)
	b.WriteString(contact)
	b.WriteString(`","id":"`)
	b.WriteString(msgID)
	b.WriteString(`","timestamp":"`)
	b.WriteString(strconv.FormatInt(at.Unix(), 10))
	b.WriteString(`","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept","is_permanent":false,"expiration_timestamp":"`)
	b.WriteString(strconv.FormatInt(exp.Unix(), 10))
	b.WriteString(`","response_source":"user_action"}}}]}}]}]}`)
	return b.Bytes()
}

// OpenSQLStore opens store/sql on a fresh SQLite file in dir or a fresh
// PostgreSQL schema at dsn; cleanup closes and removes it.
func OpenSQLStore(ctx context.Context, backend, dir, dsn string) (st *sqlstore.Store, cleanup func(), err error) {
	st, _, cleanup, err = openSQLStore(ctx, backend, dir, dsn)
	return st, cleanup, err
}

// openSQLStore is OpenSQLStore, also returning the database.
func openSQLStore(ctx context.Context, backend, dir, dsn string) (st *sqlstore.Store, db *sql.DB, cleanup func(), err error) {
	var prefix string
	var drop func()
	switch backend {
	case "sqlite":
		db, err = sql.Open("sqlite", SQLiteDSN(filepath.Join(dir, "callready-"+randHex()+".db")))
	case "postgres":
		if dsn == "" {
			return nil, nil, nil, fmt.Errorf("postgres: %s is not set", EnvPostgres)
		}
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(32)
			db.SetMaxIdleConns(32)
			schema := "bench_" + randHex()
			if _, err = db.ExecContext(ctx, "CREATE SCHEMA "+schema); err == nil {
				prefix = schema + ".callready_"
				drop = func() { db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }
			}
		}
	default:
		err = fmt.Errorf("unknown backend %q", backend)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, nil, nil, err
	}
	st, err = sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix})
	cleanup = func() {
		if st != nil {
			st.Close()
		}
		if drop != nil {
			drop()
		}
		db.Close()
	}
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return st, db, cleanup, nil
}

// RunIngest runs one ingest measurement.
func RunIngest(ctx context.Context, cfg IngestConfig) (IngestResult, error) {
	var res IngestResult
	st, cleanup, err := OpenSQLStore(ctx, cfg.Backend, cfg.Dir, cfg.DSN)
	if err != nil {
		return res, err
	}
	defer cleanup()
	return runIngest(ctx, cfg, st)
}

func runIngest(ctx context.Context, cfg IngestConfig, st store.Store) (IngestResult, error) {
	var res IngestResult
	tr, err := permission.New(ctx, permission.Config{Store: st, SubscriberBuffer: ExpirySubscriberBuffer})
	if err != nil {
		return res, err
	}
	defer tr.Close()
	h, err := webhook.New(webhook.Config{AppSecret: ingestSecret, Recorder: tr})
	if err != nil {
		return res, err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	clients := max(cfg.Clients, 1)
	transport := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	// The subscriber: POST start time by contact, latency on Granted.
	var sentAt sync.Map // contact → time.Time
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	var notifyMu sync.Mutex
	var notified atomic.Int64
	sub, err := tr.Subscribe(permission.SubscribeOptions{After: tr.Revision()})
	if err != nil {
		return res, err
	}
	subDone := make(chan error, 1)
	go func() {
		for {
			c, err := sub.Next(subCtx)
			if errors.Is(err, permission.ErrLagged) {
				res.Lagged++
				last := sub.Revision()
				sub.Close()
				if sub, err = tr.Subscribe(permission.SubscribeOptions{After: last}); err == nil {
					continue
				}
			}
			if err != nil {
				sub.Close()
				subDone <- err
				return
			}
			if c.Type != permission.Granted {
				continue
			}
			now := time.Now()
			if t0, ok := sentAt.Load(c.Entry.Contact); ok {
				notifyMu.Lock()
				res.Notify = append(res.Notify, now.Sub(t0.(time.Time)))
				notifyMu.Unlock()
			}
			notified.Add(1)
		}
	}()

	var seq atomic.Int64
	var sent, ok atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, clients)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k := seq.Add(1)
				if cfg.MaxRequests > 0 && k > int64(cfg.MaxRequests) {
					return
				}
				contact := "4477" + strconv.FormatInt(10_000_000+k, 10)
				now := time.Now()
				body := grantBody(Channels()[k%5], contact, "wamid.bench"+strconv.FormatInt(k, 10), now, now.Add(168*time.Hour))
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, ingestSecret))
				t0 := time.Now()
				sentAt.Store(contact, t0)
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					firstErr.CompareAndSwap(nil, fmt.Errorf("POST: status %s", resp.Status))
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Sent, res.OK = int(sent.Load()), int(ok.Load())
	for _, l := range lat {
		res.HTTP = append(res.HTTP, l...)
	}
	// Every grant answered 200 reaches the subscriber.
	waitUntil := time.Now().Add(10 * time.Second)
	for notified.Load() < ok.Load() && time.Now().Before(waitUntil) {
		time.Sleep(time.Millisecond)
	}
	stopSub()
	subErr := <-subDone
	if e, _ := firstErr.Load().(error); e != nil {
		return res, e
	}
	if n := notified.Load(); n < ok.Load() {
		return res, fmt.Errorf("subscriber received %d of %d grants (%v)", n, ok.Load(), subErr)
	}
	notifyMu.Lock()
	defer notifyMu.Unlock()
	return res, nil
}
