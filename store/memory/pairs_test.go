package memory

import (
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store"
)

// pairTable against a Go map, over random puts and deletes on a few
// channels, with slots reused; once with its hash, once with a hash that
// makes most contacts clash.
func TestPairTableModel(t *testing.T) {
	t.Run("hash", func(t *testing.T) { testPairTableModel(t, nil) })
	t.Run("clashing", func(t *testing.T) {
		testPairTableModel(t, func(c string) uint64 { return uint64(len(c)) + uint64(c[len(c)-1]%4) })
	})
}

func testPairTableModel(t *testing.T, hash func(string) uint64) {
	r := rand.New(rand.NewPCG(1, 2))
	p := newPairTable()
	if hash != nil {
		p.hash = hash
	}
	model := map[store.Key]record{}
	key := func() store.Key {
		return store.Key{Channel: "ch" + strconv.Itoa(r.IntN(3)), Contact: strconv.Itoa(r.IntN(3000))}
	}
	for i := range 200_000 {
		k := key()
		switch r.IntN(3) {
		case 0, 1:
			rec := record{data: []byte(strconv.Itoa(i)), rev: int64(i)}
			prev, existed := p.put(k, rec)
			want, had := model[k]
			require.Equal(t, had, existed)
			require.Equal(t, want, prev)
			model[k] = rec
		case 2:
			p.del(k)
			delete(model, k)
		}
		if i%20_000 == 0 {
			requireSameTable(t, &p, model)
		}
	}
	requireSameTable(t, &p, model)
}

func requireSameTable(t *testing.T, p *pairTable, model map[store.Key]record) {
	t.Helper()
	seen := map[store.Key]record{}
	p.each(func(k store.Key, rec record) bool {
		_, dup := seen[k]
		require.False(t, dup, "%v twice", k)
		seen[k] = rec
		return true
	})
	require.True(t, maps.EqualFunc(seen, model, func(a, b record) bool { return a.rev == b.rev && string(a.data) == string(b.data) }), "each: %d pairs, want %d", len(seen), len(model))
	require.Equal(t, len(model), p.n)
	for k, want := range model {
		got, ok := p.get(k)
		require.True(t, ok, "%v", k)
		require.Equal(t, want, got)
	}
}

// Contacts of a channel whose hashes are equal: all but the first are
// found through the clash map, whichever is deleted first.
func TestPairTableHashClash(t *testing.T) {
	for _, first := range []string{"a", "b"} {
		p := newPairTable()
		p.hash = func(string) uint64 { return 42 }
		a, b := store.Key{Channel: "c", Contact: "a"}, store.Key{Channel: "c", Contact: "b"}
		p.put(a, record{rev: 1})
		_, existed := p.put(b, record{rev: 2})
		require.False(t, existed, "b is not a")
		require.Equal(t, map[string]uint32{"b": 1}, p.channels["c"].clash)
		requireSameTable(t, &p, map[store.Key]record{a: {rev: 1}, b: {rev: 2}})

		gone, kept := a, b
		if first == "b" {
			gone, kept = b, a
		}
		p.del(gone)
		want, _ := map[store.Key]record{a: {rev: 1}, b: {rev: 2}}[kept]
		requireSameTable(t, &p, map[store.Key]record{kept: want})
		p.put(gone, record{rev: 3}) // back, in the freed slot
		requireSameTable(t, &p, map[store.Key]record{kept: want, gone: {rev: 3}})
	}
}
