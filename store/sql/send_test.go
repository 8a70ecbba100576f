package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
)

// TestSendRequestOnceAcrossInstances: two Shared trackers, each on its own
// connection pool (two processes), asked for the same person at once, send
// one request; the other learns it is in flight or pending, and both list
// it as pending once they have followed the log.
func TestSendRequestOnceAcrossInstances(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		clk := clock.NewMock()
		clk.Set(t0)
		trs := make([]*permission.Tracker, 2)
		for i := range trs {
			db, err := sql.Open(tg.driver, tg.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: tg.prefix})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk, Shared: true, PollInterval: 20 * time.Millisecond})
			require.NoError(t, err)
			tr.Start()
			t.Cleanup(func() { tr.Close() })
			trs[i] = tr
		}
		for round := range 5 {
			contact := fmt.Sprintf("3460000000%d", round)
			var calls atomic.Int32
			var wg sync.WaitGroup
			errs := make([]error, 4)
			start := make(chan struct{})
			for i := range errs {
				wg.Go(func() {
					<-start
					_, errs[i] = trs[i%2].SendRequest(ctx, "106540352242922", contact, func(context.Context) (string, error) {
						return fmt.Sprintf("wamid.%s.%d", contact, calls.Add(1)), nil
					})
				})
			}
			close(start)
			wg.Wait()
			require.EqualValues(t, 1, calls.Load(), "round %d: one request sent", round)
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
					continue
				}
				assert.True(t, errors.Is(err, permission.ErrRequestInFlight) || errors.Is(err, permission.ErrPending), "round %d: %v", round, err)
			}
			assert.Equal(t, 1, ok, "round %d", round)
			for _, tr := range trs {
				require.Eventually(t, func() bool {
					n, err := tr.CountPending("106540352242922", time.Time{})
					return err == nil && n == round+1
				}, 10*time.Second, 5*time.Millisecond)
			}
		}
	})
}
