package cloudapitest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/callready/callready/cloudapi/cloudapitest"
)

// FuzzSendBody posts arbitrary bodies to the fake's messages endpoint:
// every answer is either a 200 with a wamid the fake recorded, or a 4xx
// carrying Meta's error envelope; never a 5xx or a panic.
func FuzzSendBody(f *testing.F) {
	f.Add(`{"messaging_product":"whatsapp","recipient_type":"individual","to":"1","type":"interactive","interactive":{"type":"call_permission_request","action":{"name":"call_permission_request"}}}`)
	f.Add(`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.1","type":"template","template":{"name":"t","language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text","parameter_name":"a","text":"b"}]}]}}`)
	f.Add(`{"type":"interactive","interactive":null}`)
	f.Add(`[]`)
	fake := cloudapitest.New(cloudapitest.Config{RequestsPerDay: 1 << 30, RequestsPerWeek: 1 << 30})
	f.Cleanup(fake.Close)
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest(http.MethodPost, fake.URL()+"/v25.0/106540352242922/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fake.AccessToken())
		resp, err := fake.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Messages []struct{ ID string } `json:"messages"`
			Error    *struct {
				Code      int    `json:"code"`
				Message   string `json:"message"`
				FBTraceID string `json:"fbtrace_id"`
			} `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("status %d: undecodable answer: %v", resp.StatusCode, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if len(out.Messages) != 1 || !strings.HasPrefix(out.Messages[0].ID, "wamid.") {
				t.Fatalf("200 without a wamid: %+v", out)
			}
			reqs := fake.Requests()
			if reqs[len(reqs)-1].ID != out.Messages[0].ID {
				t.Fatal("the accepted request was not recorded last")
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			if out.Error == nil || out.Error.Code == 0 || out.Error.Message == "" || out.Error.FBTraceID == "" {
				t.Fatalf("%d without an envelope: %+v", resp.StatusCode, out)
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}
