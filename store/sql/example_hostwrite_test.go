package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/clock"
	_ "modernc.org/sqlite"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store"
	sqlstore "github.com/callready/callready/store/sql"
)

// A CRM's own row (the chat line of a permission reply) written in the
// tracker's transaction: it commits with the event, in the group commit
// concurrent webhooks share, or not at all.
func ExampleTxQuerier() {
	ctx := context.Background()
	db, st, done := crmDB(ctx)
	defer done()
	clk := clock.NewMock()
	clk.Set(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	chatLine := func(id, line string) permission.HostWrite {
		return func(ctx context.Context, tx store.Tx) error {
			q, ok := sqlstore.TxQuerier(tx)
			if !ok {
				return errors.New("not a SQL store")
			}
			_, err := q.ExecContext(ctx, `INSERT INTO crm_chat (id, line) VALUES (?, ?)`, id, line)
			return err
		}
	}
	grant := permission.Event{
		Type: permission.EventGrant, Channel: "106540352242922", Contact: "16505551234",
		At: clk.Now(), ID: "wamid.HBgLMTY1MDU1NTEyMzQ",
	}
	changes, err := tr.RecordWith(ctx, chatLine("wamid.HBgLMTY1MDU1NTEyMzQ", "Accepted the call permission request"), grant)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded:", changes[0].Type)

	// The same chat id again: the row fails, and the grant recorded with
	// it is not kept either.
	other := grant
	other.Contact, other.ID = "447700900123", "wamid.HBgMNDQ3NzAwOTAwMTIz"
	_, err = tr.RecordWith(ctx, chatLine("wamid.HBgLMTY1MDU1NTEyMzQ", "duplicate"), other)
	fmt.Println("failed:", err != nil)

	printCounts(ctx, db, tr)
	// Output:
	// recorded: granted
	// failed: true
	// chat lines: 1 callable: 1
}

// Chat lines as rows that Config.HostRows writes for the whole group
// commit: concurrent webhooks' lines go in one multi-row INSERT, and a
// line that fails costs only its own call.
func Example_hostRows() {
	ctx := context.Background()
	db, st, done := crmDB(ctx)
	defer done()

	type chatLine struct{ id, line string }
	writeLines := func(ctx context.Context, tx store.Tx, rows []any) error {
		q, ok := sqlstore.TxQuerier(tx)
		if !ok {
			return errors.New("not a SQL store")
		}
		query, args := `INSERT INTO crm_chat (id, line) VALUES `, []any{}
		for i, r := range rows {
			if i > 0 {
				query += ", "
			}
			query += "(?, ?)"
			args = append(args, r.(chatLine).id, r.(chatLine).line)
		}
		_, err := q.ExecContext(ctx, query, args...)
		return err
	}
	clk := clock.NewMock()
	clk.Set(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	tr, err := permission.New(ctx, permission.Config{Store: st, Clock: clk, HostRows: writeLines})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	grant := permission.Event{
		Type: permission.EventGrant, Channel: "106540352242922", Contact: "16505551234",
		At: clk.Now(), ID: "wamid.HBgLMTY1MDU1NTEyMzQ",
	}
	_, err = tr.RecordRows(ctx, chatLine{grant.ID, "Accepted the call permission request"}, grant)
	fmt.Println("recorded:", err == nil)
	other := grant
	other.Contact, other.ID = "447700900123", "wamid.HBgMNDQ3NzAwOTAwMTIz"
	_, err = tr.RecordRows(ctx, chatLine{grant.ID, "duplicate id"}, other)
	fmt.Println("failed:", err != nil)

	printCounts(ctx, db, tr)
	// Output:
	// recorded: true
	// failed: true
	// chat lines: 1 callable: 1
}

// crmDB opens a CRM's SQLite file in a temporary directory, with a chat
// table of the CRM's and a callready store in it; done removes them.
func crmDB(ctx context.Context) (db *sql.DB, st *sqlstore.Store, done func()) {
	dir, err := os.MkdirTemp("", "callready-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "crm.db")+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE crm_chat (id TEXT PRIMARY KEY, line TEXT NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	st, err = sqlstore.Open(ctx, db, sqlstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	return db, st, func() {
		st.Close()
		db.Close()
		os.RemoveAll(dir)
	}
}

// printCounts prints the chat lines the CRM holds and the contacts
// callable on the examples' channel.
func printCounts(ctx context.Context, db *sql.DB, tr *permission.Tracker) {
	var lines int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM crm_chat`).Scan(&lines); err != nil {
		log.Fatal(err)
	}
	page, err := tr.Eligible(ctx, "106540352242922", permission.Query{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("chat lines:", lines, "callable:", len(page.Entries))
}
