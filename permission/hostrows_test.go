package permission

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// rowsLog records each Config.HostRows call: its attempt and its rows.
type rowsLog struct {
	mu    sync.Mutex
	calls []rowsCall
	fail  func(rows []any) error
}

type rowsCall struct {
	attempt int
	rows    []string
}

func (l *rowsLog) hostRows(ctx context.Context, tx store.Tx, rows []any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := rowsCall{attempt: tx.(attemptTx).n}
	for _, r := range rows {
		c.rows = append(c.rows, r.(string))
	}
	l.calls = append(l.calls, c)
	if l.fail != nil {
		return l.fail(rows)
	}
	return nil
}

// committed returns the rows of the HostRows calls that ran in committed
// attempts, one slice per call.
func (l *rowsLog) committed(s *countingStore) [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]string
	for _, c := range l.calls {
		if slices.Contains(s.committed, c.attempt) {
			out = append(out, c.rows)
		}
	}
	return out
}

// batchOf runs calls concurrently while a first call (a grant of
// 15550000 with the host write first, if any) holds the committer, so that
// they share the next batch, and returns their errors.
func batchOf(t *testing.T, f *fixture, first HostWrite, calls []func() error) []error {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		_, err := f.tr.RecordWith(f.ctx, func(ctx context.Context, tx store.Tx) error {
			close(entered)
			<-release
			if first != nil {
				return first(ctx, tx)
			}
			return nil
		}, grant("15550000", t0))
		firstDone <- err
	}()
	<-entered
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { errs[i] = c() })
	}
	require.Eventually(t, func() bool {
		f.tr.qmu.Lock()
		defer f.tr.qmu.Unlock()
		return len(f.tr.queue) == len(calls)
	}, testTimeout, testTick)
	close(release)
	require.NoError(t, <-firstDone)
	wg.Wait()
	return errs
}

func TestRecordRowsOneCallPerBatch(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	var log rowsLog
	f := newFixture(t, Config{Store: cs, HostRows: log.hostRows})
	rows := func(row, contact string) func() error {
		return func() error {
			var events []Event
			if contact != "" {
				events = append(events, grant(contact, t0))
			}
			_, err := f.tr.RecordRows(f.ctx, row, events...)
			return err
		}
	}
	errs := batchOf(t, f, nil, []func() error{
		rows("a", "15550001"),
		rows("b", "15550002"),
		rows("message", ""), // rows and no events
		func() error { _, err := f.tr.Record(f.ctx, grant("15550003", t0)); return err },
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	got := log.committed(cs)
	require.Len(t, got, 1, "one HostRows call for the batch")
	require.ElementsMatch(t, []string{"a", "b", "message"}, got[0])
	require.Equal(t, []string{"15550000", "15550001", "15550002", "15550003"}, f.callable(t0))
	require.Len(t, cs.committed, 2, "the first call's commit and the batch's")
	require.Zero(t, cs.failed)
}

// HostRows failing on a batch's rows costs only the calls whose rows
// fail: the batch is written again with each call's rows apart, and then
// once more without the failed call, its rows together again.
func TestRecordRowsFailureIsolatesItsCaller(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	errBad := errors.New("duplicate key")
	log := rowsLog{fail: func(rows []any) error {
		if slices.Contains(rows, any("bad")) {
			return errBad
		}
		return nil
	}}
	f := newFixture(t, Config{Store: cs, HostRows: log.hostRows})
	call := func(row, contact string) func() error {
		return func() error { _, err := f.tr.RecordRows(f.ctx, row, grant(contact, t0)); return err }
	}
	errs := batchOf(t, f, nil, []func() error{call("a", "15550001"), call("bad", "15550002"), call("c", "15550003")})
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], errBad)
	require.NoError(t, errs[2])
	require.Equal(t, []string{"15550000", "15550001", "15550003"}, f.callable(t0))
	got := log.committed(cs)
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{"a", "c"}, got[0], "the rows that did not fail, in one call")
	require.Equal(t, 2, cs.failed, "the batch together, then its rows apart")
}

func TestRecordRowsNeedsHostRows(t *testing.T) {
	f := newFixture(t, Config{})
	_, err := f.tr.RecordRows(f.ctx, "row", grant("15550001", t0))
	require.ErrorIs(t, err, ErrNoHostRows)
	g := newFixture(t, Config{HostRows: func(context.Context, store.Tx, []any) error { return nil }})
	_, err = g.tr.RecordRows(g.ctx, nil, grant("15550001", t0))
	require.Error(t, err)
	require.Empty(t, f.callable(t0))
	require.Empty(t, g.callable(t0))
}
