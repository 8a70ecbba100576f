package permission

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIdentityMergesAreOrderIndependent: random event sets over two
// persons, each event naming its person by a random subset of their
// identifiers (phone only, BSUID only, both), with at least one event
// showing both. In any order the tracker ends as if every event had named
// the person by all identifiers from the start: same list, same answers by
// either identifier.
func TestIdentityMergesAreOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	ctx := context.Background()
	people := [][2]string{{"16505551234", "US.1111"}, {"34612345678", "ES.2222"}}
	for iter := range 120 {
		events := randomEvents(r, 1+r.IntN(20))
		named := make([]Event, 0, len(events)+2)
		full := make([]Event, 0, len(events)+2)
		for _, e := range events {
			p := people[int(e.Contact[0]-'a')%len(people)]
			f := e
			f.Contact, f.Aliases = p[1], []string{p[0]}
			full = append(full, f)
			switch r.IntN(3) {
			case 0:
				e.Contact, e.Aliases = p[0], nil
			case 1:
				e.Contact, e.Aliases = p[1], nil
			default:
				e.Contact, e.Aliases = p[0], []string{p[1]}
			}
			named = append(named, e)
		}
		for _, p := range people {
			join := Event{Type: EventIdentity, Channel: ch, Contact: p[0], Aliases: []string{p[1]}, At: t0.Add(time.Duration(r.IntN(200)) * time.Hour)}
			named = append(named, join)
			f := join
			f.Contact, f.Aliases = p[1], []string{p[0]}
			full = append(full, f)
		}
		run := func(evs []Event) *fixture {
			f := newFixture(t, Config{})
			f.clk.Set(t0.Add(-time.Hour))
			for len(evs) > 0 {
				n := 1 + r.IntN(min(3, len(evs)))
				_, err := f.tr.Record(ctx, evs[:n]...)
				require.NoError(t, err)
				evs = evs[n:]
			}
			return f
		}
		want := run(full)
		got := run(shuffledWithDuplicates(r, named))
		for h := 0; h < 400; h += 13 {
			now := t0.Add(time.Duration(h) * time.Hour)
			for _, f := range []*fixture{want, got} {
				f.clk.Set(now)
				_, err := f.tr.Sweep(ctx, now)
				require.NoError(t, err)
			}
			wp, err := want.tr.Eligible(ctx, ch, Query{Now: now, Limit: MaxPageSize})
			require.NoError(t, err)
			gp, err := got.tr.Eligible(ctx, ch, Query{Now: now, Limit: MaxPageSize})
			require.NoError(t, err)
			require.Equal(t, wp.Entries, gp.Entries, "iteration %d at %s", iter, now)
			for _, p := range people {
				for _, id := range p {
					wx, err := want.tr.Explain(ctx, ch, id, now)
					require.NoError(t, err)
					gx, err := got.tr.Explain(ctx, ch, id, now)
					require.NoError(t, err)
					require.Equal(t, wx.Callable, gx.Callable, "iteration %d %s at %s", iter, id, now)
					require.Equal(t, wx.Entry, gx.Entry, "iteration %d %s at %s", iter, id, now)
					require.Equal(t, wx.Limits, gx.Limits, "iteration %d %s at %s", iter, id, now)
				}
			}
		}
	}
}
