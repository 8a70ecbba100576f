package permission

import (
	"hash/maphash"
	"math"
	"slices"
	"time"

	"github.com/google/btree"

	"github.com/callready/callready/internal/bptree"
	"github.com/callready/callready/store"
)

// The in-memory index is a cache of the change log: it changes only by
// applying committed changes (Tracker.applyChanges). It is laid out for
// pages and for the garbage collector: every listed entry is a row, held by
// value in the leaves of its channel's expiry order (a B+tree whose
// searches read packed expiries, internal/bptree), so that a page is a
// range scan over consecutive rows that follows no pointer; a second,
// smaller order by grant time holds the rows' keys. A third tree, by a hash
// of the contact, says per pair where its row is. Most pairs wake at their
// row's expiry: the expiry order already holds that instant, so only the
// others keep their wake-up apart (a small map, and the global order of
// wake-ups), and a small order of channels by their first such expiry
// joins the two for the sweep. Nothing per pair is allocated on its own.
//
// The pairs are a B+tree rather than a Go map for memory: a map doubles
// its tables as it grows, so its bytes per entry swing with the count (a
// map of 40-byte entries took 63 B each at 800,000 and 101 B at a
// million), where the tree splits one leaf at a time and stays about 86%
// full: 50 B per slot at either count. The price is time: a search reads
// more cache lines than a map's, and at a million pairs a pair leaving
// the index costs about 1 µs more (BenchmarkIndex1M).

const (
	btreeDegree = 32
	never       = math.MaxInt64 // expiry key of permanent entries: after every temporary one
)

// row is a listed entry as a page shows it, packed into 64 bytes: the
// person's phone number and BSUID share one string beside the contact,
// which is one of them (see ids), and the source and the flags are bytes.
type row struct {
	granted, expires  int64 // unix ns; expires is never for permanent entries
	contact           string
	other             string // waID and userID without the one equal to contact
	callsLeft, streak int32
	split             int32 // idsBoth: waID is other[:split]
	form              uint8 // how waID and userID are kept: idsPhone, idsUser or idsBoth
	source            uint8 // index in rowSources
	otherWake         bool  // the channel's otherWakes holds the pair's wake-up (see wakesAt)
}

// How a row keeps the person's waID and userID.
const (
	idsPhone = iota // waID is the contact, userID is other
	idsUser         // userID is the contact, waID is other
	idsBoth         // neither is the contact: other is waID followed by userID
)

// rowSources are the sources a row names by index. A source this
// library never writes (only a hand-edited change log holds one) reads as
// empty.
var rowSources = [...]Source{"", SourceRequest, SourceCallback, SourceInboundCall, SourceProfile, SourceReconcile}

func sourceCode(s Source) uint8 {
	for i, x := range rowSources {
		if x == s {
			return uint8(i)
		}
	}
	return 0
}

// newRow is the row of l listed under contact.
func newRow(contact string, l listed) row {
	r := row{granted: l.granted, expires: l.expires, contact: contact, source: sourceCode(l.source),
		callsLeft: int32(l.callsLeft), streak: int32(l.streak)}
	switch {
	case l.waID == contact:
		r.form, r.other = idsPhone, l.userID
	case l.userID == contact:
		r.form, r.other = idsUser, l.waID
	default:
		r.form, r.other, r.split = idsBoth, l.waID+l.userID, int32(len(l.waID))
	}
	return r
}

// ids returns the row's waID and userID.
func (r *row) ids() (waID, userID string) {
	switch r.form {
	case idsPhone:
		return r.contact, r.other
	case idsUser:
		return r.other, r.contact
	}
	return r.other[:r.split], r.other[r.split:]
}

// fill sets *e to the row's entry field by field: a page fills the
// entries of its slice in place rather than copying whole structs into it,
// which the garbage collector's write barrier makes slow during marking.
func (r *row) fill(e *Entry, channel string) {
	src := rowSources[r.source]
	e.Channel, e.Contact, e.Source = channel, r.contact, src
	e.GrantedAt = time.Unix(0, r.granted).UTC()
	if r.expires != never {
		e.Kind, e.ExpiresAt = Temporary, time.Unix(0, r.expires).UTC()
	} else {
		e.Kind, e.ExpiresAt = Permanent, time.Time{}
	}
	e.CallsLeft, e.UnansweredStreak = int(r.callsLeft), int(r.streak)
	e.WaID, e.UserID = r.ids()
	e.Unconfirmed = src == SourceInboundCall
}

// rowKey is a row's place in both orders.
type rowKey struct {
	granted, expires int64
	contact          string
}

func (r *row) key() rowKey { return rowKey{r.granted, r.expires, r.contact} }

// expiryKey is a row's key in the expiry order: by expiry, then most
// recently granted, then contact.
func expiryKey(granted, expires int64, contact string) bptree.Key {
	return bptree.Key{A: expires, B: -granted, C: contact}
}

// recentKey is a row's key in the recent order: most recently granted
// first, then by expiry, then contact.
func recentKey(granted, expires int64, contact string) bptree.Key {
	return bptree.Key{A: -granted, B: expires, C: contact}
}

func rowExpiryKey(r *row) bptree.Key    { return expiryKey(r.granted, r.expires, r.contact) }
func keyRecentKey(k *rowKey) bptree.Key { return recentKey(k.granted, k.expires, k.contact) }

// firstExpiringFrom is the expiry-order key before every row expiring at
// or after from.
func firstExpiringFrom(from int64) bptree.Key { return bptree.Key{A: from, B: math.MinInt64} }

// slot is a pair a channel knows: listed (its row's key) or waiting for a
// wake-up, or both. Its wake-up is its row's expiry unless the channel's
// otherWakes says otherwise (see channelIndex.wakeOf).
type slot struct {
	contact          string
	granted, expires int64 // of the listed row; granted is none when not listed
}

func (s *slot) listed() bool { return s.granted != none }

// expiryWake is the wake-up a slot has when otherWakes holds none for it:
// its row's (rowWake), or none for no row.
func (s *slot) expiryWake() int64 {
	if !s.listed() {
		return none
	}
	return rowWake(s.expires)
}

// rowWake is the wake-up of a row's pair when otherWakes holds none for
// it: the row's expiry, or none for a permanent row.
func rowWake(expires int64) int64 {
	if expires == never {
		return none
	}
	return expires
}

// slotSeed hashes contacts into the order of slots: the order only has to
// last as long as the process.
var slotSeed = maphash.MakeSeed()

// slotKey is a pair's key in its channel's slots: by the contact's hash,
// so that a search compares integers, then by the contact itself.
func slotKey(contact string) bptree.Key {
	return bptree.Key{A: int64(maphash.String(slotSeed, contact)), C: contact}
}

func keySlotKey(s *slot) bptree.Key { return slotKey(s.contact) }

// wakeItem is a pair's wake-up in the global order of the others.
type wakeItem struct {
	at      int64
	ch      *channelIndex
	contact string
}

func lessWake(a, b wakeItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.ch.name != b.ch.name {
		return a.ch.name < b.ch.name
	}
	return a.contact < b.contact
}

type channelIndex struct {
	name       string
	slots      *bptree.Tree[slot]   // listed or waiting for a wake-up, by slotKey
	otherWakes map[string]int64     // the wake-ups that are not their slot's expiryWake
	byExpiry   *bptree.Tree[row]    // the rows, by expiryKey
	byRecent   *bptree.Tree[rowKey] // their keys, by recentKey
	// firstDue is the earliest expiry of a row whose pair wakes at it
	// (none when no pair does): the channel's key in index.firsts. While
	// firstStale it may be earlier (see unlink).
	firstDue   int64
	firstStale bool
}

// channelFirst is a channel's place in the order of channels by firstDue.
type channelFirst struct {
	at int64
	ch *channelIndex
}

func lessFirst(a, b channelFirst) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.ch.name < b.ch.name
}

// wakeOf returns s's wake-up instant, or none.
func (c *channelIndex) wakeOf(s *slot) int64 { return c.wakeFor(s.contact, s.expiryWake()) }

// wakeFor returns the wake-up of contact's pair, whose row (if any)
// wakes it at byRow: otherWakes says where it does not.
func (c *channelIndex) wakeFor(contact string, byRow int64) int64 {
	if w, ok := c.otherWakes[contact]; ok {
		return w
	}
	return byRow
}

// wakesAtExpiry reports whether s's wake-up is its listed row's expiry,
// which the channel's expiry order then stands for.
func wakesAtExpiry(s *slot, wake int64) bool {
	return s.listed() && wake != none && wake == s.expires
}

// listed returns how many rows c lists.
func (c *channelIndex) listed() int { return c.byExpiry.Len() }

// row returns the listed row of k.
func (c *channelIndex) row(k *rowKey) (*row, bool) {
	return c.byExpiry.Get(expiryKey(k.granted, k.expires, k.contact))
}

type index struct {
	channels map[string]*channelIndex
	wakes    *btree.BTreeG[wakeItem]     // pairs that wake other than at their row's expiry
	firsts   *btree.BTreeG[channelFirst] // channels with a firstDue
	pend     pendingIndex                // the pending list (pending.go)
	stale    []*channelIndex             // channels whose firstDue refreshFirsts must find again
}

func newIndex() *index {
	return &index{
		channels: make(map[string]*channelIndex),
		wakes:    btree.NewG(btreeDegree, lessWake),
		firsts:   btree.NewG(8, lessFirst),
	}
}

func (x *index) channel(name string, create bool) *channelIndex {
	c := x.channels[name]
	if c == nil && create {
		c = &channelIndex{
			name:       name,
			slots:      bptree.New(keySlotKey),
			otherWakes: make(map[string]int64),
			byExpiry:   bptree.New(rowExpiryKey),
			byRecent:   bptree.New(keyRecentKey),
			firstDue:   none,
		}
		x.channels[name] = c
	}
	return c
}

// apply makes the pair hold l when ok (else no entry) and wake.
func (x *index) apply(k store.Key, l listed, ok bool, wake int64) {
	c := x.channel(k.Channel, ok || wake != none)
	if c == nil {
		return
	}
	contact := k.Contact
	key := slotKey(contact)
	if !ok && wake == none { // the pair leaves the index
		if s, known := c.slots.Take(key); known {
			x.unlink(c, s, c.wakeOf(&s))
			delete(c.otherWakes, contact)
			if c.slots.Len() == 0 {
				delete(x.channels, k.Channel)
			}
		}
		return
	}
	s := slot{contact: contact, granted: none}
	if ok {
		if l.granted == none {
			l.granted = none + 1 // only a hand-edited change log lists no grant time; none means "not listed"
		}
		s.granted, s.expires = l.granted, l.expires
	}
	// One search finds the pair's slot or makes it: a new pair is the
	// common case. at is valid until c.slots changes: unlink and the rows'
	// trees leave it alone.
	at, known := c.slots.Insert(key, s)
	if known {
		x.unlink(c, *at, c.wakeOf(at))
	}
	if ok {
		r := newRow(contact, l)
		r.otherWake = wake != s.expiryWake()
		c.byExpiry.Set(rowExpiryKey(&r), r)
		k := r.key()
		c.byRecent.Set(keyRecentKey(&k), k)
	}
	if wake == s.expiryWake() {
		delete(c.otherWakes, contact)
	} else {
		c.otherWakes[contact] = wake
	}
	switch {
	case wakesAtExpiry(&s, wake):
		if c.firstDue == none || wake < c.firstDue {
			x.setFirst(c, wake)
		}
	case wake != none:
		x.wakes.ReplaceOrInsert(wakeItem{at: wake, ch: c, contact: contact})
	}
	if known {
		*at = s
	}
}

// unlink takes s, which wakes at wake, out of the rows' trees and the
// orders of wake-ups; c.slots keeps it.
func (x *index) unlink(c *channelIndex, s slot, wake int64) {
	if s.listed() {
		c.byExpiry.Delete(expiryKey(s.granted, s.expires, s.contact))
		c.byRecent.Delete(recentKey(s.granted, s.expires, s.contact))
	}
	switch {
	case wakesAtExpiry(&s, wake):
		// The next due row is found once per batch (refreshFirsts), not
		// once per row a sweep removes: until then firstDue is a lower
		// bound, which inserts keep exact or lower.
		if s.expires == c.firstDue && !c.firstStale {
			c.firstStale = true
			x.stale = append(x.stale, c)
		}
	case wake != none:
		x.wakes.Delete(wakeItem{at: wake, ch: c, contact: s.contact})
	}
}

// nextDue returns the earliest expiry from `from` on of a row whose pair
// wakes at it, or none. The rows before it wake elsewhere (or not at all):
// few in practice, and each is passed once per firstDue it precedes.
func (c *channelIndex) nextDue(from int64) int64 {
	at := int64(none)
	c.byExpiry.Ascend(firstExpiringFrom(from), func(r *row) bool {
		if c.wakesAt(r) {
			at = r.expires
			return false
		}
		return true
	})
	return at
}

// wakesAt reports whether r's pair wakes at r's expiry. A row is its
// slot's listed row, so only otherWakes can say otherwise, and the row's
// flag says whether it holds the pair: a sweep reads thousands of rows,
// which then cost no map lookup each.
func (c *channelIndex) wakesAt(r *row) bool {
	if !r.otherWake {
		return r.expires != never
	}
	w := c.wakeFor(r.contact, rowWake(r.expires))
	return w != none && w == r.expires
}

// refreshFirsts makes every firstDue that unlinks left stale exact
// again. The tracker calls it after applying changes, before it lets
// readers in.
func (x *index) refreshFirsts() {
	for _, c := range x.stale {
		c.firstStale = false
		if c.firstDue != none {
			x.setFirst(c, c.nextDue(c.firstDue))
		}
	}
	clear(x.stale)
	x.stale = x.stale[:0]
}

// setFirst moves c to firstDue at in the order of channels.
func (x *index) setFirst(c *channelIndex, at int64) {
	if at == c.firstDue {
		return
	}
	if c.firstDue != none {
		x.firsts.Delete(channelFirst{c.firstDue, c})
	}
	c.firstDue = at
	if at != none {
		x.firsts.ReplaceOrInsert(channelFirst{at, c})
	}
}

// nextWake returns the earliest wake-up instant in the index.
func (x *index) nextWake() (int64, bool) {
	it, okWake := x.wakes.Min()
	f, okFirst := x.firsts.Min()
	switch {
	case okWake && okFirst:
		return min(it.at, f.at), true
	case okWake:
		return it.at, true
	case okFirst:
		return f.at, true
	}
	return none, false
}

// due returns up to limit pairs whose wake-up instant is at or before now,
// earliest first, written over dst[:0]. The expiry orders are merged under
// a bound: once limit candidates are found, a channel is scanned only up
// to the latest of the earliest limit, so a batch costs about limit rows,
// not limit per channel.
func (x *index) due(dst []store.Key, now int64, limit int) []store.Key {
	found := make([]dueKey, 0, limit)
	x.wakes.Ascend(func(it wakeItem) bool {
		if it.at > now || len(found) >= limit {
			return false
		}
		found = append(found, dueKey{it.at, store.Key{Channel: it.ch.name, Contact: it.contact}})
		return true
	})
	bound := now
	if len(found) == limit {
		bound = found[limit-1].at
	}
	var left []dueKey // mergeDue's buffer
	x.firsts.Ascend(func(f channelFirst) bool {
		if f.at > bound {
			return false // every later channel starts after the bound too
		}
		from, taken := len(found), 0 // a channel's limit-th row is the latest of it that can be among the earliest limit
		f.ch.byExpiry.Ascend(firstExpiringFrom(f.at), func(r *row) bool {
			if r.expires > bound {
				return false
			}
			if f.ch.wakesAt(r) {
				found = append(found, dueKey{r.expires, store.Key{Channel: f.ch.name, Contact: r.contact}})
				taken++
			}
			return taken < limit
		})
		left = mergeDue(found, from, left)
		if len(found) >= limit {
			found = found[:limit]
			bound = found[limit-1].at
		}
		return true
	})
	out := slices.Grow(dst[:0], len(found)) // at most limit: a longer list was cut above
	for _, d := range found {
		out = append(out, d.key)
	}
	return out
}

// dueKey is a pair due at an instant, as due collects them.
type dueKey struct {
	at  int64
	key store.Key
}

// mergeDue merges the two runs of found, [:mid] and [mid:], each in order
// of instants, into one, the first run's first on equal instants: what a
// stable sort of found gives, in one pass. Each run is in order already
// (the wake-ups' order, a channel's expiry order), and a sweep of a million
// pairs spent 4% of its time sorting them again. left is a buffer to reuse;
// mergeDue returns it.
func mergeDue(found []dueKey, mid int, left []dueKey) []dueKey {
	if mid == 0 || mid == len(found) || found[mid-1].at <= found[mid].at {
		return left // already in order
	}
	left = append(left[:0], found[:mid]...)
	i, j, k := 0, mid, 0
	for i < len(left) && j < len(found) {
		if found[j].at < left[i].at {
			found[k] = found[j]
			j++
		} else {
			found[k] = left[i]
			i++
		}
		k++
	}
	copy(found[k:], left[i:]) // what is left of the second run is in place
	return left
}

func (x *index) size() (entries int) {
	for _, c := range x.channels {
		entries += c.listed()
	}
	return entries
}
