package bench

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"
)

// Kinds of Impl, in report order.
const (
	KindCallready = "callready"
	KindTTLCache  = "ttlcache"
	KindMap       = "map+scan"
	KindSQLite    = "sqlite"
	KindPostgres  = "postgres"
)

// Kinds lists every Impl kind.
func Kinds() []string {
	return []string{KindCallready, KindTTLCache, KindMap, KindSQLite, KindPostgres}
}

// InProcess reports whether the kind keeps its state in the Go heap (so
// that memory per grant is measurable as heap in use).
func InProcess(kind string) bool {
	return kind == KindCallready || kind == KindTTLCache || kind == KindMap
}

// NewImpl returns an empty Impl of kind. forExpiry selects ttlcache's due
// mode (see TTLCache). dir holds SQLite files, dsn is PostgreSQL's.
func NewImpl(ctx context.Context, kind string, forExpiry bool, dir, dsn string) (Impl, error) {
	switch kind {
	case KindCallready:
		return NewCallready(ctx, nil)
	case KindTTLCache:
		return NewTTLCache(forExpiry), nil
	case KindMap:
		return NewMapScan(), nil
	case KindSQLite:
		return NewSQLiteTable(ctx, dir)
	case KindPostgres:
		if dsn == "" {
			return nil, fmt.Errorf("postgres: %s is not set", EnvPostgres)
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
}

// Result is what Measure measured for one kind at one size.
type Result struct {
	Kind                    string
	N                       int
	Load                    time.Duration
	BytesPerGrant           float64 // NaN when not in process
	PageMedian, PageP99     time.Duration
	PageCalls               int
	RecordMedian, RecordP99 time.Duration
	Records                 int
	Expire                  time.Duration // expiry of every due grant, events delivered
	Expired                 int
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
	r := Result{Kind: kind, N: w.N, BytesPerGrant: math.NaN()}
	inProc := InProcess(kind)
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
		r.BytesPerGrant = (float64(after) - float64(before)) / float64(w.N)
		runtime.KeepAlive(impl)
	}

	now := PageNow()
	want := min(PageSize, w.N*16/20)
	for range 3 { // warm up
		if _, err := impl.Page(ctx, HotChannel, now); err != nil {
			return r, fmt.Errorf("%s: page: %w", kind, err)
		}
	}
	lat, err := timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(int) error {
		rows, err := impl.Page(ctx, HotChannel, now)
		if err == nil && len(rows) != want {
			err = fmt.Errorf("page of %d rows, want %d", len(rows), want)
		}
		return err
	})
	if err != nil {
		return r, fmt.Errorf("%s: page: %w", kind, err)
	}
	r.PageMedian, r.PageP99, r.PageCalls = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)

	lat, err = timeCalls(o.MinCalls, o.MaxCalls, o.Budget, func(i int) error {
		return impl.Record(ctx, RecordGrant(i))
	})
	if err != nil {
		return r, fmt.Errorf("%s: record: %w", kind, err)
	}
	r.RecordMedian, r.RecordP99, r.Records = Percentile(lat, 0.5), Percentile(lat, 0.99), len(lat)
	if o.SkipExpire {
		return r, nil
	}

	if kind == KindTTLCache {
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
	t = time.Now()
	n, err := impl.Expire(ctx, SweepAt())
	r.Expire, r.Expired = time.Since(t), n
	if err != nil {
		return r, fmt.Errorf("%s: expire: %w", kind, err)
	}
	if n != w.N {
		return r, fmt.Errorf("%s: expired %d grants, want %d", kind, n, w.N)
	}
	return r, nil
}
