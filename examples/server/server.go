package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/sql/pglisten"
)

// serverOptions is what the server is built from. main fills it from the
// configuration; tests pass a mock clock and a temporary database.
type serverOptions struct {
	DB       *sql.DB
	Postgres bool // DB is PostgreSQL (else SQLite)
	// DSN, for PostgreSQL, opens the LISTEN connection of the change feed,
	// so several servers on one database share one live list. Empty: this
	// server is the database's only writer.
	DSN         string
	Clock       clock.Clock // default: the system clock
	AppSecret   string
	VerifyToken string
	APIToken    string
	Logger      *slog.Logger
	// WebhookLogger receives the webhook handler's per-delivery records.
	// Default Logger.
	WebhookLogger *slog.Logger
	// DialURL is the Call action's link template (see config.DialURL).
	// Default "tel:+{phone}".
	DialURL string
	// MetricsOnOwnAddr: /metrics is served elsewhere (main's
	// -metrics-addr), not on this handler. Otherwise it needs the API token.
	MetricsOnOwnAddr bool
	// Heartbeat is the interval of SSE comments that keep idle streams
	// (and proxies) alive. Default 15 s.
	Heartbeat time.Duration
	// Meta reaches Meta's Cloud API (meta.go). Zero: not configured.
	Meta metaOptions
}

// limits are the call and unanswered-streak caps the tracker applies; the
// API reuses them to word warnings.
var limits = permission.LimitsConfig{UnansweredWarning: 2, UnansweredRevoke: 4}

// server wires the tracker, the inbox and the webhook handler behind one
// http.Handler.
type server struct {
	opts    serverOptions
	clock   clock.Clock
	log     *slog.Logger
	store   io.Closer // the permission store (and its change feed)
	tracker *permission.Tracker
	inbox   *inbox
	// quarantine keeps the webhook items that could not be recorded.
	quarantine *sqlstore.Quarantine
	metrics    *metrics
	meta       *metaState // Meta's Cloud API and the reconciler (meta.go)
	webhook    http.Handler
	mux        *http.ServeMux

	stopping  chan struct{} // closed when the server shuts down: ends SSE streams
	stopOnce  sync.Once
	bgCancel  context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// newServer opens the stores and builds the handler. It starts no expiry
// loop: call start (main does; tests drive expiry with Sweep).
func newServer(ctx context.Context, o serverOptions) (*server, error) {
	if o.DB == nil {
		return nil, errors.New("server: no database")
	}
	if o.Clock == nil {
		o.Clock = clock.New()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WebhookLogger == nil {
		o.WebhookLogger = o.Logger
	}
	if o.DialURL == "" {
		o.DialURL = defaultDial
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	s := &server{opts: o, clock: o.Clock, log: o.Logger, stopping: make(chan struct{})}

	st, err := openStore(ctx, o.DB, o.Postgres)
	if err != nil {
		return nil, err
	}
	var ps store.Store = st
	s.store = st
	s.quarantine = newQuarantine(st, o)
	shared := false
	if o.Postgres && o.DSN != "" {
		// Other servers may write to this database: follow its change log,
		// woken by NOTIFY.
		feed, err := pglisten.New(ctx, st, pglisten.Config{ConnString: o.DSN, Logger: o.Logger})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("change feed: %w", err)
		}
		ps, s.store, shared = feed, feed, true
	}
	s.tracker, err = permission.New(ctx, permission.Config{
		Store: ps, Clock: o.Clock, Limits: limits, Logger: o.Logger, Shared: shared,
		HostRows: s.writeRows,
	})
	if err != nil {
		s.store.Close()
		return nil, err
	}
	fail := func(err error) (*server, error) {
		s.tracker.Close()
		s.store.Close()
		return nil, err
	}
	if s.inbox, err = openInbox(ctx, o.DB, o.Postgres); err != nil {
		return fail(err)
	}
	s.metrics = newMetrics(s)
	if s.meta, err = newMetaState(s); err != nil {
		return fail(fmt.Errorf("meta: %w", err))
	}
	if s.webhook, err = newWebhookHandler(s); err != nil {
		return fail(fmt.Errorf("webhook handler: %w", err))
	}
	s.routes()

	bgctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	from := s.tracker.Revision() // count the changes from this server's start
	s.bg.Go(func() { s.metrics.watch(bgctx, from) })
	return s, nil
}

// start runs the tracker's expiry loop.
func (s *server) start() {
	s.tracker.Start()
	s.startMeta()
}

// ServeHTTP serves the page, the API, the webhook and the metrics.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// stop ends the SSE streams, which would otherwise keep
// http.Server.Shutdown waiting: register it with RegisterOnShutdown.
func (s *server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// close stops the background work and the tracker. It does not close the
// database, which the caller opened.
func (s *server) close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.bgCancel()
		s.tracker.Close()
		s.bg.Wait()
		s.store.Close()
	})
	return nil
}
