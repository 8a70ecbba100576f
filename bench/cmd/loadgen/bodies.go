package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultFixtures are the shapes loadgen posts, in turn: permission
// replies, calls and messages (webhook/testdata/fixtures, the same files as
// the project's shared fixtures).
var DefaultFixtures = []string{
	"permission-accept-temporary.json",
	"message-text.json",
	"call-inbound-connect.json",
	"permission-accept-permanent.json",
	"call-inbound-missed.json",
	"permission-profile-permanent.json",
	"message-text.json",
	"call-inbound-completed.json",
	"permission-reject.json",
	"batch-two-channels.json",
	"permission-callback-automatic.json",
	"call-business-status-rejected.json",
	"permission-auto-revoke.json",
}

// userKeys name the fields that hold a user's phone number or user id;
// their values are replaced per body, so that every body is about users
// of its own and nothing dedupes.
// userCountries are the country codes of the generated user ids.
var userCountries = []string{"US", "IN", "BR", "ES", "CN"}

var userKeys = map[string]bool{
	"wa_id": true, "from": true, "to": true, "recipient_id": true,
	"user_id": true, "from_user_id": true, "to_user_id": true, "recipient_user_id": true,
}

// timeKeys name the unix-seconds fields, shifted so that each body happens
// now.
var timeKeys = map[string]bool{"timestamp": true, "expiration_timestamp": true, "start_time": true, "end_time": true}

// fixture is one parsed body shape.
type fixture struct {
	name  string
	tree  any
	users map[string]int // a user's phone number or user id → its index in the body
	ids   []string       // wamid./wacid. ids, replaced per body
	last  int64          // the latest timestamp of an item
}

// loadFixtures reads the named files of dir.
func loadFixtures(dir string, names []string) ([]*fixture, error) {
	out := make([]*fixture, 0, len(names))
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		f, err := parseFixture(n, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFixture(name string, raw []byte) (*fixture, error) {
	f := &fixture{name: name, users: map[string]int{}}
	if err := json.Unmarshal(raw, &f.tree); err != nil {
		return nil, err
	}
	display := map[string]bool{}
	walk(f.tree, "", func(key string, v any) {
		if s, ok := v.(string); ok && key == "display_phone_number" {
			display[s] = true
		}
	})
	walk(f.tree, "", func(key string, v any) {
		switch {
		case userKeys[key]:
			if s, ok := v.(string); ok && s != "" && !display[s] {
				if _, seen := f.users[s]; !seen {
					f.users[s] = len(f.users)
				}
			}
		case key == "timestamp":
			if t, ok := unix(v); ok && t > f.last {
				f.last = t
			}
		}
	})
	if len(f.users) == 0 {
		return nil, fmt.Errorf("no user to vary")
	}
	return f, nil
}

// walk calls fn for every object member of v, depth first.
func walk(v any, key string, fn func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			fn(k, c)
			walk(c, k, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, key, fn)
		}
	}
}

func unix(v any) (int64, bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	case float64:
		return int64(x), true
	}
	return 0, false
}

// body returns the i-th body of f: its item ids made unique to i, its
// users those of body i (of body i % users when users > 0, a bounded
// population), its item timestamps moved so that the latest is now
// (expiries move with them).
func (f *fixture) body(i, users int, now time.Time) ([]byte, error) {
	shift := int64(0)
	if f.last > 0 {
		shift = now.Unix() - f.last
	}
	who := i
	if users > 0 {
		who = i % users
	}
	out := f.rewrite(f.tree, "", i, who, shift)
	return json.Marshal(out)
}

func (f *fixture) rewrite(v any, key string, i, who int, shift int64) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			m[k] = f.rewrite(c, k, i, who, shift)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for j, c := range x {
			s[j] = f.rewrite(c, key, i, who, shift)
		}
		return s
	case string:
		if u, ok := f.users[x]; ok && userKeys[key] {
			return userValue(x, u, who)
		}
		if key == "id" && (strings.HasPrefix(x, "wamid.") || strings.HasPrefix(x, "wacid.")) {
			return x + ".lg" + strconv.Itoa(i)
		}
		if timeKeys[key] {
			if t, ok := unix(x); ok {
				return strconv.FormatInt(t+shift, 10)
			}
		}
		return x
	case float64:
		if timeKeys[key] {
			return float64(int64(x) + shift)
		}
		return x
	}
	return v
}

// userValue is the u-th user of body i: a phone number of digits, or a
// user id in Meta's "CC.digits" form when the fixture's value is one. The
// country code is the user's, not the fixture's, so that a user slot is
// the same person in every fixture shape (else -users would bound the
// population at users × fixtures × their country codes).
func userValue(old string, u, i int) string {
	if cc, _, ok := strings.Cut(old, "."); ok && len(cc) == 2 {
		return fmt.Sprintf("%s.9%02d%016d", userCountries[(u+i)%len(userCountries)], u, i)
	}
	return fmt.Sprintf("99%02d%010d", u, i)
}
