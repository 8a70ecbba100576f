package permission

import (
	"math"
	"time"

	"github.com/google/btree"
)

// The in-memory index holds only callable entries (plus temporary ones that
// reached their expiry but are not swept yet). Each channel has two
// orderings, by expiry and by grant time, so a page is a range scan; a global
// expiry order drives the sweep. Items are small values pointing at one slot
// per entry.

const (
	btreeDegree = 32
	never       = math.MaxInt64 // expiry key of permanent entries: after every temporary one
)

type slot struct {
	ch      *channelIndex
	contact string
	source  Source
	granted int64         // unix ns
	expires int64         // unix ns, never for permanent entries
	act     *pairActivity // nil when the pair has no call activity
}

func (s *slot) entry() Entry {
	e := Entry{Channel: s.ch.name, Contact: s.contact, Source: s.source, GrantedAt: time.Unix(0, s.granted).UTC(), Kind: Permanent}
	if s.expires != never {
		e.Kind = Temporary
		e.ExpiresAt = time.Unix(0, s.expires).UTC()
	}
	return e
}

// item is a btree key: two numbers, then the slot's names as tie-breakers
// (equal keys would collapse into one item).
type item struct {
	k1, k2 int64
	s      *slot
}

// The comparisons are spelled out rather than built with cmp.Or, which
// evaluates every argument: comparing the names is the rare case.
func lessInChannel(a, b item) bool {
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if a.k2 != b.k2 {
		return a.k2 < b.k2
	}
	return a.s.contact < b.s.contact
}

func lessGlobal(a, b item) bool {
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if a.s.ch.name != b.s.ch.name {
		return a.s.ch.name < b.s.ch.name
	}
	return a.s.contact < b.s.contact
}

// expiryItem orders by expiry, then most recently granted.
func expiryItem(s *slot) item { return item{s.expires, -s.granted, s} }

// recentItem orders by most recently granted, then expiry.
func recentItem(s *slot) item { return item{-s.granted, s.expires, s} }

type channelIndex struct {
	name     string
	slots    map[string]*slot
	byExpiry *btree.BTreeG[item]
	byRecent *btree.BTreeG[item]
}

type index struct {
	channels map[string]*channelIndex
	expiry   *btree.BTreeG[item] // temporary entries only, across channels
	freelist *btree.FreeListG[item]
}

func newIndex() *index {
	fl := btree.NewFreeListG[item](btree.DefaultFreeListSize)
	return &index{
		channels: make(map[string]*channelIndex),
		expiry:   btree.NewWithFreeListG(btreeDegree, lessGlobal, fl),
		freelist: fl,
	}
}

func (x *index) channel(name string, create bool) *channelIndex {
	c := x.channels[name]
	if c == nil && create {
		c = &channelIndex{
			name:     name,
			slots:    make(map[string]*slot),
			byExpiry: btree.NewWithFreeListG(btreeDegree, lessInChannel, x.freelist),
			byRecent: btree.NewWithFreeListG(btreeDegree, lessInChannel, x.freelist),
		}
		x.channels[name] = c
	}
	return c
}

// set makes e the entry of its pair.
func (x *index) set(channel, contact string, e Entry, act *pairActivity) {
	c := x.channel(channel, true)
	s := c.slots[contact]
	if s != nil {
		x.unlink(s)
	} else {
		s = &slot{ch: c, contact: contact}
		c.slots[contact] = s
	}
	s.source, s.granted, s.expires, s.act = e.Source, e.GrantedAt.UnixNano(), expiresKey(e), act
	s.ch.byExpiry.ReplaceOrInsert(expiryItem(s))
	s.ch.byRecent.ReplaceOrInsert(recentItem(s))
	if s.expires != never {
		x.expiry.ReplaceOrInsert(item{k1: s.expires, s: s})
	}
}

// remove drops the pair's entry, if any.
func (x *index) remove(channel, contact string) {
	c := x.channel(channel, false)
	if c == nil || c.slots[contact] == nil {
		return
	}
	x.unlink(c.slots[contact])
	delete(c.slots, contact)
	if len(c.slots) == 0 {
		delete(x.channels, channel)
	}
}

func (x *index) unlink(s *slot) {
	s.ch.byExpiry.Delete(expiryItem(s))
	s.ch.byRecent.Delete(recentItem(s))
	if s.expires != never {
		x.expiry.Delete(item{k1: s.expires, s: s})
	}
}

func expiresKey(e Entry) int64 {
	if e.Kind == Permanent {
		return never
	}
	return e.ExpiresAt.UnixNano()
}

// nextExpiry returns the earliest expiry in the index.
func (x *index) nextExpiry() (time.Time, bool) {
	it, ok := x.expiry.Min()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, it.k1).UTC(), true
}

// due returns up to limit entries whose expiry is at or before now.
func (x *index) due(now time.Time, limit int) []Entry {
	out := make([]Entry, 0, min(limit, x.expiry.Len()))
	n := now.UnixNano()
	x.expiry.Ascend(func(it item) bool {
		if it.k1 > n || len(out) >= limit {
			return false
		}
		out = append(out, it.s.entry())
		return true
	})
	return out
}

func (x *index) size() (entries int) {
	for _, c := range x.channels {
		entries += len(c.slots)
	}
	return entries
}
