package permission

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// armed returns a channel that receives every instant the expiry loop
// waits for (zero when the index holds no temporary entry).
func armed(f *fixture) chan time.Time {
	c := make(chan time.Time, 64)
	f.tr.armedHook = func(next time.Time, ok bool) {
		if !ok {
			next = time.Time{}
		}
		c <- next
	}
	return c
}

func waitArmed(t *testing.T, c chan time.Time, want time.Time) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-c:
			if got.Equal(want) {
				return
			}
		case <-timeout:
			t.Fatalf("expiry loop never waited for %v", want)
		}
	}
}

func TestExpiryLoopFiresOnTimeAndOnce(t *testing.T) {
	f := newFixture(t, Config{})
	arm := armed(f)
	sub, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	f.tr.Start()
	waitArmed(t, arm, time.Time{})

	f.record(grant("late", t0), Event{Type: EventGrant, Channel: ch, Contact: "soon", At: t0, ExpiresAt: t0.Add(time.Hour)})
	assert.Equal(t, Granted, next(t, sub).Type)
	assert.Equal(t, Granted, next(t, sub).Type)
	waitArmed(t, arm, t0.Add(time.Hour)) // the timer moved to the earlier expiry

	f.clk.Add(time.Hour - time.Nanosecond)
	assert.False(t, pendingChange(sub), "nothing expires early")
	f.clk.Add(time.Nanosecond)
	c := next(t, sub)
	assert.Equal(t, Expired, c.Type)
	assert.Equal(t, "soon", c.Entry.Contact)
	assert.Equal(t, t0.Add(time.Hour), c.At)
	waitArmed(t, arm, t0.Add(DefaultTTL))

	f.clk.Add(DefaultTTL)
	c = next(t, sub)
	assert.Equal(t, Expired, c.Type)
	assert.Equal(t, "late", c.Entry.Contact)
	waitArmed(t, arm, time.Time{})
	assert.False(t, pendingChange(sub), "each expiry is delivered once")
	assert.Empty(t, f.callable(f.clk.Now()))
}

func TestExpiryLoopSweepsAtStart(t *testing.T) {
	f := newFixture(t, Config{SweepBatch: 3})
	for i := range 10 {
		f.record(grant("u"+string(rune('a'+i)), t0))
	}
	sub, err := f.tr.Subscribe(SubscribeOptions{After: f.tr.Revision()})
	require.NoError(t, err)
	arm := armed(f)
	f.clk.Set(t0.Add(30 * 24 * time.Hour))
	f.tr.Start()
	for range 10 {
		assert.Equal(t, Expired, next(t, sub).Type)
	}
	waitArmed(t, arm, time.Time{})
	assert.False(t, pendingChange(sub))
}

func TestCloseWithAndWithoutStart(t *testing.T) {
	f := newFixture(t, Config{})
	require.NoError(t, f.tr.Close())

	g := newFixture(t, Config{})
	g.tr.Start()
	g.tr.Start()
	require.NoError(t, g.tr.Close())
	require.NoError(t, g.tr.Close())
	// goleak in TestMain checks the loop is gone.
}

func TestConcurrentRecordsGroupCommit(t *testing.T) {
	f := newFixture(t, Config{MaxBatch: 8})
	sub, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	const writers, each = 8, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				_, err := f.tr.Record(context.Background(), Event{Type: EventGrant, Channel: ch, Contact: string(rune('a'+w)) + string(rune('0'+i%10)) + string(rune('0'+i/10)), At: t0})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	last := int64(0)
	for range writers * each {
		c := next(t, sub)
		require.Greater(t, c.Revision, last, "revisions reach subscribers in order")
		last = c.Revision
	}
	assert.Len(t, f.callable(t0), writers*each)
}

// gatedStore holds each Update until the test lets it run, and records how
// many events each committed transaction appended to the ledger.
type gatedStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
	callers []any // each Update's ctx.Value(callerKey{})
}

type callerKey struct{}

func (g *gatedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	g.mu.Lock()
	g.callers = append(g.callers, ctx.Value(callerKey{}))
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.release
	n := 0
	err := g.Store.Update(ctx, func(tx store.Tx) error {
		n = 0
		return fn(countingTx{tx, &n})
	})
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	g.mu.Unlock()
	return err
}

type countingTx struct {
	store.Tx
	n *int
}

func (c countingTx) AppendEvent(ctx context.Context, e store.LedgerEvent) error {
	*c.n++
	return c.Tx.AppendEvent(ctx, e)
}

// A committer whose batch commits while others queued returns at once:
// the queued requests commit in the next batch, which a goroutine of the
// tracker runs (drain: its context carries none of the callers' values),
// and Close waits for it.
func TestQueuedRequestsCommitAfterTheCommitterReturns(t *testing.T) {
	g := &gatedStore{Store: memory.New(memory.Config{}), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, Config{Store: g})
	result := func(contact string) chan error {
		c := make(chan error, 1)
		go func() {
			ctx := context.WithValue(context.Background(), callerKey{}, contact)
			_, err := f.tr.Record(ctx, Event{Type: EventGrant, Channel: ch, Contact: contact, At: t0})
			c <- err
		}()
		return c
	}
	first := result("first")
	<-g.entered // the first caller commits; the next two queue behind it
	b, c := result("b"), result("c")
	require.Eventually(t, func() bool {
		f.tr.qmu.Lock()
		defer f.tr.qmu.Unlock()
		return len(f.tr.queue) == 2
	}, 5*time.Second, time.Millisecond)
	g.release <- struct{}{}
	require.NoError(t, <-first, "the first caller returns while the next batch waits")
	<-g.entered
	select {
	case err := <-b:
		t.Fatalf("b returned before its batch committed: %v", err)
	default:
	}
	g.release <- struct{}{}
	require.NoError(t, <-b)
	require.NoError(t, <-c)
	assert.Len(t, f.callable(t0), 3)
	require.NoError(t, f.tr.Close())
	assert.Equal(t, []int{1, 2}, g.sizes, "the queued requests shared one batch")
	assert.Equal(t, []any{"first", nil}, g.callers, "the tracker committed the second batch, not a caller")
}
