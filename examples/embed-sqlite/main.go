// Command embed-sqlite is the README's embedding example on SQLite: the
// same tracker, its state in a database file (callready.db in the working
// directory), so it survives restarts.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite", pure Go

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
)

func main() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:callready.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err := sqlstore.Open(ctx, db, sqlstore.Config{}) // creates or upgrades its tables (callready_*)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	tr, err := permission.New(ctx, permission.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	tr.Start()

	const channel = "106540352242922"
	_, err = tr.Record(ctx, permission.Event{
		Type: permission.EventGrant, Channel: channel, Contact: "34612345678",
		At: time.Now(), ID: "wamid.HBgL1", Permanent: true, // accepted a request for good
	})
	if err != nil {
		log.Fatal(err)
	}
	page, err := tr.Eligible(ctx, channel, permission.Query{Limit: 50})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Entries {
		fmt.Println(e.Contact, e.Kind, e.Source)
	}
}
