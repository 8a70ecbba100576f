package webhook

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// QuarantinedItem is one part of a verified webhook body the handler could
// not record: an item it cannot read or attribute, or whose event a store
// could not hold. It is kept raw, with its error, so an operator can see
// what Meta sent and a fixed or upgraded host can replay it.
type QuarantinedItem struct {
	// ID identifies the item: QuarantineID of Raw. The same item delivered
	// again (Meta retries) has the same ID, and a Quarantine keeps it once.
	ID string
	// ReceivedAt is when the handler first received the item; Put fills in
	// the current time when it is zero.
	ReceivedAt time.Time
	// Path is where the item was in its body, e.g.
	// "entry[0].changes[1].value.calls[0]".
	Path string
	// Error says why the item was set aside.
	Error string
	// Raw is the item exactly as received: a messages[], calls[],
	// statuses[] or contacts[] element, or a whole change value or entry
	// when that could not be read.
	Raw json.RawMessage
}

// Quarantine keeps the items the handler sets aside. Implementations must
// be safe for concurrent use: MemoryQuarantine here, and sqlstore's
// Store.Quarantine for SQLite and PostgreSQL.
type Quarantine interface {
	// Put stores items durably; when it returns nil they survive a
	// restart (for a durable implementation). An item whose ID is already
	// held is kept once, with its first ReceivedAt. Items older than the
	// retention may be dropped.
	Put(ctx context.Context, items []QuarantinedItem) error
	// List returns up to limit items (DefaultQuarantinePage when limit <=
	// 0, at most MaxQuarantinePage), newest first (by ReceivedAt, then ID),
	// starting after cursor ("" for the first page), and the cursor of the
	// next page, "" after the last. A cursor that is not from List gives
	// an error wrapping ErrBadCursor.
	List(ctx context.Context, cursor string, limit int) (items []QuarantinedItem, next string, err error)
}

// Quarantine defaults.
const (
	// DefaultQuarantineRetention is how long quarantined items are kept
	// when a QuarantineConfig leaves Retention zero: 30 days, well beyond
	// the 7 days Meta retries a delivery.
	DefaultQuarantineRetention = 30 * 24 * time.Hour
	// DefaultQuarantinePage is List's page size for a limit <= 0.
	DefaultQuarantinePage = 50
	// MaxQuarantinePage is the largest page List returns.
	MaxQuarantinePage = 500
)

// ErrBadCursor: a quarantine cursor was not produced by List.
var ErrBadCursor = errors.New("webhook: bad quarantine cursor")

// QuarantineConfig configures a Quarantine implementation.
type QuarantineConfig struct {
	// Retention is how long an item is kept after ReceivedAt. Default
	// DefaultQuarantineRetention (30 days).
	Retention time.Duration
	// Clock gives the current time, for ReceivedAt and retention. Default
	// the system clock.
	Clock clock.Clock
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c QuarantineConfig) WithDefaults() QuarantineConfig {
	if c.Retention <= 0 {
		c.Retention = DefaultQuarantineRetention
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	return c
}

// QuarantineID is the ID of an item with raw bytes raw: the hex SHA-256
// of them.
func QuarantineID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// QuarantinePageSize returns the page size List uses for limit.
func QuarantinePageSize(limit int) int {
	if limit <= 0 {
		return DefaultQuarantinePage
	}
	return min(limit, MaxQuarantinePage)
}

// EncodeQuarantineCursor returns the cursor that resumes a listing after
// the item received at receivedAt with id. Implementations of Quarantine
// share it, so cursors look alike whatever the store.
func EncodeQuarantineCursor(receivedAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(receivedAt.UnixNano(), 10) + "." + id))
}

// DecodeQuarantineCursor reverses EncodeQuarantineCursor; its error wraps
// ErrBadCursor.
func DecodeQuarantineCursor(cursor string) (receivedAt time.Time, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ns, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" || len(id) > 128 {
		return time.Time{}, "", ErrBadCursor
	}
	return time.Unix(0, n).UTC(), id, nil
}

// NormalizeQuarantined prepares items for storage at now: ID from Raw when
// missing, ReceivedAt now when zero (in UTC), and each item once per ID.
func NormalizeQuarantined(items []QuarantinedItem, now time.Time) []QuarantinedItem {
	out := make([]QuarantinedItem, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if it.ID == "" {
			it.ID = QuarantineID(it.Raw)
		}
		if seen[it.ID] {
			continue
		}
		seen[it.ID] = true
		if it.ReceivedAt.IsZero() {
			it.ReceivedAt = now
		}
		it.ReceivedAt = it.ReceivedAt.UTC()
		out = append(out, it)
	}
	return out
}

// MemoryQuarantine is a Quarantine in memory: lost on restart, for tests,
// demos and hosts without a database. The handler uses one when
// Config.Quarantine is nil.
type MemoryQuarantine struct {
	cfg   QuarantineConfig
	mu    sync.Mutex
	items map[string]QuarantinedItem
}

var _ Quarantine = (*MemoryQuarantine)(nil)

// NewMemoryQuarantine returns an empty MemoryQuarantine.
func NewMemoryQuarantine(cfg QuarantineConfig) *MemoryQuarantine {
	return &MemoryQuarantine{cfg: cfg.WithDefaults(), items: map[string]QuarantinedItem{}}
}

// Put stores items, dropping those past the retention.
func (q *MemoryQuarantine) Put(ctx context.Context, items []QuarantinedItem) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := q.cfg.Clock.Now().UTC()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range NormalizeQuarantined(items, now) {
		if _, ok := q.items[it.ID]; !ok {
			it.Raw = slices.Clone(it.Raw)
			q.items[it.ID] = it
		}
	}
	cutoff := now.Add(-q.cfg.Retention)
	for id, it := range q.items {
		if it.ReceivedAt.Before(cutoff) {
			delete(q.items, id)
		}
	}
	return nil
}

// List returns a page of the items within the retention, newest first.
func (q *MemoryQuarantine) List(ctx context.Context, cursor string, limit int) ([]QuarantinedItem, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	var afterAt time.Time
	var afterID string
	if cursor != "" {
		var err error
		if afterAt, afterID, err = DecodeQuarantineCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	limit = QuarantinePageSize(limit)
	cutoff := q.cfg.Clock.Now().Add(-q.cfg.Retention)
	q.mu.Lock()
	all := make([]QuarantinedItem, 0, len(q.items))
	for _, it := range q.items {
		if it.ReceivedAt.Before(cutoff) {
			continue
		}
		if cursor != "" && compareNewestFirst(it, afterAt, afterID) <= 0 {
			continue
		}
		it.Raw = slices.Clone(it.Raw)
		all = append(all, it)
	}
	q.mu.Unlock()
	slices.SortFunc(all, func(a, b QuarantinedItem) int {
		return compareNewestFirst(a, b.ReceivedAt, b.ID)
	})
	if len(all) <= limit {
		return all, "", nil
	}
	page := all[:limit]
	last := page[limit-1]
	return page, EncodeQuarantineCursor(last.ReceivedAt, last.ID), nil
}

// compareNewestFirst orders a newest-first listing: negative when it comes
// before the item (at, id) (newer, or as new with a greater ID), positive
// when after.
func compareNewestFirst(it QuarantinedItem, at time.Time, id string) int {
	return -cmp.Or(it.ReceivedAt.Compare(at), strings.Compare(it.ID, id))
}

// Len returns how many items are held, including any past the retention
// not yet dropped.
func (q *MemoryQuarantine) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
