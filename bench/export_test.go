package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/callready/callready/export"
	"github.com/callready/callready/permission"
)

// BenchmarkExportCSV streams a channel's whole callable list as CSV
// (permission.Tracker.Callable into export.Callable, as the reference
// server's GET /api/channels/{channel}/callable?format=csv does) into a
// writer that discards it. The hot channel of the workload holds 80% of
// the grants, so rows=1000000 loads 1.25M. One op is one whole export.
//
// Reported: rows/s over the timed exports, and peak-heap-B, the most the
// live heap (after a GC) grew above its level before the export, sampled
// ten times during one extra untimed export: the memory an export holds,
// which stays the same whatever the row count.
func BenchmarkExportCSV(b *testing.B) {
	sizes := []int{100_000, 1_000_000}
	if testing.Short() {
		sizes = []int{1000}
	}
	ctx := context.Background()
	for _, rows := range sizes {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			c, err := NewCallready(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Load(ctx, Workload{N: rows * 5 / 4}); err != nil {
				b.Fatal(err)
			}
			w := Workload{N: rows * 5 / 4}
			want := 0
			for i := range w.N {
				if w.Grant(i).Channel == HotChannel {
					want++
				}
			}
			tr := c.Tracker()
			q := permission.Query{Now: PageNow()}
			run := func(w *discard) int {
				n, err := export.Callable(ctx, w, tr.Callable(ctx, HotChannel, q), export.Options{})
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
			if n := run(&discard{}); n != want {
				b.Fatalf("exported %d rows, want %d", n, want)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				run(&discard{})
			}
			b.StopTimer()
			b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")

			base := liveHeap()
			sampled := &discard{every: max(want/10, 1)}
			var peak uint64
			sampled.sample = func() { peak = max(peak, liveHeap()) }
			run(sampled)
			growth := int64(peak) - int64(base)
			b.ReportMetric(float64(max(growth, 0)), "peak-heap-B")
		})
	}
}

// discard counts what it is given; with every > 0 it calls sample each
// time that many more rows (lines) went through.
type discard struct {
	bytes, lines, every, next int
	sample                    func()
}

func (d *discard) Write(p []byte) (int, error) {
	d.bytes += len(p)
	if d.every > 0 {
		d.lines += bytes.Count(p, []byte{'\n'})
		if d.lines >= d.next+d.every {
			d.next = d.lines - d.lines%d.every
			d.sample()
		}
	}
	return len(p), nil
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
