package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// MeasureFootprint loads w into a fresh callready tracker on a memory
// store and splits its heap in use (HeapInuse after two collections, as
// Measure's BytesPerGrant):
//
//   - total: tracker + memory store, per grant;
//   - ledger: every ledger event of that store is copied (its strings
//     cloned) into an empty memory store through AppendEvent alone, so the
//     copy holds the ledger and nothing else; its heap per event. The
//     memory store's ledger encodes each event's strings, its contact
//     too, into bytes of its own, as the original's does: total minus
//     ledger still counts the contact string the pair and the index share;
//   - index: the tracker is closed, the store kept: what is freed is the
//     tracker's (its index), what stays is the store's.
func MeasureFootprint(ctx context.Context, w Workload) (Footprint, error) {
	f := nanFootprint()
	before := heapInuse()
	c, err := NewCallready(ctx, nil)
	if err != nil {
		return f, err
	}
	if err := c.Load(ctx, w); err != nil {
		c.Close()
		return f, err
	}
	total := heapInuse()
	mem := c.Store().(*memory.Store)
	f.TotalBytesPerGrant = Float((float64(total) - float64(before)) / float64(w.N))

	ledgerBytes, events, err := ledgerCopyHeap(ctx, mem)
	if err != nil {
		c.Close()
		return f, err
	}
	f.LedgerEvents = events
	f.LedgerBytesPerEvent = Float(ledgerBytes / float64(events))

	loaded := heapInuse() // as total, give or take the garbage of the copy
	c.tr.Close()
	c.tr = nil
	storeOnly := heapInuse()
	runtime.KeepAlive(mem)
	f.IndexBytesPerGrant = Float((float64(loaded) - float64(storeOnly)) / float64(w.N))
	f.StoreBytesPerGrant = Float((float64(storeOnly) - float64(before)) / float64(w.N))
	mem.Close()
	return f, nil
}

// ledgerCopyHeap copies src's ledger into a new memory store and returns
// the heap the copy holds and how many events it holds. It reads src in
// pages of 10,000 (garbage once appended, collected before the heap is
// read) and clones the strings of each event as it appends it, so the copy
// owns them.
func ledgerCopyHeap(ctx context.Context, src *memory.Store) (float64, int, error) {
	before := heapInuse()
	dst := memory.New(memory.Config{})
	for _, ch := range Channels() {
		q := store.LedgerQuery{Channel: ch, Limit: 10_000}
		for {
			evs, err := src.Ledger(ctx, q)
			if err != nil {
				return 0, 0, err
			}
			if len(evs) == 0 {
				break
			}
			if err := dst.Update(ctx, func(tx store.Tx) error {
				for _, e := range evs {
					e.Key.Contact = strings.Clone(e.Key.Contact)
					e.Dedupe = strings.Clone(e.Dedupe)
					e.ID = strings.Clone(e.ID)
					e.Context = strings.Clone(e.Context)
					if err := tx.AppendEvent(ctx, e); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return 0, 0, err
			}
			last := evs[len(evs)-1]
			q.After = store.LedgerCursor{At: last.At, Seq: last.Seq}
		}
	}
	after := heapInuse()
	n := dst.LedgerLen()
	if want := src.LedgerLen(); n != want {
		return 0, 0, fmt.Errorf("ledger copy holds %d events, want %d", n, want)
	}
	runtime.KeepAlive(dst)
	return float64(after) - float64(before), n, nil
}

// LedgerFootprint is what a ledger of N events takes on a SQL store.
type LedgerFootprint struct {
	Backend       string
	N             int // grants recorded
	Events        int64
	LedgerBytes   int64 // the ledger table and its indexes
	AllBytes      int64 // every callready table and index (ledger, pairs, changes, meta)
	BytesPerEvent Float
	AllPerGrant   Float
	Load          time.Duration
}

// MeasureSQLLedger records w into a callready tracker on store/sql
// (a fresh SQLite file in dir, or a fresh PostgreSQL schema) and reports
// the ledger's size on disk: SQLite's dbstat (pages of the ledger table
// and its indexes), PostgreSQL's pg_total_relation_size (table, indexes,
// TOAST) after VACUUM.
func MeasureSQLLedger(ctx context.Context, backend, dir, dsn string, w Workload) (LedgerFootprint, error) {
	f := LedgerFootprint{Backend: backend, N: w.N, BytesPerEvent: Float(math.NaN()), AllPerGrant: Float(math.NaN())}
	st, db, cleanup, err := openSQLStore(ctx, backend, dir, dsn)
	if err != nil {
		return f, err
	}
	defer cleanup()
	c, err := NewCallready(ctx, st)
	if err != nil {
		return f, err
	}
	t := time.Now()
	err = c.Load(ctx, w)
	f.Load = time.Since(t)
	c.Close()
	if err != nil {
		return f, err
	}
	prefix := st.TablePrefix()
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+prefix+"ledger").Scan(&f.Events); err != nil {
		return f, err
	}
	switch backend {
	case "sqlite":
		f.LedgerBytes, err = sqliteBytes(ctx, db, "tbl_name = '"+prefix+"ledger'")
		if err == nil {
			f.AllBytes, err = sqliteBytes(ctx, db, "tbl_name LIKE '"+prefix+"%'")
		}
	case "postgres":
		if _, err = db.ExecContext(ctx, "VACUUM "+prefix+"ledger"); err != nil {
			return f, err
		}
		err = db.QueryRowContext(ctx, "SELECT pg_total_relation_size('"+prefix+"ledger')").Scan(&f.LedgerBytes)
		if err == nil {
			schema, _, _ := strings.Cut(prefix, ".")
			err = db.QueryRowContext(ctx, `SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&f.AllBytes)
		}
	}
	if err != nil {
		return f, fmt.Errorf("%s: ledger size: %w", backend, err)
	}
	f.BytesPerEvent = Float(float64(f.LedgerBytes) / float64(f.Events))
	f.AllPerGrant = Float(float64(f.AllBytes) / float64(w.N))
	return f, nil
}

// sqliteBytes sums the pages dbstat reports for the tables and indexes
// sqlite_master rows matching where (WAL frames included: dbstat reads
// through the pager).
func sqliteBytes(ctx context.Context, db *sql.DB, where string) (int64, error) {
	var n sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE "+where+")").Scan(&n)
	return n.Int64, err
}
