package memory

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"time"

	"github.com/google/btree"

	"github.com/callready/callready/store"
)

// The ledger holds every event a host ever recorded, so it is laid out for
// the garbage collector: nothing per event holds a pointer for it to scan.
// Each channel's events are encoded one after the other in one byte arena,
// ordered by a btree of plain values (event time, seq, offset); each event
// begins with the offset of the previous event whose contact has the same
// 64-bit hash, and byPair maps that hash to the newest one, so a pair's
// events are a walk back along the chain (skipping other contacts of the
// same hash and pruned events). Dedupe keys are 128-bit keyed hashes, not
// strings.

type channelLedger struct {
	arena  arena
	byTime *btree.BTreeG[ledgerItem]
	byPair map[uint64]int64   // hash of a contact → offset+1 of its newest event
	pruned map[int64]struct{} // offsets of pruned events still in the arena
	dead   int                // their bytes
}

// arena is append-only bytes in blocks of arenaBlock (a larger event gets a
// block of its own), so that growing it never copies what it holds nor
// leaves a large garbage array behind. An offset is block<<32 | position.
type arena struct {
	blocks [][]byte
	size   int // bytes held
}

const arenaBlock = 1 << 20

// at returns the bytes from off to the end of its block.
func (a *arena) at(off int64) []byte { return a.blocks[off>>32][off&(1<<32-1):] }

// add copies b into the arena and returns its offset.
func (a *arena) add(b []byte) int64 {
	n := len(a.blocks)
	if n == 0 || len(a.blocks[n-1])+len(b) > cap(a.blocks[n-1]) {
		a.blocks = append(a.blocks, make([]byte, 0, max(arenaBlock, len(b))))
		n++
	}
	last := &a.blocks[n-1]
	off := int64(n-1)<<32 | int64(len(*last))
	*last = append(*last, b...)
	a.size += len(b)
	return off
}

func newChannelLedger() *channelLedger {
	return &channelLedger{byTime: btree.NewG(32, lessItem), byPair: make(map[uint64]int64)}
}

type ledgerItem struct {
	at, seq, off int64
}

func lessItem(a, b ledgerItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// zeroTime marks the zero time.Time, which has no unix nanosecond value.
const zeroTime = math.MinInt64

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type dedupeKey [2]uint64

func (s *Store) hashRef(r store.EventRef) dedupeKey {
	var k dedupeKey
	for i, seed := range s.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(r.Channel)))
		h.Write(n[:])
		h.WriteString(r.Channel)
		h.WriteString(r.Dedupe)
		k[i] = h.Sum64()
	}
	return k
}

func (s *Store) contactHash(contact string) uint64 {
	return maphash.String(s.seeds[1], contact)
}

// The encoding of one event: the chain link (prev+1 as a uvarint, 0 for
// none), then varints for numbers (times as unix ns, math.MinInt64 for the
// zero time), length-prefixed strings.
func appendEvent(b []byte, prev int64, e *store.LedgerEvent) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(prev))
	b = binary.AppendVarint(b, e.Seq)
	str(e.Key.Contact)
	str(e.Dedupe)
	str(e.Type)
	b = binary.AppendUvarint(b, uint64(len(e.Aliases)))
	for _, a := range e.Aliases {
		str(a)
	}
	str(e.ID)
	str(e.Context)
	b = binary.AppendVarint(b, nanos(e.At))
	b = binary.AppendVarint(b, nanos(e.ExpiresAt))
	flags := byte(0)
	if e.Permanent {
		flags |= 1
	}
	if e.Connected {
		flags |= 2
	}
	b = append(b, flags)
	str(e.Source)
	str(e.Reason)
	str(e.Origin)
	b = binary.AppendVarint(b, nanos(e.RecordedAt))
	return binary.AppendVarint(b, e.Revision)
}

// decodeEvent decodes the event at the start of b and returns it with its
// chain link.
func decodeEvent(channel string, b []byte) (store.LedgerEvent, int64) {
	link, w := binary.Uvarint(b)
	b = b[w:]
	num := func() int64 {
		v, n := binary.Varint(b)
		b = b[n:]
		return v
	}
	str := func() string {
		l, n := binary.Uvarint(b)
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s
	}
	e := store.LedgerEvent{Seq: num()}
	e.Key = store.Key{Channel: channel, Contact: str()}
	e.Dedupe, e.Type = str(), str()
	if n, w := binary.Uvarint(b); n > 0 {
		b = b[w:]
		e.Aliases = make([]string, n)
		for i := range e.Aliases {
			e.Aliases[i] = str()
		}
	} else {
		b = b[w:]
	}
	e.ID, e.Context = str(), str()
	e.At, e.ExpiresAt = fromNanos(num()), fromNanos(num())
	flags := b[0]
	b = b[1:]
	e.Permanent, e.Connected = flags&1 != 0, flags&2 != 0
	e.Source, e.Reason, e.Origin = str(), str(), str()
	e.RecordedAt = fromNanos(num())
	e.Revision = num()
	return e, int64(link)
}

// contactOf decodes only the contact of the event at the start of b.
func contactOf(b []byte) string {
	_, w := binary.Uvarint(b)
	b = b[w:]
	_, w = binary.Varint(b)
	b = b[w:]
	l, w := binary.Uvarint(b)
	return string(b[w : w+int(l)])
}

// pairOffsets returns the offsets of contact's live events, oldest first.
func (s *Store) pairOffsets(cl *channelLedger, contact string) []int64 {
	var offs []int64
	for link := cl.byPair[s.contactHash(contact)]; link != 0; {
		off := link - 1
		b := cl.arena.at(off)
		next, _ := binary.Uvarint(b)
		if _, dead := cl.pruned[off]; !dead && contactOf(b) == contact {
			offs = append(offs, off)
		}
		link = int64(next)
	}
	slices.Reverse(offs)
	return offs
}

func (s *Store) addEventLocked(e *store.LedgerEvent, hash dedupeKey) {
	s.lastSeq++
	e.Seq = s.lastSeq
	cl := s.ledger[e.Key.Channel]
	if cl == nil {
		cl = newChannelLedger()
		s.ledger[e.Key.Channel] = cl
	}
	ph := s.contactHash(e.Key.Contact)
	s.scratch = appendEvent(s.scratch[:0], cl.byPair[ph], e)
	off := cl.arena.add(s.scratch)
	cl.byTime.ReplaceOrInsert(ledgerItem{at: nanos(e.At), seq: e.Seq, off: off})
	cl.byPair[ph] = off + 1
	s.dedupe[hash] = struct{}{}
}

// Ledger returns the committed ledger events q selects.
func (s *Store) Ledger(ctx context.Context, q store.LedgerQuery) ([]store.LedgerEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Channel == "" {
		return nil, fmt.Errorf("memory: ledger query without a channel")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	cl := s.ledger[q.Channel]
	if cl == nil {
		return nil, nil
	}
	after := ledgerItem{at: nanos(q.After.At), seq: q.After.Seq}
	resume := !q.After.At.IsZero() || q.After.Seq != 0
	var out []store.LedgerEvent
	keep := func(it ledgerItem) bool { // false: stop
		if !q.To.IsZero() && it.at >= q.To.UnixNano() {
			return false
		}
		if resume && !lessItem(after, it) {
			return true
		}
		if !q.From.IsZero() && it.at < q.From.UnixNano() {
			return true
		}
		e, _ := decodeEvent(q.Channel, cl.arena.at(it.off))
		if !q.RecordedBy.IsZero() && e.RecordedAt.After(q.RecordedBy) {
			return true
		}
		out = append(out, e)
		return q.Limit <= 0 || len(out) < q.Limit
	}
	if q.Contact != "" {
		offs := s.pairOffsets(cl, q.Contact)
		items := make([]ledgerItem, 0, len(offs))
		for _, off := range offs {
			e, _ := decodeEvent(q.Channel, cl.arena.at(off))
			items = append(items, ledgerItem{at: nanos(e.At), seq: e.Seq, off: off})
		}
		slices.SortFunc(items, func(a, b ledgerItem) int {
			if lessItem(a, b) {
				return -1
			}
			return 1
		})
		for _, it := range items {
			if !keep(it) {
				break
			}
		}
		return out, nil
	}
	from := ledgerItem{at: nanos(q.From), seq: -1}
	if q.From.IsZero() {
		from.at = zeroTime
	}
	if resume && lessItem(from, after) {
		from = after
	}
	cl.byTime.AscendGreaterOrEqual(from, keep)
	return out, nil
}

// PruneLedger implements the rule of store.Store.PruneLedger.
func (s *Store) PruneLedger(ctx context.Context, horizon time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	h := horizon.UnixNano()
	var n int64
	for ch, cl := range s.ledger {
		pairs := map[string]bool{}
		cl.byTime.Ascend(func(it ledgerItem) bool {
			if it.at >= h {
				return false
			}
			pairs[contactOf(cl.arena.at(it.off))] = true
			return true
		})
		for contact := range pairs {
			offs := s.pairOffsets(cl, contact)
			evs := make([]store.LedgerEvent, len(offs))
			for i, off := range offs {
				evs[i], _ = decodeEvent(ch, cl.arena.at(off))
			}
			keeps := store.PruneKeeps(evs, horizon)
			for i, off := range offs {
				if keeps[i] {
					continue
				}
				cl.byTime.Delete(ledgerItem{at: nanos(evs[i].At), seq: evs[i].Seq, off: off})
				delete(s.dedupe, s.hashRef(store.EventRef{Channel: ch, Dedupe: evs[i].Dedupe}))
				if cl.pruned == nil {
					cl.pruned = make(map[int64]struct{})
				}
				cl.pruned[off] = struct{}{}
				cl.dead += len(appendEvent(nil, 0, &evs[i]))
				n++
			}
		}
		if cl.byTime.Len() == 0 {
			delete(s.ledger, ch)
		} else if cl.dead > cl.arena.size/2 {
			s.ledger[ch] = s.compacted(ch, cl)
		}
	}
	return n, nil
}

// compacted copies the live events into a new arena, in ledger order (a
// pair's chain then runs in that order; its readers sort by (At, Seq)).
func (s *Store) compacted(ch string, cl *channelLedger) *channelLedger {
	out := newChannelLedger()
	cl.byTime.Ascend(func(it ledgerItem) bool {
		e, _ := decodeEvent(ch, cl.arena.at(it.off))
		ph := s.contactHash(e.Key.Contact)
		s.scratch = appendEvent(s.scratch[:0], out.byPair[ph], &e)
		off := out.arena.add(s.scratch)
		out.byPair[ph] = off + 1
		out.byTime.ReplaceOrInsert(ledgerItem{at: it.at, seq: it.seq, off: off})
		return true
	})
	return out
}

// LedgerLen returns how many events the ledger holds (for tests and
// benchmarks).
func (s *Store) LedgerLen() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.dedupe)
}
