package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
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
	// TokenFile keeps the API token across restarts: read when it exists,
	// else created (mode 0600) with a generated token. Empty: no file.
	TokenFile string
	// MetricsAddr, when set, serves /metrics on this address of its own,
	// without a token (for a scraper on a private network). Empty: /metrics
	// is served on Addr and needs the API token like /api.
	MetricsAddr string
	// DialURL is the template of the link the page's Call action opens:
	// {phone} is the contact's number in digits (E.164 without "+"),
	// {contact} the contact key (phone or BSUID), {channel} the business
	// number id, each URL-escaped. Default "tel:+{phone}".
	DialURL string
	// SendTestWebhook: instead of serving, sign a test webhook (an accepted
	// call permission request, timestamped now) with AppSecret, post it to
	// the server at Addr and exit.
	SendTestWebhook bool
	// CPUProfile, when set, writes a CPU profile of the whole run to this
	// file (for the ingest benchmark, bench/cmd/serverbench). Empty: none.
	CPUProfile string

	// Which secrets were generated because they were unset, so main can
	// print them once.
	GeneratedAPIToken, GeneratedAppSecret, GeneratedVerifyToken bool
	// DemoDB: the database is the demo's own default file.
	DemoDB bool
	// Meta is the Cloud API configuration (meta.go).
	Meta metaConfig
}

// Default database files: the demo keeps its simulated traffic out of the
// real inbox's file.
const (
	defaultDB     = "callready.db"
	defaultDemoDB = "callready-demo.db"
	defaultDial   = "tel:+{phone}"
)

// helpError is what parseConfig returns for -h: the usage, to print on
// stdout, and exit 0.
type helpError struct{ usage string }

func (e helpError) Error() string { return e.usage }

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
	fs.StringVar(&c.DB, "db", env("CALLREADY_DB", defaultDB), "SQLite file or postgres:// DSN (env CALLREADY_DB; -demo: "+defaultDemoDB+")")
	fs.StringVar(&c.TokenFile, "token-file", getenv("CALLREADY_API_TOKEN_FILE"), "file keeping the API token across restarts, created when missing (env CALLREADY_API_TOKEN_FILE)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", getenv("CALLREADY_METRICS_ADDR"), "serve /metrics here without a token; empty: on -addr, behind the API token (env CALLREADY_METRICS_ADDR)")
	fs.StringVar(&c.DialURL, "dial-url", env("CALLREADY_DIAL_URL", defaultDial), "link the Call action opens: {phone}, {contact}, {channel} (env CALLREADY_DIAL_URL)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.BoolVar(&c.SendTestWebhook, "send-test-webhook", false, "sign a test webhook with CALLREADY_APP_SECRET, post it to the server at -addr, and exit")
	demoDefault := false
	switch strings.ToLower(getenv("CALLREADY_DEMO")) {
	case "1", "true", "yes":
		demoDefault = true
	}
	fs.BoolVar(&c.Demo, "demo", demoDefault, "feed simulated webhook traffic (env CALLREADY_DEMO)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, helpError{usage(fs)}
		}
		return c, fmt.Errorf("bad flags: %v (usage: %s)", err, usageLine)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (usage: %s)", fs.Arg(0), usageLine)
	}
	var err error
	if c.Meta, err = parseMetaConfig(getenv); err != nil {
		return c, err
	}
	c.AppSecret = getenv("CALLREADY_APP_SECRET")
	c.VerifyToken = getenv("CALLREADY_VERIFY_TOKEN")
	c.APIToken = getenv("CALLREADY_API_TOKEN")

	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return c, fmt.Errorf("bad -addr %q: want host:port, e.g. 127.0.0.1:8080", c.Addr)
	}
	dbSet := getenv("CALLREADY_DB") != ""
	fs.Visit(func(f *flag.Flag) { dbSet = dbSet || f.Name == "db" })
	if c.Demo && !dbSet {
		c.DB, c.DemoDB = defaultDemoDB, true
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return c, fmt.Errorf("bad -metrics-addr %q: want host:port, e.g. 127.0.0.1:9090", c.MetricsAddr)
		}
	}
	if err := checkDialURL(c.DialURL); err != nil {
		return c, err
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
	if c.APIToken == "" && c.TokenFile != "" && !c.SendTestWebhook {
		tok, err := tokenFromFile(c.TokenFile)
		if err != nil {
			return c, err
		}
		c.APIToken = tok
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

const usageLine = "server [-addr host:port] [-db callready.db|postgres://…] [-demo] [-token-file path] [-metrics-addr host:port] [-dial-url template] [-send-test-webhook]"

func usage(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("usage: " + usageLine + "\n")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  -%s\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
	})
	b.WriteString("  env CALLREADY_APP_SECRET, CALLREADY_VERIFY_TOKEN, CALLREADY_API_TOKEN: generated when unset")
	return b.String()
}

// tokenFromFile reads the API token kept in path, or creates the file with
// a generated token when it does not exist.
func tokenFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if len(tok) < minTokenLen {
			return "", fmt.Errorf("bad -token-file %s: %d characters, want at least %d", path, len(tok), minTokenLen)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist):
		tok := randomToken()
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("bad -token-file: cannot create %s: %v", path, err)
		}
		return tok, nil
	default:
		return "", fmt.Errorf("bad -token-file: %v", err)
	}
}

// checkDialURL accepts a Call link template for a dialer the browser can
// hand a call to.
func checkDialURL(tmpl string) error {
	if !strings.Contains(tmpl, "{phone}") && !strings.Contains(tmpl, "{contact}") {
		return fmt.Errorf("bad -dial-url %q: it must contain {phone} or {contact}", tmpl)
	}
	u, err := url.Parse(strings.NewReplacer("{phone}", "1", "{contact}", "1", "{channel}", "1").Replace(tmpl))
	if err != nil {
		return fmt.Errorf("bad -dial-url %q: %v", tmpl, err)
	}
	switch u.Scheme {
	case "tel", "sip", "sips", "callto", "http", "https":
		return nil
	}
	return fmt.Errorf("bad -dial-url %q: want a tel:, sip:, callto:, http: or https: link", tmpl)
}

// dialURL fills the Call link template for one contact.
func dialURL(tmpl, channel, contact string) string {
	phone := ""
	if isDigits(contact) {
		phone = contact
	}
	return strings.NewReplacer(
		"{phone}", url.PathEscape(phone), "{contact}", url.PathEscape(contact), "{channel}", url.PathEscape(channel),
	).Replace(tmpl)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
