package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	tree  any            // the body as encoding/json decodes it into an any
	users map[string]int // a user's phone number or user id → its index in the body
	last  int64          // the latest timestamp of an item
	parts []part         // the body as a template (compile)
	size  int            // bytes of the template's literal parts
}

// A fixture's bodies are written from a template: the JSON that
// marshalling the fixture's tree gives (keys sorted, as json.Marshal
// sorts a map's), cut at each value that varies from body to body.
// Rewriting the tree and marshalling it for every body took about a
// third of loadgen's CPU, which the server shares on a small machine;
// TestTemplateIsTheRewrittenTree checks that both give the same bytes.
type part struct {
	lit  []byte // JSON before the value
	kind partKind
	old  string // user: the fixture's value, whose form the body's keeps
	user int    // user: the user's index in the body
	t    int64  // time: the fixture's unix seconds, shifted to now
}

type partKind uint8

const (
	partEnd        partKind = iota // no value: the template's last literal
	partUser                       // a user's phone number or user id, of body i's users
	partIDSuffix                   // ".lg<i>" and the closing quote of a wamid./wacid. id
	partTimeString                 // unix seconds in a JSON string
	partTimeNumber                 // unix seconds as a JSON number
)

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
	var lit []byte
	if err := f.compile(f.tree, "", &lit); err != nil {
		return nil, err
	}
	f.parts = append(f.parts, part{lit: lit, kind: partEnd})
	for _, p := range f.parts {
		f.size += len(p.lit)
	}
	return f, nil
}

// compile appends v, the member key's value, to the template: literal
// JSON to *lit, and a part ending *lit at each value that varies. It
// varies what rewriteTree (main_test.go) rewrites, in the same cases.
func (f *fixture) compile(v any, key string, lit *[]byte) error {
	hole := func(p part) {
		p.lit, *lit = *lit, nil
		f.parts = append(f.parts, p)
	}
	switch x := v.(type) {
	case map[string]any:
		*lit = append(*lit, '{')
		for j, k := range slices.Sorted(maps.Keys(x)) {
			if j > 0 {
				*lit = append(*lit, ',')
			}
			name, err := json.Marshal(k)
			if err != nil {
				return err
			}
			*lit = append(append(*lit, name...), ':')
			if err := f.compile(x[k], k, lit); err != nil {
				return err
			}
		}
		*lit = append(*lit, '}')
		return nil
	case []any:
		*lit = append(*lit, '[')
		for j, c := range x {
			if j > 0 {
				*lit = append(*lit, ',')
			}
			if err := f.compile(c, key, lit); err != nil {
				return err
			}
		}
		*lit = append(*lit, ']')
		return nil
	case string:
		if u, ok := f.users[x]; ok && userKeys[key] {
			hole(part{kind: partUser, old: x, user: u})
			return nil
		}
		if key == "id" && (strings.HasPrefix(x, "wamid.") || strings.HasPrefix(x, "wacid.")) {
			quoted, err := json.Marshal(x)
			if err != nil {
				return err
			}
			*lit = append(*lit, quoted[:len(quoted)-1]...) // the suffix needs no escaping
			hole(part{kind: partIDSuffix})
			return nil
		}
		if timeKeys[key] {
			if t, ok := unix(x); ok {
				hole(part{kind: partTimeString, t: t})
				return nil
			}
		}
	case float64:
		if timeKeys[key] {
			// json.Marshal writes a whole float64 below 1e21 as its digits.
			hole(part{kind: partTimeNumber, t: int64(x)})
			return nil
		}
	}
	b, err := json.Marshal(v)
	*lit = append(*lit, b...)
	return err
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
func (f *fixture) body(i, users int, now time.Time) []byte {
	shift := int64(0)
	if f.last > 0 {
		shift = now.Unix() - f.last
	}
	who := i
	if users > 0 {
		who = i % users
	}
	b := make([]byte, 0, f.size+len(f.parts)*32)
	for _, p := range f.parts {
		b = append(b, p.lit...)
		switch p.kind {
		case partUser:
			b = append(append(append(b, '"'), userValue(p.old, p.user, who)...), '"')
		case partIDSuffix:
			b = append(strconv.AppendInt(append(b, ".lg"...), int64(i), 10), '"')
		case partTimeString:
			b = append(strconv.AppendInt(append(b, '"'), p.t+shift, 10), '"')
		case partTimeNumber:
			b = strconv.AppendInt(b, p.t+shift, 10)
		}
	}
	return b
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
