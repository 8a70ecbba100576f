// Package bptree is an in-memory B+tree of items held by value, ordered by
// a Key of two integers and a string, laid out for cache misses: a search
// reads the integers of the first key component from a packed array in
// each node (eight to a cache line) and compares whole keys only among
// equal first components. Inner nodes hold separator keys only; leaves
// hold the items. The permission index orders its rows and its pairs
// with it: at a million rows a search touches about half the cache lines
// it did in a B-tree that compares the items themselves.
//
// A Tree is not safe for concurrent use.
package bptree

import "cmp"

// Key orders the items of a Tree: by A, then B, then C.
type Key struct {
	A, B int64
	C    string
}

// Compare returns -1, 0 or +1 as k is before, equal to or after o.
func (k Key) Compare(o Key) int {
	if k.A != o.A {
		return cmp.Compare(k.A, o.A)
	}
	if k.B != o.B {
		return cmp.Compare(k.B, o.B)
	}
	return cmp.Compare(k.C, o.C)
}

const (
	// Items per leaf: 66 fills Go's size classes for the index's kinds of
	// leaf, counting the 8-byte header Go puts before each object over
	// 512 bytes that holds pointers: 66 rows of 64 bytes take 4,768 of a
	// 4,864-byte class; 66 keys of 32 bytes 2,656 of 2,688. At 67 the
	// keys took 2,696 bytes and so a 3,072-byte class.
	leafCap  = 66
	innerCap = 64 // children per inner node
	// A node below a quarter full after a delete is merged with a
	// sibling or takes items from it.
	leafMin  = leafCap / 4
	innerMin = innerCap / 4
)

type leaf[T any] struct {
	n     int
	a     [leafCap]int64 // a[i] is items[i]'s Key.A
	items [leafCap]T
}

// inner is an inner node: kids[i] holds the keys k with
// seps[i-1] <= k < seps[i]. Its children are all leaves or all inner.
type inner[T any] struct {
	n      int                 // children
	a      [innerCap - 1]int64 // a[i] is seps[i].A
	seps   [innerCap - 1]Key
	kids   [innerCap]*inner[T] // when the children are inner nodes
	leaves [innerCap]*leaf[T]  // when they are leaves
}

// Tree is a B+tree of T ordered by the Key that keyOf gives an item. The
// zero Tree is not usable: call New.
type Tree[T any] struct {
	keyOf  func(*T) Key
	root   *inner[T] // nil while the tree is one leaf
	leaf   *leaf[T]  // the tree when root is nil
	height int       // inner levels above the leaves
	n      int
}

// New returns an empty tree whose items are ordered by keyOf, which must
// give an item the Key it was inserted with.
func New[T any](keyOf func(*T) Key) *Tree[T] {
	return &Tree[T]{keyOf: keyOf, leaf: &leaf[T]{}}
}

// Len returns the number of items.
func (t *Tree[T]) Len() int { return t.n }

// upper returns the first i < len(a) with seps[i] > k, or len(a).
func upper(a []int64, seps []Key, k Key) int {
	lo, hi := 0, len(a)
	for lo < hi { // first i with a[i] > k.A
		m := int(uint(lo+hi) >> 1)
		if a[m] <= k.A {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	if end == 0 || a[end-1] != k.A {
		return end
	}
	lo = 0
	for lo < hi { // first i with a[i] >= k.A
		m := int(uint(lo+hi) >> 1)
		if a[m] < k.A {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for hi = end; lo < hi; { // among the equal ones, the first > k
		m := int(uint(lo+hi) >> 1)
		if seps[m].Compare(k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the first i with items[i]'s key >= k, and whether it is k.
func (t *Tree[T]) find(l *leaf[T], k Key) (int, bool) {
	lo, hi := 0, l.n
	for lo < hi { // first i with a[i] >= k.A
		m := int(uint(lo+hi) >> 1)
		if l.a[m] < k.A {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == l.n || l.a[lo] != k.A {
		return lo, false
	}
	for hi = l.n; lo < hi; { // among the equal ones (and beyond), the first >= k
		m := int(uint(lo+hi) >> 1)
		if l.a[m] != k.A {
			hi = m
			continue
		}
		if t.keyOf(&l.items[m]).Compare(k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < l.n && l.a[lo] == k.A && t.keyOf(&l.items[lo]).Compare(k) == 0
}

// child returns the index of n's child that holds k.
func (n *inner[T]) child(k Key) int { return upper(n.a[:n.n-1], n.seps[:n.n-1], k) }

// leafOf returns the leaf that holds k.
func (t *Tree[T]) leafOf(k Key) *leaf[T] {
	if t.root == nil {
		return t.leaf
	}
	n := t.root
	for h := t.height; h > 1; h-- {
		n = n.kids[n.child(k)]
	}
	return n.leaves[n.child(k)]
}

// Get returns the item with key k. The pointer is valid until the next
// change to the tree.
func (t *Tree[T]) Get(k Key) (*T, bool) {
	l := t.leafOf(k)
	i, ok := t.find(l, k)
	if !ok {
		return nil, false
	}
	return &l.items[i], true
}

// Set inserts item under key k, which must be keyOf(&item), replacing
// the item with the same key. It reports whether it replaced one.
func (t *Tree[T]) Set(k Key, item T) (replaced bool) { return t.set(k, item, true) != nil }

// Insert inserts item under key k, which must be keyOf(&item), unless an
// item has that key: then it changes nothing and returns that item, valid
// until the next change to the tree. It is Get and then Set in one
// search.
func (t *Tree[T]) Insert(k Key, item T) (existing *T, found bool) {
	at := t.set(k, item, false)
	return at, at != nil
}

// set inserts item under k, or finds the item with key k (and replaces
// it when replace is set); it returns the item it found, nil for none.
func (t *Tree[T]) set(k Key, item T, replace bool) *T {
	if t.root == nil {
		at, right, sep := t.setLeaf(t.leaf, k, item, replace)
		if right != nil {
			t.root = &inner[T]{n: 2}
			t.root.leaves[0], t.root.leaves[1] = t.leaf, right
			t.root.a[0], t.root.seps[0] = sep.A, sep
			t.leaf, t.height = nil, 1
		}
		return at
	}
	at, right, sep := t.setInner(t.root, t.height, k, item, replace)
	if right != nil {
		root := &inner[T]{n: 2}
		root.kids[0], root.kids[1] = t.root, right
		root.a[0], root.seps[0] = sep.A, sep
		t.root = root
		t.height++
	}
	return at
}

// setLeaf sets item in l, or finds the item with key k there (see set);
// when l splits it returns the new right leaf and its first key.
func (t *Tree[T]) setLeaf(l *leaf[T], k Key, item T, replace bool) (*T, *leaf[T], Key) {
	i, found := t.find(l, k)
	if found {
		if replace {
			l.items[i] = item
		}
		return &l.items[i], nil, Key{}
	}
	t.n++
	if l.n < leafCap {
		insertLeaf(l, i, k.A, item)
		return nil, nil, Key{}
	}
	r := &leaf[T]{}
	if i == leafCap {
		// Past the end (rising keys, the common load): l stays full and
		// the new item starts the right leaf.
		insertLeaf(r, 0, k.A, item)
		return nil, r, k
	}
	const mid = leafCap / 2
	r.n = copy(r.a[:], l.a[mid:l.n])
	copy(r.items[:], l.items[mid:l.n])
	clear(l.items[mid:l.n])
	l.n = mid
	if i <= mid {
		insertLeaf(l, i, k.A, item)
	} else {
		insertLeaf(r, i-mid, k.A, item)
	}
	return nil, r, t.keyOf(&r.items[0])
}

func insertLeaf[T any](l *leaf[T], i int, a int64, item T) {
	copy(l.a[i+1:l.n+1], l.a[i:l.n])
	copy(l.items[i+1:l.n+1], l.items[i:l.n])
	l.a[i], l.items[i] = a, item
	l.n++
}

// setInner sets item below n, an inner node h levels above the leaves,
// or finds the item with key k there (see set); when n splits it returns
// the new right node and the key between them.
func (t *Tree[T]) setInner(n *inner[T], h int, k Key, item T, replace bool) (*T, *inner[T], Key) {
	i := n.child(k)
	var at *T
	var sep Key
	var rightLeaf *leaf[T]
	var rightInner *inner[T]
	if h == 1 {
		if l := n.leaves[i]; l.n == leafCap {
			// Past a leaf's end (rising keys) setLeaf starts a new leaf
			// and leaves this one full; anywhere else a full leaf first
			// makes room beside it.
			if pos, found := t.find(l, k); !found && (t.spill(n, i) || pos < leafCap && t.split3(n, i)) {
				i = n.child(k)
			}
		}
		at, rightLeaf, sep = t.setLeaf(n.leaves[i], k, item, replace)
		if rightLeaf == nil {
			return at, nil, Key{}
		}
	} else {
		at, rightInner, sep = t.setInner(n.kids[i], h-1, k, item, replace)
		if rightInner == nil {
			return at, nil, Key{}
		}
	}
	if n.n < innerCap {
		insertKid(n, i, sep, rightLeaf, rightInner)
		return at, nil, Key{}
	}
	r := &inner[T]{n: 1}
	if i == innerCap-1 {
		// Past the end, as for leaves: n stays full and the new child
		// starts the right node.
		r.leaves[0], r.kids[0] = rightLeaf, rightInner
		return at, r, sep
	}
	// Split n: the left keeps mid children, the right the rest; the
	// separator between them moves up.
	const mid = innerCap / 2
	up := n.seps[mid-1]
	r.n = n.n - mid
	copy(r.a[:], n.a[mid:n.n-1])
	copy(r.seps[:], n.seps[mid:n.n-1])
	copy(r.kids[:], n.kids[mid:n.n])
	copy(r.leaves[:], n.leaves[mid:n.n])
	clear(n.seps[mid-1 : n.n-1])
	clear(n.kids[mid:n.n])
	clear(n.leaves[mid:n.n])
	n.n = mid
	if i < mid {
		insertKid(n, i, sep, rightLeaf, rightInner)
	} else {
		insertKid(r, i-mid, sep, rightLeaf, rightInner)
	}
	return at, r, up
}

// spill makes room in n's full leaf i by moving items to a sibling with
// room, as a B*-tree does: random inserts then fill leaves to about 85%
// (BenchmarkFill) rather than the 69% that splitting alone leaves. It
// moves half the sibling's free room and reports whether it found a
// sibling with room.
func (t *Tree[T]) spill(n *inner[T], i int) bool {
	switch {
	case i+1 < n.n && n.leaves[i+1].n < leafCap-1:
		shiftRight(n.leaves[i], n.leaves[i+1], (leafCap-n.leaves[i+1].n)/2)
		t.resetSep(n, i)
	case i > 0 && n.leaves[i-1].n < leafCap-1:
		shiftLeft(n.leaves[i-1], n.leaves[i], (leafCap-n.leaves[i-1].n)/2)
		t.resetSep(n, i-1)
	default:
		return false
	}
	return true
}

// split3 makes room in n's full leaf i when its neighbours are full too,
// as a B*-tree does: the leaf and a neighbour share their items with a
// new leaf between them, each two thirds full, where a split would leave
// two halves. A load that fills every leaf at the same pace (inserts
// spread evenly over the keys) then stays above two thirds rather than
// falling to a half. It reports false when n has no room for a child.
func (t *Tree[T]) split3(n *inner[T], i int) bool {
	if n.n == innerCap || n.n < 2 {
		return false
	}
	i = siblings(n.n, i)
	l, r := n.leaves[i], n.leaves[i+1]
	if l.n+r.n < 2*leafCap-1 { // only for two full leaves (spill found no room)
		return false
	}
	third := (l.n + r.n) / 3
	m := &leaf[T]{}
	shiftRight(l, m, l.n-third)
	insertKid(n, i, t.keyOf(&m.items[0]), m, nil)
	shiftLeft(m, r, third-m.n)
	t.resetSep(n, i+1)
	return true
}

// shiftLeft moves r's first m items to the end of l, its left sibling.
func shiftLeft[T any](l, r *leaf[T], m int) {
	copy(l.a[l.n:], r.a[:m])
	copy(l.items[l.n:], r.items[:m])
	copy(r.a[:], r.a[m:r.n])
	copy(r.items[:], r.items[m:r.n])
	clear(r.items[r.n-m : r.n])
	l.n, r.n = l.n+m, r.n-m
}

// shiftRight moves l's last m items to the start of r, its right sibling.
func shiftRight[T any](l, r *leaf[T], m int) {
	copy(r.a[m:], r.a[:r.n])
	copy(r.items[m:], r.items[:r.n])
	copy(r.a[:], l.a[l.n-m:l.n])
	copy(r.items[:], l.items[l.n-m:l.n])
	clear(l.items[l.n-m : l.n])
	l.n, r.n = l.n-m, r.n+m
}

// resetSep sets the separator between n's leaves i and i+1 to the first
// key of leaf i+1, after items moved between them.
func (t *Tree[T]) resetSep(n *inner[T], i int) {
	sep := t.keyOf(&n.leaves[i+1].items[0])
	n.a[i], n.seps[i] = sep.A, sep
}

// insertKid inserts a child right after child i, with sep before it.
func insertKid[T any](n *inner[T], i int, sep Key, l *leaf[T], c *inner[T]) {
	copy(n.a[i+1:n.n], n.a[i:n.n-1])
	copy(n.seps[i+1:n.n], n.seps[i:n.n-1])
	copy(n.kids[i+2:n.n+1], n.kids[i+1:n.n])
	copy(n.leaves[i+2:n.n+1], n.leaves[i+1:n.n])
	n.a[i], n.seps[i] = sep.A, sep
	n.kids[i+1], n.leaves[i+1] = c, l
	n.n++
}

// Delete removes the item with key k and reports whether there was one.
func (t *Tree[T]) Delete(k Key) bool {
	_, ok := t.Take(k)
	return ok
}

// Take removes the item with key k and returns it, if there was one: a
// Get and a Delete in one search.
func (t *Tree[T]) Take(k Key) (T, bool) {
	if t.root == nil {
		return t.deleteLeaf(t.leaf, k)
	}
	item, ok := t.deleteInner(t.root, t.height, k)
	if !ok {
		return item, false
	}
	if t.root.n == 1 { // the root lost a level
		if t.height == 1 {
			t.leaf, t.root = t.root.leaves[0], nil
		} else {
			t.root = t.root.kids[0]
		}
		t.height--
	}
	return item, true
}

func (t *Tree[T]) deleteLeaf(l *leaf[T], k Key) (T, bool) {
	var zero T
	i, found := t.find(l, k)
	if !found {
		return zero, false
	}
	item := l.items[i]
	copy(l.a[i:], l.a[i+1:l.n])
	copy(l.items[i:], l.items[i+1:l.n])
	l.n--
	l.items[l.n] = zero
	t.n--
	return item, true
}

func (t *Tree[T]) deleteInner(n *inner[T], h int, k Key) (T, bool) {
	i := n.child(k)
	if h == 1 {
		item, ok := t.deleteLeaf(n.leaves[i], k)
		if ok && n.leaves[i].n < leafMin && n.n > 1 {
			t.fixLeaf(n, i)
		}
		return item, ok
	}
	item, ok := t.deleteInner(n.kids[i], h-1, k)
	if ok && n.kids[i].n < innerMin && n.n > 1 {
		fixInner(n, i)
	}
	return item, ok
}

// siblings returns the children to balance with child i: i and its right
// neighbour, or its left one for the last child.
func siblings(n int, i int) int {
	if i == n-1 {
		return i - 1
	}
	return i
}

// fixLeaf merges n's underfull leaf i with a sibling, or evens them out.
func (t *Tree[T]) fixLeaf(n *inner[T], i int) {
	i = siblings(n.n, i)
	l, r := n.leaves[i], n.leaves[i+1]
	total := l.n + r.n
	if total <= leafCap {
		copy(l.a[l.n:], r.a[:r.n])
		copy(l.items[l.n:], r.items[:r.n])
		l.n = total
		removeKid(n, i)
		return
	}
	if half := total / 2; l.n < half {
		shiftLeft(l, r, half-l.n)
	} else {
		shiftRight(l, r, l.n-half)
	}
	t.resetSep(n, i)
}

// fixInner merges n's underfull inner child i with a sibling, or evens
// them out, moving the separators between them through n.
func fixInner[T any](n *inner[T], i int) {
	i = siblings(n.n, i)
	l, r := n.kids[i], n.kids[i+1]
	total := l.n + r.n
	if total <= innerCap {
		l.a[l.n-1], l.seps[l.n-1] = n.a[i], n.seps[i]
		copy(l.a[l.n:], r.a[:r.n-1])
		copy(l.seps[l.n:], r.seps[:r.n-1])
		copy(l.kids[l.n:], r.kids[:r.n])
		copy(l.leaves[l.n:], r.leaves[:r.n])
		l.n = total
		removeKid(n, i)
		return
	}
	half := total / 2
	if l.n < half { // r's first children move to l's end
		m := half - l.n
		l.a[l.n-1], l.seps[l.n-1] = n.a[i], n.seps[i]
		copy(l.a[l.n:], r.a[:m-1])
		copy(l.seps[l.n:], r.seps[:m-1])
		copy(l.kids[l.n:], r.kids[:m])
		copy(l.leaves[l.n:], r.leaves[:m])
		n.a[i], n.seps[i] = r.a[m-1], r.seps[m-1]
		copy(r.a[:], r.a[m:r.n-1])
		copy(r.seps[:], r.seps[m:r.n-1])
		copy(r.kids[:], r.kids[m:r.n])
		copy(r.leaves[:], r.leaves[m:r.n])
		clear(r.seps[r.n-1-m : r.n-1])
		clear(r.kids[r.n-m : r.n])
		clear(r.leaves[r.n-m : r.n])
		l.n, r.n = half, r.n-m
		return
	}
	// l's last children move to r's start.
	m := l.n - half
	copy(r.a[m:], r.a[:r.n-1])
	copy(r.seps[m:], r.seps[:r.n-1])
	copy(r.kids[m:], r.kids[:r.n])
	copy(r.leaves[m:], r.leaves[:r.n])
	r.a[m-1], r.seps[m-1] = n.a[i], n.seps[i]
	copy(r.a[:m-1], l.a[half:l.n-1])
	copy(r.seps[:m-1], l.seps[half:l.n-1])
	copy(r.kids[:m], l.kids[half:l.n])
	copy(r.leaves[:m], l.leaves[half:l.n])
	n.a[i], n.seps[i] = l.a[half-1], l.seps[half-1]
	clear(l.seps[half-1 : l.n-1])
	clear(l.kids[half:l.n])
	clear(l.leaves[half:l.n])
	l.n, r.n = half, r.n+m
}

// removeKid removes child i+1 and the separator before it.
func removeKid[T any](n *inner[T], i int) {
	copy(n.a[i:], n.a[i+1:n.n-1])
	copy(n.seps[i:], n.seps[i+1:n.n-1])
	copy(n.kids[i+1:], n.kids[i+2:n.n])
	copy(n.leaves[i+1:], n.leaves[i+2:n.n])
	n.n--
	n.seps[n.n-1] = Key{}
	n.kids[n.n], n.leaves[n.n] = nil, nil
}

// Ascend calls fn for each item with key >= from, in order, until fn
// returns false. fn must not change the tree; the pointer is valid only
// during the call.
func (t *Tree[T]) Ascend(from Key, fn func(*T) bool) {
	if t.root == nil {
		t.ascendLeaf(t.leaf, from, fn)
		return
	}
	t.ascendInner(t.root, t.height, &from, fn)
}

// AscendAll calls fn for every item, in order, until fn returns false.
func (t *Tree[T]) AscendAll(fn func(*T) bool) {
	if t.root == nil {
		ascendAll(t.leaf, fn)
		return
	}
	t.ascendInner(t.root, t.height, nil, fn)
}

func (t *Tree[T]) ascendLeaf(l *leaf[T], from Key, fn func(*T) bool) bool {
	i, _ := t.find(l, from)
	for ; i < l.n; i++ {
		if !fn(&l.items[i]) {
			return false
		}
	}
	return true
}

func ascendAll[T any](l *leaf[T], fn func(*T) bool) bool {
	for i := range l.n {
		if !fn(&l.items[i]) {
			return false
		}
	}
	return true
}

// ascendInner visits n's items from *from on (all when from is nil).
func (t *Tree[T]) ascendInner(n *inner[T], h int, from *Key, fn func(*T) bool) bool {
	i := 0
	if from != nil {
		i = n.child(*from)
	}
	for ; i < n.n; i++ {
		var more bool
		switch {
		case h > 1:
			more = t.ascendInner(n.kids[i], h-1, from, fn)
		case from != nil:
			more = t.ascendLeaf(n.leaves[i], *from, fn)
		default:
			more = ascendAll(n.leaves[i], fn)
		}
		if !more {
			return false
		}
		from = nil // every later child is entirely after from
	}
	return true
}
