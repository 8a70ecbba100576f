package pglisten_test

import (
	"github.com/callready/callready/internal/pgtest"

	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
)

// TestLatency measures the delay from Record on instance A to delivery on
// instance B's subscriber, with B woken by NOTIFY (pglisten) and by
// polling only (sqlstore's Wait, PollInterval 50 ms). It is a measurement,
// not a check, so it runs only with CALLREADY_LATENCY=1 (see BENCH.md):
//
//	CALLREADY_LATENCY=1 go test -run TestLatency -v ./store/sql/pglisten/
//
// CALLREADY_LATENCY_EVENTS sets the number of events (default 10,000).
func TestLatency(t *testing.T) {
	if os.Getenv("CALLREADY_LATENCY") != "1" {
		t.Skip("latency measurement: set CALLREADY_LATENCY=1 to run it")
	}
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("CALLREADY_LATENCY_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dsn := pgtest.DSN(t)
	const poll = 50 * time.Millisecond
	var rows []string
	for _, mode := range []string{"notify", "polling"} {
		prefix := freshPrefix(t, dsn)
		clk := mockClock(t0)
		a := openInstance(t, dsn, prefix, clk, options{polling: true, poll: time.Second})
		b := openInstance(t, dsn, prefix, clk, options{polling: mode == "polling", poll: poll, subBuffer: n + 1})
		sub, err := b.tr.Subscribe(permission.SubscribeOptions{After: b.tr.Revision()})
		require.NoError(t, err)

		sent := make([]atomic.Int64, n)
		lat := make([]time.Duration, 0, n)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for range n {
				c, err := sub.Next(ctx)
				if err != nil {
					done <- err
					return
				}
				i, _ := strconv.Atoi(c.Entry.Contact[1:])
				lat = append(lat, time.Duration(time.Now().UnixNano()-sent[i].Load()))
			}
			done <- nil
		}()
		ctx := context.Background()
		start := time.Now()
		for i := range n {
			sent[i].Store(time.Now().UnixNano())
			_, err := a.tr.Record(ctx, grant("u"+strconv.Itoa(i), t0, 0))
			require.NoError(t, err)
		}
		require.NoError(t, <-done)
		elapsed := time.Since(start)
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(10 * time.Microsecond) }
		rows = append(rows, fmt.Sprintf("| %-7s | %6d | %8.0f | %9v | %9v | %9v | %9v |",
			mode, n, float64(n)/elapsed.Seconds(), q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond)))
	}
	t.Logf("Record on A → B's subscriber (B polls every %v in polling mode)\n"+
		"| mode    | events | events/s |    median |       p90 |       p99 |       max |\n"+
		"|---------|-------:|---------:|----------:|----------:|----------:|----------:|\n%s\n%s", poll, rows[0], rows[1])
}
