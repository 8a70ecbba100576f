// Regression tests from a review of the tracker: each test's comment
// describes the bug it guards against (all fixed).
package permission

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// A huge ExpiringWithin ("everything temporary") overflows the unix-ns
// horizon and lists nothing; Count overflows the same way.
func TestRegressionExpiringWithinOverflow(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("u1", t0))
	p, err := f.tr.Eligible(f.ctx, ch, Query{ExpiringWithin: math.MaxInt64})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 1, "a grant expiring in 7 days expires within ~292 years")
	_, soon, _ := f.tr.Count(ch, t0, math.MaxInt64)
	assert.Equal(t, 1, soon)
}

// A temporary grant whose expiry is the last representable nanosecond gets
// the index key reserved for permanent entries: listed as Permanent, never
// swept.
func TestRegressionMaxExpiryCollidesWithPermanentKey(t *testing.T) {
	f := newFixture(t, Config{})
	exp := time.Unix(0, math.MaxInt64).UTC()
	at := exp.Add(-200 * time.Hour)
	f.clk.Set(at)
	// The last representable instant is the index's key for "never": an
	// expiry there is refused rather than listed as permanent.
	_, err := f.tr.Record(f.ctx, Event{Type: EventGrant, Channel: ch, Contact: "u1", At: at, ExpiresAt: exp})
	require.ErrorIs(t, err, ErrInvalidEvent)
	_, err = f.tr.Record(f.ctx, Event{Type: EventGrant, Channel: ch, Contact: "u1", At: at, ExpiresAt: exp.Add(-time.Nanosecond)})
	require.NoError(t, err)
	p, err := f.tr.Eligible(f.ctx, ch, Query{Now: at})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	assert.Equal(t, Temporary, p.Entries[0].Kind)
}

// Shared trackers with a little clock skew: B applies A's Expired change
// while B's clock is still before the expiry, so B keeps the entry. The
// entry then never leaves B's index (its expiry is already noted, and
// catchUp only touches pairs named by new changes): the expiry loop re-arms
// at 1 ms forever.
func TestRegressionSharedSkewLeavesStaleEntry(t *testing.T) {
	ctx := context.Background()
	a, b, clkA, clkB := skewablePair(t, Config{})
	var err error

	exp := t0.Add(time.Hour)
	_, err = a.Record(ctx, Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0, ExpiresAt: exp})
	require.NoError(t, err)
	require.NoError(t, b.catchUp(ctx))

	clkA.Set(exp)
	n, err := a.Sweep(ctx, clkA.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	clkB.Set(exp.Add(-time.Second)) // B's clock is one second behind
	require.NoError(t, b.catchUp(ctx))

	clkB.Set(exp.Add(time.Second))
	_, err = b.Sweep(ctx, clkB.Now())
	require.NoError(t, err)
	assert.Empty(t, b.Channels(), "the expired entry is gone after B's own sweep")
	b.mu.RLock()
	due := b.idx.due(nil, clkB.Now().UnixNano(), 10)
	b.mu.RUnlock()
	assert.Empty(t, due, "still due after a sweep: the expiry loop spins")
}

// Same stale entry with SweepBatch 1: Sweep never returns (each batch is
// full and changes nothing).
func TestRegressionSharedSweepNeverReturns(t *testing.T) {
	ctx := context.Background()
	a, b, clkA, clkB := skewablePair(t, Config{SweepBatch: 1})
	var err error

	exp := t0.Add(time.Hour)
	_, err = a.Record(ctx, Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0, ExpiresAt: exp})
	require.NoError(t, err)
	clkA.Set(exp)
	_, err = a.Sweep(ctx, exp)
	require.NoError(t, err)
	clkB.Set(exp.Add(-time.Second))
	require.NoError(t, b.catchUp(ctx))
	clkB.Set(exp.Add(time.Second))

	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Sweep(ctx, clkB.Now()) // ends with ErrClosed once b is closed
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Error("Sweep did not return: it loops on an entry it cannot remove")
		b.Close()
		<-done
	}
}

// hookStore runs hooks before Get and Changes.
type hookStore struct {
	*memory.Store
	onGet     func()
	onChanges func(after int64)
}

func (s *hookStore) Get(ctx context.Context, k store.Key) (store.State, error) {
	if s.onGet != nil {
		s.onGet()
	}
	return s.Store.Get(ctx, k)
}

func (s *hookStore) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if s.onChanges != nil {
		s.onChanges(after)
	}
	return s.Store.Changes(ctx, after, limit)
}

// A Record whose "now" is earlier than a sweep already committed re-opens
// an expired entry: Expired is followed by Extended for the same grant and
// the entry is back in the index, with no later Expired ever published.
// (In production: Record takes its now before queueing, so a sweep taking
// its now later can commit first; or a host drives Sweep with its own now.)
func TestRegressionExtendedAfterExpired(t *testing.T) {
	f := newFixture(t, Config{})
	exp := t0.Add(time.Hour)
	f.record(Event{Type: EventGrant, Channel: ch, Contact: "u1", At: t0, ExpiresAt: exp})
	sub, err := f.tr.Subscribe(SubscribeOptions{After: f.tr.Revision()})
	require.NoError(t, err)
	defer sub.Close()
	n, err := f.tr.Sweep(f.ctx, exp)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, Expired, next(t, sub).Type)

	f.clk.Set(exp.Add(-time.Millisecond)) // the Record's now predates the sweep
	c := f.record(businessCall("u1", "wacid.1", t0.Add(time.Minute), true))
	assert.Empty(t, c, "no change for an entry whose expiry is already in the log")
}

// The request windows and the unanswered streak restart at the last
// connected call even when that call is after now: the budget at an
// instant depends on later events.
func TestRegressionLimitsIgnoreNowForLastConnected(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(requestSent("u1", "wamid.r1", t0))
	f.record(businessCall("u1", "wacid.1", t0.Add(2*time.Hour), true))
	d, err := f.tr.CanRequest(f.ctx, ch, "u1", t0.Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, d.Allowed, "at t0+1h the 24 h request already sent still counts")
}

// Close ends the subscription, yet Next keeps returning buffered changes.
func TestRegressionNextAfterCloseReturnsBuffered(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{After: f.tr.Revision()})
	require.NoError(t, err)
	f.record(grant("u1", t0))
	sub.Close()
	_, err = sub.Next(f.ctx)
	assert.ErrorIs(t, err, ErrClosed)
}

// Start racing Close: Start can pass its done check, Close then returns
// (wg empty), and Start adds goroutines afterwards (wg.Add concurrent with
// wg.Wait; goroutines outlive Close).
func TestRegressionStartCloseRace(t *testing.T) {
	for range 2000 {
		tr, err := New(context.Background(), Config{Store: memory.New(memory.Config{}), Shared: true})
		require.NoError(t, err)
		go tr.Start()
		tr.Close()
		tr.Close()
	}
}

// skewablePair returns two shared trackers on one memory store, each with
// its own mock clock at t0; cfgB adds to B's configuration.
func skewablePair(t *testing.T, cfgB Config) (a, b *Tracker, clkA, clkB *clock.Mock) {
	t.Helper()
	st := memory.New(memory.Config{})
	clkA, clkB = clock.NewMock(), clock.NewMock()
	clkA.Set(t0)
	clkB.Set(t0)
	a, err := New(context.Background(), Config{Store: st, Clock: clkA, Shared: true})
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	cfgB.Store, cfgB.Clock, cfgB.Shared = st, clkB, true
	b, err = New(context.Background(), cfgB)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return a, b, clkA, clkB
}
