package bptree

import (
	"math/rand/v2"
	"testing"
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

// BenchmarkFill reports how full random inserts leave the leaves (the
// index's bytes per row follow from it) and what an insert costs.
func BenchmarkFill(b *testing.B) {
	for _, order := range []string{"random", "rising"} {
		b.Run(order, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			tr := New(keyOf)
			b.ReportAllocs()
			for i := range b.N {
				a := int64(i)
				if order == "random" {
					a = r.Int64()
				}
				tr.Set(Key{A: a}, item{k: Key{A: a}})
			}
			b.ReportMetric(100*leafFill(tr), "%fill")
		})
	}
}
