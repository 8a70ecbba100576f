package cloudapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/callready/callready/permission"
)

func TestParseISODuration(t *testing.T) {
	good := map[string]time.Duration{
		"PT24H": 24 * time.Hour, "P7D": 7 * 24 * time.Hour, "P1W": 7 * 24 * time.Hour,
		"P1DT12H": 36 * time.Hour, "PT90M": 90 * time.Minute, "PT1H30M15S": time.Hour + 30*time.Minute + 15*time.Second,
		"PT0S": 0, "P1W2D": 9 * 24 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseISODuration(in)
		if err != nil || got != want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "P1DT", "24H", "P1Y", "P1M", "PT1.5H", "P-1D", "PT1H1H", "PT1M1H", "P1D1W", "PTH", "P1", "pt24h", "P9999999999999D", "PT24HX"} {
		if d, err := ParseISODuration(in); err == nil {
			t.Errorf("ParseISODuration(%q) = %v, want an error", in, d)
		}
	}
}

func FuzzParseISODuration(f *testing.F) {
	for _, s := range []string{"PT24H", "P7D", "P1DT12H", "PT1H30M15S", "P1W", "P", "PT", "P1Y", "P99999999999W"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseISODuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative %v", s, d)
		}
		// Every accepted value round-trips through its canonical spelling.
		canon := fmt.Sprintf("PT%dS", int64(d/time.Second))
		if d2, err := ParseISODuration(canon); err != nil || d2 != d {
			t.Fatalf("%q = %v, but %q = %v, %v", s, d, canon, d2, err)
		}
	})
}

func TestUnixTime(t *testing.T) {
	for in, want := range map[string]int64{`1745343479`: 1745343479, `"1745343479"`: 1745343479, `1745343479.0`: 1745343479, `null`: 0, `""`: 0, `0`: 0} {
		var u unixTime
		if err := json.Unmarshal([]byte(in), &u); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if want == 0 != u.t.IsZero() || (want != 0 && u.t.Unix() != want) {
			t.Errorf("%s = %v, want %d", in, u.t, want)
		}
	}
	for _, in := range []string{`-1`, `"x"`, `1.5`, `true`, `99999999999999`, `{}`} {
		var u unixTime
		if err := json.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("%s accepted as %v", in, u.t)
		}
	}
}

// FuzzDecodePermissions feeds arbitrary GET answers to the decoder: it
// must never panic, and what it accepts must be consistent.
func FuzzDecodePermissions(f *testing.F) {
	f.Add([]byte(`{"messaging_product":"whatsapp","permission":{"status":"temporary","expiration_time":1745343479},"actions":[{"action_name":"send_call_permission_request","can_perform_action":true,"limits":[{"time_period":"PT24H","max_allowed":1,"current_usage":0},{"time_period":"P7D","max_allowed":2,"current_usage":1}]},{"action_name":"start_call","can_perform_action":false,"limits":[{"time_period":"PT24H","max_allowed":100,"current_usage":100,"limit_expiration_time":1745622600}]}]}`))
	f.Add([]byte(`{"permission":{"status":"temporary","expiration":"1745343479"}}`))
	f.Add([]byte(`{"permission":{"status":"no_permission"},"actions":null}`))
	f.Add([]byte(`{"permission":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r permissionsResponse
		if json.Unmarshal(body, &r) != nil {
			return
		}
		p, err := r.permissions()
		if err != nil {
			return
		}
		if p.Status == "" {
			t.Fatal("accepted without a status")
		}
		if !p.ExpiresAt.IsZero() && (p.ExpiresAt.Unix() <= 0 || p.ExpiresAt.Unix() > maxUnix) {
			t.Fatalf("expiry out of range: %v", p.ExpiresAt)
		}
		for _, a := range p.Actions {
			for _, l := range a.Limits {
				if l.Period < 0 || l.Remaining() < 0 {
					t.Fatalf("bad limit %+v", l)
				}
			}
		}
	})
}

// FuzzDecodeError: any status, Retry-After and body give a usable error
// (or, for a 2xx without an envelope, none).
func FuzzDecodeError(f *testing.F) {
	f.Add(400, "", []byte(`{"error":{"message":"(#138009) limit","type":"OAuthException","code":138009,"error_subcode":2494010,"error_data":{"details":"d"},"fbtrace_id":"Az"}}`))
	f.Add(429, "7", []byte(`{"error":{"code":613}}`))
	f.Add(429, "Wed, 31 Dec 2025 08:00:30 GMT", []byte(`{"error":{"code":4}}`))
	f.Add(502, "", []byte(`<html>bad gateway</html>`))
	f.Add(200, "", []byte(`{"messages":[{"id":"wamid.x"}]}`))
	f.Add(200, "99999999999999999999", []byte(`{"error":null}`))
	now := time.Unix(1767168000, 0)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		e, ok := decodeError(status, h, body, now)
		if !ok {
			if status >= 200 && status < 300 {
				return
			}
			t.Fatalf("status %d: no error", status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("Retry-After %q gave %v", retryAfter, e.RetryAfter)
		}
		if len(e.Message) > maxMessageSnippet+len("…") && e.Code == 0 {
			t.Fatalf("snippet too long: %d", len(e.Message))
		}
		_ = e.Error()
		_, _ = e.Reason()
	})
}

// FuzzDecodeSettings: any GET settings answer decodes without panicking,
// and an accepted one maps to one of the three callback settings.
func FuzzDecodeSettings(f *testing.F) {
	f.Add([]byte(`{"calling":{"status":"ENABLED","call_icon_visibility":"DEFAULT","callback_permission_status":"ENABLED"}}`))
	f.Add([]byte(`{"settings":{"calling":{"callback_permission_status":"not_set"}}}`))
	f.Add([]byte(`{"calling":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r settingsResponse
		if json.Unmarshal(body, &r) != nil {
			return
		}
		s, err := r.settings()
		if err != nil {
			return
		}
		switch cb := s.Calling.Callback(); cb {
		case permission.CallbackEnabled, permission.CallbackDisabled, permission.CallbackUnknown:
		default:
			t.Fatalf("callback %q", cb)
		}
	})
}
