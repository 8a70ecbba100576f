package permission

import (
	"math"
	"time"

	"github.com/google/btree"

	"github.com/callready/callready/store"
)

// The in-memory index is a cache of the change log: it changes only by
// applying committed changes (Tracker.applyChanges). It holds every listed
// entry, in two orderings per channel (by expiry and by grant time) so a
// page is a range scan, and every pair's next wake-up instant in one global
// order that drives the sweep. Items are small values pointing at one slot
// per pair.

const (
	btreeDegree = 32
	never       = math.MaxInt64 // expiry key of permanent entries: after every temporary one
)

type slot struct {
	ch        *channelIndex
	contact   string
	listed    bool
	kind      Kind
	source    Source
	granted   int64 // unix ns
	expires   int64 // unix ns, never for permanent entries
	callsLeft int32
	streak    int32
	wake      int64 // unix ns, none for no wake-up
	waID      string
	userID    string
}

func (s *slot) entry() Entry {
	e := Entry{Channel: s.ch.name, Contact: s.contact, Source: s.source, GrantedAt: time.Unix(0, s.granted).UTC(), Kind: Permanent,
		CallsLeft: int(s.callsLeft), UnansweredStreak: int(s.streak), WaID: s.waID, UserID: s.userID}
	if s.expires != never {
		e.Kind = Temporary
		e.ExpiresAt = time.Unix(0, s.expires).UTC()
	}
	e.Unconfirmed = e.Source == SourceInboundCall
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
	slots    map[string]*slot // listed or waiting for a wake-up
	listed   int
	byExpiry *btree.BTreeG[item]
	byRecent *btree.BTreeG[item]
}

type index struct {
	channels map[string]*channelIndex
	wakes    *btree.BTreeG[item] // pairs with a wake-up instant, across channels
	freelist *btree.FreeListG[item]
	pend     pendingIndex // the pending list (pending.go)
}

func newIndex() *index {
	fl := btree.NewFreeListG[item](btree.DefaultFreeListSize)
	return &index{
		channels: make(map[string]*channelIndex),
		wakes:    btree.NewWithFreeListG(btreeDegree, lessGlobal, fl),
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

// apply makes the pair hold l when ok (else no entry) and wake.
func (x *index) apply(k store.Key, l listed, ok bool, wake int64) {
	c := x.channel(k.Channel, ok || wake != none)
	if c == nil {
		return
	}
	s := c.slots[k.Contact]
	if s != nil {
		x.unlink(s)
	} else if ok || wake != none {
		s = &slot{ch: c, contact: k.Contact}
		c.slots[k.Contact] = s
	} else {
		return
	}
	s.listed, s.wake = ok, wake
	if ok {
		s.kind, s.source, s.granted, s.expires = l.kind, l.source, l.granted, l.expires
		s.callsLeft, s.streak = int32(l.callsLeft), int32(l.streak)
		s.waID, s.userID = sameAs(l.waID, s.contact), sameAs(l.userID, s.contact)
		c.byExpiry.ReplaceOrInsert(expiryItem(s))
		c.byRecent.ReplaceOrInsert(recentItem(s))
		c.listed++
	}
	if wake != none {
		x.wakes.ReplaceOrInsert(item{k1: wake, s: s})
	}
	if !ok && wake == none {
		delete(c.slots, k.Contact)
		if len(c.slots) == 0 {
			delete(x.channels, k.Channel)
		}
	}
}

func (x *index) unlink(s *slot) {
	if s.listed {
		s.ch.byExpiry.Delete(expiryItem(s))
		s.ch.byRecent.Delete(recentItem(s))
		s.ch.listed--
	}
	if s.wake != none {
		x.wakes.Delete(item{k1: s.wake, s: s})
	}
}

// nextWake returns the earliest wake-up instant in the index.
func (x *index) nextWake() (int64, bool) {
	it, ok := x.wakes.Min()
	if !ok {
		return none, false
	}
	return it.k1, true
}

// due returns up to limit pairs whose wake-up instant is at or before now.
func (x *index) due(now int64, limit int) []store.Key {
	out := make([]store.Key, 0, min(limit, x.wakes.Len()))
	x.wakes.Ascend(func(it item) bool {
		if it.k1 > now || len(out) >= limit {
			return false
		}
		out = append(out, store.Key{Channel: it.s.ch.name, Contact: it.s.contact})
		return true
	})
	return out
}

func (x *index) size() (entries int) {
	for _, c := range x.channels {
		entries += c.listed
	}
	return entries
}

// sameAs returns contact's string when id equals it, so that a slot keeps
// one copy of the identifier it is listed under.
func sameAs(id, contact string) string {
	if id == contact {
		return contact
	}
	return id
}
