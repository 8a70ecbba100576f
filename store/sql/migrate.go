package sqlstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
)

// Migration is one versioned step of the schema. Its statements run in
// order inside one transaction; the last one records Version in the
// migrations table, so a host that runs them from its own migration tool
// leaves the database in the state Open expects.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// SQL returns the statements as one script, each ended by a semicolon.
func (m Migration) SQL() string {
	var b strings.Builder
	for _, s := range m.Statements {
		b.WriteString(s)
		b.WriteString(";\n")
	}
	return b.String()
}

// prefixRE accepts an optional schema qualifier and a table-name prefix
// made of identifier characters: "callready_", "crm.callready_", "crm.".
var prefixRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?([A-Za-z_][A-Za-z0-9_]{0,52})?$`)

func checkPrefix(prefix string) (string, error) {
	if prefix == "" {
		return DefaultTablePrefix, nil
	}
	if !prefixRE.MatchString(prefix) {
		return "", fmt.Errorf("sqlstore: invalid TablePrefix %q: want letters, digits and underscores, optionally after a schema name and a dot", prefix)
	}
	return prefix, nil
}

// Migrations returns the schema migrations for a dialect and table prefix
// ("" means DefaultTablePrefix), by increasing Version.
//
// Versions may have gaps, and a version may be added below the highest
// one later (a migration developed on a branch): Migrate applies every
// version the database lacks, in increasing order, so each migration must
// stand on its own migrations below it only, never on a higher one. Open runs them (see
// Store.Migrate); a host that manages its schema with its own tool can run
// Migration.SQL instead and open the Store with Config.SkipMigrations.
func Migrations(d Dialect, prefix string) ([]Migration, error) {
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("sqlstore: Migrations needs an explicit dialect, got %q", d)
	}
	p, err := checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	changesKey, pairsTail := "revision BIGINT PRIMARY KEY", ")"
	if d == SQLite {
		// INTEGER PRIMARY KEY is the rowid itself; WITHOUT ROWID keeps pairs
		// in their primary-key b-tree instead of a table plus an index.
		changesKey, pairsTail = "revision INTEGER PRIMARY KEY", ") WITHOUT ROWID"
	}
	migs := []Migration{{
		Version: 1,
		Name:    "initial schema",
		Statements: []string{
			createMigrations(p),
			// The one-row counter of change-log revisions. Appenders lock
			// this row until they commit, which makes revisions commit in
			// increasing order (see doc.go).
			`CREATE TABLE ` + p + `meta (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	revision BIGINT NOT NULL
)`,
			`INSERT INTO ` + p + `meta (id, revision) VALUES (1, 0)`,
			// Times are BIGINT nanoseconds since the Unix epoch (UTC), NULL
			// for the zero time.
			`CREATE TABLE ` + p + `pairs (
	channel TEXT NOT NULL,
	contact TEXT NOT NULL,
	temporary_at BIGINT,
	temporary_expires_at BIGINT,
	temporary_source TEXT NOT NULL DEFAULT '',
	temporary_event_id TEXT NOT NULL DEFAULT '',
	permanent_at BIGINT,
	permanent_expires_at BIGINT,
	permanent_source TEXT NOT NULL DEFAULT '',
	permanent_event_id TEXT NOT NULL DEFAULT '',
	revoked_at BIGINT,
	revoked_reason TEXT NOT NULL DEFAULT '',
	revoked_event_id TEXT NOT NULL DEFAULT '',
	expiry_noted BIGINT,
	activity TEXT,
	revision BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (channel, contact)
` + pairsTail,
			`CREATE TABLE ` + p + `changes (
	` + changesKey + `,
	type TEXT NOT NULL,
	channel TEXT NOT NULL,
	contact TEXT NOT NULL,
	at BIGINT,
	kind TEXT NOT NULL DEFAULT '',
	source TEXT NOT NULL DEFAULT '',
	granted_at BIGINT,
	expires_at BIGINT,
	calls_left INTEGER NOT NULL DEFAULT 0,
	unanswered_streak INTEGER NOT NULL DEFAULT 0
)`,
			`INSERT INTO ` + p + `migrations (version, name) VALUES (1, 'initial schema')`,
		},
	}}
	return append(migs, quarantineMigration(d, p)), nil
}

func createMigrations(p string) string {
	return `CREATE TABLE IF NOT EXISTS ` + p + `migrations (
	version BIGINT PRIMARY KEY,
	name TEXT NOT NULL
)`
}

// Migrate brings the schema up to date in one transaction. Concurrent
// callers (several instances starting at once) are serialized: by an
// advisory transaction lock on PostgreSQL, by BEGIN IMMEDIATE on SQLite.
// It fails if the database holds a newer schema than this package knows.
func (s *Store) Migrate(ctx context.Context) error {
	migs, err := Migrations(s.dialect, s.prefix)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(q querier) error {
		if s.dialect == Postgres {
			h := fnv.New64a()
			h.Write([]byte("callready migrations " + s.prefix))
			if _, err := q.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
				return fmt.Errorf("sqlstore: migration lock: %w", err)
			}
		}
		if _, err := q.ExecContext(ctx, createMigrations(s.prefix)); err != nil {
			return fmt.Errorf("sqlstore: creating %smigrations: %w", s.prefix, err)
		}
		applied, err := appliedVersions(ctx, q, s.prefix)
		if err != nil {
			return err
		}
		if err := unknownVersions(applied, migs); err != nil {
			return err
		}
		for _, m := range migs {
			if applied[m.Version] {
				continue
			}
			for _, stmt := range m.Statements {
				if _, err := q.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("sqlstore: migration %d (%s): %w", m.Version, m.Name, err)
				}
			}
		}
		return nil
	})
}

// appliedVersions reads the versions recorded in the migrations table.
func appliedVersions(ctx context.Context, q querier, prefix string) (map[int]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT version FROM "+prefix+"migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading the schema version: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("sqlstore: reading the schema version: %w", err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: reading the schema version: %w", err)
	}
	return applied, nil
}

// unknownVersions refuses a database holding a migration this package does
// not know: a newer schema.
func unknownVersions(applied map[int]bool, migs []Migration) error {
	known := map[int]bool{}
	for _, m := range migs {
		known[m.Version] = true
	}
	for v := range applied {
		if !known[v] {
			return fmt.Errorf("sqlstore: schema version %d is newer than this package supports (%d)", v, migs[len(migs)-1].Version)
		}
	}
	return nil
}

// checkSchema verifies, for Config.SkipMigrations, that the host has run
// every migration.
func (s *Store) checkSchema(ctx context.Context) error {
	migs, err := Migrations(s.dialect, s.prefix)
	if err != nil {
		return err
	}
	applied, err := appliedVersions(ctx, s.db, s.prefix)
	if err != nil {
		return err
	}
	if err := unknownVersions(applied, migs); err != nil {
		return err
	}
	for _, m := range migs {
		if !applied[m.Version] {
			return fmt.Errorf("sqlstore: migration %d (%s) has not run: run the migrations (Migrations, Store.Migrate)", m.Version, m.Name)
		}
	}
	return nil
}
