package bptree

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type item struct {
	k   Key
	val int
}

func keyOf(it *item) Key { return it.k }

// model is a sorted slice standing for the tree.
type model []item

func (m model) find(k Key) (int, bool) {
	return slices.BinarySearchFunc(m, k, func(it item, k Key) int { return it.k.Compare(k) })
}

// check verifies t's structure: keys in order within and across nodes,
// separators bounding their children, every leaf at the same depth and no
// leaf empty (but a root one), and the count.
func check[T any](t *testing.T, tr *Tree[T]) {
	t.Helper()
	var prev *Key
	count := 0
	visit := func(l *leaf[T], lo, hi *Key) {
		if l.n == 0 && tr.root != nil {
			t.Fatal("empty leaf below the root")
		}
		for i := range l.n {
			k := tr.keyOf(&l.items[i])
			if k.A != l.a[i] {
				t.Fatalf("leaf a[%d] = %d, key %v", i, l.a[i], k)
			}
			if prev != nil && prev.Compare(k) >= 0 {
				t.Fatalf("out of order: %v then %v", *prev, k)
			}
			if lo != nil && k.Compare(*lo) < 0 || hi != nil && k.Compare(*hi) >= 0 {
				t.Fatalf("key %v outside its separators [%v, %v)", k, lo, hi)
			}
			prev = &k
			count++
		}
	}
	var walk func(n *inner[T], h int, lo, hi *Key)
	walk = func(n *inner[T], h int, lo, hi *Key) {
		// A split past the end starts an inner node with one child.
		if n.n < 1 || n == tr.root && n.n < 2 {
			t.Fatalf("inner node with %d children", n.n)
		}
		for i := range n.n - 1 {
			if n.a[i] != n.seps[i].A {
				t.Fatalf("inner a[%d] = %d, separator %v", i, n.a[i], n.seps[i])
			}
			if i > 0 && n.seps[i-1].Compare(n.seps[i]) >= 0 {
				t.Fatalf("separators out of order: %v then %v", n.seps[i-1], n.seps[i])
			}
		}
		for i := range n.n {
			clo, chi := lo, hi
			if i > 0 {
				clo = &n.seps[i-1]
			}
			if i < n.n-1 {
				chi = &n.seps[i]
			}
			if h == 1 {
				if n.kids[i] != nil || n.leaves[i] == nil {
					t.Fatal("a bottom inner node's child is not a leaf")
				}
				visit(n.leaves[i], clo, chi)
			} else {
				if n.leaves[i] != nil || n.kids[i] == nil {
					t.Fatal("an upper inner node's child is not an inner node")
				}
				walk(n.kids[i], h-1, clo, chi)
			}
		}
	}
	if tr.root == nil {
		if tr.height != 0 {
			t.Fatalf("height %d without a root", tr.height)
		}
		visit(tr.leaf, nil, nil)
	} else {
		walk(tr.root, tr.height, nil, nil)
	}
	if count != tr.n {
		t.Fatalf("%d items, Len says %d", count, tr.n)
	}
}

// randomKey draws keys with many equal A (and equal A and B) so that the
// comparisons beyond A are exercised.
func randomKey(r *rand.Rand, spread int) Key {
	return Key{A: int64(r.IntN(spread)), B: int64(r.IntN(3)), C: fmt.Sprint(r.IntN(spread))}
}

// TestTreeAgainstModel applies random inserts, replacements, deletes and
// range scans to a tree and to a sorted slice, and checks that they agree
// and that the tree stays well formed. The insert orders cover random
// keys, rising keys (the split past the end) and falling ones.
func TestTreeAgainstModel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spread int
		key    func(r *rand.Rand, i int) Key
	}{
		{"random", 2000, func(r *rand.Rand, i int) Key { return randomKey(r, 2000) }},
		{"few A", 2000, func(r *rand.Rand, i int) Key { return Key{A: int64(r.IntN(3)), C: fmt.Sprint(r.IntN(2000))} }},
		{"rising", 0, func(r *rand.Rand, i int) Key { return Key{A: int64(i), C: "x"} }},
		{"falling", 0, func(r *rand.Rand, i int) Key { return Key{A: int64(-i), C: "x"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			tr := New(keyOf)
			var m model
			for step := range 60_000 {
				// Grow for the first half, then shrink: every size, both ways.
				insert := r.IntN(100) < 70
				if step > 30_000 {
					insert = r.IntN(100) < 30
				}
				switch {
				case insert:
					k := tc.key(r, step)
					it := item{k, step}
					i, found := m.find(k)
					if r.IntN(2) == 0 { // Insert keeps an item that is there
						prev := it
						if found {
							prev = m[i]
						}
						at, got := tr.Insert(k, it)
						if got != found || found && *at != prev {
							t.Fatalf("step %d: Insert(%v) found %v %v, want %v %v", step, k, got, at, found, prev)
						}
						if !found {
							m = slices.Insert(m, i, it)
						}
						break
					}
					if got := tr.Set(k, it); got != found {
						t.Fatalf("step %d: Set(%v) replaced %v, want %v", step, k, got, found)
					}
					if found {
						m[i] = it
					} else {
						m = slices.Insert(m, i, it)
					}
				case len(m) > 0 && r.IntN(4) > 0:
					// An existing key, mostly.
					i := r.IntN(len(m))
					want := m[i]
					m = slices.Delete(m, i, i+1)
					if got, ok := tr.Take(want.k); !ok || got != want {
						t.Fatalf("step %d: Take(%v) = %v %v, want %v", step, want.k, got, ok, want)
					}
				default:
					k := randomKey(r, max(tc.spread, 10))
					i, found := m.find(k)
					if found {
						m = slices.Delete(m, i, i+1)
					}
					if got := tr.Delete(k); got != found {
						t.Fatalf("step %d: Delete(%v) = %v, want %v", step, k, got, found)
					}
				}
				if step%997 == 0 || len(m) < 200 {
					check(t, tr)
				}
				if step%101 == 0 {
					compareScans(t, tr, m, r, tc.spread)
				}
			}
			for len(m) > 0 { // down to empty
				i := r.IntN(len(m))
				if !tr.Delete(m[i].k) {
					t.Fatalf("Delete(%v) found nothing", m[i].k)
				}
				m = slices.Delete(m, i, i+1)
			}
			check(t, tr)
			if tr.Len() != 0 || tr.root != nil || tr.leaf.n != 0 {
				t.Fatal("the emptied tree is not empty")
			}
		})
	}
}

// compareScans checks Get, Ascend from a key and AscendAll against m.
func compareScans(t *testing.T, tr *Tree[item], m model, r *rand.Rand, spread int) {
	t.Helper()
	if tr.Len() != len(m) {
		t.Fatalf("Len %d, want %d", tr.Len(), len(m))
	}
	if len(m) > 0 {
		want := m[r.IntN(len(m))]
		if got, ok := tr.Get(want.k); !ok || *got != want {
			t.Fatalf("Get(%v) = %v %v, want %v", want.k, got, ok, want)
		}
	}
	from := randomKey(r, max(spread, 10))
	if len(m) > 0 && r.IntN(2) == 0 {
		from = m[r.IntN(len(m))].k // a key that is there
	}
	if _, ok := m.find(from); !ok {
		if _, got := tr.Get(from); got {
			t.Fatalf("Get(%v) found a key that is not there", from)
		}
	}
	start, _ := m.find(from)
	limit := r.IntN(300)
	var got []item
	tr.Ascend(from, func(it *item) bool {
		got = append(got, *it)
		return len(got) < limit
	})
	want := m[start:min(len(m), start+max(limit, 1))]
	if limit == 0 && len(want) > 1 {
		want = want[:1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Ascend(%v) limit %d: %d items, want %d", from, limit, len(got), len(want))
	}
	var all []item
	tr.AscendAll(func(it *item) bool { all = append(all, *it); return true })
	if !slices.Equal(all, []item(m)) {
		t.Fatalf("AscendAll: %d items, want %d", len(all), len(m))
	}
}

func TestKeyCompare(t *testing.T) {
	keys := []Key{{-1, 5, "z"}, {0, -1, "z"}, {0, 0, ""}, {0, 0, "a"}, {0, 1, ""}, {1, -9, ""}}
	for i, a := range keys {
		for j, b := range keys {
			if got := a.Compare(b); got != cmp.Compare(i, j) {
				t.Fatalf("%v.Compare(%v) = %d", a, b, got)
			}
		}
	}
}

// FuzzTree replays a byte string as operations on a tree and a model.
func FuzzTree(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 201, 202})
	f.Add([]byte{0, 7, 2, 7, 1, 7, 2, 7, 0, 7, 0, 9, 1, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := New(keyOf)
		var m model
		// Each step is two bytes: the operation, then the key, so that
		// any operation can meet a key any other one left.
		for i := 0; i+1 < len(ops); i += 2 {
			op, kb := ops[i], ops[i+1]
			k := Key{A: int64(kb % 16), B: int64(kb / 16 % 4), C: string(rune('a' + kb/64))}
			j, found := m.find(k)
			switch op % 3 {
			case 0:
				if found {
					m[j] = item{k, i}
				} else {
					m = slices.Insert(m, j, item{k, i})
				}
				if tr.Set(k, item{k, i}) != found {
					t.Fatalf("Set(%v) disagrees with the model", k)
				}
			case 1:
				if found {
					m = slices.Delete(m, j, j+1)
				}
				if tr.Delete(k) != found {
					t.Fatalf("Delete(%v) disagrees with the model", k)
				}
			case 2: // Insert keeps an item that is there
				at, got := tr.Insert(k, item{k, i})
				if got != found || found && *at != m[j] {
					t.Fatalf("Insert(%v) disagrees with the model", k)
				}
				if !found {
					m = slices.Insert(m, j, item{k, i})
				}
			}
		}
		check(t, tr)
		var all []item
		tr.AscendAll(func(it *item) bool { all = append(all, *it); return true })
		if !slices.Equal(all, []item(m)) {
			t.Fatalf("AscendAll: %v, want %v", all, m)
		}
	})
}
