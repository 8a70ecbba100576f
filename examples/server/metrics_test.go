package main

import (
	"context"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
)

// TestMetricsWatchResumesAfterCompaction starts the change watcher at a
// revision the change log no longer holds: it must resume from the
// tracker's current revision (one resubscription, not a loop) and count
// what happens next.
func TestMetricsWatchResumesAfterCompaction(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk.Set(t0)
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{Retention: 2}), Clock: clk})
	require.NoError(t, err)
	defer tr.Close()
	grant := func(contact string) {
		t.Helper()
		_, err := tr.Record(ctx, permission.Event{
			Type: permission.EventGrant, Channel: "c", Contact: contact, At: clk.Now(),
			ExpiresAt: clk.Now().Add(time.Hour), ID: "wamid." + contact,
		})
		require.NoError(t, err)
	}
	for _, c := range []string{"u1", "u2", "u3", "u4", "u5"} {
		grant(c) // revisions 1–5; only 4 and 5 are kept
	}

	m := newMetrics(&server{tracker: tr, clock: clk})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.watch(wctx, 0) }()
	defer func() { cancel(); <-done }()

	require.Eventually(t, func() bool { return m.resyncs.Load() > 0 }, 5*time.Second, time.Millisecond,
		"revision 0 is compacted away: the watcher resyncs")
	granted := m.changes.WithLabelValues(string(permission.Granted))
	grant("u6")
	require.Eventually(t, func() bool { return testutil.ToFloat64(granted) == 1 },
		5*time.Second, time.Millisecond, "the grant recorded after the resync is counted, the compacted ones are not")
	require.Equal(t, int64(1), m.resyncs.Load(), "one resubscription from the current revision, not a loop")
}
