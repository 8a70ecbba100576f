package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
	sqlstore "github.com/callready/callready/store/sql"
)

// hostTable is a host's own table beside the tracker's, written through
// permission.Tracker.RecordWith.
type hostTable struct {
	name   string // with the target's schema, if any
	insert string
}

func newHostTable(t *testing.T, o *opened, tg target) hostTable {
	t.Helper()
	h := hostTable{name: tg.prefix + "host_rows"}
	_, err := o.db.ExecContext(context.Background(), "CREATE TABLE "+h.name+" (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
	require.NoError(t, err)
	h.insert = "INSERT INTO " + h.name + " (id, body) VALUES (?, ?)"
	if tg.name == "postgres" {
		h.insert = "INSERT INTO " + h.name + " (id, body) VALUES ($1, $2)"
	}
	return h
}

// openWithHostTable opens tg on a mock clock at t0, with a host table.
func openWithHostTable(t *testing.T, tg target) (*clock.Mock, *opened, hostTable) {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	o := tg.open(t, clk)
	return clk, o, newHostTable(t, o, tg)
}

// write inserts the rows ids in the tracker's transaction.
func (h hostTable) write(ids ...string) func(context.Context, store.Tx) error {
	return func(ctx context.Context, tx store.Tx) error {
		q, ok := sqlstore.TxQuerier(tx)
		if !ok {
			return fmt.Errorf("not a sqlstore transaction: %T", tx)
		}
		for _, id := range ids {
			if _, err := q.ExecContext(ctx, h.insert, id, "body of "+id); err != nil {
				return err
			}
		}
		return nil
	}
}

func (h hostTable) ids(t *testing.T, o *opened) []string {
	t.Helper()
	rows, err := o.db.QueryContext(context.Background(), "SELECT id FROM "+h.name+" ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestHostWriteCommitsWithTheTracker: the host's rows commit with the
// events recorded beside them, and roll back with them.
func TestHostWriteCommitsWithTheTracker(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		clk, o, h := openWithHostTable(t, tg)

		_, err := o.tr.RecordWith(ctx, h.write("m1"), grant("u1", t0, time.Hour))
		require.NoError(t, err)
		require.Equal(t, []string{"m1"}, h.ids(t, o))
		require.Equal(t, []string{"u1"}, eligible(t, o.tr))

		// With no events the row is still written, in a commit of its own.
		_, err = o.tr.RecordWith(ctx, h.write("m2"))
		require.NoError(t, err)
		require.Equal(t, []string{"m1", "m2"}, h.ids(t, o))

		// A host statement that fails (a duplicate key, after a row that
		// went in) rolls back the host's rows and the events.
		rev := o.tr.Revision()
		_, err = o.tr.RecordWith(ctx, h.write("m3", "m1"), grant("u2", t0, time.Hour))
		require.Error(t, err)
		require.Equal(t, []string{"m1", "m2"}, h.ids(t, o))
		require.Equal(t, []string{"u1"}, eligible(t, o.tr))
		_, err = o.st.Get(ctx, store.Key{Channel: "106540352242922", Contact: "u2"})
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Equal(t, rev, o.tr.Revision())

		// The tracker carries on; a new tracker on the database sees the same.
		_, err = o.tr.RecordWith(ctx, h.write("m3"), grant("u2", t0, time.Hour))
		require.NoError(t, err)
		o.close()
		o = tg.open(t, clk)
		require.Equal(t, []string{"u1", "u2"}, eligible(t, o.tr))
		require.Equal(t, []string{"m1", "m2", "m3"}, h.ids(t, o))
	})
}

// TestHostWriteFailureIsolated: among concurrent callers sharing group
// commits, the one whose host write fails loses only its own rows and
// events.
func TestHostWriteFailureIsolated(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		_, o, h := openWithHostTable(t, tg)
		_, err := o.tr.RecordWith(ctx, h.write("taken"))
		require.NoError(t, err)

		const n, bad = 24, 7
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("m%02d", i)
				ids := []string{id}
				if i == bad {
					ids = append(ids, "taken") // a duplicate key
				}
				_, errs[i] = o.tr.RecordWith(ctx, h.write(ids...), grant(fmt.Sprintf("u%02d", i), t0, time.Hour))
			})
		}
		wg.Wait()
		var wantRows, wantCallable []string
		for i := range n {
			if i == bad {
				require.Error(t, errs[i])
				continue
			}
			require.NoError(t, errs[i], "caller %d", i)
			wantRows = append(wantRows, fmt.Sprintf("m%02d", i))
			wantCallable = append(wantCallable, fmt.Sprintf("u%02d", i))
		}
		require.Equal(t, append(wantRows, "taken"), h.ids(t, o))
		require.Equal(t, wantCallable, eligible(t, o.tr))
	})
}

// TestHostWritePrepare: PrepareContext gives one statement per query per
// transaction, shared by the host writes of a batch, and the store closes
// it when the transaction ends (on SQLite it is prepared on a pooled
// connection, which must not outlive it).
func TestHostWritePrepare(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		ctx := context.Background()
		_, o, h := openWithHostTable(t, tg)

		var kept []*sql.Stmt
		write := func(ids ...string) func(context.Context, store.Tx) error {
			return func(ctx context.Context, tx store.Tx) error {
				q, ok := sqlstore.TxQuerier(tx)
				if !ok {
					return fmt.Errorf("not a sqlstore transaction: %T", tx)
				}
				for _, id := range ids {
					st, err := q.PrepareContext(ctx, h.insert)
					if err != nil {
						return err
					}
					if len(kept) > 0 && kept[len(kept)-1] != st {
						return fmt.Errorf("a second statement for the same query in one transaction")
					}
					kept = append(kept, st)
					if _, err := st.ExecContext(ctx, id, "body of "+id); err != nil {
						return err
					}
				}
				return nil
			}
		}
		for round, ids := range [][]string{{"p1", "p2"}, {"p3"}} {
			kept = nil
			_, err := o.tr.RecordWith(ctx, write(ids...), grant(fmt.Sprintf("u%d", round), t0, time.Hour))
			require.NoError(t, err)
			require.Len(t, kept, len(ids))
			_, err = kept[0].ExecContext(ctx, "late", "after the transaction")
			// database/sql's own error for a closed statement (not that of
			// a connection the transaction gave back).
			require.ErrorContains(t, err, "statement is closed")
		}
		require.Equal(t, []string{"p1", "p2", "p3"}, h.ids(t, o))
	})
}

func TestTxQuerierOtherStore(t *testing.T) {
	err := memory.New(memory.Config{}).Update(context.Background(), func(tx store.Tx) error {
		q, ok := sqlstore.TxQuerier(tx)
		require.False(t, ok)
		require.Nil(t, q)
		return nil
	})
	require.NoError(t, err)
}
