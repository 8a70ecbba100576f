package permission

import (
	"context"
	"errors"
	"slices"

	"github.com/callready/callready/store"
)

// HostWrite is a host's own write, run inside the store transaction that
// records a RecordWith call's events, so that the host's rows and the
// events commit together or not at all: one durable commit per group-
// committed batch instead of one per host row.
//
// ctx is the transaction's (bounded by Config.WriteTimeout), not the
// caller's: a batch serves several callers. tx is the store's transaction;
// an adapter may expose the database transaction beneath it (sqlstore.
// TxQuerier). A HostWrite may run more than once (a store retrying a
// serialization failure, or the batch retried without another caller whose
// write failed), each time in a new transaction, so it must have no
// effect outside tx; it runs exactly once in the transaction that commits.
// It must not use another connection to the same database while it runs
// (on SQLite that waits for the lock the transaction holds).
type HostWrite func(ctx context.Context, tx store.Tx) error

// RecordWith is Record with a host's own write in the same store
// transaction: write runs after the tracker has written the batch's
// events, states and changes, and the whole batch commits as one. With no
// events it still runs write, in the next group commit (a host's row that
// must be durable before it answers, such as a chat message, shares the
// commit of the events recorded meanwhile).
//
// If write returns an error, RecordWith returns it (wrapped) and records
// nothing of this call; the other callers of the same batch are not
// affected: the batch is rolled back and committed again without this
// call. When RecordWith returns nil, the events and everything write did
// through tx are durable in the store. A nil write is Record.
func (t *Tracker) RecordWith(ctx context.Context, write HostWrite, events ...Event) ([]Change, error) {
	return t.record(ctx, write, nil, events)
}

// RecordRows is RecordWith for a host whose writes are rows that
// Config.HostRows writes for the whole batch at once: rows (not nil) is
// handed to HostRows with the rows of the other RecordRows calls of the
// same group commit. When RecordRows returns nil, the events and rows are
// durable in the store; if HostRows fails on this call's rows, RecordRows
// returns that error (wrapped) and records nothing of this call, and the
// other calls are not affected. It fails with ErrNoHostRows when
// Config.HostRows is nil.
func (t *Tracker) RecordRows(ctx context.Context, rows any, events ...Event) ([]Change, error) {
	if t.cfg.HostRows == nil {
		return nil, ErrNoHostRows
	}
	if rows == nil {
		return nil, errors.New("permission: RecordRows with nil rows")
	}
	return t.record(ctx, nil, rows, events)
}

// hostWriteError is the failure of one request's host write.
type hostWriteError struct {
	r   *request
	err error
}

func (e *hostWriteError) Error() string { return "permission: host write: " + e.err.Error() }
func (e *hostWriteError) Unwrap() error { return e.err }

// errBatchRows is Config.HostRows failing on a whole batch's rows: which
// request's rows caused it is not known yet.
type errBatchRows struct{ err error }

func (e *errBatchRows) Error() string { return "permission: host rows: " + e.err.Error() }
func (e *errBatchRows) Unwrap() error { return e.err }

// runHostWrites runs the host writes of batch in tx, in batch order, and
// stops at the first that fails; then Config.HostRows with the rows of
// every request that has some, in one call, or one call per request when
// rowsApart.
func (t *Tracker) runHostWrites(ctx context.Context, tx store.Tx, batch []*request, rowsApart bool) error {
	var rows []any
	for _, r := range batch {
		if r.rows != nil {
			rows = append(rows, r.rows)
		}
		if r.host == nil {
			continue
		}
		if err := r.host(ctx, tx); err != nil {
			return &hostWriteError{r: r, err: err}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if !rowsApart {
		if err := t.cfg.HostRows(ctx, tx, rows); err != nil {
			return &errBatchRows{err}
		}
		return nil
	}
	for _, r := range batch {
		if r.rows == nil {
			continue
		}
		if err := t.cfg.HostRows(ctx, tx, []any{r.rows}); err != nil {
			return &hostWriteError{r: r, err: err}
		}
	}
	return nil
}

// retryHostWrites handles a batch whose transaction failed with err. When
// Config.HostRows failed on the batch's rows, the batch is written again
// with each request's rows apart, to find whose fail. When a request's
// host write (or rows) caused it, that request alone fails and the rest
// of the batch is committed again (one bad write never costs the other
// callers). It reports whether it handled the batch.
func (t *Tracker) retryHostWrites(ctx context.Context, batch []*request, err error) bool {
	if _, ok := errors.AsType[*errBatchRows](err); ok {
		t.commitRows(ctx, batch, true)
		return true
	}
	var he *hostWriteError
	if !errors.As(err, &he) {
		return false
	}
	i := slices.Index(batch, he.r)
	if i < 0 {
		return false
	}
	he.r.changes, he.r.err = nil, he
	close(he.r.done)
	rest := slices.Delete(slices.Clone(batch), i, i+1)
	if len(rest) > 0 {
		t.commit(ctx, rest)
	}
	return true
}
