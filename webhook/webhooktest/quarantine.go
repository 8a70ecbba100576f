package webhooktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/callready/callready/webhook"
)

// NewQuarantine returns an empty quarantine configured with cfg (whose
// Clock is a mock the suite drives) for one test.
type NewQuarantine func(t *testing.T, cfg webhook.QuarantineConfig) webhook.Quarantine

// RunQuarantine is the conformance suite of webhook.Quarantine
// implementations: idempotent Put, newest-first paging with cursors,
// retention by age, exact raw bytes, bad cursors and cancelled contexts.
func RunQuarantine(t *testing.T, newQ NewQuarantine) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 123456789, time.UTC)
	setup := func(t *testing.T, retention time.Duration) (*clock.Mock, webhook.Quarantine) {
		clk := clock.NewMock()
		clk.Set(start)
		return clk, newQ(t, webhook.QuarantineConfig{Clock: clk, Retention: retention})
	}
	ctx := context.Background()
	item := func(i int) webhook.QuarantinedItem {
		return webhook.QuarantinedItem{
			Path:  fmt.Sprintf("entry[0].changes[0].value.calls[%d]", i),
			Error: fmt.Sprintf("webhook: malformed body: unknown call direction %q", "X"+fmt.Sprint(i)),
			Raw:   json.RawMessage(fmt.Sprintf(`{"id":"wacid.%d","direction":"X%d"}`, i, i)),
		}
	}
	listAll := func(t *testing.T, q webhook.Quarantine, limit int) []webhook.QuarantinedItem {
		t.Helper()
		var all []webhook.QuarantinedItem
		cursor := ""
		for range 1000 {
			page, next, err := q.List(ctx, cursor, limit)
			if err != nil {
				t.Fatalf("List(%q, %d): %v", cursor, limit, err)
			}
			if len(page) > limit {
				t.Fatalf("List returned %d items for limit %d", len(page), limit)
			}
			all = append(all, page...)
			if next == "" {
				return all
			}
			if len(page) != limit {
				t.Fatalf("a page of %d items before the last, limit %d", len(page), limit)
			}
			cursor = next
		}
		t.Fatal("List never ends")
		return nil
	}

	t.Run("put and list", func(t *testing.T) {
		clk, q := setup(t, 0)
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(0)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(1), item(2)}); err != nil {
			t.Fatal(err)
		}
		got, next, err := q.List(ctx, "", 0)
		if err != nil || next != "" {
			t.Fatalf("List: %v, next %q", err, next)
		}
		if len(got) != 3 {
			t.Fatalf("got %d items, want 3", len(got))
		}
		// Newest first; the two of the same instant by ID, descending.
		if !got[0].ReceivedAt.Equal(start.Add(time.Second)) || !got[2].ReceivedAt.Equal(start) {
			t.Fatalf("received times %v", []time.Time{got[0].ReceivedAt, got[1].ReceivedAt, got[2].ReceivedAt})
		}
		if got[0].ID < got[1].ID {
			t.Fatalf("items of one instant not by ID descending: %s, %s", got[0].ID, got[1].ID)
		}
		want := item(0)
		want.ID, want.ReceivedAt = webhook.QuarantineID(want.Raw), start
		if g := got[2]; g.ID != want.ID || g.Path != want.Path || g.Error != want.Error || string(g.Raw) != string(want.Raw) || !g.ReceivedAt.Equal(want.ReceivedAt) {
			t.Fatalf("round trip: got %+v, want %+v", g, want)
		}
		if got[2].ReceivedAt.Location() != time.UTC {
			t.Fatalf("ReceivedAt in %v, want UTC", got[2].ReceivedAt.Location())
		}
	})

	t.Run("put is idempotent", func(t *testing.T) {
		clk, q := setup(t, 0)
		it := item(7)
		if err := q.Put(ctx, []webhook.QuarantinedItem{it, it}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour) // Meta re-delivers the body an hour later
		it.Error = "a newer handler words it otherwise"
		if err := q.Put(ctx, []webhook.QuarantinedItem{it}); err != nil {
			t.Fatal(err)
		}
		got := listAll(t, q, 10)
		if len(got) != 1 || !got[0].ReceivedAt.Equal(start) || got[0].Error == it.Error {
			t.Fatalf("got %+v, want the first delivery once", got)
		}
	})

	t.Run("pages", func(t *testing.T) {
		clk, q := setup(t, 0)
		var put []webhook.QuarantinedItem
		for i := range 11 {
			if i%3 == 0 {
				clk.Add(time.Millisecond)
			}
			it := item(i)
			it.ReceivedAt = clk.Now()
			put = append(put, it)
			if err := q.Put(ctx, []webhook.QuarantinedItem{it}); err != nil {
				t.Fatal(err)
			}
		}
		full := listAll(t, q, webhook.MaxQuarantinePage)
		if len(full) != len(put) {
			t.Fatalf("listed %d, put %d", len(full), len(put))
		}
		if !slices.IsSortedFunc(full, func(a, b webhook.QuarantinedItem) int {
			if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
				return c
			}
			switch {
			case a.ID > b.ID:
				return -1
			case a.ID < b.ID:
				return 1
			}
			return 0
		}) {
			t.Fatal("not newest first")
		}
		for _, limit := range []int{1, 2, 3, 4, 10, 11} {
			paged := listAll(t, q, limit)
			if len(paged) != len(full) {
				t.Fatalf("limit %d: %d items, want %d", limit, len(paged), len(full))
			}
			for i := range full {
				if paged[i].ID != full[i].ID {
					t.Fatalf("limit %d: item %d is %s, want %s", limit, i, paged[i].ID, full[i].ID)
				}
			}
		}
		// A page started later does not repeat or skip because of newer
		// arrivals.
		first, next, err := q.List(ctx, "", 4)
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(99)}); err != nil {
			t.Fatal(err)
		}
		rest, _, err := q.List(ctx, next, webhook.MaxQuarantinePage)
		if err != nil {
			t.Fatal(err)
		}
		if len(first)+len(rest) != len(full) || rest[0].ID != full[4].ID {
			t.Fatalf("resumed listing: %d + %d items", len(first), len(rest))
		}
		// Limits beyond the maximum are capped.
		page, _, err := q.List(ctx, "", webhook.MaxQuarantinePage*10)
		if err != nil || len(page) != len(full)+1 {
			t.Fatalf("big limit: %d items, %v", len(page), err)
		}
	})

	t.Run("retention", func(t *testing.T) {
		clk, q := setup(t, 48*time.Hour)
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(0)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(24 * time.Hour)
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(1)}); err != nil {
			t.Fatal(err)
		}
		clk.Add(24*time.Hour + time.Nanosecond)
		got := listAll(t, q, 10)
		if len(got) != 1 || got[0].Path != item(1).Path {
			t.Fatalf("after 48 h: %+v, want only the younger item", got)
		}
		// Put drops what is past the retention, even an item it is given
		// with an old ReceivedAt.
		if err := q.Put(ctx, []webhook.QuarantinedItem{item(2)}); err != nil {
			t.Fatal(err)
		}
		old := item(0)
		old.ReceivedAt = start
		if err := q.Put(ctx, []webhook.QuarantinedItem{old}); err != nil {
			t.Fatal(err)
		}
		if got := listAll(t, q, 10); len(got) != 2 {
			t.Fatalf("%d items, want 2", len(got))
		}
		clk.Add(49 * time.Hour)
		if got := listAll(t, q, 10); len(got) != 0 {
			t.Fatalf("%d items past the retention listed", len(got))
		}
	})

	t.Run("raw bytes kept exactly", func(t *testing.T) {
		_, q := setup(t, 0)
		raws := []string{
			`{"from":"1650555\u00001234","name":"Tom\u00e1s"}`,
			"{\"name\":\"Tom\xc3\xa1s \xff\xfe\"}", // invalid UTF-8 inside a string
			`[1,2,3]`,
			`"` + string(make([]byte, 0)) + `"`,
		}
		var items []webhook.QuarantinedItem
		for i, r := range raws {
			items = append(items, webhook.QuarantinedItem{Path: fmt.Sprint("p", i), Error: "err \x00 \xff", Raw: json.RawMessage(r)})
		}
		if err := q.Put(ctx, items); err != nil {
			t.Fatal(err)
		}
		got := listAll(t, q, 10)
		byID := map[string]webhook.QuarantinedItem{}
		for _, it := range got {
			byID[it.ID] = it
		}
		for _, r := range raws {
			it, ok := byID[webhook.QuarantineID([]byte(r))]
			if !ok || string(it.Raw) != r {
				t.Fatalf("raw %q: got %q (found %v)", r, it.Raw, ok)
			}
			if it.Error == "" {
				t.Fatal("error lost")
			}
		}
	})

	t.Run("bad cursor", func(t *testing.T) {
		_, q := setup(t, 0)
		for _, c := range []string{"x", "%%%", "bm90LWEtY3Vyc29y", webhook.EncodeQuarantineCursor(start, "")} {
			if _, _, err := q.List(ctx, c, 10); !errors.Is(err, webhook.ErrBadCursor) {
				t.Fatalf("cursor %q: %v, want ErrBadCursor", c, err)
			}
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		_, q := setup(t, 0)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := q.Put(cctx, []webhook.QuarantinedItem{item(0)}); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		if _, _, err := q.List(cctx, "", 10); err == nil {
			t.Fatal("List with a cancelled context succeeded")
		}
	})
}
