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
	t.Run("hash", func(t *testing.T) { testPairTableModel(t, nil, 200_000) })
	t.Run("clashing", func(t *testing.T) {
		// A dozen hashes for thousands of contacts: long probe runs.
		testPairTableModel(t, func(c string) uint64 { return uint64(len(c)) + uint64(c[len(c)-1]%4) }, 40_000)
	})
}

func testPairTableModel(t *testing.T, hash func(string) uint64, ops int) {
	r := rand.New(rand.NewPCG(1, 2))
	p := newPairTable()
	if hash != nil {
		p.hash = hash
	}
	model := map[store.Key]record{}
	key := func() store.Key {
		return store.Key{Channel: "ch" + strconv.Itoa(r.IntN(3)), Contact: strconv.Itoa(r.IntN(3000))}
	}
	for i := range ops {
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
		if i%10_000 == 0 {
			requireSameTable(t, &p, model)
		}
	}
	requireSameTable(t, &p, model)
}

func requireSameTable(t *testing.T, p *pairTable, model map[store.Key]record) {
	t.Helper()
	seen := map[store.Key]record{}
	for k, rec := range p.all() {
		_, dup := seen[k]
		require.False(t, dup, "%v twice", k)
		seen[k] = rec
	}
	require.True(t, maps.EqualFunc(seen, model, func(a, b record) bool { return a.rev == b.rev && string(a.data) == string(b.data) }), "each: %d pairs, want %d", len(seen), len(model))
	require.Equal(t, len(model), p.n)
	for k, want := range model {
		got, ok := p.get(k)
		require.True(t, ok, "%v", k)
		require.Equal(t, want, got)
	}
}

// Contacts of a channel whose hashes are equal share a probe sequence:
// each is found, whichever is deleted first, and the table grows.
func TestPairTableHashClash(t *testing.T) {
	for gone := range 3 {
		p := newPairTable()
		p.hash = func(string) uint64 { return 42 }
		model := map[store.Key]record{}
		for i := range 20 { // past the first growth
			k := store.Key{Channel: "c", Contact: strconv.Itoa(i)}
			_, existed := p.put(k, record{rev: int64(i)})
			require.False(t, existed)
			model[k] = record{rev: int64(i)}
		}
		requireSameTable(t, &p, model)
		k := store.Key{Channel: "c", Contact: strconv.Itoa(gone * 9)}
		p.del(k)
		delete(model, k)
		requireSameTable(t, &p, model)
		p.put(k, record{rev: 99}) // back, in the freed slot
		model[k] = record{rev: 99}
		requireSameTable(t, &p, model)
	}
}

// A channel's slots come in chunks of slotChunk, but for the last, which
// grows by doubling: a channel of three pairs holds eight slots, not a
// thousand.
func TestPairTableChunks(t *testing.T) {
	p := newPairTable()
	model := map[store.Key]record{}
	put := func(n int) {
		for i := len(model); i < n; i++ {
			k := store.Key{Channel: "c", Contact: strconv.Itoa(i)}
			p.put(k, record{rev: int64(i)})
			model[k] = record{rev: int64(i)}
		}
	}
	put(3)
	c := p.channels["c"]
	require.Len(t, c.chunks, 1)
	require.Equal(t, 8, cap(c.chunks[0]))
	put(slotChunk + 476)
	require.Len(t, c.chunks, 2)
	require.Equal(t, slotChunk, len(c.chunks[0]))
	require.Equal(t, slotChunk, cap(c.chunks[0]), "a full chunk holds no spare slot")
	require.Equal(t, 476, len(c.chunks[1]))
	require.Equal(t, 512, cap(c.chunks[1]))
	requireSameTable(t, &p, model)
}
