package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/clock"
	_ "modernc.org/sqlite"

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
)

// Durable call permissions in an embedded SQLite file: record a grant,
// restart, and the tracker still knows who is callable.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "callready-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "callready.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"

	// A mock clock keeps the output stable; production code leaves Clock nil.
	clk := clock.NewMock()
	clk.Set(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))

	open := func() (*sql.DB, *permission.Tracker) {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			log.Fatal(err)
		}
		st, err := sqlstore.Open(ctx, db, sqlstore.Config{})
		if err != nil {
			log.Fatal(err)
		}
		tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
		if err != nil {
			log.Fatal(err)
		}
		return db, tr
	}

	db, tr := open()
	changes, err := tr.Record(ctx, permission.Event{
		Type: permission.EventGrant, Channel: "106540352242922", Contact: "16505551234",
		At: clk.Now(), ID: "wamid.HBgLMTY1MDU1NTEyMzQ",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded:", changes[0].Type, "revision", changes[0].Revision)
	tr.Close()
	db.Close()

	// Later, in a new process.
	clk.Add(time.Hour)
	db, tr = open()
	defer db.Close()
	defer tr.Close()
	page, err := tr.Eligible(ctx, "106540352242922", permission.Query{})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Entries {
		fmt.Println("callable:", e.Contact, e.Kind, "until", e.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Println("revision:", page.Revision)
	// Output:
	// recorded: granted revision 1
	// callable: 16505551234 temporary until 2026-01-12T09:00:00Z
	// revision: 1
}
