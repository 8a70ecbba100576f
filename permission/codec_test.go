package permission

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
)

// legacyStates are states in the first encoding (versions 1 and 4), as
// the code before the compact one wrote them for random event sets
// (testdata/codec-v1-states.hex): what stores written by earlier releases
// hold.
func legacyStates(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/codec-v1-states.hex")
	require.NoError(t, err)
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		require.NoError(t, err)
		out = append(out, b)
	}
	require.NoError(t, sc.Err())
	return out
}

// Every state of the first encoding reads as before and is written
// compactly, in fewer bytes, as the same state.
func TestCodecReadsTheFirstEncoding(t *testing.T) {
	states := legacyStates(t)
	require.Greater(t, len(states), 100)
	before, after, lifecycle := 0, 0, 0
	for i, b := range states {
		require.Contains(t, []byte{legacyVersion, legacyLifecycleVersion}, b[0])
		s, err := decodeState(b, "")
		require.NoError(t, err, "state %d", i)
		contact := s.contact()
		c := encodeState(&s, contact)
		if b[0] == legacyLifecycleVersion {
			lifecycle++
			require.Equal(t, byte(stateLifecycleVersion), c[0])
		} else {
			require.Equal(t, byte(stateVersion), c[0])
		}
		back, err := decodeState(c, contact)
		require.NoError(t, err)
		require.Equal(t, s, back, "state %d", i)
		require.Less(t, len(c), len(b), "state %d", i)
		before, after = before+len(b), after+len(c)
	}
	require.Equal(t, 1, lifecycle)
	t.Logf("%d states: %d bytes in the first encoding, %d compact (%.0f%%)", len(states), before, after, 100*float64(after)/float64(before))
}

// Every state of versions 5 and 6, as the code before the keyed
// encoding wrote them under their contacts (testdata/codec-v5-states.txt:
// random event sets, then a grant as the benchmarks record it, with and
// without a pending request), reads as before under any key and is
// written keyed, in fewer bytes, as the same state.
func TestCodecReadsVersion5(t *testing.T) {
	before, after := 0, 0
	for i, u := range unkeyedStates(t) {
		require.Contains(t, []byte{unkeyedVersion, unkeyedLifecycleVersion}, u.b[0])
		s, err := decodeState(u.b, u.contact)
		require.NoError(t, err, "state %d", i)
		other, err := decodeState(u.b, "another")
		require.NoError(t, err)
		require.Equal(t, s, other, "an unkeyed state does not depend on its key")
		c := encodeState(&s, u.contact)
		require.Equal(t, u.b[0]+2, c[0], "state %d", i)
		back, err := decodeState(c, u.contact)
		require.NoError(t, err)
		require.Equal(t, s, back, "state %d", i)
		require.Less(t, len(c), len(u.b), "state %d", i)
		before, after = before+len(u.b), after+len(c)
	}
	t.Logf("%d bytes unkeyed, %d keyed (%.0f%%)", before, after, 100*float64(after)/float64(before))
}

type unkeyedState struct {
	contact string
	b       []byte
}

func unkeyedStates(t *testing.T) []unkeyedState {
	t.Helper()
	f, err := os.Open("testdata/codec-v5-states.txt")
	require.NoError(t, err)
	defer f.Close()
	var out []unkeyedState
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		contact, h, ok := strings.Cut(sc.Text(), " ")
		require.True(t, ok)
		b, err := hex.DecodeString(h)
		require.NoError(t, err)
		out = append(out, unkeyedState{contact, b})
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(out), 200)
	return out
}

// A store written before the keyed encoding (its pairs in versions 5 and
// 6) answers as the same store written keyed: the same listings and
// explanations at every instant tried, and a pair written again is keyed.
func TestStoreOfUnkeyedStates(t *testing.T) {
	ctx := context.Background()
	states := unkeyedStates(t)
	unkeyed, keyed := memory.New(memory.Config{}), memory.New(memory.Config{})
	key := func(i int) store.Key { return store.Key{Channel: fmt.Sprintf("c%03d", i), Contact: states[i].contact} }
	for i, u := range states {
		s, err := decodeState(u.b, u.contact)
		require.NoError(t, err)
		put := func(st store.Store, data []byte) {
			require.NoError(t, st.Update(ctx, func(tx store.Tx) error { return tx.Put(ctx, key(i), store.State{Data: data}) }))
		}
		put(unkeyed, u.b)
		put(keyed, encodeState(&s, u.contact))
	}
	open := func(st store.Store) *Tracker {
		clk := clock.NewMock()
		clk.Set(t0)
		tr, err := New(ctx, Config{Store: st, Clock: clk})
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a, b := open(unkeyed), open(keyed)
	listed := 0
	for i := range states {
		k := key(i)
		for _, d := range []time.Duration{-72 * time.Hour, 0, 36 * time.Hour, 10 * 24 * time.Hour} {
			now := t0.Add(d)
			pa, errA := a.Eligible(ctx, k.Channel, Query{Now: now})
			pb, errB := b.Eligible(ctx, k.Channel, Query{Now: now})
			require.Equal(t, errB, errA)
			require.Equal(t, pb, pa, "state %d at %s", i, now)
			listed += len(pa.Entries)
			xa, errA := a.Explain(ctx, k.Channel, k.Contact, now)
			xb, errB := b.Explain(ctx, k.Channel, k.Contact, now)
			require.Equal(t, errB, errA)
			require.Equal(t, xb, xa, "state %d at %s", i, now)
		}
	}
	require.Positive(t, listed)
	k := key(0)
	_, err := a.Record(ctx, Event{Type: EventGrant, Channel: k.Channel, Contact: k.Contact, At: t0, ExpiresAt: t0.Add(time.Hour)})
	require.NoError(t, err)
	st, err := unkeyed.Get(ctx, k)
	require.NoError(t, err)
	require.Equal(t, byte(stateVersion), st.Data[0], "written again, keyed")
}

// A grant as a channel usually holds it (a phone number, an expiry in
// whole microseconds, the default call budget), recorded by a tracker,
// fits a 32-byte allocation: the contact is not written, and the expiry,
// which the grant, the listed entry and the wake-up share, is written once.
func TestCodecOneGrantSize(t *testing.T) {
	f := newFixture(t, Config{})
	k := store.Key{Channel: ch, Contact: "16505551234"}
	f.record(Event{Type: EventGrant, Channel: k.Channel, Contact: k.Contact, At: t0.Add(-7 * time.Second),
		ExpiresAt: t0.Add(50*time.Hour + 123456*time.Microsecond)})
	st, err := f.store.Get(f.ctx, k)
	require.NoError(t, err)
	require.Equal(t, byte(stateVersion), st.Data[0])
	t.Logf("%d bytes", len(st.Data))
	require.LessOrEqual(t, len(st.Data), 32, "% x", st.Data)
	require.NotContains(t, string(st.Data), k.Contact)
	s, err := decodeState(st.Data, k.Contact)
	require.NoError(t, err)
	require.Equal(t, k.Contact, s.listed.waID)
	require.Equal(t, s.listed.expires, s.wake)
}

// The compact instants: each form round-trips, alone and repeated, and
// the decoder refuses an instant written in a form other than the one the
// encoder picks.
func TestCodecInstants(t *testing.T) {
	base := t0.UnixNano()
	for _, at := range []int64{none, never, base, base + 1, base - 1, base + 1000, base - 7000, base + 7*int64(24*time.Hour),
		base - int64(time.Hour) + 3, base + int64(time.Hour) + 3000, 0, 1, math.MinInt64 + 1, math.MaxInt64 - 1,
		base + 1<<62 + 1, base - 1<<62 - 1, base + 4_611_686_018_427_388_000} {
		e := encoder{base: base}
		e.time(at)
		full := len(e.b)
		e.time(at)
		d := decoder{b: e.b, compact: true, keyed: true, base: base}
		require.Equal(t, at, d.time(), "%d", at)
		require.Equal(t, at, d.time(), "%d repeated", at)
		require.NoError(t, d.err)
		require.Empty(t, d.b)
		require.Equal(t, 1, len(e.b)-full, "%d: a repeat takes one byte", at)
	}
	us := base + 1500*int64(time.Microsecond)
	e := encoder{base: base}
	e.time(us)
	require.Equal(t, binary.AppendUvarint(nil, zigzag(1500)<<2|timeMicros), e.b, "whole microseconds")

	// Past the instants held: the ninth distinct instant is written in
	// full each time.
	e = encoder{base: base}
	for i := range 9 {
		e.time(base + int64(i)*int64(time.Second))
	}
	n := len(e.b)
	e.time(base + 8*int64(time.Second))
	require.Equal(t, 1, len(e.b)-n)
	require.Equal(t, zigzag(8)<<2|timeSeconds, uint64(e.b[n]), "not a reference")
	d := decoder{b: e.b, compact: true, keyed: true, base: base}
	for i := range 10 {
		require.Equal(t, base+int64(min(i, 8))*int64(time.Second), d.time())
	}
	require.NoError(t, d.err)

	sec3 := byte(zigzag(3)<<2 | timeSeconds) // the base plus 3 s
	refused := map[string][]byte{
		"whole seconds in nanoseconds":          binary.AppendUvarint(nil, zigzag(1e9)<<2|timeNanos),
		"whole microseconds in nanoseconds":     binary.AppendUvarint(nil, zigzag(1e3)<<2|timeNanos),
		"whole seconds in microseconds":         binary.AppendUvarint(nil, zigzag(1e6)<<2|timeMicros),
		"a small difference as a plain varint":  binary.AppendVarint([]byte{2<<2 | timeSpecial}, base+1),
		"whole microseconds as a plain varint":  binary.AppendVarint([]byte{2<<2 | timeSpecial}, base+4_611_686_018_427_388_000),
		"a reference to nothing":                {timeRepeat<<2 | timeSpecial},
		"none as a plain varint":                binary.AppendVarint([]byte{2<<2 | timeSpecial}, none),
		"a non-minimal uvarint":                 {0x80 | timeSeconds, 0x00},
		"a held instant written in full":        {sec3, sec3},
		"a reference past the instants written": {sec3, (timeRepeat+1)<<2 | timeSpecial},
	}
	for what, b := range refused {
		d := decoder{b: b, compact: true, keyed: true, base: base}
		for len(d.b) > 0 && d.err == nil {
			d.time()
		}
		require.ErrorIs(t, d.err, errCorrupt, what)
	}
	for what, b := range map[string][]byte{ // versions 5 and 6 have neither
		"microseconds": binary.AppendUvarint(nil, zigzag(1500)<<2|timeMicros),
		"a reference":  {sec3, timeRepeat<<2 | timeSpecial},
	} {
		d := decoder{b: b, compact: true, base: base}
		for len(d.b) > 0 && d.err == nil {
			d.time()
		}
		require.ErrorIs(t, d.err, errCorrupt, what)
	}
}

// The compact strings: constants as codes, repeats as references; a
// constant or a repeat spelled out is refused.
func TestCodecStrings(t *testing.T) {
	e := encoder{}
	for _, s := range []string{"", string(SourceRequest), "16505551234", "US.abc", "16505551234", actReply, "US.abc"} {
		e.str(s)
	}
	d := decoder{b: e.b, compact: true}
	var got []string
	for len(d.b) > 0 && d.err == nil {
		got = append(got, d.string())
	}
	require.NoError(t, d.err)
	require.Equal(t, []string{"", string(SourceRequest), "16505551234", "US.abc", "16505551234", actReply, "US.abc"}, got)
	require.Len(t, e.b, 1+1+1+11+1+6+1+1+1, "codes and references take one byte each")

	// A keyed state's contact is the first string, never written.
	e = encoder{}
	e.lits.seed("16505551234")
	e.str("16505551234")
	e.str("US.abc")
	require.Equal(t, []byte{0<<2 | strRepeat, 6<<2 | strBytes, 'U', 'S', '.', 'a', 'b', 'c'}, e.b)
	d = decoder{b: e.b, compact: true, keyed: true}
	d.lits.seed("16505551234")
	require.Equal(t, "16505551234", d.string())
	require.Equal(t, "US.abc", d.string())
	require.NoError(t, d.err)
	d = decoder{b: append([]byte{11<<2 | strBytes}, "16505551234"...), compact: true, keyed: true}
	d.lits.seed("16505551234")
	d.string()
	require.ErrorIs(t, d.err, errCorrupt, "the contact spelled out")

	// Past the literals held in place: 20 distinct strings, each repeated.
	e = encoder{}
	var want []string
	for i := range 20 {
		want = append(want, "contact-"+strconv.Itoa(i))
	}
	for _, s := range append(slices.Clone(want), want...) {
		e.str(s)
	}
	d = decoder{b: e.b, compact: true}
	got = got[:0]
	for len(d.b) > 0 && d.err == nil {
		got = append(got, d.string())
	}
	require.NoError(t, d.err)
	require.Equal(t, append(slices.Clone(want), want...), got)
	require.Equal(t, 20, e.lits.n)
	require.Equal(t, -1, e.lits.index("contact-20"))
	require.Equal(t, 19, e.lits.index("contact-19"))

	for what, b := range map[string][]byte{
		"a constant spelled out": append([]byte{byte(len(SourceRequest))<<2 | strBytes}, SourceRequest...),
		"a repeat spelled out":   {1<<2 | strBytes, 'a', 1<<2 | strBytes, 'a'},
		"an unknown constant":    binary.AppendUvarint(nil, uint64(len(stateConstants))<<2|strConstant),
		"a repeat of nothing":    {0<<2 | strRepeat},
		"an empty string's tag":  {1<<2 | strEmpty},
	} {
		d := decoder{b: b, compact: true}
		for len(d.b) > 0 && d.err == nil {
			d.string()
		}
		require.ErrorIs(t, d.err, errCorrupt, what)
	}
}

// The call budget's counts are written as uvarints: small ones take a
// byte, and any int, even one the rules never give, reads back as itself.
func TestCodecBudget(t *testing.T) {
	for _, n := range []int{0, 1, 100, 127, 128, math.MaxInt, -1, math.MinInt} {
		s := pairState{floor: t0.UnixNano(), wake: none, listed: listed{ok: true, kind: Permanent, source: SourceProfile,
			granted: t0.UnixNano(), expires: never, callsLeft: n, streak: n}}
		b := encodeState(&s, "a")
		got, err := decodeState(b, "a")
		require.NoError(t, err, "%d", n)
		require.Equal(t, n, got.listed.callsLeft)
		require.Equal(t, n, got.listed.streak)
		if n >= 0 && n < 128 {
			// version, floor (3 bytes), wake-up, kind, source, granted,
			// expiry, the two counts, the identifiers, four list lengths
			require.Len(t, b, 1+3+1+1+1+1+1+1+1+1+1+4, "%d: % x", n, b)
		}
	}
}

// A slab's slices never overlap, an append to one moves it rather than
// write over the next, and reset zeroes what was handed out.
func TestSlab(t *testing.T) {
	var s slab[ident]
	var got [][]ident
	for i := range 3 * slabItems {
		n := 1 + i%3
		x := s.take(n)
		if len(x) != n || cap(x) != n {
			t.Fatalf("take(%d): len %d cap %d", n, len(x), cap(x))
		}
		for j := range x {
			x[j] = ident{id: strconv.Itoa(i), since: int64(j)}
		}
		got = append(got, x)
	}
	got[0] = append(got[0], ident{id: "appended"})
	for i, x := range got {
		for j, id := range x[:1+i%3] {
			if id.id != strconv.Itoa(i) || id.since != int64(j) {
				t.Fatalf("slice %d item %d = %+v: overwritten", i, j, id)
			}
		}
	}
	if big := s.take(slabItems); len(big) != slabItems {
		t.Fatalf("take(%d): len %d", slabItems, len(big))
	}
	chunks := s.chunks
	s.reset()
	for i, c := range chunks {
		for j := range c {
			if c[j] != (ident{}) {
				t.Fatalf("after reset, chunk %d item %d = %+v", i, j, c[j])
			}
		}
	}
	if x := s.take(2); &x[0] != &chunks[0][0] {
		t.Fatal("reset did not reuse the first chunk")
	}
}
