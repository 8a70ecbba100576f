package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
)

// Identity (issue 13) on every store: one person per business number,
// whether Meta names them by phone, BSUID or both.

const (
	phone  = "34612345678"
	bsuid  = "ES.13491208655302741918"
	phone2 = "34699887766"
)

func ev(typ permission.EventType, contact string, at time.Time, aliases ...string) permission.Event {
	e := permission.Event{Type: typ, Channel: regCh, Contact: contact, Aliases: aliases, At: at}
	switch typ {
	case permission.EventGrant:
		e.Permanent, e.Source, e.ID = true, permission.SourceRequest, "wamid.grant"
	case permission.EventRevoke:
		e.Reason, e.ID = permission.RevokeRejected, "wamid.revoke"
	}
	return e
}

// explainAll asks about the person by each identifier.
func explainAll(t *testing.T, tr *permission.Tracker, ids ...string) []permission.Explanation {
	t.Helper()
	var out []permission.Explanation
	for _, id := range ids {
		x, err := tr.Explain(context.Background(), regCh, id, time.Time{})
		require.NoError(t, err)
		out = append(out, x)
	}
	return out
}

func TestIdentityScenarios(t *testing.T) {
	join := func(at time.Time) permission.Event { // a message showing both identifiers
		return permission.Event{Type: permission.EventIdentity, Channel: regCh, Contact: phone, Aliases: []string{bsuid}, At: at}
	}
	for _, sc := range []struct {
		name     string
		events   []permission.Event
		callable bool
	}{
		{"phone grant with the BSUID, revoke by BSUID only", []permission.Event{
			ev(permission.EventGrant, phone, t0, bsuid), ev(permission.EventRevoke, bsuid, t0.Add(time.Hour))}, false},
		{"BSUID grant, phone revoke, joined", []permission.Event{
			ev(permission.EventGrant, bsuid, t0), join(t0.Add(time.Minute)), ev(permission.EventRevoke, phone, t0.Add(time.Hour))}, false},
		{"grant by phone, join later, revoke by BSUID", []permission.Event{
			ev(permission.EventGrant, phone, t0), ev(permission.EventRevoke, bsuid, t0.Add(time.Hour)), join(t0.Add(2 * time.Hour))}, false},
		{"grant by BSUID, joined, still callable", []permission.Event{
			ev(permission.EventGrant, bsuid, t0), join(t0.Add(time.Hour))}, true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
				// Every order of the events gives the same answer, under
				// every identifier, and one listed entry at most.
				perms := permutations(len(sc.events))
				for pi, perm := range perms {
					channel := regCh
					clk := mock(t0.Add(3 * time.Hour))
					tr := open(clk, false)
					for _, i := range perm {
						e := sc.events[i]
						e.Channel = channel + "-" + string(rune('a'+pi)) // a fresh channel per order, same store
						_, err := tr.Record(context.Background(), e)
						require.NoError(t, err)
					}
					for _, id := range []string{phone, bsuid, "+34 612 34 56 78"} {
						x, err := tr.Explain(context.Background(), channel+"-"+string(rune('a'+pi)), id, time.Time{})
						require.NoError(t, err)
						assert.Equal(t, sc.callable, x.Callable, "order %v, asked by %s: %s", perm, id, x.Reason)
						assert.Equal(t, bsuid, x.Contact, "the person's contact is the BSUID")
					}
					p, err := tr.Eligible(context.Background(), channel+"-"+string(rune('a'+pi)), permission.Query{})
					require.NoError(t, err)
					if sc.callable {
						require.Len(t, p.Entries, 1, "one row per person, order %v", perm)
						assert.Equal(t, bsuid, p.Entries[0].Contact)
						assert.Equal(t, phone, p.Entries[0].WaID)
						assert.Equal(t, bsuid, p.Entries[0].UserID)
					} else {
						assert.Empty(t, p.Entries, "order %v", perm)
					}
				}
			})
		})
	}
}

// A number change: the person keeps their permission under the new
// number, and the old one still resolves.
func TestIdentityNumberChange(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0.Add(time.Hour))
		tr := open(clk, false)
		ctx := context.Background()
		_, err := tr.Record(ctx, permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: phone, At: t0, Permanent: true, ID: "wamid.g"})
		require.NoError(t, err)
		// user_changed_number: from the old phone, system.wa_id the new one.
		_, err = tr.Record(ctx, permission.Event{Type: permission.EventIdentity, Channel: regCh, Contact: phone, Aliases: []string{phone2}, At: t0.Add(time.Minute)})
		require.NoError(t, err)
		for _, x := range explainAll(t, tr, phone, phone2) {
			assert.True(t, x.Callable)
			assert.Equal(t, phone2, x.Contact, "listed under the new number")
		}
		p, err := tr.Eligible(ctx, regCh, permission.Query{})
		require.NoError(t, err)
		require.Len(t, p.Entries, 1)
		assert.Equal(t, phone2, p.Entries[0].Contact)
		_, err = tr.Record(ctx, permission.Event{Type: permission.EventRevoke, Channel: regCh, Contact: phone2, At: t0.Add(2 * time.Minute), ID: "wamid.r"})
		require.NoError(t, err)
		for _, x := range explainAll(t, tr, phone, phone2) {
			assert.False(t, x.Callable, x.Reason)
		}
	})
}

// A live subscriber sees one entry per person across a merge: the merged
// entry replaces both rows in one change.
func TestIdentityMergeOnTheStream(t *testing.T) {
	allStores(t, func(t *testing.T, open func(clock.Clock, bool) *permission.Tracker) {
		clk := mock(t0.Add(time.Hour))
		tr := open(clk, false)
		ctx := context.Background()
		_, err := tr.Record(ctx,
			permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: phone, At: t0, ID: "wamid.a"},
			permission.Event{Type: permission.EventGrant, Channel: regCh, Contact: bsuid, At: t0.Add(time.Minute), ID: "wamid.b", Permanent: true})
		require.NoError(t, err)
		p, err := tr.Eligible(ctx, regCh, permission.Query{})
		require.NoError(t, err)
		require.Len(t, p.Entries, 2, "two persons until Meta joins them")
		sub, err := tr.Subscribe(permission.SubscribeOptions{Channel: regCh, After: p.Revision})
		require.NoError(t, err)
		defer sub.Close()

		_, err = tr.Record(ctx, permission.Event{Type: permission.EventIdentity, Channel: regCh, Contact: phone, Aliases: []string{bsuid}, At: t0.Add(2 * time.Minute)})
		require.NoError(t, err)
		rows := map[string]bool{}
		for _, e := range p.Entries {
			rows[e.Contact] = true
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := sub.Next(wctx)
		require.NoError(t, err)
		for _, old := range c.Replaces {
			delete(rows, old)
		}
		rows[c.Entry.Contact] = true
		assert.Equal(t, map[string]bool{bsuid: true}, rows, "one row for the person after the change %+v", c)
		assert.Equal(t, permission.Permanent, c.Entry.Kind)
		assert.Equal(t, phone, c.Entry.WaID)
		p, err = tr.Eligible(ctx, regCh, permission.Query{})
		require.NoError(t, err)
		require.Len(t, p.Entries, 1)
		assert.Equal(t, c.Revision, p.Revision)
	})
}

func permutations(n int) [][]int {
	var out [][]int
	var rec func([]int, int)
	rec = func(a []int, k int) {
		if k == len(a) {
			out = append(out, slices.Clone(a))
			return
		}
		for i := k; i < len(a); i++ {
			a[k], a[i] = a[i], a[k]
			rec(a, k+1)
			a[k], a[i] = a[i], a[k]
		}
	}
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	rec(a, 0)
	return out
}
