package permission

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

func sharedTrackers(t *testing.T, st store.Store, clk clock.Clock, n int) []*Tracker {
	t.Helper()
	var out []*Tracker
	for range n {
		tr, err := New(context.Background(), Config{Store: st, Clock: clk, Shared: true, PollInterval: 50 * time.Millisecond})
		require.NoError(t, err)
		tr.Start()
		t.Cleanup(func() { tr.Close() })
		out = append(out, tr)
	}
	return out
}

// caughtUp waits until every tracker has applied the store's last revision.
func caughtUp(t *testing.T, st store.Store, trs ...*Tracker) {
	t.Helper()
	rev, err := st.Load(context.Background(), func(store.Key, store.State) error { return nil })
	require.NoError(t, err)
	for _, tr := range trs {
		require.Eventually(t, func() bool { return tr.Revision() >= rev }, 10*time.Second, time.Millisecond)
	}
}

func TestSharedGrantAppearsEverywhere(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	st := memory.New(memory.Config{})
	trs := sharedTrackers(t, st, clk, 3)
	a, b, c := trs[0], trs[1], trs[2]
	subB, err := b.Subscribe(SubscribeOptions{Channel: ch, After: b.Revision()})
	require.NoError(t, err)

	changes, err := a.Record(ctx, grant("u1", t0))
	require.NoError(t, err)
	require.Len(t, changes, 1)
	pa, err := a.Eligible(ctx, ch, Query{})
	require.NoError(t, err)
	require.Len(t, pa.Entries, 1, "read your writes on A")

	got := next(t, subB)
	assert.Equal(t, Granted, got.Type)
	assert.Equal(t, changes[0].Revision, got.Revision)
	caughtUp(t, st, c)
	pc, err := c.Eligible(ctx, ch, Query{})
	require.NoError(t, err)
	require.Len(t, pc.Entries, 1)
	assert.Equal(t, "u1", pc.Entries[0].Contact)
}

func TestSharedExpiryRecordedOnce(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	st := memory.New(memory.Config{})
	trs := sharedTrackers(t, st, clk, 3)
	_, err := trs[0].Record(ctx, grant("u1", t0))
	require.NoError(t, err)
	caughtUp(t, st, trs...)
	total := 0
	for _, tr := range trs {
		n, err := tr.Sweep(ctx, t0.Add(DefaultTTL))
		require.NoError(t, err)
		total += n
	}
	assert.Equal(t, 1, total, "one expired change in the shared log, not one per tracker")
	log, err := st.Changes(ctx, 0, 100)
	require.NoError(t, err)
	assert.Len(t, log, 2)
}

func TestSharedConcurrentWritersConverge(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0.Add(24 * time.Hour))
	st := memory.New(memory.Config{})
	trs := sharedTrackers(t, st, clk, 3)
	subs := make([]*Subscription, len(trs))
	for i, tr := range trs {
		var err error
		subs[i], err = tr.Subscribe(SubscribeOptions{After: 0})
		require.NoError(t, err)
	}
	r := rand.New(rand.NewPCG(9, 10))
	events := randomEvents(r, 300)
	var wg sync.WaitGroup
	for w, tr := range trs {
		mine := shuffledWithDuplicates(rand.New(rand.NewPCG(uint64(w), 1)), events)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(mine) > 0 {
				n := min(3, len(mine))
				_, err := tr.Record(ctx, mine[:n]...)
				assert.NoError(t, err)
				mine = mine[n:]
			}
		}()
	}
	wg.Wait()
	caughtUp(t, st, trs...)
	log, err := st.Changes(ctx, 0, 1<<20)
	require.NoError(t, err)
	for i, tr := range trs {
		var want []string
		for _, c := range []string{"a", "b", "c"} {
			x, err := tr.Explain(ctx, ch, c, time.Time{})
			require.NoError(t, err)
			if x.Callable {
				want = append(want, c)
			}
		}
		p, err := tr.Eligible(ctx, ch, Query{})
		require.NoError(t, err)
		var got []string
		for _, e := range p.Entries {
			got = append(got, e.Contact)
		}
		assert.ElementsMatch(t, want, got, "tracker %d index agrees with the store", i)
		// Every subscriber saw every change exactly once, in order.
		for _, c := range log {
			if c.Type == string(Scheduled) {
				continue // index-only: never delivered
			}
			d := next(t, subs[i])
			require.Equal(t, c.Revision, d.Revision, "tracker %d", i)
		}
		assert.False(t, pendingChange(subs[i]))
	}
}

func TestSharedLateTrackerAndCompaction(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	st := memory.New(memory.Config{Retention: 4})
	a := sharedTrackers(t, st, clk, 1)[0]

	// B opens, then stops following (not started) while A writes more than
	// the log retains: B must rebuild rather than miss anything.
	b, err := New(ctx, Config{Store: st, Clock: clk, Shared: true})
	require.NoError(t, err)
	defer b.Close()
	sub, err := b.Subscribe(SubscribeOptions{After: b.Revision()})
	require.NoError(t, err)
	for i := range 10 {
		_, err := a.Record(ctx, grant(fmt.Sprintf("u%d", i), t0))
		require.NoError(t, err)
	}
	_, err = b.Record(ctx, grant("last", t0)) // B catches up after its own write
	require.NoError(t, err)
	p, err := b.Eligible(ctx, ch, Query{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 11)
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, ErrResync)

	// A tracker opened late starts from the store's state.
	c, err := New(ctx, Config{Store: st, Clock: clk, Shared: true})
	require.NoError(t, err)
	defer c.Close()
	p, err = c.Eligible(ctx, ch, Query{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 11)
}

// changesReadStore records the revisions its Changes returns.
type changesReadStore struct {
	store.Store
	mu   sync.Mutex
	read []int64 // revisions returned
}

func (c *changesReadStore) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	out, err := c.Store.Changes(ctx, after, limit)
	c.mu.Lock()
	for _, ch := range out {
		c.read = append(c.read, ch.Revision)
	}
	c.mu.Unlock()
	return out, err
}

// A shared tracker that commits reads from the log only what other
// trackers committed before its batch, in order, and applies its own
// batch without reading it back.
func TestSharedCommitReadsOnlyOthersChanges(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	mem := memory.New(memory.Config{})
	open := func(st store.Store) *Tracker {
		tr, err := New(ctx, Config{Store: st, Clock: clk, Shared: true}) // no Start: no follower
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a := open(mem)
	counted := &changesReadStore{Store: mem}
	b := open(counted)
	sub, err := b.Subscribe(SubscribeOptions{Channel: ch, After: b.Revision()})
	require.NoError(t, err)

	_, err = a.Record(ctx, grant("u1", t0), grant("u2", t0))
	require.NoError(t, err)
	mine, err := b.Record(ctx, grant("u3", t0))
	require.NoError(t, err)
	require.Len(t, mine, 1)
	assert.Equal(t, []int64{1, 2}, counted.read, "A's two changes, not B's own")
	assert.Equal(t, int64(3), b.Revision())
	for _, want := range []string{"u1", "u2", "u3"} {
		assert.Equal(t, want, next(t, sub).Entry.Contact, "in revision order")
	}
	p, err := b.Eligible(ctx, ch, Query{})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 3)

	counted.read = nil
	_, err = b.Record(ctx, grant("u4", t0))
	require.NoError(t, err)
	assert.Empty(t, counted.read, "nothing committed by others: no read at all")
}

func (c *changesReadStore) Wait(ctx context.Context, after int64) error {
	return c.Store.(store.Notifier).Wait(ctx, after)
}

// The follower of a shared tracker that is the only writer reads none of
// its commits back: woken by a commit of its own, it waits for the
// committer to apply it.
func TestSharedFollowerSkipsOwnCommits(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(t0)
	counted := &changesReadStore{Store: memory.New(memory.Config{})}
	tr, err := New(ctx, Config{Store: counted, Clock: clk, Shared: true, PollInterval: time.Millisecond})
	require.NoError(t, err)
	tr.Start()
	t.Cleanup(func() { tr.Close() })
	for i := range 300 {
		_, err := tr.Record(ctx, grant(fmt.Sprintf("u%d", i), t0))
		require.NoError(t, err)
	}
	require.NoError(t, tr.Close())
	counted.mu.Lock()
	defer counted.mu.Unlock()
	assert.Empty(t, counted.read)
}
