package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// config is the server's configuration: flags, with environment variables
// as fallbacks so a container can be configured without a command line.
type config struct {
	Addr        string // listen address
	DB          string // SQLite file path, or a postgres:// DSN
	AppSecret   string // Meta app secret: signs webhook bodies
	VerifyToken string // Meta webhook verification token
	APIToken    string // agents' bearer token for /api and the page
	Demo        bool   // feed the server simulated webhook traffic

	// Which secrets were generated because they were unset, so main can
	// print them once.
	GeneratedAPIToken, GeneratedAppSecret, GeneratedVerifyToken bool
}

// minTokenLen keeps a configured API token from being guessable.
const minTokenLen = 16

// parseConfig reads flags from args and environment variables from getenv.
// Errors are one line, fit to print as is.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Addr, "addr", env("CALLREADY_ADDR", "127.0.0.1:8080"), "listen address (env CALLREADY_ADDR)")
	fs.StringVar(&c.DB, "db", env("CALLREADY_DB", "callready.db"), "SQLite file or postgres:// DSN (env CALLREADY_DB)")
	demoDefault := false
	switch strings.ToLower(getenv("CALLREADY_DEMO")) {
	case "1", "true", "yes":
		demoDefault = true
	}
	fs.BoolVar(&c.Demo, "demo", demoDefault, "feed simulated webhook traffic (env CALLREADY_DEMO)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errors.New(usage(fs))
		}
		return c, fmt.Errorf("bad flags: %v (usage: %s)", err, usageLine)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (usage: %s)", fs.Arg(0), usageLine)
	}
	c.AppSecret = getenv("CALLREADY_APP_SECRET")
	c.VerifyToken = getenv("CALLREADY_VERIFY_TOKEN")
	c.APIToken = getenv("CALLREADY_API_TOKEN")

	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return c, fmt.Errorf("bad -addr %q: want host:port, e.g. 127.0.0.1:8080", c.Addr)
	}
	if c.DB == "" {
		return c, errors.New("bad -db: empty (want a SQLite file path or a postgres:// DSN)")
	}
	if isPostgres(c.DB) {
		if _, err := url.Parse(c.DB); err != nil {
			return c, fmt.Errorf("bad -db: unparsable PostgreSQL DSN: %v", err)
		}
	}
	if c.APIToken != "" && len(c.APIToken) < minTokenLen {
		return c, fmt.Errorf("bad CALLREADY_API_TOKEN: %d characters, want at least %d", len(c.APIToken), minTokenLen)
	}
	if c.APIToken == "" {
		c.APIToken, c.GeneratedAPIToken = randomToken(), true
	}
	// Without a secret the webhook endpoint cannot be reached by Meta, but
	// local tools (and -demo) can still sign with a generated one, so a
	// fresh clone runs with no setup.
	if c.AppSecret == "" {
		c.AppSecret, c.GeneratedAppSecret = randomToken(), true
	}
	if c.VerifyToken == "" {
		c.VerifyToken, c.GeneratedVerifyToken = randomToken(), true
	}
	return c, nil
}

const usageLine = "server [-addr host:port] [-db callready.db|postgres://…] [-demo]"

func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("usage: " + usageLine + "\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  -%s\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
	})
	b.WriteString("  env CALLREADY_APP_SECRET, CALLREADY_VERIFY_TOKEN, CALLREADY_API_TOKEN: generated when unset")
	return b.String()
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
