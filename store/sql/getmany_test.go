package sqlstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/storetest"
)

// TestGetManyChunks reads more keys than one statement takes, mixing
// stored pairs, pairs put earlier in the transaction and absent ones.
func TestGetManyChunks(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var st *sqlstore.Store
			if kind == "sqlite" {
				st = newSQLite(t, sqlstore.Config{})
			} else {
				st = newPostgres(t, sqlstore.Config{})
			}
			ctx := context.Background()
			key := func(i int) store.Key {
				return store.Key{Channel: fmt.Sprintf("c%d", i%3), Contact: fmt.Sprintf("u%d", i)}
			}
			const n = 1100
			require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
				for i := 0; i < n; i += 2 { // even keys stored
					if err := tx.Put(ctx, key(i), storetest.SampleState(i)); err != nil {
						return err
					}
				}
				return nil
			}))
			require.NoError(t, st.Update(ctx, func(tx store.Tx) error {
				require.NoError(t, tx.Put(ctx, key(1), storetest.SampleState(7))) // odd 1: buffered
				keys := make([]store.Key, 0, n+1)
				for i := range n + 1 {
					keys = append(keys, key(i))
				}
				got, err := tx.(store.GetManyTx).GetMany(ctx, keys)
				require.NoError(t, err)
				require.Len(t, got, n/2+1)
				for i := 0; i < n; i += 2 {
					storetest.EqualState(t, storetest.SampleState(i), got[key(i)])
				}
				storetest.EqualState(t, storetest.SampleState(7), got[key(1)])
				return nil
			}))
		})
	}
}
