package pglisten_test

import (
	"github.com/callready/callready/internal/pgtest"

	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
)

// TestServerRestart: PostgreSQL (a throwaway server of the test's own) is
// stopped abruptly and restarted under three instances while they write.
// Writes during the outage fail and are retried; afterwards the listeners
// have reconnected, every instance caught up, all agree, every
// acknowledged grant is listed everywhere, and every subscriber delivered
// every change once, in order.
func TestServerRestart(t *testing.T) {
	srv := pgtest.StartServer(t)
	dsn := srv.DSN
	prefix := sqlstore.DefaultTablePrefix

	ctx := context.Background()
	clk := mockClock(t0)
	opts := options{poll: 200 * time.Millisecond, minBackoff: 50 * time.Millisecond, subBuffer: 1 << 20}
	var ins []*instance
	var subs []*permission.Subscription
	for range 3 {
		in := openInstance(t, dsn, prefix, clk, opts)
		sub, err := in.tr.Subscribe(permission.SubscribeOptions{After: in.tr.Revision()})
		require.NoError(t, err)
		ins, subs = append(ins, in), append(subs, sub)
	}

	// The trackers poll and back off on their (mock) clock: keep it moving
	// so that they retry after the outage (grants are permanent, so time
	// changes nothing else).
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopClock:
				return
			case <-tick.C:
				clk.Add(opts.poll)
			}
		}
	}()
	defer func() { close(stopClock); <-clockDone }()

	const each = 60
	var acked atomic.Int64
	var failed atomic.Int64
	var mu sync.Mutex
	var ackedContacts []string
	var wg sync.WaitGroup
	for w, in := range ins {
		wg.Go(func() {
			for i := range each {
				e := grant(fmt.Sprintf("w%d-%02d", w, i), t0, 0)
				for { // retry until acknowledged, as Meta would
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := in.tr.Record(rctx, e)
					cancel()
					if err == nil {
						break
					}
					failed.Add(1)
					backoff := time.NewTimer(20 * time.Millisecond)
					<-backoff.C
				}
				acked.Add(1)
				mu.Lock()
				ackedContacts = append(ackedContacts, e.Contact)
				mu.Unlock()
			}
		})
	}
	require.Eventually(t, func() bool { return acked.Load() >= 30 }, 20*time.Second, time.Millisecond)
	srv.Crash(t)
	srv.Restart(t)
	wg.Wait()
	t.Logf("%d failed attempts during the outage", failed.Load())

	var last int64
	require.Eventually(t, func() bool {
		page, err := ins[0].sq.Changes(ctx, int64(3*each-1), 10)
		if err != nil || len(page) == 0 {
			return false
		}
		last = page[len(page)-1].Revision
		return true
	}, 20*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 3*each, last, "one change per grant")
	want := make([]int64, 0, last)
	for r := int64(1); r <= last; r++ {
		want = append(want, r)
	}
	slices.Sort(ackedContacts)
	for i, in := range ins {
		assert.Equal(t, want, drain(t, subs[i], last), "instance %d delivered every change once, in order", i)
		assert.Equal(t, ackedContacts, contacts(listing(t, in.tr, ch, time.Time{})), "instance %d lists every acknowledged grant", i)
		// The listener may still be backing off: changes also arrive by
		// polling, so its reconnection can come after everything above.
		assert.Eventually(t, func() bool { return in.ls.Connects() >= 2 }, 20*time.Second, 10*time.Millisecond, "instance %d reconnected", i)
	}
}
