package memory

import (
	"hash/maphash"
	"math"

	"github.com/callready/callready/store"
)

// pairTable holds the pairs' states, laid out for millions of pairs. A Go
// map keyed by store.Key with the state as its value has 64-byte entries
// and, at a million pairs, costs about 150 bytes per pair; here each
// channel maps a 64-bit hash of the contact (no pointer for the garbage
// collector to scan) to a slot in fixed chunks of slots that never move,
// about 90 bytes per pair. The rare contact whose hash another contact of
// the channel already has is found through a map of its own.
type pairTable struct {
	hash     func(contact string) uint64 // keyed by a seed of the table's (tests make it clash)
	channels map[string]*pairChannel
	n        int // pairs held
}

type pairChannel struct {
	byHash map[uint64]uint32 // hash of the contact → its slot
	clash  map[string]uint32 // contacts whose hash names another contact's slot
	chunks [][]pairSlot      // slotChunk slots each
	used   uint32            // slots handed out, free or not
	free   []uint32          // slots of deleted pairs, to reuse
}

type pairSlot struct {
	contact string
	data    []byte
	rev     int64 // freeSlot for a slot no pair holds
}

const (
	slotChunk = 1024
	freeSlot  = math.MinInt64
)

func newPairTable() pairTable {
	seed := maphash.MakeSeed()
	return pairTable{hash: func(c string) uint64 { return maphash.String(seed, c) }, channels: make(map[string]*pairChannel)}
}

func (c *pairChannel) slot(i uint32) *pairSlot { return &c.chunks[i/slotChunk][i%slotChunk] }

// find returns the slot of contact, whose hash is h.
func (c *pairChannel) find(contact string, h uint64) (uint32, bool) {
	if i, ok := c.byHash[h]; ok && c.slot(i).contact == contact {
		return i, true
	}
	if len(c.clash) > 0 {
		i, ok := c.clash[contact]
		return i, ok
	}
	return 0, false
}

func (p *pairTable) get(k store.Key) (record, bool) {
	c := p.channels[k.Channel]
	if c == nil {
		return record{}, false
	}
	i, ok := c.find(k.Contact, p.hash(k.Contact))
	if !ok {
		return record{}, false
	}
	s := c.slot(i)
	return record{data: s.data, rev: s.rev}, true
}

// put sets k's record and returns the one it replaced, if any.
func (p *pairTable) put(k store.Key, rec record) (prev record, existed bool) {
	c := p.channels[k.Channel]
	if c == nil {
		c = &pairChannel{byHash: make(map[uint64]uint32)}
		p.channels[k.Channel] = c
	}
	h := p.hash(k.Contact)
	if i, ok := c.find(k.Contact, h); ok {
		s := c.slot(i)
		prev = record{data: s.data, rev: s.rev}
		s.data, s.rev = rec.data, rec.rev
		return prev, true
	}
	var i uint32
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		if c.used%slotChunk == 0 {
			c.chunks = append(c.chunks, make([]pairSlot, slotChunk))
		}
		i = c.used
		c.used++
	}
	*c.slot(i) = pairSlot{contact: k.Contact, data: rec.data, rev: rec.rev}
	if _, taken := c.byHash[h]; taken {
		if c.clash == nil {
			c.clash = make(map[string]uint32)
		}
		c.clash[k.Contact] = i
	} else {
		c.byHash[h] = i
	}
	p.n++
	return record{}, false
}

// del removes k (a rollback of the Put that added it).
func (p *pairTable) del(k store.Key) {
	c := p.channels[k.Channel]
	if c == nil {
		return
	}
	h := p.hash(k.Contact)
	i, ok := c.find(k.Contact, h)
	if !ok {
		return
	}
	if j, ok := c.byHash[h]; ok && j == i {
		delete(c.byHash, h)
	} else {
		delete(c.clash, k.Contact)
	}
	*c.slot(i) = pairSlot{rev: freeSlot}
	c.free = append(c.free, i)
	p.n--
}

// each calls fn for every pair until it returns false.
func (p *pairTable) each(fn func(store.Key, record) bool) {
	for name, c := range p.channels {
		for i := range c.used {
			s := c.slot(i)
			if s.rev == freeSlot {
				continue
			}
			if !fn(store.Key{Channel: name, Contact: s.contact}, record{data: s.data, rev: s.rev}) {
				return
			}
		}
	}
}
