package main

import (
	"net/url"
	"testing"
	"time"

	"github.com/callready/callready/permission"
)

// FuzzAuditParams feeds arbitrary query strings to the audit endpoints'
// parameter parsers: they never panic, and what they accept is valid.
func FuzzAuditParams(f *testing.F) {
	for _, s := range []string{
		"at=2026-03-03T14:05:00Z&known_at=2026-03-03T14:05:00Z",
		"from=2026-03-03T00:00:00Z&to=2026-03-02T00:00:00Z",
		"format=csv&order=recent&expiring_within=24h&source=callback&calls=none&q=612+000",
		"limit=0&at=noon", "q=%00&source=x", "",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 3, 15, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if q, err := callableQuery(v, now); err == nil {
			if q.Order != permission.OrderExpiring && q.Order != permission.OrderRecent {
				t.Fatalf("accepted order %q", q.Order)
			}
			if q.Limit < 0 || q.Limit > permission.MaxPageSize || q.ExpiringWithin < 0 || q.Now.IsZero() {
				t.Fatalf("accepted %+v", q)
			}
		}
		if f, err := parseCallableFilter(v); err == nil {
			e := permission.Entry{Contact: "34612000001", Kind: permission.Temporary, Source: permission.SourceRequest, CallsLeft: 1}
			_ = f.keeps(e, v.Get("name"))
		}
		var hq permission.HistoryQuery
		if err := historyRange(v, &hq); err == nil && !hq.From.IsZero() && !hq.To.IsZero() && !hq.To.After(hq.From) {
			t.Fatalf("accepted an empty range %v..%v", hq.From, hq.To)
		}
	})
}
