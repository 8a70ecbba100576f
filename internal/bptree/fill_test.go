package bptree

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// leafFill is the share of leaf slots in use.
func leafFill[T any](t *Tree[T]) float64 {
	if t.root == nil {
		return float64(t.leaf.n) / leafCap
	}
	leaves := 0
	var walk func(n *inner[T], h int)
	walk = func(n *inner[T], h int) {
		if h == 1 {
			leaves += n.n
			return
		}
		for _, c := range n.kids[:n.n] {
			walk(c, h-1)
		}
	}
	walk(t.root, t.height)
	return float64(t.n) / float64(leaves*leafCap)
}

// BenchmarkFill reports how full inserts leave the leaves (the index's
// bytes per row follow from it) and what an insert costs: in random
// order, rising, and strided: i*618,033 mod N (near N/φ for N = 10^6),
// which spreads inserts evenly over the keys, so that every leaf fills at
// the same pace.
func BenchmarkFill(b *testing.B) {
	for _, order := range []string{"random", "rising", "strided"} {
		b.Run(order, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			tr := New(keyOf)
			b.ReportAllocs()
			for i := range b.N {
				a := int64(i)
				switch order {
				case "random":
					a = r.Int64()
				case "strided":
					a = int64(uint64(i) * 618_033 % uint64(b.N))
				}
				tr.Set(Key{A: a}, item{k: Key{A: a}})
			}
			b.ReportMetric(100*leafFill(tr), "%fill")
		})
	}
}

// The leaves of the index's trees fit the size classes leafCap was
// chosen for, with the header Go adds to objects over 512 bytes that hold
// pointers.
func TestLeafSizes(t *testing.T) {
	type row struct { // as the permission index's row and keys
		s, o string
		x    [4]int64
	}
	type key struct {
		s string
		x [2]int64
	}
	const header = 8
	if got := unsafe.Sizeof(leaf[row]{}) + header; got > 4864 {
		t.Errorf("a leaf of 64-byte rows takes %d bytes, over its 4,864-byte size class", got)
	}
	if got := unsafe.Sizeof(leaf[key]{}) + header; got > 2688 {
		t.Errorf("a leaf of 32-byte keys takes %d bytes, over its 2,688-byte size class", got)
	}
}
