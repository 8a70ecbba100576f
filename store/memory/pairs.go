package memory

import (
	"hash/maphash"
	"iter"
	"math"
	"unsafe"

	"github.com/callready/callready/store"
)

// pairTable holds the pairs' states, laid out for millions of pairs. A Go
// map keyed by store.Key with the state as its value has 64-byte entries
// and, at a million pairs, costs about 150 bytes per pair. Here each
// channel keeps its pairs in slots, in chunks of a thousand, and finds
// them through an open-addressing table of 8-byte buckets (half of the
// contact's hash and the slot's number, nothing for the garbage collector
// to scan): 59 bytes per pair at a million (40 of slot, the rest buckets,
// whose load runs from 7/16 to 7/8).
//
// A slot holds a state's bytes as a string over them, not as a slice:
// store.Tx lets a store keep the bytes Put gives it and hand them out, and
// forbids both sides to modify them, so the 8 bytes of a slice's capacity
// would be kept per pair for nothing.
type pairTable struct {
	hash     func(contact string) uint64 // keyed by a seed of the table's (tests make it clash)
	channels map[string]*pairChannel
	n        int // pairs held
}

type pairChannel struct {
	// buckets is a linear-probing table: 0 is empty, else the high half of
	// the contact's hash above slot+1. Its length is a power of two, and at
	// most 7/8 of it is used.
	buckets []uint64
	count   int
	chunks  [][]pairSlot // slotChunk slots each
	used    uint32       // slots handed out, free or not
	free    []uint32     // slots of deleted pairs, to reuse
}

type pairSlot struct {
	contact string
	data    string // the state's bytes (see pairTable)
	rev     int64  // freeSlot for a slot no pair holds
}

// slotData returns b as a slot holds it, without a copy.
func slotData(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytes returns the state's bytes, without a copy: nil for none.
func (s *pairSlot) bytes() []byte {
	if s.data == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s.data), len(s.data))
}

func (s *pairSlot) record() record { return record{data: s.bytes(), rev: s.rev} }

const (
	slotChunk = 1024
	freeSlot  = math.MinInt64
)

func newPairTable() pairTable {
	seed := maphash.MakeSeed()
	return pairTable{hash: func(c string) uint64 { return maphash.String(seed, c) }, channels: make(map[string]*pairChannel)}
}

func (c *pairChannel) slot(i uint32) *pairSlot { return &c.chunks[i/slotChunk][i%slotChunk] }

func bucketOf(h uint64, slot uint32) uint64 { return h&^(1<<32-1) | (uint64(slot) + 1) }

// find returns the bucket and slot of contact, whose hash is h, or the
// empty bucket where it would go.
func (c *pairChannel) find(contact string, h uint64) (bucket int, slot uint32, ok bool) {
	mask := len(c.buckets) - 1
	for b := int(h) & mask; ; b = (b + 1) & mask {
		x := c.buckets[b]
		if x == 0 {
			return b, 0, false
		}
		if x>>32 == h>>32 {
			if i := uint32(x) - 1; c.slot(i).contact == contact {
				return b, i, true
			}
		}
	}
}

// grow doubles the buckets, placing every pair again.
func (c *pairChannel) grow(hash func(string) uint64) {
	old := c.buckets
	c.buckets = make([]uint64, max(8, 2*len(old)))
	mask := len(c.buckets) - 1
	for _, x := range old {
		if x == 0 {
			continue
		}
		h := hash(c.slot(uint32(x) - 1).contact)
		b := int(h) & mask
		for c.buckets[b] != 0 {
			b = (b + 1) & mask
		}
		c.buckets[b] = x
	}
}

func (p *pairTable) get(k store.Key) (record, bool) {
	c := p.channels[k.Channel]
	if c == nil {
		return record{}, false
	}
	_, i, ok := c.find(k.Contact, p.hash(k.Contact))
	if !ok {
		return record{}, false
	}
	return c.slot(i).record(), true
}

// put sets k's record and returns the one it replaced, if any.
func (p *pairTable) put(k store.Key, rec record) (prev record, existed bool) {
	c := p.channels[k.Channel]
	if c == nil {
		c = &pairChannel{}
		c.grow(p.hash)
		p.channels[k.Channel] = c
	}
	h := p.hash(k.Contact)
	b, i, ok := c.find(k.Contact, h)
	if ok {
		s := c.slot(i)
		prev = s.record()
		s.data, s.rev = slotData(rec.data), rec.rev
		return prev, true
	}
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		c.newSlot()
		i = c.used
		c.used++
	}
	*c.slot(i) = pairSlot{contact: k.Contact, data: slotData(rec.data), rev: rec.rev}
	c.buckets[b] = bucketOf(h, i)
	c.count++
	p.n++
	if c.count > len(c.buckets)/8*7 {
		c.grow(p.hash)
	}
	return record{}, false
}

// newSlot makes room for slot c.used. Every chunk but the last holds
// slotChunk slots; the last grows by doubling up to that, so that a
// channel of a few pairs does not hold a chunk of a thousand.
func (c *pairChannel) newSlot() {
	n := len(c.chunks)
	if n == 0 || len(c.chunks[n-1]) == slotChunk {
		c.chunks = append(c.chunks, make([]pairSlot, 0, 8))
		n++
	}
	last := c.chunks[n-1]
	if len(last) == cap(last) {
		grown := make([]pairSlot, len(last), min(2*cap(last), slotChunk))
		copy(grown, last)
		last = grown
	}
	c.chunks[n-1] = append(last, pairSlot{})
}

// del removes k (a rollback of the Put that added it). The buckets after
// its own move back over it where their probe allows, as linear probing
// needs: no tombstones.
func (p *pairTable) del(k store.Key) {
	c := p.channels[k.Channel]
	if c == nil {
		return
	}
	hole, i, ok := c.find(k.Contact, p.hash(k.Contact))
	if !ok {
		return
	}
	*c.slot(i) = pairSlot{rev: freeSlot}
	c.free = append(c.free, i)
	c.count--
	p.n--
	mask := len(c.buckets) - 1
	for b := (hole + 1) & mask; c.buckets[b] != 0; b = (b + 1) & mask {
		home := int(p.hash(c.slot(uint32(c.buckets[b])-1).contact)) & mask
		// The bucket at b may fill the hole unless its home lies in (hole, b].
		if (b-home)&mask >= (b-hole)&mask {
			c.buckets[hole] = c.buckets[b]
			hole = b
		}
	}
	c.buckets[hole] = 0
}

// all yields every pair.
func (p *pairTable) all() iter.Seq2[store.Key, record] {
	return func(yield func(store.Key, record) bool) {
		for name, c := range p.channels {
			for i := range c.used {
				s := c.slot(i)
				if s.rev == freeSlot {
					continue
				}
				if !yield(store.Key{Channel: name, Contact: s.contact}, s.record()) {
					return
				}
			}
		}
	}
}
