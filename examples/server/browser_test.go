package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// visibleText returns the innerText of the first visible element matching
// sel, waiting for one. It queries and reads in one script: chromedp's Text
// finds the node and reads it in a second call, and a list that re-renders
// in between leaves that node detached, which Text reads as "" (its answer
// for a node without layout).
func visibleText(ctx context.Context, sel string) (string, error) {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e && e.getClientRects().length ? e.innerText : null; })()`, sel)
	for {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			return "", err
		}
		if s, ok := v.(string); ok {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no visible %s: %w", sel, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// overflowJS lists what sticks out horizontally: the document scrolling
// sideways, an element wider than its box (clipped or scrolling text), or
// an element reaching past the viewport's right edge.
const overflowJS = `(() => {
  const bad = [];
  const de = document.documentElement;
  if (de.scrollWidth > de.clientWidth) bad.push("document " + de.scrollWidth + " > " + de.clientWidth);
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().replace(/\s+/g, ".") : "");
  for (const e of document.querySelectorAll("#app *")) {
    const cs = getComputedStyle(e);
    if (cs.display === "none" || cs.display === "inline" || e.closest(".sr-only") || e.getClientRects().length === 0) continue;
    if (e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0) bad.push(name(e) + " content " + e.scrollWidth + " > " + e.clientWidth);
    const r = e.getBoundingClientRect();
    if (r.right > innerWidth + 1 || r.left < -1) bad.push(name(e) + " reaches " + Math.round(r.left) + ".." + Math.round(r.right) + " of " + innerWidth);
  }
  return bad.slice(0, 12);
})()`

// TestBrowser drives the page in headless Chromium against the real
// server. Determinism: the server runs on a mock clock set to the real
// time at start. The page aligns its clock with the server's from the
// listing's "now", so
//   - a grant expiring 12 s after that instant vanishes by the page's own
//     countdown, with no sweep on the server (client-side expiry), and the
//     sidebar count drops with it;
//   - a grant expiring in 10 min vanishes when the test advances the mock
//     clock and sweeps: the page reacts to the server's "expired" event.
//
// No step waits for a fixed time: each waits for an element to appear or
// go, bounded by the test's deadline. Screenshots of each screen size are
// test artifacts (go test -artifacts keeps them; see README).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromium(t)
	axe, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	require.NoError(t, err)
	artifacts := t.ArtifactDir()

	// The host's softphone: the Call action hands calls to it.
	dialed := make(chan string, 8)
	dialer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case dialed <- r.URL.Query().Get("to"):
		default:
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>softphone</title>calling")
	}))
	defer dialer.Close()

	start := time.Now().UTC().Truncate(time.Second)
	e := newTestEnvWith(t, filepath.Join(t.TempDir(), "callready.db"), start, func(o *serverOptions) {
		o.DialURL = dialer.URL + "/dial?to=%2B{phone}"
	})

	// Demo traffic first, so the page (and the screenshots) look real.
	ctx := context.Background()
	d := newDemo(e.s, e.http.URL, testSecret, slog.New(slog.DiscardHandler))
	require.NoError(t, d.burst(ctx))
	const beatriz, victor, zoe, kai, lena, omar = "15550100001", "15550100002", "15550100003", "15550100004", "15550100005", "15550100006"
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
		chromedp.Flag("disable-popup-blocking", true), // the dialer opens in a window of its own
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 120*time.Second)
	defer cancel()

	row := func(contact string) chromedp.CSS {
		return chromedp.CSS(`#rows .row[data-contact="` + contact + `"]`)
	}
	badge := chromedp.CSS(`#channels .channel[data-channel="` + chA.id + `"] .badge`)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(bctx, steps...), what)
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := visibleText(bctx, string(sel))
		require.NoError(t, err, "text of %s", sel)
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		require.NoError(t, err, js)
		return v
	}
	setSelect := func(id, value string) {
		t.Helper()
		eval(fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event("input", {bubbles: true})); })()`, id, value))
	}
	waitNotice := func(want string) string {
		t.Helper()
		do("notice "+want, chromedp.WaitVisible(chromedp.CSS(`#notice`)))
		var got string
		require.Eventually(t, func() bool {
			got = text(`#notice`)
			return strings.Contains(got, want)
		}, 10*time.Second, 50*time.Millisecond, "notice %q", want)
		return got
	}
	rowsShown := func() []string {
		t.Helper()
		v := eval(`[...document.querySelectorAll("#rows .row")].map((r) => r.dataset.contact)`)
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
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
	// A grant that runs out 12 s after the server's "now": the page drops
	// it by its own countdown (the server never sweeps it), and the
	// sidebar's counts drop in the same instant. The observer notes the
	// counts at the moment the row leaves the DOM.
	e.grant(chA, "Kai Quick", kai, "wamid.k1", start.Add(-time.Minute), start.Add(12*time.Second))
	do("short grant shows", chromedp.WaitVisible(row(kai)))
	eval(`window.__sameLoad = true;
	  window.__kai = { last: null, gone: null };
	  const watchKai = () => {
	    const b = document.querySelector('#channels .channel[data-channel="` + chA.id + `"] .badge').textContent;
	    if (document.querySelector('#rows .row[data-contact="` + kai + `"]')) window.__kai.last = b;
	    else if (!window.__kai.gone && !document.getElementById("q").value) window.__kai.gone = b;
	  };
	  watchKai();
	  new MutationObserver(watchKai).observe(document.getElementById("rows"), { childList: true });
	  new MutationObserver(watchKai).observe(document.getElementById("channels"), { childList: true, subtree: true, characterData: true });`)
	cls, err := chromedp.Run(bctx, chromedp.AttributeValue(row(victor), "class"))
	require.NoError(t, err)
	assert.Contains(t, cls.Value, "soon", "rows expiring within 24 h are highlighted")
	assert.Contains(t, text(row(victor)), "Expires today", "not by colour alone")
	assert.Equal(t, "+1 555 010 0002", text(row(victor)+" .num"), "numbers are grouped for reading")
	assert.Regexp(t, `^in \d+ min( \d+ s)?$`, text(row(victor)+" .countdown"))

	// A webhook posted now appears without a reload.
	e.grant(chA, "Zoe Newcomer", zoe, "wamid.z1", start, start.Add(48*time.Hour))
	do("live row", chromedp.WaitVisible(row(zoe)))
	assert.Equal(t, "Zoe Newcomer", text(row(zoe)+" .name"))

	// Open a contact: chat in the centre, permission beside it, in the
	// agent's time zone, no raw ISO timestamps.
	do("open contact",
		chromedp.Click(row(beatriz)+" .open"),
		chromedp.WaitVisible(chromedp.CSS(`#chat .msg.in`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain .status`)),
	)
	assert.Contains(t, text(`#chat`), "Could you call me about the invoice?")
	assert.Contains(t, text(`#chat`), "Accepted the call permission request")
	assert.Contains(t, text(`#explain .status`), "Callable")
	reason := text(`#explain .reason`)
	assert.Contains(t, reason, "temporary permission")
	assert.NotRegexp(t, `\d{4}-\d\d-\d\dT\d\d:`, text(`#explain`), "no raw ISO strings in the explanation")
	assert.Regexp(t, `\(in (59 min|1 h)\)`, reason, "relative time beside the absolute one")

	// History: every recorded event of the contact, with both its times.
	do("history", chromedp.Click(chromedp.CSS(`#history-toggle`)), chromedp.WaitVisible(chromedp.CSS(`#history-list .hist-ev`)))
	hist := text(`#history-list`)
	assert.Equal(t, 1.0, eval(`document.querySelectorAll("#history-list .hist-ev").length`), "one grant recorded for Beatriz")
	assert.Contains(t, strings.ToLower(hist), "temporary grant")
	assert.Contains(t, hist, "Happened ")
	assert.Contains(t, hist, "Recorded ")
	assert.Contains(t, hist, "(10 min later)", "the grant stamped 10 min before the server recorded it")
	assert.Contains(t, hist, "Meta webhook")
	assert.Contains(t, hist, "wamid.b2")
	assert.NotRegexp(t, `\d{4}-\d\d-\d\dT\d\d:`, hist, "no raw ISO strings in the history")

	// As of: 5 min before the server's start, the grant (stamped 10 min
	// before) had happened, but was recorded only at the start.
	statusIs := func(want string) {
		t.Helper()
		var last string
		require.Eventually(t, func() bool {
			// The panel re-renders as answers arrive: a node gone between
			// the query and the read is tried again, not a failure.
			s, err := chromedp.Run(bctx, chromedp.Text(`#explain .status`))
			last = s
			return err == nil && strings.Contains(s, want)
		}, 10*time.Second, 20*time.Millisecond, "status %q (last %q)", want, last)
	}
	eval(fmt.Sprintf(`(() => { const i = document.getElementById("as-of"); i.value = localInput(%q); i.dispatchEvent(new Event("change", {bubbles: true})); })()`,
		start.Add(-5*time.Minute).Format(time.RFC3339)))
	do("as of", chromedp.WaitVisible(chromedp.CSS(`#asof-banner`)))
	statusIs("Callable")
	assert.Contains(t, text(`#asof-banner`), "by everything recorded since")
	do("known then", chromedp.Click(chromedp.CSS(`#as-of-known`)))
	statusIs("Not callable")
	require.Eventually(t, func() bool { return strings.Contains(text(`#asof-banner`), "counting only what was recorded by") }, 5*time.Second, 20*time.Millisecond)
	do("back to now", chromedp.Click(chromedp.CSS(`#as-of-now`)), chromedp.WaitNotVisible(chromedp.CSS(`#asof-banner`)))
	statusIs("Callable")
	do("call button back", chromedp.WaitVisible(chromedp.CSS(`#call-contact`)))

	// Export: the tab's list downloads as a CSV file.
	downloads := t.TempDir()
	progress := chromedp.Events(bctx, browser.DownloadProgress)
	do("export",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			allow := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &allow,
			})
			return err
		}),
		chromedp.Click(chromedp.CSS(`#export`)),
	)
	var saved string
	for ev, err := range progress {
		require.NoError(t, err)
		if ev.State == browser.DownloadProgressStateCompleted {
			saved = filepath.Join(downloads, ev.GUID)
			break
		}
		require.NotEqual(t, browser.DownloadProgressStateCanceled, ev.State, "download canceled")
	}
	assert.Regexp(t, `Downloaded callable-`+chA.id+`-\d{8}T\d{6}Z\.csv`, waitNotice("Downloaded callable-"))
	f, err := os.Open(saved)
	require.NoError(t, err)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	assert.Equal(t, []string{"channel", "contact", "name", "kind", "source", "granted_at", "expires_at", "calls_left", "unanswered_streak",
		"wa_id", "user_id", "unconfirmed"}, recs[0])
	var exported []string
	for _, r := range recs[1:] {
		exported = append(exported, r[1])
		if r[1] == beatriz {
			assert.Equal(t, "Beatriz Lima", r[2])
		}
	}
	assert.ElementsMatch(t, rowsShown(), exported, "the CSV holds what the tab shows")

	// Search by name, by grouped phone digits, by BSUID-like substring.
	do("search", chromedp.SendKeys(chromedp.CSS(`#q`), "beatriz"))
	require.Eventually(t, func() bool { return len(rowsShown()) == 1 }, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{beatriz}, rowsShown())
	assert.Equal(t, "1", text(`#count`))
	eval(`(() => { const q = document.getElementById("q"); q.value = "555 010 0003"; q.dispatchEvent(new Event("input", {bubbles: true})); })()`)
	require.Eventually(t, func() bool { r := rowsShown(); return len(r) == 1 && r[0] == zoe }, 5*time.Second, 20*time.Millisecond, "search by phone, spaces ignored")
	eval(`(() => { const q = document.getElementById("q"); q.value = ""; q.dispatchEvent(new Event("input", {bubbles: true})); })()`)

	// The Call action, allowed: CanCall at the click, then the host's
	// dialer gets the number.
	do("call Beatriz", chromedp.Click(row(beatriz)+" .call"))
	select {
	case to := <-dialed:
		assert.Equal(t, "+"+beatriz, to)
	case <-time.After(15 * time.Second):
		t.Fatal("the dialer was never opened")
	}
	waitNotice("Calling Beatriz Lima")

	// Refused: Zoe's call budget is spent (no change event tells the page:
	// the check at the click does).
	e.fillCallCap(chA.id, zoe, start.Add(-time.Hour))
	do("call Zoe", chromedp.Click(row(zoe)+" .call"))
	got := waitNotice("Cannot call Zoe Newcomer")
	assert.Contains(t, got, "Call limit reached: the next call is possible")
	assert.Contains(t, got, "(in 23 h)", "24 h after the first of the calls, which began an hour before the server's now")

	// The page's own expiry: Kai's row and the sidebar's counts go together.
	do("client-side expiry", chromedp.WaitNotPresent(row(kai)))
	kaiSeen := eval(`window.__kai`).(map[string]any)
	var nLast, nGone int
	fmt.Sscan(kaiSeen["last"].(string), &nLast)
	fmt.Sscan(kaiSeen["gone"].(string), &nGone)
	assert.Equal(t, nLast-1, nGone, "the sidebar count dropped the moment the row expired, not at a poll")
	assert.Equal(t, text(badge), kaiSeen["gone"])

	// Keyboard: arrows move between rows, Enter opens the chat.
	list := rowsShown()
	require.GreaterOrEqual(t, len(list), 3)
	do("keyboard",
		chromedp.Focus(row(list[0])+" .open"),
		chromedp.KeyEvent(kb.ArrowDown),
		chromedp.KeyEvent(kb.ArrowDown),
	)
	assert.Equal(t, list[2], eval(`document.activeElement.closest(".row").dataset.contact`), "two rows down")
	do("enter opens", chromedp.KeyEvent(kb.Enter))
	require.Eventually(t, func() bool {
		return eval(`new URLSearchParams(location.search).get("contact")`) == list[2]
	}, 5*time.Second, 20*time.Millisecond)
	do("chat of the focused row", chromedp.WaitVisible(chromedp.CSS(`#explain .status`)))
	do("keyboard up", chromedp.KeyEvent(kb.ArrowUp))
	assert.Equal(t, list[1], eval(`document.activeElement.closest(".row").dataset.contact`))

	// Server-side expiry: advance the mock clock; before the sweep the
	// server already refuses the call (the page's clock has not moved),
	// then the "expired" event removes the row.
	e.clock.Add(11 * time.Minute)
	do("call Victor", chromedp.Click(row(victor)+" .call"))
	assert.Contains(t, waitNotice("The permission just expired"), "(1 min ago)", "worded from the decision's instant")
	n, err := e.s.tracker.Sweep(ctx, e.clock.Now())
	require.NoError(t, err)
	require.Positive(t, n)
	do("server-side expiry", chromedp.WaitNotPresent(row(victor)))
	assert.Equal(t, true, eval(`window.__sameLoad === true`), "the page was never reloaded")
	assert.Equal(t, fmt.Sprint(len(rowsShown())), text(`#count`), "the tab count follows the rows")

	// Every size agents use: nothing overflows sideways; a screenshot each.
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(artifacts, name+".png"), png, 0o644))
	}
	noOverflow := func(what string) {
		t.Helper()
		bad := eval(overflowJS).([]any)
		assert.Empty(t, bad, "%s: horizontal overflow", what)
	}
	for _, sz := range []struct{ w, h int64 }{{1280, 800}, {1366, 768}, {1920, 1080}} {
		name := fmt.Sprintf("page-%dx%d", sz.w, sz.h)
		do(name, chromedp.EmulateViewport(sz.w, sz.h), chromedp.WaitVisible(chromedp.CSS(`#explain .status`)))
		noOverflow(name)
		shot(name)
	}
	// A phone: the list, then the contact on tap, and back.
	do("phone list", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Click(chromedp.CSS(`#back`)),
		chromedp.WaitVisible(row(beatriz)), chromedp.WaitNotVisible(chromedp.CSS(`#explain`)))
	noOverflow("390 px, list")
	shot("page-390x844-list")
	do("phone contact", chromedp.Click(row(beatriz)+" .open"), chromedp.WaitVisible(chromedp.CSS(`#back`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain .status`)), chromedp.WaitNotVisible(row(beatriz)))
	noOverflow("390 px, contact")
	shot("page-390x844-contact")
	do("phone back", chromedp.Click(chromedp.CSS(`#back`)), chromedp.WaitVisible(row(beatriz)))
	do("desktop again", chromedp.EmulateViewport(1440, 900))

	// The accessibility audit: axe-core in the page, no serious or
	// critical violation.
	_, err = chromedp.Run(bctx, chromedp.Evaluate[any](string(axe)))
	require.NoError(t, err)
	audit := func(what string) {
		t.Helper()
		res, err := chromedp.Run(bctx, chromedp.Evaluate[string](`axe.run(document, { resultTypes: ["violations"] }).then((r) => JSON.stringify(
		  r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
		    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }))))`,
			chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		var violations []map[string]any
		require.NoError(t, json.Unmarshal([]byte(res), &violations))
		assert.Empty(t, violations, "%s: accessibility violations", what)
	}
	audit("inbox with a contact open")

	// A filter lives in the URL: it survives a reload, and the list stays
	// live under it.
	setSelect("f-within", "2h")
	require.Eventually(t, func() bool {
		return eval(`new URLSearchParams(location.search).get("within")`) == "2h"
	}, 5*time.Second, 20*time.Millisecond)
	do("reload", chromedp.Reload(), chromedp.WaitVisible(row(beatriz)))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[any](string(axe)))
	require.NoError(t, err)
	assert.Equal(t, "2h", eval(`document.getElementById("f-within").value`), "the filter survived the reload")
	assert.NotContains(t, rowsShown(), zoe, "expires in 48 h: filtered out")
	for _, c := range rowsShown() {
		exp := eval(`document.querySelector('#rows .row[data-contact="` + c + `"] .timer').dataset.expires || ""`).(string)
		at, err := time.Parse(time.RFC3339, exp)
		require.NoError(t, err, "row %s has an expiry", c)
		assert.LessOrEqual(t, at.Sub(e.clock.Now()), 2*time.Hour+time.Minute, "row %s", c)
	}
	now := e.clock.Now()
	e.grant(chA, "Omar Later", omar, "wamid.o1", now, now.Add(48*time.Hour))
	e.grant(chA, "Lena Soon", lena, "wamid.l1", now, now.Add(30*time.Minute))
	do("live grant under the filter", chromedp.WaitVisible(row(lena)))
	assert.NotContains(t, rowsShown(), omar, "a live grant outside the filter stays out")
	audit("filtered inbox after a reload")
	shot("page-1440x900-filtered")
	t.Logf("screenshots in %s", artifacts)
}
