package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/callready/callready/store"
)

func TestPow2Chunks(t *testing.T) {
	for n := range 1100 {
		in := make([]int, n)
		for i := range in {
			in[i] = i
		}
		out := []int{}
		prev := 512
		for c := range pow2Chunks(in, 512) {
			require.Equal(t, 1, bits.OnesCount(uint(len(c))), "n=%d: chunk of %d", n, len(c))
			require.LessOrEqual(t, len(c), prev, "n=%d: chunks grow", n)
			prev = len(c)
			out = append(out, c...)
		}
		require.Equal(t, in, out, "n=%d", n)
	}
}

// sqliteFile opens a fresh SQLite file, with a context bounding the test.
func sqliteFile(t *testing.T) (context.Context, *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db")+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return ctx, db
}

// TestWritesStayPrepared checks that a SQLite write prepares what it ran
// once it committed, that the same write then finds everything prepared,
// on a pool of a single connection (the transaction holds it while it
// runs), and that Close empties the cache.
func TestWritesStayPrepared(t *testing.T) {
	ctx, db := sqliteFile(t)
	db.SetMaxOpenConns(1)
	s, err := Open(ctx, db, Config{})
	require.NoError(t, err)

	write := func(round int) {
		t.Helper()
		err := s.Update(ctx, func(tx store.Tx) error {
			var keys []store.Key
			var refs []store.EventRef
			for i := range 5 {
				k := store.Key{Channel: "ch", Contact: fmt.Sprintf("c%d-%d", round, i)}
				keys = append(keys, k)
				refs = append(refs, store.EventRef{Channel: k.Channel, Dedupe: k.Contact})
			}
			if _, err := tx.Known(ctx, refs); err != nil {
				return err
			}
			if _, err := tx.(store.GetManyTx).GetMany(ctx, keys); err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.AppendEvent(ctx, store.LedgerEvent{Key: k, Dedupe: k.Contact, Type: "grant", At: time.Unix(1, 0), RecordedAt: time.Unix(1, 0)}); err != nil {
					return err
				}
				if _, err := tx.Append(ctx, store.Change{Type: "granted", Key: k, At: time.Unix(1, 0)}); err != nil {
					return err
				}
				if err := tx.Put(ctx, k, store.State{Data: []byte("x")}); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	cached := func() []string {
		s.stmts.mu.Lock()
		defer s.stmts.mu.Unlock()
		var qs []string
		for q := range s.stmts.stmts {
			qs = append(qs, q)
		}
		slices.Sort(qs)
		return qs
	}

	write(0)
	first := cached()
	require.Contains(t, first, s.qMetaLock)
	require.Contains(t, first, s.qMetaSet)
	// 5 rows of each kind: chunks of 4 and 1, and the Known and GetMany
	// reads of the same sizes.
	for _, q := range []string{
		insertSQL(SQLite, s.prefix+"ledger", ledgerCols, numLedgerCols, 4, ledgerConflict),
		insertSQL(SQLite, s.prefix+"changes", changeCols, numChangeCols, 1, ""),
		insertSQL(SQLite, s.prefix+"pairs", pairCols, numPairCols, 4, upsertPairs),
	} {
		require.Contains(t, first, q)
	}
	write(1)
	require.Equal(t, first, cached(), "the same write prepared nothing new")

	// A bulk write's large statements are not kept.
	bulk := insertSQL(SQLite, s.prefix+"ledger", ledgerCols, numLedgerCols, 512, ledgerConflict)
	s.stmts.prepare(ctx, []string{bulk})
	require.NotContains(t, cached(), bulk)

	got, err := s.Get(ctx, store.Key{Channel: "ch", Contact: "c1-4"})
	require.NoError(t, err)
	require.Equal(t, "x", string(got.Data))

	require.NoError(t, s.Close())
	require.Empty(t, cached())
}

// TestCloseWaitsForTheWrite: Close does not close the cached statements
// under a write in flight; it waits for it, and the write commits.
func TestCloseWaitsForTheWrite(t *testing.T) {
	ctx, db := sqliteFile(t)
	s, err := Open(ctx, db, Config{})
	require.NoError(t, err)
	put := func(tx store.Tx, contact string) error {
		return tx.Put(ctx, store.Key{Channel: "ch", Contact: contact}, store.State{Data: []byte("x")})
	}
	require.NoError(t, s.Update(ctx, func(tx store.Tx) error { return put(tx, "a") })) // the statements are cached

	inside, release := make(chan struct{}), make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		wrote <- s.Update(ctx, func(tx store.Tx) error {
			close(inside)
			<-release
			return put(tx, "b")
		})
	}()
	<-inside
	closed := make(chan struct{})
	go func() {
		_ = s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a write was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-wrote)
	<-closed

	s2, err := Open(ctx, db, Config{})
	require.NoError(t, err)
	defer s2.Close()
	got, err := s2.Get(ctx, store.Key{Channel: "ch", Contact: "b"})
	require.NoError(t, err)
	require.Equal(t, "x", string(got.Data))
}
