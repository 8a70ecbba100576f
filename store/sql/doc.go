// Package sqlstore is the durable store.Store adapter on database/sql, with
// two dialects: SQLite (the embedded default) and PostgreSQL (for several
// app instances on one database). It imports no driver: the host imports
// the one it wants and passes its *sql.DB to Open.
//
//	db, err := sql.Open("sqlite", "file:callready.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)")
//	...
//	st, err := sqlstore.Open(ctx, db, sqlstore.Config{})
//	tr, err := permission.New(ctx, permission.Config{Store: st})
//
// # Drivers and DSNs
//
// SQLite is tested with modernc.org/sqlite (pure Go, no cgo), driver name
// "sqlite". The recommended DSN is
//
//	file:PATH?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)
//
// Its pragmas apply to every connection of the pool:
//
//   - busy_timeout: another process writing the file makes a writer wait
//     up to 5 s instead of failing with SQLITE_BUSY at once. Writers of one
//     Store never contend: they queue on a mutex.
//   - journal_mode(WAL): readers (a tracker's rebuild, Changes) run while a
//     writer commits. Open also switches the file to WAL, which persists.
//   - synchronous(FULL): every commit is synced before it returns, so what
//     the tracker acknowledged survives a power loss too; the tracker's
//     group commit makes that one fsync per batch. NORMAL survives a crash
//     of the process only (a power loss may lose the last commits).
//   - foreign_keys(1): harmless for these tables; keeps a CRM's own tables
//     in the same file honest.
//   - temp_store(MEMORY): a statement that writes several rows keeps its
//     statement journal (what undoes that statement alone if it fails) in
//     memory rather than in a temporary file opened, written and deleted
//     per statement; a tenth more webhooks/s in the reference server here.
//     The journal is not part of durability: the WAL is.
//
// _txlock=immediate is not needed: the first statement of Update's
// transactions writes the meta row, which takes the write lock before
// anything is read, and migrations, ledger pruning and quarantine writes
// start with BEGIN IMMEDIATE, so a transaction never fails to upgrade
// from reader to writer. Any pool size works; SetMaxOpenConns(1) serializes reads behind
// writes but is correct. The write path's statements stay prepared on the
// *sql.DB (database/sql compiles each once per connection) until Close.
//
// PostgreSQL is tested with github.com/jackc/pgx/v5/stdlib, driver name
// "pgx", DSN postgres://user:pass@host:5432/db?sslmode=…; lib/pq works too.
// The store runs ANALYZE on its tables each time the ledger has doubled
// since the last ANALYZE it knows of (from 1,000 rows), in the background:
// a ledger growing from empty faster than autovacuum looks at it would
// otherwise be planned as an empty table (analyze.go).
//
// # Schema
//
// Table names carry Config.TablePrefix (default "callready_"), which may
// name a schema ("crm.callready_"):
//
//	callready_migrations  version BIGINT PRIMARY KEY, name TEXT
//	callready_meta        one row (id = 1): revision BIGINT, the last revision assigned
//	callready_pairs       PRIMARY KEY (channel, contact); one column per store.State field:
//	                      temporary_at, temporary_expires_at, temporary_source, temporary_event_id,
//	                      permanent_at, permanent_expires_at, permanent_source, permanent_event_id,
//	                      revoked_at, revoked_reason, revoked_event_id, expiry_noted,
//	                      activity (JSON text: [{"kind","id","at"}]), revision
//	callready_changes     revision PRIMARY KEY, type, channel, contact, at, kind, source,
//	                      granted_at, expires_at, calls_left, unanswered_streak
//
// Every time is a BIGINT of nanoseconds since the Unix epoch, in UTC, and
// NULL for the zero time.Time; instants outside 1678–2262 are refused. Times
// come from the caller only: no statement reads the database clock
// (CURRENT_TIMESTAMP, now()).
//
// # Transactions and revisions
//
// Update is one database transaction: the pair states and the change-log
// rows it writes commit together or not at all. Writes are buffered in the
// transaction and sent as a few multi-row statements before COMMIT.
//
// Each transaction starts by locking the meta row (SELECT … FOR UPDATE on
// PostgreSQL; on SQLite a no-op UPDATE of it, which takes the single write
// lock)
// and reads the last revision; its appends take the next ones and it
// stores the new maximum before committing. The next writer can only read
// the counter once the previous one committed, so revisions are positive,
// contiguous (a rollback gives its revisions back) and committed in
// increasing order — even across processes on one PostgreSQL. A reader
// following the log with "revision > last seen" therefore never skips a
// row, which a sequence or BIGSERIAL would not guarantee: their values
// commit out of order. A one-row counter was preferred to
// pg_advisory_xact_lock because it needs no lock-key namespace shared with
// the host, and it keeps the revision when the log is pruned. The cost is
// that writers on one database run one at a time, which group commit in
// permission.Tracker makes cheap.
//
// On PostgreSQL write transactions run at READ COMMITTED and Tx.Get reads
// with SELECT … FOR UPDATE; a serialization failure (SQLSTATE 40001) or
// deadlock (40P01), possible when the host adds its own writers, retries the
// whole transaction (Config.MaxRetries). Load reads every pair and the
// revision from one snapshot: a REPEATABLE READ, READ ONLY transaction on
// PostgreSQL, a single read transaction on SQLite.
//
// The change log keeps the newest Config.Retention rows: the transaction
// that appends past them deletes the oldest, and Changes before them
// returns store.ErrCompacted.
//
// Tx.GetMany (store.GetManyTx) reads a whole batch of pairs with one
// SELECT per 512 keys: on PostgreSQL one LIMIT 1 … FOR UPDATE lookup per
// key, LATERAL to a VALUES list, so that no plan made on stale statistics
// scans a channel; on SQLite a WHERE (channel, contact) IN (…), without
// FOR UPDATE, the write transaction being exclusive already.
//
// # Change notifications
//
// Store implements store.Notifier by polling the meta row every
// Config.PollInterval, which also sees other processes' commits: enough
// for several trackers on one SQLite file, and the fallback everywhere.
//
// On PostgreSQL every transaction that appends changes also runs
// SELECT pg_notify(channel, last revision as decimal text) in the same
// transaction: the server delivers it at commit, in commit order, and never
// for rolled-back work. The channel is Store.NotifyChannel, derived from
// the table prefix ("callready_" → "callready_changes"; schema-qualified or
// long prefixes get a hash suffix, so it stays an identifier of at most 63
// bytes). Package pglisten LISTENs on it with pgx and implements Wait with
// it; a notification is only a hint to read the log, which stays the truth.
//
// # Migrations
//
// Open runs the migrations it has not yet applied, in one transaction,
// serialized between instances that start together (an advisory
// transaction lock on PostgreSQL, BEGIN IMMEDIATE on SQLite); it refuses a
// schema newer than it knows. Hosts that run migrations with their own
// tool get the statements from Migrations (or Migration.SQL) — each
// migration ends by recording its version in the migrations table — and
// open the Store with Config.SkipMigrations, which checks the version
// instead. Store.Migrate runs them on demand.
package sqlstore
