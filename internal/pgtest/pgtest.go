// Package pgtest gives the project's tests a PostgreSQL server: the shared
// one named by CALLREADY_TEST_POSTGRES, or a throwaway one of a test's own
// started by scripts/pg.sh. Without a server a test skips with a message,
// except under CI=true, where the PostgreSQL cases must run.
package pgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// EnvDSN names the variable holding the DSN of the shared test database.
const EnvDSN = "CALLREADY_TEST_POSTGRES"

// DSN returns the shared test server's DSN, or skips (fails under CI).
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set, and CI must run the PostgreSQL tests: eval \"$(scripts/pg.sh start DIR)\" first", EnvDSN)
		}
		t.Skipf("PostgreSQL tests skipped: %s is not set (start a server with: eval \"$(scripts/pg.sh start /tmp/callready-pg)\")", EnvDSN)
	}
	return dsn
}

// Server is a throwaway PostgreSQL server in a test's temporary directory.
type Server struct {
	dir string
	DSN string
}

// StartServer starts a server of the test's own, stopped at cleanup. It
// skips when the server binaries are missing (fails under CI) and with
// -short.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if err := exec.Command(script(), "available").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL server binaries not found, and CI must run this test")
		}
		t.Skip("PostgreSQL server binaries not found (initdb, pg_ctl): skipping a test that starts its own server")
	}
	if testing.Short() {
		t.Skip("starts its own PostgreSQL server; skipped with -short")
	}
	s := &Server{dir: t.TempDir()}
	out := run(t, "start", s.dir)
	t.Cleanup(func() { run(t, "stop", s.dir, "immediate") })
	_, dsn, ok := strings.Cut(strings.TrimSpace(out), EnvDSN+"=")
	if !ok {
		t.Fatalf("pg.sh start printed %q", out)
	}
	s.DSN = dsn
	return s
}

// Crash stops the server abruptly (pg_ctl -m immediate).
func (s *Server) Crash(t testing.TB) { t.Helper(); run(t, "stop", s.dir, "immediate") }

// Restart starts the server again, on the same port: the DSN stays valid.
func (s *Server) Restart(t testing.TB) { t.Helper(); run(t, "start", s.dir) }

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(script(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg.sh %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// script is scripts/pg.sh, found from this file's place in the repository.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "pg.sh")
}
