package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestVmRSS(t *testing.T) {
	kib, err := vmRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if kib < 1024 {
		t.Fatalf("this process's RSS is %d KiB", kib)
	}
	if _, err := vmRSS(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// This machine's /proc/stat has a steal column, and it only grows.
func TestCPUTimes(t *testing.T) {
	steal, total, err := cpuTimes()
	if err != nil {
		t.Fatal(err)
	}
	steal2, total2, err := cpuTimes()
	if err != nil || total == 0 || steal > total || steal2 < steal || total2 < total {
		t.Fatalf("steal %d of %d, then %d of %d, %v", steal, total, steal2, total2, err)
	}
}

// The spread ignores the first minute (warm-up).
func TestRSSSpread(t *testing.T) {
	s := []rssSample{{10 * time.Second, 1000, -1}, {time.Minute, 2000, 0}, {70 * time.Second, 2100, 0.5}, {80 * time.Second, 2050, 0}}
	lo, hi, ok := rssSpread(s)
	if !ok || lo != 2000 || hi != 2100 {
		t.Fatalf("spread %v–%v, %v", lo, hi, ok)
	}
	if _, _, ok := rssSpread(s[:1]); ok {
		t.Fatal("a spread from the warm-up alone")
	}
}

func TestPrintResults(t *testing.T) {
	var b bytes.Buffer
	printResults(&b, options{n: 100, clients: 4}, []result{{
		store: "sqlite", ledger: 90, messages: 120,
		final: report{Posted: 100, OK: 100, Events: 90, PerSecond: 1234.4, P50: 1.25, P99: 9.5, Max: 12},
		rss:   []rssSample{{time.Minute, 2048, 0.25}, {70 * time.Second, 3072, -1}},
	}})
	for _, want := range []string{"| sqlite | 100 | 1234 | 1.2 | 9.5 | 12.0 | 0 | 0 | 90 | 90 | 120 |", "| 1m0s | 2.0 | 25% |", "| 1m10s | 3.0 | ? |"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table:\n%s\nwant a row %s", b.String(), want)
		}
	}
}
