package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// screenshotPath is where the browser test leaves a picture of the page.
const screenshotPath = "/tmp/callready-page.png"

// chromium finds the browser; in CI its absence is a failure, elsewhere a
// skip.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "headless Chromium not found (Debian: apt-get install -y chromium): browser test not run"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestBrowser drives the page in headless Chromium against the real
// server. Determinism: the server runs on a mock clock set to the real
// time at start. The page aligns its countdowns with the server's clock
// from the listing's "now", so
//   - a grant expiring 6 s after that instant vanishes by the page's own
//     countdown, with no sweep on the server (client-side expiry), and
//   - a grant expiring in 10 min vanishes when the test advances the mock
//     clock and sweeps: the page reacts to the server's "expired" event.
//
// No step waits for a fixed time: each waits for an element to appear or
// go, bounded by the test's deadline.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromium(t)
	start := time.Now().UTC().Truncate(time.Second)
	e := newTestEnv(t, start)

	// Demo traffic first, so the page (and the screenshot) looks real.
	ctx := context.Background()
	d := newDemo(e.s, e.http.URL, testSecret, slog.New(slog.DiscardHandler))
	require.NoError(t, d.burst(ctx))
	const beatriz, victor, zoe, kai = "15550100001", "15550100002", "15550100003", "15550100004"
	e.text(chA, "Beatriz Lima", beatriz, "wamid.b1", start.Add(-20*time.Minute), "Could you call me about the invoice?")
	e.grant(chA, "Beatriz Lima", beatriz, "wamid.b2", start.Add(-10*time.Minute), start.Add(time.Hour))
	e.grant(chA, "Victor Vane", victor, "wamid.v1", start.Add(-time.Minute), start.Add(10*time.Minute))

	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), // the network is closed
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 50*time.Second)
	defer cancel()

	row := func(contact string) chromedp.CSS {
		return chromedp.CSS(`#rows .row[data-contact="` + contact + `"]`)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(bctx, steps...), what)
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		require.NoError(t, err, "text of %s", sel)
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		require.NoError(t, err, js)
		return v
	}

	// Log in and see the list.
	do("log in",
		chromedp.Navigate(e.http.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(row(beatriz)),
		chromedp.WaitVisible(row(victor)),
	)
	// Marks this page load: it must survive until the end (no reload).
	eval(`window.__sameLoad = true`)
	cls, err := chromedp.Run(bctx, chromedp.AttributeValue(row(victor), "class"))
	require.NoError(t, err)
	assert.Contains(t, cls.Value, "soon", "rows expiring within 24 h are highlighted")

	// A webhook posted now appears without a reload.
	e.grant(chA, "Zoe Newcomer", zoe, "wamid.z1", start, start.Add(48*time.Hour))
	do("live row", chromedp.WaitVisible(row(zoe)))
	assert.Equal(t, "Zoe Newcomer", text(row(zoe)+" .name"))

	// A grant that runs out 6 s after the server's "now": the page drops
	// it by its own countdown; the server never swept it.
	e.grant(chA, "Kai Quick", kai, "wamid.k1", start.Add(-time.Minute), start.Add(6*time.Second))
	do("short grant shows", chromedp.WaitVisible(row(kai)))

	// Open a contact: chat in the centre, permission beside it.
	do("open contact",
		chromedp.Click(row(beatriz)),
		chromedp.WaitVisible(chromedp.CSS(`#chat .msg.in`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain .status`)),
	)
	assert.Contains(t, text(`#chat`), "Could you call me about the invoice?")
	assert.Contains(t, text(`#chat`), "Accepted the call permission request")
	assert.Equal(t, "Callable", text(`#explain .status`))
	assert.Contains(t, text(`#explain .reason`), "temporary permission")

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(screenshotPath, png, 0o644))
	t.Logf("screenshot: %s", screenshotPath)

	do("client-side expiry", chromedp.WaitNotPresent(row(kai)))

	// Server-side expiry: advance the mock clock and sweep; the "expired"
	// event removes the row (its countdown still shows minutes).
	e.clock.Add(11 * time.Minute)
	n, err := e.s.tracker.Sweep(ctx, e.clock.Now())
	require.NoError(t, err)
	require.Positive(t, n)
	do("server-side expiry", chromedp.WaitNotPresent(row(victor)))

	assert.Equal(t, true, eval(`window.__sameLoad === true`), "the page was never reloaded")
	rows := eval(`document.querySelectorAll("#rows .row").length`)
	assert.Equal(t, strings.TrimSpace(text(`#count`)), fmt.Sprint(rows), "the tab count follows the rows")
}
