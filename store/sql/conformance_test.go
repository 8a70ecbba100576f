package sqlstore_test

import (
	"github.com/callready/callready/internal/pgtest"

	"testing"

	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/storetest"
)

func TestConformanceSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return newSQLite(t, sqlstore.Config{}) })
}

func TestCompactionSQLite(t *testing.T) {
	t.Parallel()
	storetest.RunCompaction(t, 16, func(t *testing.T) store.Store { return newSQLite(t, sqlstore.Config{Retention: 16}) })
}

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newPostgres(t, sqlstore.Config{}) })
}

func TestCompactionPostgres(t *testing.T) {
	t.Parallel()
	storetest.RunCompaction(t, 16, func(t *testing.T) store.Store { return newPostgres(t, sqlstore.Config{Retention: 16}) })
}
