package permission

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// AppendEligible lists what Eligible lists, page after page, whatever the
// buffer held before: a kept buffer never leaks an earlier page's fields.
func TestAppendEligibleMatchesEligible(t *testing.T) {
	f := newFixture(t, Config{})
	var events []Event
	for i := range 7 {
		e := grant("1650555"+strconv.Itoa(1000+i), t0)
		e.ExpiresAt = t0.Add(time.Duration(7-i) * time.Hour)
		if i%2 == 0 {
			e.Aliases = []string{"US.user" + strconv.Itoa(i)} // rows keeping both identifiers
		}
		events = append(events, e)
	}
	events = append(events, permanent("4915112345678", t0, SourceProfile))
	f.record(events...)
	all, err := f.tr.Eligible(f.ctx, ch, Query{Now: t0.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, all.Entries, 8)
	require.Equal(t, "16505551000", all.Entries[6].WaID)
	require.Equal(t, "US.user0", all.Entries[6].UserID, "a row keeping both identifiers")

	for _, order := range []Order{OrderExpiring, OrderRecent} {
		q := Query{Order: order, Limit: 3, Now: t0.Add(time.Minute)}
		// A stale buffer whose every field differs from any page's.
		buf := make([]Entry, 5)
		for i := range buf {
			buf[i] = Entry{Channel: "stale", Contact: "stale", Kind: Temporary, Source: SourceReconcile, GrantedAt: t0.Add(-time.Hour),
				ExpiresAt: t0.Add(time.Hour), Unconfirmed: true, WaID: "stale", UserID: "stale", CallsLeft: 99, UnansweredStreak: 99}
		}
		for pages := 0; ; pages++ {
			want, err := f.tr.Eligible(f.ctx, ch, q)
			require.NoError(t, err)
			got, err := f.tr.AppendEligible(f.ctx, buf, ch, q)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s page %d", order, pages)
			require.Same(t, &buf[0], &got.Entries[0], "the page reuses the buffer")
			if got.NextCursor == "" {
				break
			}
			buf, q.Cursor = got.Entries, got.NextCursor
		}
	}

	// An empty listing hands the buffer back empty.
	buf := make([]Entry, 0, 4)
	got, err := f.tr.AppendEligible(f.ctx, buf, "no such channel", Query{})
	require.NoError(t, err)
	require.Empty(t, got.Entries)
	require.Equal(t, 4, cap(got.Entries))

	// A buffer too small grows.
	got, err = f.tr.AppendEligible(f.ctx, make([]Entry, 0, 1), ch, Query{Now: t0.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, got.Entries, 8)
}

// With a buffer kept, a page allocates nothing but its cursor.
func TestAppendEligibleAllocates(t *testing.T) {
	f := newFixture(t, Config{})
	var events []Event
	for i := range 60 {
		events = append(events, grant("1650555"+strconv.Itoa(1000+i), t0))
	}
	f.record(events...)
	q := Query{Limit: 50, Now: t0.Add(time.Minute)}
	buf := make([]Entry, 0, 50)
	var page Page
	allocs := testing.AllocsPerRun(100, func() {
		page, _ = f.tr.AppendEligible(f.ctx, buf, ch, q)
	})
	require.Len(t, page.Entries, 50)
	require.LessOrEqual(t, allocs, 2.0, "the cursor's string and its bytes, nothing per entry")
	allocs = testing.AllocsPerRun(100, func() {
		page, _ = f.tr.Eligible(f.ctx, ch, q)
	})
	require.Greater(t, allocs, 2.0, "Eligible allocates its entries")
}
