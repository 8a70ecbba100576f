package memory

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/btree"

	"github.com/callready/callready/store"
)

// The ledger holds every event a host ever recorded, so it is laid out for
// the garbage collector: each channel's events are encoded one after the
// other in one byte arena (no pointers inside for the GC to scan), ordered
// by a btree of plain values (event time, seq, offset), with each pair's
// offsets in a slice; dedupe keys are 128-bit hashes, not strings.

type channelLedger struct {
	arena  []byte
	byTime *btree.BTreeG[ledgerItem]
	byPair map[string][]int64 // contact → offsets, in append order
	dead   int                // bytes of pruned events still in the arena
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

func hashRef(r store.EventRef) dedupeKey {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(r.Channel)))])
	h.Write([]byte(r.Channel))
	h.Write([]byte(r.Dedupe))
	sum := h.Sum(nil)
	return dedupeKey{binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])}
}

// The encoding of one event: varints for numbers (times as unix ns,
// math.MinInt64 for the zero time), length-prefixed strings.
func appendEvent(b []byte, e *store.LedgerEvent) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
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

func decodeEvent(channel string, b []byte) store.LedgerEvent {
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
	return e
}

func (s *Store) addEventLocked(e store.LedgerEvent) {
	s.lastSeq++
	e.Seq = s.lastSeq
	cl := s.ledger[e.Key.Channel]
	if cl == nil {
		cl = &channelLedger{byTime: btree.NewG(32, lessItem), byPair: make(map[string][]int64)}
		s.ledger[e.Key.Channel] = cl
	}
	off := int64(len(cl.arena))
	cl.arena = appendEvent(cl.arena, &e)
	cl.byTime.ReplaceOrInsert(ledgerItem{at: nanos(e.At), seq: e.Seq, off: off})
	cl.byPair[e.Key.Contact] = append(cl.byPair[e.Key.Contact], off)
	s.dedupe[hashRef(store.EventRef{Channel: e.Key.Channel, Dedupe: e.Dedupe})] = struct{}{}
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
		e := decodeEvent(q.Channel, cl.arena[it.off:])
		if !q.RecordedBy.IsZero() && e.RecordedAt.After(q.RecordedBy) {
			return true
		}
		out = append(out, e)
		return q.Limit <= 0 || len(out) < q.Limit
	}
	if q.Contact != "" {
		offs := cl.byPair[q.Contact]
		items := make([]ledgerItem, 0, len(offs))
		for _, off := range offs {
			e := decodeEvent(q.Channel, cl.arena[off:])
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
			pairs[decodeEvent(ch, cl.arena[it.off:]).Key.Contact] = true
			return true
		})
		for contact := range pairs {
			offs := cl.byPair[contact]
			evs := make([]store.LedgerEvent, len(offs))
			for i, off := range offs {
				evs[i] = decodeEvent(ch, cl.arena[off:])
			}
			keeps := store.PruneKeeps(evs, horizon)
			kept := offs[:0]
			for i, off := range offs {
				if keeps[i] {
					kept = append(kept, off)
					continue
				}
				cl.byTime.Delete(ledgerItem{at: nanos(evs[i].At), seq: evs[i].Seq, off: off})
				delete(s.dedupe, hashRef(store.EventRef{Channel: ch, Dedupe: evs[i].Dedupe}))
				cl.dead += len(appendEvent(nil, &evs[i]))
				n++
			}
			if len(kept) == 0 {
				delete(cl.byPair, contact)
			} else {
				cl.byPair[contact] = kept
			}
		}
		if cl.byTime.Len() == 0 {
			delete(s.ledger, ch)
		} else if cl.dead > len(cl.arena)/2 {
			s.ledger[ch] = cl.compacted(ch)
		}
	}
	return n, nil
}

// compacted copies the live events into a new arena.
func (cl *channelLedger) compacted(ch string) *channelLedger {
	out := &channelLedger{byTime: btree.NewG(32, lessItem), byPair: make(map[string][]int64, len(cl.byPair))}
	moved := map[int64]int64{}
	cl.byTime.Ascend(func(it ledgerItem) bool {
		e := decodeEvent(ch, cl.arena[it.off:])
		off := int64(len(out.arena))
		out.arena = appendEvent(out.arena, &e)
		moved[it.off] = off
		out.byTime.ReplaceOrInsert(ledgerItem{at: it.at, seq: it.seq, off: off})
		return true
	})
	for contact, offs := range cl.byPair {
		next := make([]int64, len(offs))
		for i, off := range offs {
			next[i] = moved[off]
		}
		out.byPair[contact] = next
	}
	return out
}

// LedgerLen returns how many events the ledger holds (for tests and
// benchmarks).
func (s *Store) LedgerLen() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.dedupe)
}
