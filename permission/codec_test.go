package permission

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
		s, err := decodeState(b)
		require.NoError(t, err, "state %d", i)
		c := encodeState(&s)
		if b[0] == legacyLifecycleVersion {
			lifecycle++
			require.Equal(t, byte(stateLifecycleVersion), c[0])
		} else {
			require.Equal(t, byte(stateVersion), c[0])
		}
		back, err := decodeState(c)
		require.NoError(t, err)
		require.Equal(t, s, back, "state %d", i)
		require.Less(t, len(c), len(b), "state %d", i)
		before, after = before+len(b), after+len(c)
	}
	require.Equal(t, 1, lifecycle)
	t.Logf("%d states: %d bytes in the first encoding, %d compact (%.0f%%)", len(states), before, after, 100*float64(after)/float64(before))
}

// The compact instants: each form round-trips, and the decoder refuses
// an instant written in a form other than the one the encoder picks.
func TestCodecInstants(t *testing.T) {
	base := t0.UnixNano()
	for _, at := range []int64{none, never, base, base + 1, base - 1, base + 7*int64(24*time.Hour), base - int64(time.Hour) + 3,
		0, 1, math.MinInt64 + 1, math.MaxInt64 - 1, base + 1<<62 + 1, base - 1<<62 - 1} {
		e := encoder{base: base}
		e.time(at)
		d := decoder{b: e.b, compact: true, base: base}
		require.Equal(t, at, d.time(), "%d", at)
		require.NoError(t, d.err)
		require.Empty(t, d.b)
	}
	refused := map[string][]byte{
		"whole seconds in nanoseconds":         binary.AppendUvarint(nil, zigzag(1e9)<<2|timeNanos),
		"a small difference as a plain varint": binary.AppendVarint([]byte{2<<2 | timeSpecial}, base+1),
		"an unknown special":                   {3<<2 | timeSpecial},
		"none as a plain varint":               binary.AppendVarint([]byte{2<<2 | timeSpecial}, none),
		"a non-minimal uvarint":                {0x80 | timeSeconds, 0x00},
	}
	for what, b := range refused {
		d := decoder{b: b, compact: true, base: base}
		d.time()
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
