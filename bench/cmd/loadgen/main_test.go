package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/webhook"
)

const fixtures = "../../../webhook/testdata/fixtures"

// Every body parses whole, and no two bodies share a user or an event id.
func TestBodiesAreDistinct(t *testing.T) {
	fx, err := loadFixtures(fixtures, DefaultFixtures)
	require.NoError(t, err)
	g := &generator{fixtures: fx}
	now := time.Unix(1780000000, 0)
	contactOf := map[string]int{}
	ids := map[string]int{}
	events := 0
	for i := range 3 * len(fx) {
		j, err := g.next(now)
		require.NoError(t, err)
		b, err := webhook.Parse(j.body)
		require.NoError(t, err)
		require.Empty(t, b.Quarantined)
		require.Equal(t, len(b.Events), j.events)
		events += j.events
		for _, e := range b.Events {
			if prev, ok := contactOf[e.Channel+"/"+e.Contact]; ok {
				require.Equal(t, i, prev, "contact %s in bodies %d and %d", e.Contact, prev, i)
			}
			contactOf[e.Channel+"/"+e.Contact] = i
			if e.ID != "" {
				key := e.Type.String() + e.ID
				if prev, ok := ids[key]; ok {
					require.Equal(t, i, prev, "event id %s in bodies %d and %d", e.ID, prev, i)
				}
				ids[key] = i
			}
			require.False(t, e.At.After(now), "%s at %v is after now", e.Type, e.At)
			require.True(t, e.At.After(now.Add(-24*time.Hour)), "%s at %v is not recent", e.Type, e.At)
		}
	}
	require.Positive(t, events)
}

// A run against the real webhook handler on a memory tracker: every body
// answered 200, and the events it reports acknowledged are all in the
// ledger.
func TestRunCountsWhatTheServerRecorded(t *testing.T) {
	ctx := context.Background()
	tr, err := permission.New(ctx, permission.Config{Store: memory.New(memory.Config{})})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	h, err := webhook.New(webhook.Config{AppSecret: "s3cret", Recorder: tr})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	var out bytes.Buffer
	cfg := config{URL: srv.URL, Secret: "s3cret", N: 60, Clients: 4, Fixtures: fixtures, Names: DefaultFixtures, JSON: true, Timeout: 10 * time.Second}
	require.NoError(t, run(ctx, cfg, &out))
	var r Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	require.True(t, r.Final)
	require.Equal(t, 60, r.Posted)
	require.Equal(t, 60, r.OK)
	require.Zero(t, r.Non200)
	require.Positive(t, r.P99)

	recorded := 0
	for _, ch := range []string{"106540352242922", "106540352299999"} {
		for _, err := range tr.History(ctx, permission.HistoryQuery{Channel: ch}) {
			require.NoError(t, err)
			recorded++
		}
	}
	require.Equal(t, r.Events, recorded)

	// A wrong secret: every answer is a 403, counted as non-200.
	out.Reset()
	cfg.Secret, cfg.N = "wrong", 5
	require.NoError(t, run(ctx, cfg, &out))
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	require.Equal(t, 5, r.Non200)
	require.Equal(t, map[int]int{403: 5}, r.Statuses)
}

// With -users, body i names the users of body i % users (the active set
// stops growing) while its event ids stay its own (nothing dedupes).
func TestBoundedUsers(t *testing.T) {
	fx, err := loadFixtures(fixtures, DefaultFixtures)
	require.NoError(t, err)
	users := len(fx) + 1 // coprime to the fixture count: each user slot meets every fixture shape
	g := &generator{fixtures: fx, users: users}
	now := time.Unix(1780000000, 0)
	contacts := map[string]bool{}
	ids := map[string]bool{}
	for range 3 * users * len(fx) { // every user slot in every fixture shape, three times
		j, err := g.next(now)
		require.NoError(t, err)
		b, err := webhook.Parse(j.body)
		require.NoError(t, err)
		for _, e := range b.Events {
			contacts[e.Contact] = true
			for _, a := range e.Aliases {
				contacts[a] = true
			}
			if e.ID != "" {
				key := e.Type.String() + e.ID
				require.False(t, ids[key], "event id %s twice", e.ID)
				ids[key] = true
			}
		}
	}
	require.NotEmpty(t, contacts)
	// Bodies i and i+users name the same user slots, each one person with
	// one phone number and one user id in every fixture shape: at most
	// 2 × users × the most users a fixture has.
	most := 0
	for _, f := range fx {
		most = max(most, len(f.users))
	}
	require.LessOrEqual(t, len(contacts), 2*users*most)
}

// The template writes exactly what rewriting the fixture's tree and
// marshalling it writes, for every fixture and for bounded and unbounded
// populations.
func TestTemplateIsTheRewrittenTree(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(fixtures, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	now := time.Unix(1780000000, 0)
	compared := 0
	for _, name := range names {
		f, err := loadFixtures(filepath.Dir(name), []string{filepath.Base(name)})
		if err != nil {
			continue // a fixture with no user to vary is not a shape loadgen posts
		}
		compared++
		for _, users := range []int{0, 7} {
			for _, i := range []int{0, 1, 12, 99_999} {
				who := i
				if users > 0 {
					who = i % users
				}
				shift := int64(0)
				if f[0].last > 0 {
					shift = now.Unix() - f[0].last
				}
				want, err := json.Marshal(rewriteTree(f[0], f[0].tree, "", i, who, shift))
				require.NoError(t, err)
				require.Equal(t, string(want), string(f[0].body(i, users, now)), "%s, body %d, users %d", name, i, users)
			}
		}
	}
	require.GreaterOrEqual(t, compared, len(DefaultFixtures)-1, "fixtures compared") // DefaultFixtures repeats one
}

// BenchmarkBody: a body of each default shape in turn, from the template
// and, as loadgen built them before, by rewriting the tree and
// marshalling it.
func BenchmarkBody(b *testing.B) {
	fx, err := loadFixtures(fixtures, DefaultFixtures)
	require.NoError(b, err)
	now := time.Unix(1780000000, 0)
	b.Run("template", func(b *testing.B) {
		for i := range b.N {
			_ = fx[i%len(fx)].body(i, 0, now)
		}
	})
	b.Run("tree", func(b *testing.B) {
		for i := range b.N {
			f := fx[i%len(fx)]
			if _, err := json.Marshal(rewriteTree(f, f.tree, "", i, i, now.Unix()-f.last)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// rewriteTree is body i of f as a tree, the definition the template
// follows: users replaced by body i's, wamid./wacid. ids suffixed with i,
// timestamps shifted.
func rewriteTree(f *fixture, v any, key string, i, who int, shift int64) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			m[k] = rewriteTree(f, c, k, i, who, shift)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for j, c := range x {
			s[j] = rewriteTree(f, c, key, i, who, shift)
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
