// Package pglisten turns PostgreSQL's LISTEN/NOTIFY into the change feed of
// a sqlstore.Store, so several app instances on one database see each
// other's changes within milliseconds instead of a polling interval.
//
// It is the only package of callready that imports pgx directly; hosts on
// plain database/sql (or SQLite) never import it and keep sqlstore's
// polling Wait.
//
//	db, _ := sql.Open("pgx", dsn)
//	sq, err := sqlstore.Open(ctx, db, sqlstore.Config{})
//	st, err := pglisten.New(ctx, sq, pglisten.Config{ConnString: dsn})
//	defer st.Close()
//	tr, err := permission.New(ctx, permission.Config{Store: st, Shared: true})
//	tr.Start()
//
// # How it works
//
// Every sqlstore transaction that appends changes on PostgreSQL also runs
// SELECT pg_notify(channel, last revision) (channel:
// sqlstore.Store.NotifyChannel), which the server delivers at commit and
// never for a rolled-back transaction. Store holds one dedicated pgx
// connection that LISTENs on that channel and remembers the greatest
// revision announced; Wait (store.Notifier) returns as soon as it is above
// the caller's. The notification is only a wake-up hint: the tracker then
// reads the change log, whose revisions are gap-free and commit-ordered
// (see package sqlstore), so nothing is skipped even if notifications
// arrive late, merged or not at all.
//
// # Connection loss
//
// When the listening connection fails, Store reconnects in the background
// with exponential backoff (Config.MinBackoff doubling up to
// Config.MaxBackoff). Notifications sent while it was disconnected are
// lost, so after every connection it reads the latest revision and wakes
// every waiter, and the tracker catches up from the log. A connection that
// stays quiet for Config.HealthInterval is pinged, so one dropped silently
// is noticed. While disconnected, Wait blocks; permission.Config.PollInterval
// bounds each Wait, so a shared tracker still polls the log meanwhile.
//
// # Lifecycle
//
// Close stops the listener, waits for its goroutine and closes the wrapped
// sqlstore.Store (not its *sql.DB).
package pglisten
