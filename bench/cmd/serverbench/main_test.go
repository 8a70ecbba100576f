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

// The spread ignores the samples of the warm-up.
func TestRSSSpread(t *testing.T) {
	s := []rssSample{{10 * time.Second, 1000, -1}, {time.Minute, 2000, 0}, {70 * time.Second, 2100, 0.5}, {80 * time.Second, 2050, 0}}
	lo, hi, ok := rssSpread(s, time.Minute)
	if !ok || lo != 2000 || hi != 2100 {
		t.Fatalf("spread %v–%v, %v", lo, hi, ok)
	}
	if lo, hi, ok = rssSpread(s, 75*time.Second); !ok || lo != 2050 || hi != 2050 {
		t.Fatalf("spread from 75 s %v–%v, %v", lo, hi, ok)
	}
	if _, _, ok := rssSpread(s[:1], time.Minute); ok {
		t.Fatal("a spread from the warm-up alone")
	}
}

func TestPrintResults(t *testing.T) {
	var b bytes.Buffer
	printResults(&b, options{n: 100, clients: 4}, []result{{
		store: "sqlite", ledger: 90, messages: 120,
		final: report{Posted: 100, OK: 100, Events: 90, PerSecond: 1234.4, P50: 1.25, P99: 9.5, Max: 12},
		rss:   []rssSample{{time.Minute, 2048, 0.25}, {70 * time.Second, 3072, -1}},
		cpu:   cpuUse{wall: 100 * time.Millisecond, server: 30 * time.Millisecond, loadgen: 10 * time.Millisecond, steal: 0.02},
	}, {
		store: "postgres", final: report{Posted: 100, OK: 50},
		cpu: cpuUse{wall: time.Second, server: 50 * time.Millisecond, loadgen: 10 * time.Millisecond, database: 40 * time.Millisecond, steal: -1},
	}})
	for _, want := range []string{"| sqlite | 100 | 1234 | 1.2 | 9.5 | 12.0 | 0 | 0 | 90 | 90 | 120 |", "| 1m0s | 2.0 | 25% |", "| 1m10s | 3.0 | ? |",
		"| sqlite | 300 | 100 | – | 400 | 0.40 | 2% |", "| postgres | 1000 | 200 | 800 | 2000 | 0.10 | ? |"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table:\n%s\nwant a row %s", b.String(), want)
		}
	}
}

func TestPostgresTicks(t *testing.T) {
	line := "4242 (postgres) S 1 4242 4242 0 -1 4194560 1 2 3 4 150 25 7 3 20 0 1 0 100 1000 10 0 0"
	if got := postgresTicks(line); got != 185 {
		t.Fatalf("ticks %d, want 150+25+7+3", got)
	}
	if got := postgresTicks("4243 (go) S 1 4242 4242 0 -1 4194560 1 2 3 4 150 25 7 3 20 0 1 0"); got != 0 {
		t.Fatalf("another command counted: %d", got)
	}
	if got := postgresCPU("sqlite"); got != 0 {
		t.Fatalf("SQLite has no database processes: %v", got)
	}
}
