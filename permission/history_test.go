package permission

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHistoryPagesFiltersAndStops(t *testing.T) {
	f := newFixture(t, Config{})
	// Five events of two contacts, recorded a minute apart.
	f.record(grant("a", t0))
	f.clk.Add(time.Minute)
	f.record(grant("b", t0.Add(time.Second)))
	f.clk.Add(time.Minute)
	f.record(revoke("a", t0.Add(2*time.Second), RevokeRejected))
	f.clk.Add(time.Minute)
	f.record(inbound("b", "wacid.1", t0.Add(3*time.Second), false))
	f.clk.Add(time.Minute)
	f.record(Event{Type: EventRequestSent, Channel: ch, Contact: "a", At: t0.Add(4 * time.Second), ID: "wamid.req"})

	collect := func(q HistoryQuery) ([]string, error) {
		var out []string
		for ev, err := range f.tr.History(f.ctx, q) {
			if err != nil {
				return out, err
			}
			out = append(out, ev.Contact+":"+ev.What)
		}
		return out, nil
	}
	all := []string{"a:temporary grant", "b:temporary grant", "a:revocation", "b:inbound call", "a:request sent"}
	for _, size := range []int{1, 2, 5, 0} {
		got, err := collect(HistoryQuery{Channel: ch, PageSize: size})
		require.NoError(t, err)
		assert.Equal(t, all, got, "page size %d", size)
	}
	got, err := collect(HistoryQuery{Channel: ch, Contact: "a", PageSize: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"a:temporary grant", "a:revocation", "a:request sent"}, got)

	got, err = collect(HistoryQuery{Channel: ch, From: t0.Add(time.Second), To: t0.Add(3 * time.Second)})
	require.NoError(t, err)
	assert.Equal(t, []string{"b:temporary grant", "a:revocation"}, got, "event-time range, To exclusive")

	// Recorded 1 min .. 3 min (exclusive) after t0: the second and third.
	got, err = collect(HistoryQuery{Channel: ch, RecordedFrom: t0.Add(time.Minute), RecordedTo: t0.Add(3 * time.Minute), PageSize: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"b:temporary grant", "a:revocation"}, got, "recorded-time range")

	// Paging across calls with the cursor of the last event.
	var paged []string
	after := ""
	for {
		var page []HistoryEvent
		for ev, err := range f.tr.History(f.ctx, HistoryQuery{Channel: ch, After: after}) {
			require.NoError(t, err)
			page = append(page, ev)
			if len(page) == 2 {
				break
			}
		}
		for _, ev := range page {
			paged = append(paged, ev.Contact+":"+ev.What)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Cursor()
	}
	assert.Equal(t, all, paged)

	// Stopping early stops reading.
	n := 0
	for _, err := range f.tr.History(f.ctx, HistoryQuery{Channel: ch, PageSize: 1}) {
		require.NoError(t, err)
		n++
		if n == 2 {
			break
		}
	}
	assert.Equal(t, 2, n)

	// The event carries its times, revision and ids.
	for ev, err := range f.tr.History(f.ctx, HistoryQuery{Channel: ch, Contact: "b", From: t0.Add(3 * time.Second)}) {
		require.NoError(t, err)
		assert.Equal(t, EventInboundCall, ev.Type)
		assert.Equal(t, "wacid.1", ev.ID)
		assert.Equal(t, t0.Add(3*time.Second), ev.At)
		assert.Equal(t, t0.Add(3*time.Minute), ev.RecordedAt)
		assert.Positive(t, ev.Revision)
		assert.Positive(t, ev.Seq)
	}
}

func TestHistoryErrors(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("a", t0))
	first := func(q HistoryQuery) error {
		for _, err := range f.tr.History(f.ctx, q) {
			return err
		}
		return nil
	}
	assert.ErrorIs(t, first(HistoryQuery{Channel: ch, From: t0.Add(-401 * 24 * time.Hour)}), ErrBeyondRetention)
	assert.Error(t, first(HistoryQuery{}), "no channel")
	assert.ErrorIs(t, first(HistoryQuery{Channel: ch, After: "nope"}), ErrBadCursor)
	assert.Error(t, first(HistoryQuery{Channel: ch, From: t0, To: t0.Add(-time.Second)}))
	assert.NoError(t, first(HistoryQuery{Channel: ch, From: t0.Add(-399 * 24 * time.Hour)}))
}

func TestCallableStreamsPresentAndPast(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("a", t0), grant("b", t0), grant("c", t0))
	f.clk.Add(time.Hour)
	f.record(revoke("b", t0.Add(time.Hour), RevokeRejected))
	list := func(q Query) ([]string, error) {
		var out []string
		for e, err := range f.tr.Callable(f.ctx, ch, q) {
			if err != nil {
				return out, err
			}
			out = append(out, e.Contact)
		}
		return out, nil
	}
	now, err := list(Query{Limit: 1})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "c"}, now)
	past, err := list(Query{Limit: 1, Now: t0.Add(time.Minute)})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, past, "before the revocation")
	pastAll, err := list(Query{Now: t0.Add(time.Minute), Order: OrderRecent})
	require.NoError(t, err)
	assert.ElementsMatch(t, past, pastAll)
	_, err = list(Query{Now: t0.Add(-500 * 24 * time.Hour)})
	assert.True(t, errors.Is(err, ErrBeyondRetention), "%v", err)
	_, err = list(Query{Now: t0, Order: "bogus"})
	assert.Error(t, err)
}

// FuzzHistoryCursor: a cursor comes back from clients; decoding any string
// either fails with ErrBadCursor or gives the position it encodes.
func FuzzHistoryCursor(f *testing.F) {
	f.Add(HistoryEvent{At: t0, Seq: 7}.Cursor())
	f.Add("")
	f.Add("aA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeHistoryCursor(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadCursor)
			return
		}
		assert.Equal(t, s, HistoryEvent{At: c.At, Seq: c.Seq}.Cursor(), "a valid cursor round-trips")
	})
}
