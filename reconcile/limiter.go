package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// limiter is a token bucket on an injected clock (GCRA): one request per
// interval, up to burst at once after a pause. Waiters are served in the
// order they reserve.
type limiter struct {
	clk      clock.Clock
	interval time.Duration
	burst    int
	onWait   func(time.Duration)

	mu   sync.Mutex
	next time.Time // the earliest instant the next request may go
}

func newLimiter(clk clock.Clock, rate float64, burst int, onWait func(time.Duration)) *limiter {
	return &limiter{clk: clk, interval: time.Duration(float64(time.Second) / rate), burst: burst, onWait: onWait}
}

// reserve takes the next slot and returns how long to wait for it.
func (l *limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clk.Now()
	if floor := now.Add(-time.Duration(l.burst-1) * l.interval); l.next.Before(floor) {
		l.next = floor
	}
	wait := max(0, l.next.Sub(now))
	l.next = l.next.Add(l.interval)
	return wait
}

// wait blocks until a request may go, or ctx is done.
func (l *limiter) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return sleep(ctx, l.clk, l.reserve(), l.onWait)
}

// sleep waits d on clk, or until ctx is done. onWait, when set, is called
// once the timer exists.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration, onWait func(time.Duration)) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clk.Timer(d)
	defer t.Stop()
	if onWait != nil {
		onWait(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
