package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/permission"
)

// Defaults of Config's zero fields.
const (
	// DefaultRate is Meta's documented 2025 rate limit of GET
	// call_permissions, 5 per second; Meta allows 100/s in 2026.
	DefaultRate = 5.0
	// DefaultExpiringWithin: entries expiring within 24 h are checked first.
	DefaultExpiringWithin = 24 * time.Hour
	// DefaultSampleSize is how many other listed entries of a channel one
	// round checks.
	DefaultSampleSize = 50
	// DefaultMaxChecks bounds the checks of one channel in one round.
	DefaultMaxChecks = 1000
	// DefaultInterval is the pause between rounds of Run.
	DefaultInterval = 15 * time.Minute
	// DefaultExpiryTolerance: expiries closer than this agree.
	DefaultExpiryTolerance = time.Minute
	// StreakThreshold is the unanswered streak from which an entry is
	// checked with priority: Meta asks the user to reconsider at 2 and
	// revokes at 4, and the revoke's webhook is the one a host misses.
	StreakThreshold = 2
)

// ErrInvalidConfig: a required Config field is missing or a value is out
// of range.
var ErrInvalidConfig = errors.New("reconcile: invalid config")

// API is the part of *cloudapi.Client the reconciler uses.
type API interface {
	CallPermissions(ctx context.Context, phoneNumberID string, who cloudapi.Recipient) (cloudapi.Permissions, error)
	Settings(ctx context.Context, phoneNumberID string) (cloudapi.Settings, error)
}

// Config configures a Reconciler. Tracker, API and Channels are required.
type Config struct {
	// Tracker is where corrections are recorded. Required.
	Tracker *permission.Tracker
	// API asks Meta; a *cloudapi.Client. Required.
	API API
	// Channels are the business phone number ids to reconcile. Required.
	Channels []string
	// Clock paces the rate limit and Run's rounds, and is "now" for the
	// comparisons. Default the real clock; tests pass a clock.Mock (the
	// same one as the Tracker's).
	Clock clock.Clock
	// Rate is how many GET call_permissions per second the reconciler
	// sends, all channels and CheckContact together. Default DefaultRate.
	Rate float64
	// Burst is how many may go at once after a pause. Default 1.
	Burst int
	// ExpiringWithin selects the entries checked first: temporary ones
	// expiring within it. Default DefaultExpiringWithin.
	ExpiringWithin time.Duration
	// SampleSize is how many of the channel's other listed entries a round
	// checks, rotating through the list from round to round. Default
	// DefaultSampleSize; negative checks none.
	SampleSize int
	// MaxChecks bounds one channel's checks in one round, priorities
	// first. Default DefaultMaxChecks.
	MaxChecks int
	// Candidates, when set, returns further contacts of a channel worth
	// checking after the listed priorities and before the sample: people
	// the tracker does not list but Meta may (requests sent and not
	// answered), where a missed accept hides. Default none.
	Candidates func(ctx context.Context, channel string) ([]string, error)
	// Interval is Run's pause between rounds. Default DefaultInterval.
	Interval time.Duration
	// ExpiryTolerance: an expiry of ours within this of Meta's agrees.
	// Default DefaultExpiryTolerance.
	ExpiryTolerance time.Duration
	// OnResult, when set, is called with every check's result that found
	// a drift (the corrections are recorded by then).
	OnResult func(Result)
	// OnWait, when set, is called before each wait on Clock (rate limit,
	// Run's pause) once its timer exists, so a test holding a clock.Mock
	// may advance it.
	OnWait func(time.Duration)
	// Logger receives Run's per-contact failures. Default: discard.
	Logger *slog.Logger
}

// Reconciler compares the tracker's list with Meta's call_permissions
// answers and records each disagreement. It is safe for concurrent use.
type Reconciler struct {
	cfg     Config
	clk     clock.Clock
	limiter *limiter
	pairs   keyedMutex

	mu        sync.Mutex
	stats     Stats
	callbacks map[string]permission.CallbackStatus // last setting read per channel
	rotation  map[string]int                       // next sample offset per channel
}

// New returns a Reconciler for cfg.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.Tracker == nil:
		return nil, fmt.Errorf("%w: Tracker is required", ErrInvalidConfig)
	case cfg.API == nil:
		return nil, fmt.Errorf("%w: API is required", ErrInvalidConfig)
	case len(cfg.Channels) == 0:
		return nil, fmt.Errorf("%w: Channels is required", ErrInvalidConfig)
	case cfg.Rate < 0 || cfg.Burst < 0:
		return nil, fmt.Errorf("%w: Rate and Burst must not be negative", ErrInvalidConfig)
	}
	if slices.Contains(cfg.Channels, "") {
		return nil, fmt.Errorf("%w: empty channel id", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = 1
	}
	if cfg.ExpiringWithin <= 0 {
		cfg.ExpiringWithin = DefaultExpiringWithin
	}
	if cfg.SampleSize == 0 {
		cfg.SampleSize = DefaultSampleSize
	}
	if cfg.MaxChecks <= 0 {
		cfg.MaxChecks = DefaultMaxChecks
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ExpiryTolerance <= 0 {
		cfg.ExpiryTolerance = DefaultExpiryTolerance
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reconciler{
		cfg: cfg, clk: cfg.Clock,
		limiter:   newLimiter(cfg.Clock, cfg.Rate, cfg.Burst, cfg.OnWait),
		callbacks: map[string]permission.CallbackStatus{},
		rotation:  map[string]int{},
		stats:     Stats{Drift: map[DriftKind]int64{}},
	}
	return r, nil
}

// Run reconciles until ctx is done: it reads each channel's callback
// setting (SyncSettings), then checks each channel's most important
// contacts (see Round), pauses Config.Interval, and again. A failed round
// is logged and retried after the pause. It returns ctx's error.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		if err := r.SyncSettings(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("reconcile: reading settings", "err", err)
		}
		if _, err := r.Round(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("reconcile: round", "err", err)
		}
		if err := sleep(ctx, r.clk, r.cfg.Interval, r.cfg.OnWait); err != nil {
			return err
		}
	}
}

// SyncSettings reads every channel's settings from Meta (GET
// /<PHONE_NUMBER_ID>/settings) and records the callback setting with
// Tracker.SetCallbackPermission, at the clock's now, when it differs from
// the last one this Reconciler read (so always on its first read: Meta's
// answer is the authority over what a webhook or the host set before).
// It tries every channel and returns the errors joined.
func (r *Reconciler) SyncSettings(ctx context.Context) error {
	var errs []error
	for _, ch := range r.cfg.Channels {
		s, err := r.cfg.API.Settings(ctx, ch)
		if err != nil {
			r.count(func(st *Stats) { st.Errors++ })
			errs = append(errs, fmt.Errorf("reconcile: settings of %s: %w", ch, err))
			continue
		}
		cb := s.Calling.Callback()
		r.mu.Lock()
		last, seen := r.callbacks[ch]
		r.mu.Unlock()
		if seen && last == cb {
			continue
		}
		if err := r.cfg.Tracker.SetCallbackPermission(ctx, ch, cb, r.clk.Now()); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: recording the callback setting of %s: %w", ch, err))
			continue
		}
		r.mu.Lock()
		r.callbacks[ch] = cb
		r.stats.CallbackSettings++
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// RoundReport sums up one Round.
type RoundReport struct {
	Checked int // contacts Meta was asked about
	Drifted int // of them, those with at least one drift
	Failed  int // checks that failed (logged)
}

// Round checks, per channel and within the rate, in this order and at most
// Config.MaxChecks: the listed entries expiring within
// Config.ExpiringWithin (soonest first), the unconfirmed callback grants,
// the entries with an unanswered streak of StreakThreshold or more,
// Config.Candidates, then Config.SampleSize of the remaining listed
// entries, rotating through them from round to round. A contact is checked
// once per round. A check that fails is counted and skipped; when Meta
// rate-limits beyond the client's retries, the round stops and returns
// the error.
func (r *Reconciler) Round(ctx context.Context) (RoundReport, error) {
	var rep RoundReport
	for _, ch := range r.cfg.Channels {
		contacts, err := r.plan(ctx, ch)
		if err != nil {
			return rep, err
		}
		for _, c := range contacts {
			res, err := r.CheckContact(ctx, ch, c)
			if err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				rep.Failed++
				if rateLimited(err) {
					return rep, err
				}
				r.cfg.Logger.Warn("reconcile: check", "channel", ch, "contact", c, "err", err)
				continue
			}
			rep.Checked++
			if len(res.Drift) > 0 {
				rep.Drifted++
			}
		}
	}
	return rep, nil
}

// plan lists the contacts of channel a round checks, most important first.
func (r *Reconciler) plan(ctx context.Context, channel string) ([]string, error) {
	now := r.clk.Now()
	var expiring, unconfirmed, streak, rest []string
	q := permission.Query{Order: permission.OrderExpiring, Limit: permission.MaxPageSize, Now: now}
	var buf []permission.Entry // reused page to page: only contacts are kept
	for {
		page, err := r.cfg.Tracker.AppendEligible(ctx, buf, channel, q)
		if err != nil {
			return nil, fmt.Errorf("reconcile: listing %s: %w", channel, err)
		}
		for _, e := range page.Entries {
			switch {
			case e.Kind == permission.Temporary && e.ExpiresAt.Sub(now) <= r.cfg.ExpiringWithin:
				expiring = append(expiring, e.Contact)
			case e.Unconfirmed:
				unconfirmed = append(unconfirmed, e.Contact)
			case e.UnansweredStreak >= StreakThreshold:
				streak = append(streak, e.Contact)
			default:
				rest = append(rest, e.Contact)
			}
		}
		if page.NextCursor == "" {
			break
		}
		buf, q.Cursor = page.Entries, page.NextCursor
	}
	var extra []string
	if r.cfg.Candidates != nil {
		var err error
		if extra, err = r.cfg.Candidates(ctx, channel); err != nil {
			return nil, fmt.Errorf("reconcile: candidates of %s: %w", channel, err)
		}
	}
	// The sample rotates through the rest in a stable order.
	slices.Sort(rest)
	var sample []string
	if n := min(r.cfg.SampleSize, len(rest)); n > 0 {
		r.mu.Lock()
		off := r.rotation[channel] % len(rest)
		r.rotation[channel] = off + n
		r.mu.Unlock()
		for i := range n {
			sample = append(sample, rest[(off+i)%len(rest)])
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, group := range [][]string{expiring, unconfirmed, streak, extra, sample} {
		for _, c := range group {
			if c == "" || seen[c] || len(out) >= r.cfg.MaxChecks {
				continue
			}
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// Stats returns the counters so far, for metrics.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Drift = make(map[DriftKind]int64, len(r.stats.Drift))
	for k, v := range r.stats.Drift {
		s.Drift[k] = v
	}
	return s
}

// Stats counts the reconciler's work since New.
type Stats struct {
	Checks      int64 // contacts Meta answered about
	Errors      int64 // checks and settings reads that failed
	RateLimited int64 // of those, Meta's rate limit beyond the client's retries
	// Drift counts disagreements found, by kind (a check may find two: a
	// permission drift and a budget drift).
	Drift map[DriftKind]int64
	// CallbackSettings counts callback settings recorded from GET settings.
	CallbackSettings int64
}

func (r *Reconciler) count(f func(*Stats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

func rateLimited(err error) bool {
	var apiErr *cloudapi.Error
	return errors.As(err, &apiErr) && apiErr.RateLimited()
}

// recipient is how Meta is asked about a contact: a wa_id is digits, a
// BSUID ("US.1349…") is not.
func recipient(contact string) cloudapi.Recipient {
	if strings.Trim(contact, "0123456789") == "" {
		return cloudapi.Recipient{Phone: contact}
	}
	return cloudapi.Recipient{UserID: contact}
}
