package pglisten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
)

// Defaults of Config fields left zero.
const (
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultHealthInterval = 30 * time.Second
)

// Config configures a Store. Only ConnString is required.
type Config struct {
	// ConnString is the pgx connection string (URL or key=value) of the
	// database the wrapped sqlstore.Store uses. Required.
	ConnString string
	// MinBackoff is the wait before the first reconnection attempt after
	// the listening connection failed; it doubles after each failed attempt
	// up to MaxBackoff and starts over once connected. Default
	// DefaultMinBackoff (100 ms).
	MinBackoff time.Duration
	// MaxBackoff bounds the wait between reconnection attempts. Default
	// DefaultMaxBackoff (5 s).
	MaxBackoff time.Duration
	// ConnectTimeout bounds one connection attempt (connect, LISTEN and
	// the revision read) and one health check. Default
	// DefaultConnectTimeout (10 s).
	ConnectTimeout time.Duration
	// HealthInterval is how long the listener waits for a notification
	// before pinging the server, so a connection dropped without a TCP
	// reset is noticed. Default DefaultHealthInterval (30 s).
	HealthInterval time.Duration
	// Logger receives connection-loss warnings. Default: discard.
	Logger *slog.Logger
}

// Store is a *sqlstore.Store on PostgreSQL whose Wait is driven by
// LISTEN/NOTIFY instead of polling. Every other method is the embedded
// store's. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store

	cfg     Config
	connCfg *pgx.ConnConfig
	listen  string // LISTEN statement
	revSQL  string // reads the latest revision

	mu     sync.Mutex
	latest int64         // latest revision known
	epoch  uint64        // incremented on every (re)connect
	wake   chan struct{} // closed and replaced when latest or epoch moves

	connects atomic.Int64 // successful connections, for tests

	ctx       context.Context
	cancel    context.CancelFunc
	exited    chan struct{}
	closeOnce sync.Once
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New connects a listener for st's change notifications and returns the
// wrapping Store. It fails when st is not on PostgreSQL or when the first
// connection fails; later connection losses are retried in the background.
// Close the returned Store instead of st.
func New(ctx context.Context, st *sqlstore.Store, cfg Config) (*Store, error) {
	if st == nil {
		return nil, errors.New("pglisten: nil *sqlstore.Store")
	}
	if st.Dialect() != sqlstore.Postgres {
		return nil, fmt.Errorf("pglisten: the store's dialect is %q, LISTEN needs PostgreSQL", st.Dialect())
	}
	if cfg.ConnString == "" {
		return nil, errors.New("pglisten: Config.ConnString is required")
	}
	connCfg, err := pgx.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pglisten: parsing the connection string: %w", err)
	}
	cfg.MinBackoff = orDefault(cfg.MinBackoff, DefaultMinBackoff)
	cfg.MaxBackoff = max(orDefault(cfg.MaxBackoff, DefaultMaxBackoff), cfg.MinBackoff)
	cfg.ConnectTimeout = orDefault(cfg.ConnectTimeout, DefaultConnectTimeout)
	cfg.HealthInterval = orDefault(cfg.HealthInterval, DefaultHealthInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		Store:   st,
		cfg:     cfg,
		connCfg: connCfg,
		listen:  "LISTEN " + pgx.Identifier{st.NotifyChannel()}.Sanitize(),
		// The meta table's one row holds the last revision assigned (see
		// package sqlstore's schema).
		revSQL: "SELECT revision FROM " + st.TablePrefix() + "meta WHERE id = 1",
		wake:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run(conn)
	return s, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// Wait implements store.Notifier: it returns at once when a revision
// greater than after is known, and otherwise blocks until a notification
// announces one, the listener (re)connects (notifications sent while it
// was disconnected are lost, so every waiter is woken to read the log),
// ctx is done, or the Store is closed.
func (s *Store) Wait(ctx context.Context, after int64) error {
	first := true
	var epoch uint64
	for {
		select {
		case <-s.exited:
			return store.ErrClosed
		case <-s.Store.Done():
			return store.ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.latest > after || (!first && s.epoch != epoch) {
			s.mu.Unlock()
			return nil
		}
		if first {
			first, epoch = false, s.epoch
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
			return store.ErrClosed
		case <-s.Store.Done():
			return store.ErrClosed
		}
	}
}

// Close stops the listener, waits for its goroutine, and closes the
// wrapped sqlstore.Store (which leaves its *sql.DB open). Waiters return
// store.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.exited
	})
	return s.Store.Close()
}

// connect opens the listening connection: LISTEN first, then read the
// latest revision, so that every commit after the read is notified on it.
// Every waiter is then woken, to read what a lost connection missed.
func (s *Store) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.connCfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("pglisten: connecting: %w", err)
	}
	var rev int64
	if _, err = conn.Exec(ctx, s.listen); err == nil {
		err = conn.QueryRow(ctx, s.revSQL).Scan(&rev)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pglisten: listening: %w", err)
	}
	s.connects.Add(1)
	s.mu.Lock()
	s.latest = rev
	s.epoch++
	s.broadcast()
	s.mu.Unlock()
	return conn, nil
}

// broadcast wakes every waiter. s.mu must be held.
func (s *Store) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// run receives notifications until Close, reconnecting with exponential
// backoff when the connection fails.
func (s *Store) run(conn *pgx.Conn) {
	defer close(s.exited)
	backoff := s.cfg.MinBackoff
	for {
		if conn != nil {
			err := s.receive(conn)
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(cctx)
			cancel()
			conn = nil
			if s.ctx.Err() != nil {
				return
			}
			s.cfg.Logger.Warn("callready: lost the LISTEN connection; reconnecting", "err", err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-s.ctx.Done():
			timer.Stop()
			return
		}
		var err error
		if conn, err = s.connect(s.ctx); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.cfg.Logger.Warn("callready: reconnecting the LISTEN connection failed", "err", err, "retry_in", backoff)
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		backoff = s.cfg.MinBackoff
	}
}

// receive handles notifications on conn until it fails or Close.
func (s *Store) receive(conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(s.ctx, s.cfg.HealthInterval)
		n, err := conn.WaitForNotification(wctx)
		quiet := wctx.Err() != nil
		cancel()
		if err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			if !quiet {
				return err
			}
			pctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("pglisten: health check: %w", err)
			}
			continue
		}
		rev, perr := strconv.ParseInt(n.Payload, 10, 64)
		s.mu.Lock()
		switch {
		case perr != nil: // not ours: let waiters look
			s.epoch++
			s.broadcast()
		case rev > s.latest:
			s.latest = rev
			s.broadcast()
		}
		s.mu.Unlock()
	}
}
