package permission

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"github.com/callready/callready/store"
)

// TestIndexWakes checks the index's wake-ups (the explicit order, and the
// expiries that stand for most of them) against a plain model: after random
// applies of listed and unlisted pairs, with wake-ups at, before and after
// their expiry, none, and on permanent rows, nextWake is the earliest wake-up
// and due returns the earliest ones up to its limit.
func TestIndexWakes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		x := newIndex()
		model := map[store.Key]int64{}    // pair → wake-up
		listedAt := map[store.Key]int64{} // listed pair → expiry
		for range 300 {
			k := store.Key{Channel: "ch" + strconv.Itoa(r.IntN(3)), Contact: "c" + strconv.Itoa(r.IntN(1+iter%40))}
			ok := r.IntN(4) > 0
			l := listed{ok: ok, granted: int64(r.IntN(50)), expires: int64(100 + r.IntN(40))}
			if r.IntN(8) == 0 {
				l.expires = never
			}
			wake := int64(none)
			switch r.IntN(5) {
			case 0, 1:
				if l.expires != never {
					wake = l.expires
				}
			case 2:
				wake = int64(95 + r.IntN(50))
			case 3:
				wake = l.expires - 1
			}
			x.apply(k, l, ok, wake)
			if r.IntN(4) == 0 { // a batch of changes ends
				x.refreshFirsts()
			}
			if wake != none {
				model[k] = wake
			} else {
				delete(model, k)
			}
			if ok {
				listedAt[k] = l.expires
			} else {
				delete(listedAt, k)
			}
		}
		x.refreshFirsts()
		slots := 0
		for name, c := range x.channels { // each slot is a pair listed or waking, as the model says
			slots += c.slots.Len()
			c.slots.AscendAll(func(s *slot) bool {
				k := store.Key{Channel: name, Contact: s.contact}
				wake, waking := model[k]
				if !waking {
					wake = none
				}
				exp, listed := listedAt[k]
				if s.listed() != listed || listed && s.expires != exp || c.wakeOf(s) != wake {
					t.Fatalf("iteration %d: slot %v listed %v expiring %d waking %d, want listed %v expiring %d waking %d",
						iter, k, s.listed(), s.expires, c.wakeOf(s), listed, exp, wake)
				}
				if w, ok := c.otherWakes[s.contact]; ok && w == s.expiryWake() {
					t.Fatalf("iteration %d: slot %v keeps its expiry's wake-up %d apart", iter, k, w)
				}
				return true
			})
			for contact := range c.otherWakes {
				if _, ok := c.slots.Get(slotKey(contact)); !ok {
					t.Fatalf("iteration %d: channel %s keeps a wake-up for %s, which has no slot", iter, name, contact)
				}
			}
		}
		pairs := map[store.Key]bool{}
		for k := range model {
			pairs[k] = true
		}
		for k := range listedAt {
			pairs[k] = true
		}
		if slots != len(pairs) {
			t.Fatalf("iteration %d: %d slots, want %d", iter, slots, len(pairs))
		}
		for name, c := range x.channels { // each channel's firstDue is its earliest expiry that is a wake-up
			want := int64(none)
			for k, w := range model {
				if s, ok := c.slots.Get(slotKey(k.Contact)); ok && k.Channel == name && wakesAtExpiry(s, c.wakeOf(s)) && (want == none || w < want) {
					want = w
				}
			}
			if c.firstDue != want {
				t.Fatalf("iteration %d: channel %s firstDue %d, want %d", iter, name, c.firstDue, want)
			}
		}
		type kw struct {
			k    store.Key
			wake int64
		}
		var all []kw
		for k, w := range model {
			all = append(all, kw{k, w})
		}
		slices.SortFunc(all, func(a, b kw) int { return cmp.Compare(a.wake, b.wake) })
		next, ok := x.nextWake()
		if len(all) == 0 {
			if ok {
				t.Fatalf("iteration %d: nextWake %d, want none", iter, next)
			}
			continue
		}
		if !ok || next != all[0].wake {
			t.Fatalf("iteration %d: nextWake %d %v, want %d", iter, next, ok, all[0].wake)
		}
		for _, now := range []int64{all[0].wake, 110, 125, 200} {
			for _, limit := range []int{1, 5, 1000} {
				got := x.due(nil, now, limit)
				var want []int64
				for _, a := range all {
					if a.wake <= now {
						want = append(want, a.wake)
					}
				}
				want = want[:min(limit, len(want))]
				if len(got) != len(want) {
					t.Fatalf("iteration %d: due(%d, %d) = %d pairs, want %d", iter, now, limit, len(got), len(want))
				}
				seen := map[store.Key]bool{}
				for i, k := range got {
					if seen[k] || model[k] != want[i] {
						t.Fatalf("iteration %d: due(%d, %d)[%d] = %v waking at %d, want one waking at %d (once)", iter, now, limit, i, k, model[k], want[i])
					}
					seen[k] = true
				}
			}
		}
	}
}

// A row keeps the person's identifiers and source in fewer bytes than the
// entry it shows: every combination reads back as it was listed.
func TestRowRoundTrip(t *testing.T) {
	for _, c := range []struct{ contact, waID, userID string }{
		{"16505551234", "16505551234", ""},
		{"US.13491208655302741918", "16505551234", "US.13491208655302741918"},
		{"US.13491208655302741918", "", "US.13491208655302741918"},
		{"16505551234", "16505551234", "US.1"},
		{"16505550000", "16505551234", "US.1"}, // listed under neither (a log another version wrote)
		{"16505550000", "", ""},
		{"x", "ab", "c"},
	} {
		for _, src := range rowSources[1:] {
			l := listed{ok: true, kind: Temporary, source: src, granted: 10, expires: 20, callsLeft: 3, streak: 2, waID: c.waID, userID: c.userID}
			r := newRow(c.contact, l)
			var e Entry
			r.fill(&e, "ch")
			if e.Contact != c.contact || e.WaID != c.waID || e.UserID != c.userID || e.Source != src ||
				e.CallsLeft != 3 || e.UnansweredStreak != 2 || e.Unconfirmed != (src == SourceInboundCall) {
				t.Fatalf("%+v from %q: entry %+v", l, c.contact, e)
			}
		}
	}
	r := newRow("c", listed{ok: true, source: "written by hand", waID: "c"})
	var e Entry
	r.fill(&e, "ch")
	if e.Source != "" {
		t.Fatalf("unknown source reads as %q", e.Source)
	}
}

// The index's items keep the sizes internal/bptree's leaves are sized
// for (bptree.TestLeafSizes): a row of 64 bytes, keys and slots of 32.
func TestIndexItemSizes(t *testing.T) {
	if got := unsafe.Sizeof(row{}); got != 64 {
		t.Errorf("a row is %d bytes, want 64", got)
	}
	if got := unsafe.Sizeof(rowKey{}); got != 32 {
		t.Errorf("a row key is %d bytes, want 32", got)
	}
	if got := unsafe.Sizeof(slot{}); got != 32 {
		t.Errorf("a slot is %d bytes, want 32", got)
	}
}

// mergeDue gives what a stable sort by instant gives, for two runs of any
// lengths, with ties inside and across them.
func TestMergeDueIsAStableSort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var buf []dueKey
	for iter := range 2000 {
		run := func(n int) []dueKey {
			at := make([]int64, n)
			for i := range at {
				at[i] = int64(r.IntN(1 + iter%12))
			}
			slices.Sort(at)
			out := make([]dueKey, n)
			for i, a := range at {
				out[i] = dueKey{a, store.Key{Channel: "ch", Contact: strconv.Itoa(iter) + "-" + strconv.Itoa(r.Int())}}
			}
			return out
		}
		first, second := run(r.IntN(8)), run(r.IntN(8))
		found := append(slices.Clone(first), second...)
		want := slices.Clone(found)
		slices.SortStableFunc(want, func(a, b dueKey) int { return cmp.Compare(a.at, b.at) })
		buf = mergeDue(found, len(first), buf)
		if !slices.Equal(found, want) {
			t.Fatalf("mergeDue(%v | %v) = %v, want %v", first, second, found, want)
		}
	}
}
