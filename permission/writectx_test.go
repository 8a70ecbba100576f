package permission

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

type ctxKey struct{}

func TestWriteContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	c := newWriteContext(parent, time.Hour)
	cancel() // the committer's cancellation does not reach the commit
	if c.Err() != nil || c.Value(ctxKey{}) != "v" {
		t.Fatalf("err %v, value %v", c.Err(), c.Value(ctxKey{}))
	}
	if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("deadline %v %v", d, ok)
	}
	done := c.Done()
	select {
	case <-done:
		t.Fatal("done before the deadline")
	default:
	}
	c.stop()
	<-done
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("after stop: %v", c.Err())
	}

	// The deadline passing closes Done (made before or after it) and sets Err.
	for _, doneFirst := range []bool{true, false} {
		c := newWriteContext(context.Background(), time.Millisecond)
		var done <-chan struct{}
		if doneFirst {
			done = c.Done()
		}
		for c.Err() == nil {
			runtime.Gosched()
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("err %v", c.Err())
		}
		if !doneFirst {
			done = c.Done()
		}
		<-done
		c.stop()
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("stop after the deadline changed the error: %v", c.Err())
		}
	}
}
