package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"
)

// Kinds of Impl, in report order.
const (
	KindCallready = "callready"
	KindPreLedger = "callready-v1" // callready before the ledger (PreLedger)
	KindTTLCache  = "ttlcache"
	KindMap       = "map+scan"
	KindSQLite    = "sqlite"
	KindPostgres  = "postgres"     // database/sql with pgx's stdlib driver
	KindPgx       = "postgres-pgx" // pgx's native interface
)

// Kinds lists every Impl kind.
func Kinds() []string {
	return []string{KindCallready, KindPreLedger, KindTTLCache, KindMap, KindSQLite, KindPostgres, KindPgx}
}

// CursorPreparer is an Impl whose cursors are opaque: PrepareCursors gets,
// untimed, the cursor that continues after each page's After row, before
// Page is called with those rows.
type CursorPreparer interface {
	PrepareCursors(ctx context.Context, pages []DeepPage, now time.Time) error
}

// NeedsPostgres reports whether the kind needs CALLREADY_TEST_POSTGRES.
func NeedsPostgres(kind string) bool { return kind == KindPostgres || kind == KindPgx }

// InProcess reports whether the kind keeps its state in the Go heap (so
// that memory per grant is measurable as heap in use).
func InProcess(kind string) bool {
	return kind == KindCallready || kind == KindPreLedger || kind == KindTTLCache || kind == KindMap
}

// NewImpl returns an empty Impl of kind. forExpiry selects ttlcache's due
// mode (see TTLCache). dir holds SQLite files, dsn is PostgreSQL's.
func NewImpl(ctx context.Context, kind string, forExpiry bool, dir, dsn string) (Impl, error) {
	switch kind {
	case KindCallready:
		return NewCallready(ctx, nil)
	case KindPreLedger:
		return NewPreLedger(ctx)
	case KindTTLCache:
		return NewTTLCache(forExpiry), nil
	case KindMap:
		return NewMapScan(), nil
	case KindSQLite:
		return NewSQLiteTable(ctx, dir)
	case KindPostgres, KindPgx:
		if dsn == "" {
			return nil, fmt.Errorf("%s: %s is not set", kind, EnvPostgres)
		}
		if kind == KindPgx {
			return NewPgxTable(ctx, dsn)
		}
		return NewPostgresTable(ctx, dsn)
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// Options bound one Measure call.
type Options struct {
	Dir, DSN string
	// Page calls: at least MinCalls, then more until MaxCalls or Budget.
	MinCalls, MaxCalls int
	Budget             time.Duration
	SkipExpire         bool
	SkipFootprint      bool // callready: no second load to split its heap
}

// Float is a float64 that encodes NaN (not measured) as JSON null.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// DeepPageCount is how many distinct random-cursor pages a measurement
// cycles through.
const DeepPageCount = 4096

// Result is what Measure measured for one kind at one size.
type Result struct {
	Kind          string
	N             int
	Load          time.Duration
	BytesPerGrant Float // heap in use per grant after the load; NaN when not in process
	// Pages of PageSize: the first page of the hot channel (as issue 8
	// measured), first pages with the channels rotating, and pages at a
	// pseudo-random cursor with the channels rotating (Workload.DeepPages).
	PageMedian, PageP99         time.Duration
	PageCalls                   int
	FirstRotMedian, FirstRotP99 time.Duration
	FirstRotCalls               int
	DeepMedian, DeepP99         time.Duration
	DeepCalls                   int
	// The first page of the hot channel listed into a new slice per page
	// (FreshPager: callready's Eligible; zero for other kinds).
	NewSliceMedian, NewSliceP99 time.Duration
	// Records: new contacts (RecordGrant), then re-grants of loaded
	// contacts (Workload.Regrant), both with pseudo-random expiries.
	RecordMedian, RecordP99   time.Duration
	Records                   int
	RegrantMedian, RegrantP99 time.Duration
	Regrants                  int
	Expire                    time.Duration // expiry of every due grant, events delivered
	Expired                   int
	// callready only (NaN otherwise), from a second load of the same
	// workload (MeasureFootprint).
	Footprint Footprint
}

// Footprint splits callready's heap: the tracker's index and its memory
// store per grant, and the memory store's ledger per event.
type Footprint struct {
	TotalBytesPerGrant  Float // tracker + memory store (the second load's BytesPerGrant)
	IndexBytesPerGrant  Float // the tracker (its index): total minus what stays after Close
	StoreBytesPerGrant  Float // the memory store: pair states, change log, ledger
	LedgerBytesPerEvent Float // a memory store holding only the same ledger events
	LedgerEvents        int
}

func nanFootprint() Footprint {
	n := Float(math.NaN())
	return Footprint{n, n, n, n, 0}
}

// heapInuse returns HeapInuse after two collections.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Percentile returns the p-quantile (0..1) of sorted durations, nearest rank.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// collect runs a garbage collection before a timed phase, as go test
// -bench does before each benchmark: a phase then pays for the collections
// its own allocations cause, not for the garbage earlier phases left.
func collect() { runtime.GC() }

// timeCalls runs fn at least minCalls times, then until maxCalls calls or
// budget, and returns the sorted per-call latencies.
func timeCalls(minCalls, maxCalls int, budget time.Duration, fn func(i int) error) ([]time.Duration, error) {
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < maxCalls && (i < minCalls || time.Since(start) < budget); i++ {
		t := time.Now()
		if err := fn(i); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return lat, nil
}

// Measure loads w into a fresh Impl of kind and measures, in order: load
// time and heap in use per grant; callable pages of the hot channel; single
// records of new grants; and the expiry of every loaded grant with events
// delivered (on a second, due-mode instance for ttlcache).
func Measure(ctx context.Context, kind string, w Workload, o Options) (Result, error) {
	r := Result{Kind: kind, N: w.N, BytesPerGrant: Float(math.NaN()), Footprint: nanFootprint()}
	inProc := InProcess(kind)
	deep := w.DeepPages(DeepPageCount)
	var before uint64
	if inProc {
		before = heapInuse()
	}
	impl, err := NewImpl(ctx, kind, false, o.Dir, o.DSN)
	if err != nil {
		return r, err
	}
	defer func() {
		if impl != nil {
			impl.Close()
		}
	}()
	t := time.Now()
	if err := impl.Load(ctx, w); err != nil {
		return r, fmt.Errorf("%s: load: %w", kind, err)
	}
	r.Load = time.Since(t)
	if inProc {
		after := heapInuse()
		r.BytesPerGrant = Float((float64(after) - float64(before)) / float64(w.N))
		runtime.KeepAlive(impl)
	}

	now := PageNow()
	chs := Channels()
	perChannel := w.PerChannel()
	wantRows := func(ch string) int { return min(PageSize, perChannel[ch]) }
	page := func(ch string, after *Row, want int) error {
		rows, err := impl.Page(ctx, ch, now, after)
		if err == nil && len(rows) < want {
			err = fmt.Errorf("page of %s: %d rows, want %d", ch, len(rows), want)
		}
		return err
	}
	if c, ok := impl.(CursorPreparer); ok && len(deep) > 0 {
		if err := c.PrepareCursors(ctx, deep, now); err != nil {
			return r, err
		}
	}
	for range 3 { // warm up
		if err := page(HotChannel, nil, 0); err != nil {
			return r, fmt.Errorf("%s: page: %w", kind, err)
		}
	}
	collect()
	lat, err := timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(int) error { return page(HotChannel, nil, wantRows(HotChannel)) })
	if err != nil {
		return r, fmt.Errorf("%s: page: %w", kind, err)
	}
	r.PageMedian, r.PageP99, r.PageCalls = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	if fp, ok := impl.(FreshPager); ok {
		collect()
		lat, err = timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(int) error {
			rows, err := fp.PageNewSlice(ctx, HotChannel, now, nil)
			if err == nil && len(rows) < wantRows(HotChannel) {
				err = fmt.Errorf("page of %s: %d rows", HotChannel, len(rows))
			}
			return err
		})
		if err != nil {
			return r, fmt.Errorf("%s: page into a new slice: %w", kind, err)
		}
		r.NewSliceMedian, r.NewSliceP99 = Percentile(lat, 0.5), Percentile(lat, 0.99)
	}
	collect()
	lat, err = timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(i int) error {
		ch := chs[i%len(chs)]
		return page(ch, nil, wantRows(ch))
	})
	if err != nil {
		return r, fmt.Errorf("%s: page, channels rotating: %w", kind, err)
	}
	r.FirstRotMedian, r.FirstRotP99, r.FirstRotCalls = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	if len(deep) > 0 {
		collect()
		lat, err = timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(i int) error {
			d := deep[i%len(deep)]
			return page(d.Channel, &d.After, PageSize)
		})
		if err != nil {
			return r, fmt.Errorf("%s: page at a cursor: %w", kind, err)
		}
		r.DeepMedian, r.DeepP99, r.DeepCalls = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	}

	collect()
	lat, err = timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(i int) error {
		return impl.Record(ctx, RecordGrant(i))
	})
	if err != nil {
		return r, fmt.Errorf("%s: record: %w", kind, err)
	}
	r.RecordMedian, r.RecordP99, r.Records = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	collect()
	lat, err = timeCalls(o.MinCalls, min(o.MaxCalls, w.N), o.Budget, func(i int) error {
		return impl.Record(ctx, w.Regrant(i))
	})
	if err != nil {
		return r, fmt.Errorf("%s: re-grant: %w", kind, err)
	}
	r.RegrantMedian, r.RegrantP99, r.Regrants = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	if o.SkipExpire {
		return r, nil
	}
	wantExpired := w.N + r.Records // the new contacts are due at SweepAt too

	if kind == KindTTLCache {
		wantExpired = w.N
		impl.Close()
		impl = nil
		runtime.GC()
		c := NewTTLCache(true)
		impl = c
		if err := c.Load(ctx, w); err != nil {
			return r, err
		}
		time.Sleep(time.Millisecond) // every TTL (1 µs) is over
	}
	collect()
	t = time.Now()
	n, err := impl.Expire(ctx, SweepAt())
	r.Expire, r.Expired = time.Since(t), n
	if err != nil {
		return r, fmt.Errorf("%s: expire: %w", kind, err)
	}
	if n != wantExpired {
		return r, fmt.Errorf("%s: expired %d grants, want %d", kind, n, wantExpired)
	}
	if kind == KindCallready && !o.SkipFootprint {
		impl.Close()
		impl = nil
		if r.Footprint, err = MeasureFootprint(ctx, w); err != nil {
			return r, err
		}
	}
	return r, nil
}
