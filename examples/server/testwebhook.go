package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook/webhooktest"
)

// testWebhook is Meta's webhook for an accepted call permission request
// (Sheena Nelson, +1 650-555-1234, on business number +1 555-078-3881),
// with {{now}}, {{expires}} and {{id}} filled in at send time.
//
//go:embed fixtures/test-webhook.json
var testWebhook string

// testWebhookBody fills the fixture: granted at now, for Meta's 7 days.
func testWebhookBody(now time.Time) []byte {
	return []byte(strings.NewReplacer(
		"{{now}}", strconv.FormatInt(now.Unix(), 10),
		"{{expires}}", strconv.FormatInt(now.Add(permission.DefaultTTL).Unix(), 10),
		"{{id}}", "wamid.test."+strconv.FormatInt(now.UnixNano(), 36),
	).Replace(testWebhook))
}

// sendTestWebhook is -send-test-webhook: sign the fixture with the app
// secret and post it to the server at addr, as Meta would.
func sendTestWebhook(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.GeneratedAppSecret {
		return fmt.Errorf("-send-test-webhook: set CALLREADY_APP_SECRET to the secret the server uses")
	}
	host, port, _ := net.SplitHostPort(cfg.Addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	target := "http://" + net.JoinHostPort(host, port) + "/webhook"
	body := testWebhookBody(time.Now())
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := webhooktest.Post(ctx, nil, target, cfg.AppSecret, body)
	if err != nil {
		return fmt.Errorf("-send-test-webhook: %v", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("-send-test-webhook: %s answered %s: %s", target, resp.Status, strings.TrimSpace(string(answer)))
	}
	fmt.Fprintf(out, "callready: %s accepted the test webhook (%s): Sheena Nelson (+1 650 555 1234) may be called for 7 days\n", target, resp.Status)
	return nil
}
