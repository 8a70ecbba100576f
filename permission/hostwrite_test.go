package permission

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// How long a test waits for goroutines to queue, and how often it looks.
const (
	testTimeout = 10 * time.Second
	testTick    = time.Millisecond
)

// countingStore is a memory store that tells which transactions
// committed, so a test can see in which one each host write ran.
type countingStore struct {
	*memory.Store
	mu        sync.Mutex
	attempt   int   // transactions begun
	committed []int // attempts that committed
	failed    int   // attempts rolled back
}

func (s *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	s.attempt++
	n := s.attempt
	s.mu.Unlock()
	err := s.Store.Update(ctx, func(tx store.Tx) error { return fn(attemptTx{tx, n}) })
	s.mu.Lock()
	if err == nil {
		s.committed = append(s.committed, n)
	} else {
		s.failed++
	}
	s.mu.Unlock()
	return err
}

// attemptTx is a transaction that knows its attempt number.
type attemptTx struct {
	store.Tx
	n int
}

// hostLog records in which attempt each host write ran.
type hostLog struct {
	mu   sync.Mutex
	runs map[string][]int // caller → attempts its write ran in
}

func (l *hostLog) write(name string, err error) HostWrite {
	return func(ctx context.Context, tx store.Tx) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.runs == nil {
			l.runs = make(map[string][]int)
		}
		l.runs[name] = append(l.runs[name], tx.(attemptTx).n)
		return err
	}
}

// committedRuns counts the runs of name's write in committed attempts.
func (l *hostLog) committedRuns(s *countingStore, name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range l.runs[name] {
		for _, c := range s.committed {
			if a == c {
				n++
			}
		}
	}
	return n
}

func TestRecordWithRunsInTheRecordsTransaction(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: cs})
	var seen bool
	changes, err := f.tr.RecordWith(f.ctx, func(ctx context.Context, tx store.Tx) error {
		// The tracker's own write of this event is in the same transaction.
		_, err := tx.Get(ctx, store.Key{Channel: ch, Contact: "15550001"})
		seen = err == nil
		return err
	}, grant("15550001", t0))
	require.NoError(t, err)
	require.True(t, seen, "the host write sees the pair the tracker wrote")
	require.Equal(t, []ChangeType{Granted}, types(changes))
	require.Equal(t, []string{"15550001"}, f.callable(t0))
	require.Len(t, cs.committed, 1)
}

func TestRecordWithNoEventsStillCommits(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: cs})
	var log hostLog
	changes, err := f.tr.RecordWith(f.ctx, log.write("message", nil))
	require.NoError(t, err)
	require.Empty(t, changes)
	require.Equal(t, 1, log.committedRuns(cs, "message"))

	// A nil write and no events is Record with nothing: no transaction.
	_, err = f.tr.RecordWith(f.ctx, nil)
	require.NoError(t, err)
	require.Len(t, cs.committed, 1)
}

func TestRecordWithFailureRecordsNothing(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: cs})
	errHost := errors.New("inbox full")
	changes, err := f.tr.RecordWith(f.ctx, func(context.Context, store.Tx) error { return errHost }, grant("15550001", t0))
	require.ErrorIs(t, err, errHost)
	require.Nil(t, changes)
	require.Empty(t, f.callable(t0))
	n := 0
	for _, err := range f.tr.History(f.ctx, HistoryQuery{Channel: ch}) {
		require.NoError(t, err)
		n++
	}
	require.Zero(t, n, "the event is not in the ledger")
	require.Empty(t, cs.committed)

	// Invalid events fail before the write runs.
	var log hostLog
	_, err = f.tr.RecordWith(f.ctx, log.write("bad", nil), Event{Type: EventGrant, Channel: ch, At: t0})
	require.ErrorIs(t, err, ErrInvalidEvent)
	require.Empty(t, log.runs)
}

// One caller's failing host write costs only that caller: the batch it
// shared is committed again without it, and every other caller's write
// runs once in the transaction that commits.
func TestRecordWithFailureIsolatesItsCaller(t *testing.T) {
	cs := &countingStore{Store: memory.New(memory.Config{})}
	f := newFixture(t, Config{Store: cs})
	var log hostLog

	errHost := errors.New("constraint violated")
	record := func(write HostWrite, contact string) func() error {
		return func() error {
			var events []Event
			if contact != "" {
				events = append(events, grant(contact, t0))
			}
			_, err := f.tr.RecordWith(f.ctx, write, events...)
			return err
		}
	}
	// The first call holds the committer while the others queue, so that
	// they share the next batch.
	errs := batchOf(t, f, log.write("first", nil), []func() error{
		record(log.write("a", nil), "15550001"),
		record(log.write("bad", errHost), "15550002"),
		record(nil, "15550003"),
		record(log.write("message", nil), ""), // no events
	})

	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], errHost)
	require.NoError(t, errs[2])
	require.NoError(t, errs[3])
	require.Equal(t, []string{"15550000", "15550001", "15550003"}, f.callable(t0))
	for _, name := range []string{"first", "a", "message"} {
		require.Equal(t, 1, log.committedRuns(cs, name), name)
	}
	require.Zero(t, log.committedRuns(cs, "bad"))
	// The first call's commit, the shared batch's failed attempt, and its
	// commit without the failed caller: one commit per batch.
	require.Len(t, cs.committed, 2)
	require.Equal(t, 1, cs.failed)
}
