package sqlstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A ledger that grows from empty faster than autovacuum looks at it (its
// naptime is a minute, and it analyzes a table that grew by a tenth) keeps
// the statistics of an empty table meanwhile, and PostgreSQL plans the
// dedupe and pair lookups for that: the first tens of thousands of
// webhooks into a new database read a channel's whole ledger per batch
// instead of probing the unique index. So on PostgreSQL the store runs
// ANALYZE on its tables itself each time the ledger has doubled since
// the last it knows of, from analyzeFrom rows on: about twenty times up
// to a billion rows, each in the background, off the write path.
const analyzeFrom = 1000

// analyzer tracks the ledger rows this Store wrote since its last ANALYZE.
type analyzer struct {
	rows     atomic.Int64 // ledger rows as of the last ANALYZE (or Open) plus those written since
	analyzed atomic.Int64 // ledger rows at the last ANALYZE (or Open)
	running  atomic.Bool
	wg       sync.WaitGroup
}

// startAnalyzer reads the ledger's row estimate, as of the last ANALYZE
// anyone ran.
func (s *Store) startAnalyzer(ctx context.Context) error {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(GREATEST(reltuples, 0))::BIGINT, 0) FROM pg_class WHERE oid = to_regclass($1)`,
		s.prefix+"ledger").Scan(&n)
	if err != nil {
		return err
	}
	s.an.rows.Store(n)
	s.an.analyzed.Store(n)
	return nil
}

// wrote counts n ledger rows committed, and starts an ANALYZE when the
// ledger doubled.
func (s *Store) wrote(n int) {
	if s.dialect != Postgres || n == 0 {
		return
	}
	rows := s.an.rows.Add(int64(n))
	if rows < max(analyzeFrom, 2*s.an.analyzed.Load()) || !s.an.running.CompareAndSwap(false, true) {
		return
	}
	s.an.wg.Add(1)
	go func() {
		defer s.an.wg.Done()
		defer s.an.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		p := s.prefix
		if _, err := s.db.ExecContext(ctx, "ANALYZE "+p+"ledger, "+p+"pairs, "+p+"changes"); err == nil {
			s.an.analyzed.Store(rows)
		}
	}()
}
