package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
)

// TestBrowserRequestPermission drives the request lifecycle in headless
// Chromium, in demo mode's wiring: Meta's API is cloudapitest's fake,
// whose simulated users answer as -demo's do (demoAutoReply), posting
// signed webhooks to the server. An agent clicks Request permission on a
// contact of the Re-ask tab; the contact moves to Pending, then, when the
// fake user accepts, to Request Accepted, without a reload. The server and
// the fake share a mock clock: the user answers when the test moves it
// past demoReplyAfter.
func TestBrowserRequestPermission(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromium(t)
	start := time.Now().UTC().Truncate(time.Second)
	var fake *cloudapitest.Server
	e := newTestEnvWith(t, filepath.Join(t.TempDir(), "callready.db"), start, func(o *serverOptions) {
		clk := o.Clock.(*clock.Mock)
		fake = cloudapitest.New(cloudapitest.Config{Clock: clk, AppSecret: testSecret, AutoReply: demoAutoReply,
			PhoneNumbers: map[string]string{chA.id: chA.display, chB.id: chB.display}})
		t.Cleanup(fake.Close)
		api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client(), Clock: clk})
		require.NoError(t, err)
		o.Meta = metaOptions{API: api, Channels: []string{chA.id, chB.id}, Burst: 1, TemplateLanguage: "en_US"}
	})
	fake.SetWebhookURL(e.http.URL + "/webhook")

	// Rita's permission expired two days ago; she wrote an hour ago, so
	// the request is a free-form message. Her number is one whose
	// simulated user accepts for a week; Sam's one who never answers.
	pick := func(from int, accept bool) string {
		for i := from; ; i++ {
			wa := fmt.Sprintf("1555020%04d", i)
			r, ok := demoAutoReply(cloudapitest.Request{Phone: wa})
			if ok == accept && (!ok || (r.Accept && !r.Permanent)) {
				return wa
			}
		}
	}
	rita, sam := pick(0, true), pick(0, false)
	e.text(chA, "Rita Reask", rita, "wamid.rita1", start.Add(-time.Hour), "Are you still there? Please call me.")
	e.grant(chA, "Rita Reask", rita, "wamid.rita0", start.Add(-9*24*time.Hour), start.Add(-2*24*time.Hour))
	e.grant(chA, "Sam Silent", sam, "wamid.sam0", start.Add(-10*24*time.Hour), start.Add(-3*24*time.Hour))
	e.grant(chA, "Ben Callable", "15550209999", "wamid.ben0", start.Add(-time.Hour), start.Add(48*time.Hour))

	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(bctx, steps...), what)
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		require.NoError(t, err, js)
		return v
	}
	text := func(sel string) string {
		t.Helper()
		s, err := visibleText(bctx, sel)
		require.NoError(t, err, "text of %s", sel)
		return s
	}
	// waitText reads sel until its text matches pattern: lists re-render as
	// events arrive.
	waitText := func(sel, pattern string) {
		t.Helper()
		re := regexp.MustCompile(pattern)
		for deadline := time.Now().Add(10 * time.Second); ; {
			s, err := visibleText(bctx, sel)
			if err == nil && re.MatchString(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("text of %s never matched %q: last read %q, %v", sel, pattern, s, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	in := func(list, contact string) chromedp.CSS {
		return chromedp.CSS(`#` + list + ` .row[data-contact="` + contact + `"]`)
	}

	do("log in, Re-ask tab",
		chromedp.Navigate(e.http.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(in("rows", "15550209999")),
		chromedp.Click(chromedp.CSS(`#tab-reask`)),
		chromedp.WaitVisible(in("reask-rows", rita)),
		chromedp.WaitVisible(in("reask-rows", sam)),
	)
	eval(`window.__sameLoad = true`)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(t.ArtifactDir(), name+".png"), png, 0o644))
	}
	shot("reask-tab")
	assert.Equal(t, "true", eval(`document.getElementById("tab-reask").getAttribute("aria-selected")`))
	waitText(`#reask-rows .row[data-contact="`+rita+`"]`, `(?s)Expired.*Can ask now`)
	assert.Equal(t, "2", text(`#tab-reask-count`))

	// Request permission: the fake sends it; the pending event moves Rita
	// from Re-ask to Pending.
	do("request permission",
		chromedp.Click(chromedp.CSS(`#reask-rows .row[data-contact="`+rita+`"] .request`)),
		chromedp.WaitNotPresent(in("reask-rows", rita)),
	)
	require.Eventually(t, func() bool { return len(fake.Requests()) == 1 }, 10*time.Second, 20*time.Millisecond)
	req := fake.Requests()[0]
	assert.Equal(t, rita, req.Phone)
	assert.Empty(t, req.Template, "she wrote within 24 h: a free-form request")
	do("pending tab",
		chromedp.Click(chromedp.CSS(`#tab-pending`)),
		chromedp.WaitVisible(in("pending-rows", rita)),
	)
	// The list re-renders as the request's events arrive.
	waitText(`#pending-rows .row[data-contact="`+rita+`"]`, `lapses in (7 days|6 days 23 h)`)
	assert.Equal(t, "1", text(`#tab-pending-count`))
	shot("pending-tab")
	assert.Equal(t, "1", text(`#tab-reask-count`), "Sam is still to ask")

	// The simulated user accepts once the clock passes the delay: a signed
	// webhook to the server; Rita leaves Pending for Request Accepted.
	e.clock.Add(demoReplyAfter)
	deliveries := fake.Deliveries(req.ID)
	require.Len(t, deliveries, 1)
	require.NoError(t, deliveries[0].Wait(bctx))
	do("answered", chromedp.WaitNotPresent(in("pending-rows", rita)))
	// Meta's reply showed her BSUID beside her number: the row is listed
	// under the BSUID now (callready's choice of identifier), still Rita.
	do("request accepted", chromedp.Click(chromedp.CSS(`#tab-accepted`)))
	ritaRow := `[...document.querySelectorAll("#rows .row")].find((r) => r.querySelector(".name").textContent === "Rita Reask")`
	require.Eventually(t, func() bool { return eval(`!!`+ritaRow) == true }, 10*time.Second, 20*time.Millisecond, "Rita in Request Accepted")
	assert.Contains(t, eval(ritaRow+`.textContent`), "Accepted request")
	assert.Contains(t, eval(ritaRow+`.querySelector(".num").textContent`), "+1 555 020")
	assert.Equal(t, true, eval(`window.__sameLoad === true`), "the page was never reloaded")

	// Her chat shows the request; asking her again is disabled with why.
	eval(ritaRow + `.querySelector(".open").click()`)
	do("open Rita", chromedp.WaitVisible(chromedp.CSS(`#request-permission`)))
	require.Eventually(t, func() bool {
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#chat`)))
		return err == nil && strings.Contains(s, "Call permission request")
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, true, eval(`document.getElementById("request-permission").disabled`))
	assert.Contains(t, text(`#request-why`), "Meta allows one request per 24 h")
}
