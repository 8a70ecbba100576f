package main

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzDialURL: contact keys come from Meta's webhooks. Whatever they hold,
// the filled link keeps the template's scheme, host and path: a contact
// can only ever fill its own placeholder.
func FuzzDialURL(f *testing.F) {
	for _, c := range []string{"34612345678", "US.13491208655302741918", "a/b?c#d", "x@evil.example", "%2F..%2F", "{phone}", ""} {
		f.Add(c)
	}
	templates := []string{
		"tel:+{phone}",
		"sip:{contact}@pbx.example.com",
		"https://softphone.example.com/dial/{contact}?ch={channel}",
		"https://softphone.example.com/dial?to=%2B{phone}",
	}
	f.Fuzz(func(t *testing.T, contact string) {
		for _, tmpl := range templates {
			got := dialURL(tmpl, "106540352242922", contact)
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("%q with contact %q: unparsable %q: %v", tmpl, contact, got, err)
			}
			want, _ := url.Parse(strings.NewReplacer("{phone}", "", "{contact}", "x", "{channel}", "x").Replace(tmpl))
			if u.Scheme != want.Scheme || u.Host != want.Host {
				t.Fatalf("%q with contact %q gave %q: scheme/host changed", tmpl, contact, got)
			}
			if strings.HasPrefix(tmpl, "https://softphone.example.com/dial/") {
				if rest, ok := strings.CutPrefix(u.EscapedPath(), "/dial/"); !ok || strings.Contains(rest, "/") {
					t.Fatalf("contact %q escaped its path segment: %q", contact, got)
				}
			}
			if tmpl == "tel:+{phone}" && !isDigits(contact) && got != "tel:+" {
				t.Fatalf("{phone} took a non-numeric contact %q: %q", contact, got)
			}
		}
	})
}
