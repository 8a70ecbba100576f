package webhook_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/benbjohnson/clock"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/callready/callready/internal/pgtest"
	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

// sqlBackends run the fixtures through the signed handler into a tracker
// and a quarantine on SQLite and on PostgreSQL (skipped without
// CALLREADY_TEST_POSTGRES, required under CI).
var sqlBackends = map[string]func(t *testing.T) (*sql.DB, string){
	"sqlite": func(t *testing.T) (*sql.DB, string) {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "callready.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db, ""
	},
	"postgres": func(t *testing.T) (*sql.DB, string) {
		db, err := sql.Open("pgx", pgtest.DSN(t))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "wh_" + hex.EncodeToString(b[:])
		_, err = db.Exec("CREATE SCHEMA " + schema)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE") })
		return db, schema + ".callready_"
	},
}

func sqlBackend(newDB func(t *testing.T) (*sql.DB, string)) openBackend {
	return func(t *testing.T) (*permission.Tracker, webhook.Quarantine) {
		ctx := context.Background()
		db, prefix := newDB(t)
		st, err := sqlstore.Open(ctx, db, sqlstore.Config{TablePrefix: prefix})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		clk := clock.NewMock()
		clk.Set(now)
		tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr, st.Quarantine(webhook.QuarantineConfig{Clock: clk})
	}
}

func TestFixturesSQL(t *testing.T) {
	for name, newDB := range sqlBackends {
		t.Run(name, func(t *testing.T) {
			open := sqlBackend(newDB)
			t.Run("each", func(t *testing.T) { runFixtures(t, open) })
			t.Run("converge", func(t *testing.T) { runConverge(t, open, 1) })
		})
	}
}

// TestQuarantineSQL: the mixed body through the signed handler over HTTP:
// the good replies are recorded and the bad items are durable, raw.
func TestQuarantineSQL(t *testing.T) {
	for name, newDB := range sqlBackends {
		t.Run(name, func(t *testing.T) {
			tr, q := sqlBackend(newDB)(t)
			h := newHandler(t, webhook.Config{Recorder: tr, Quarantine: q})
			body := readFixture(t, "batch-quarantine-mixed.json")
			resp := webhooktest.Serve(h, secret, body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			items := quarantined(t, q)
			require.Len(t, items, 3)
			paths := map[string]string{}
			for _, it := range items {
				paths[it.Path] = it.Error
				assert.Contains(t, string(body), string(it.Raw), "raw as received")
				assert.Equal(t, now, it.ReceivedAt)
			}
			assert.Contains(t, paths["entry[0].changes[0].value.messages[1]"], "NUL")
			assert.Contains(t, paths["entry[0].changes[1].value.calls[0]"], `unknown call direction "PEER_TO_PEER"`)
			assert.Contains(t, paths["entry[0].changes[2].value"], "phone_number_id")
			assert.Len(t, list(t, tr, chanMain), 2)
		})
	}
}
