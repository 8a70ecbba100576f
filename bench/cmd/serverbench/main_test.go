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

// The spread ignores the first minute (warm-up).
func TestRSSSpread(t *testing.T) {
	s := []rssSample{{10 * time.Second, 1000}, {time.Minute, 2000}, {70 * time.Second, 2100}, {80 * time.Second, 2050}}
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
	}})
	want := "| sqlite | 100 | 1234 | 1.2 | 9.5 | 12.0 | 0 | 0 | 90 | 90 | 120 |"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("table:\n%s\nwant a row %s", b.String(), want)
	}
}
