package pglisten_test

import (
	"context"
	"database/sql"
	"log"
	"os"

	"github.com/callready/callready/permission"
	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/store/sql/pglisten"
)

// Example wires one app instance: a sqlstore on PostgreSQL, wrapped so
// that the shared tracker is woken by NOTIFY. Every instance of the app
// runs the same code against the same database. (It has no output to
// check, so go test compiles it without running it; the package's tests
// exercise the same wiring against a real server.)
func Example() {
	ctx := context.Background()
	dsn := os.Getenv("DATABASE_URL") // postgres://user:pass@host:5432/db
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sq, err := sqlstore.Open(ctx, db, sqlstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	st, err := pglisten.New(ctx, sq, pglisten.Config{ConnString: dsn})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close() // also closes sq

	tr, err := permission.New(ctx, permission.Config{Store: st, Shared: true})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	tr.Start() // expiry loop and change-log follower

	// List, then watch: changes recorded by any instance arrive here.
	page, err := tr.Eligible(ctx, "106540352242922", permission.Query{})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := tr.Subscribe(permission.SubscribeOptions{Channel: "106540352242922", After: page.Revision})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err) // ErrResync or ErrLagged: list again
		}
		log.Println(c.Type, c.Entry.Contact)
	}
}
