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

// keyedMutex serializes work per key; waiting honours ctx.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
