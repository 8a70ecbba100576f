package permission

import (
	"context"
	"sync"
	"time"
)

// writeContext is the context of one commit: the committer's values
// without its cancellation (the batch serves other callers too) and a
// deadline of Config.WriteTimeout. It behaves as
// context.WithTimeout(context.WithoutCancel(ctx), timeout) does, but makes
// its Done channel and timer only when a store asks for Done (SQL drivers
// do, the memory store only calls Err), so a commit allocates one object
// instead of five.
type writeContext struct {
	parent   context.Context
	deadline time.Time

	mu    sync.Mutex
	err   error         // DeadlineExceeded, or Canceled once stopped
	calls uint32        // Err calls, to read the clock on every errClockEvery-th
	done  chan struct{} // made by the first Done
	timer *time.Timer   // closes done at the deadline
}

var _ context.Context = (*writeContext)(nil)

func newWriteContext(parent context.Context, timeout time.Duration) *writeContext {
	return &writeContext{parent: parent, deadline: time.Now().Add(timeout)}
}

func (c *writeContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *writeContext) Value(key any) any { return c.parent.Value(key) }

func (c *writeContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		c.checkLocked()
		if c.err != nil {
			close(c.done)
		} else {
			c.timer = time.AfterFunc(time.Until(c.deadline), c.expire)
		}
	}
	return c.done
}

// errClockEvery is how often Err reads the clock. The memory store asks
// for Err on every operation and a clock read costs more than the
// operation (121 ns on the benchmark machine); the deadline bounds stuck
// transactions of WriteTimeout's order (seconds), so noticing it a few
// operations late changes nothing, and a store that waits uses Done.
const errClockEvery = 32

func (c *writeContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls++; c.calls%errClockEvery == 0 {
		c.checkLocked()
	}
	return c.err
}

// checkLocked ends c when its deadline has passed.
func (c *writeContext) checkLocked() {
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

func (c *writeContext) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(context.DeadlineExceeded)
}

func (c *writeContext) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
}

// stop ends c and releases its timer, as a cancel function would.
func (c *writeContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.endLocked(context.Canceled)
}

func (c *writeContext) String() string { return "permission.writeContext" }
