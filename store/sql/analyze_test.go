package sqlstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
)

// On PostgreSQL the store analyzes its tables as the ledger doubles, from
// a thousand rows: a fresh ledger gets statistics long before autovacuum
// would look at it.
func TestPostgresAnalyzesAsTheLedgerGrows(t *testing.T) {
	s := newPostgres(t, sqlstore.Config{})
	ctx := context.Background()
	analyzed := func() (n int64) {
		err := postgresDB(t).QueryRowContext(ctx, `SELECT COALESCE(analyze_count, 0) FROM pg_stat_user_tables WHERE relid = to_regclass($1)`,
			s.TablePrefix()+"ledger").Scan(&n)
		require.NoError(t, err)
		return n
	}
	write := func(from, n int) {
		require.NoError(t, s.Update(ctx, func(tx store.Tx) error {
			for i := from; i < from+n; i++ {
				k := store.Key{Channel: "c", Contact: strconv.Itoa(i)}
				if err := tx.AppendEvent(ctx, store.LedgerEvent{Key: k, Dedupe: k.Contact, Type: "grant", At: time.Unix(int64(i), 0), RecordedAt: time.Unix(1, 0)}); err != nil {
					return err
				}
			}
			return nil
		}))
		sqlstore.WaitAnalyze(s) // the ANALYZE the write started, if any
	}
	write(0, 999)
	require.Zero(t, analyzed(), "under a thousand rows: autovacuum's business")
	write(999, 1)
	require.Equal(t, int64(1), analyzed())
	var tuples float64
	require.NoError(t, postgresDB(t).QueryRowContext(ctx, `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, s.TablePrefix()+"ledger").Scan(&tuples))
	require.Equal(t, 1000.0, tuples)
	write(1000, 900)
	require.Equal(t, int64(1), analyzed(), "not doubled yet")
	write(1900, 100)
	require.Equal(t, int64(2), analyzed())

	// A store opened on the analyzed ledger starts from its size.
	again, err := sqlstore.Open(ctx, postgresDB(t), sqlstore.Config{TablePrefix: s.TablePrefix()})
	require.NoError(t, err)
	defer again.Close()
	require.NoError(t, again.Update(ctx, func(tx store.Tx) error {
		return tx.AppendEvent(ctx, store.LedgerEvent{Key: store.Key{Channel: "c", Contact: "x"}, Dedupe: "x", Type: "grant", At: time.Unix(1, 0), RecordedAt: time.Unix(1, 0)})
	}))
	sqlstore.WaitAnalyze(again)
	require.Equal(t, int64(2), analyzed(), "2,001 rows: not twice the 2,000 it opened on")
}
