package permission

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// The cached pairState travels through the store as store.State.Data, in
// a compact binary form: a version byte, then varints and strings. Stores
// treat it as opaque bytes.
//
// Versions 7 and 8 (the latter when the state holds the request
// lifecycle, codec_lifecycle.go) are what encodeState writes. The first
// instant (the floor) is a difference from 2026-01-01 and the later ones
// differences from it, in whole seconds when they are whole (Meta stamps
// its webhooks in seconds), else in whole microseconds (what the tracker
// keeps, store.Precision); an instant the state holds again (a grant's
// end is its listed entry's expiry and its wake-up) is written once and
// then referred to. Strings from a closed set are one-byte codes, and a
// string the state holds again (an identifier is its contact, its listed
// entry's and its activity's) is written once and then referred to; the
// pair's contact, which its key holds, is not written at all: it is the
// first string referred to. A grant as the benchmarks record it takes 29
// bytes (TestCodecOneGrantSize); over random event sets a state takes 39%
// of its version-1 bytes.
//
// Versions 5 and 6, written until 2026-12-02, are the same without the
// instants referred to, the microseconds, the epoch and the contact, and
// with the call budget's counts as varints rather than uvarints; versions
// 1 and 4 are the first encoding: plain varints and length-prefixed
// strings. Both are read as before, no longer written.
// (Versions 2 and 3 are the channel and alias records.) Every version has
// one encoding per state: the decoder refuses any other.
//
// A keyed state (7 and 8) reads as its state only under the key it was
// written for: stores keep a state's bytes under its key, and the tracker
// encodes a state again whenever a person moves to another key.
const (
	legacyVersion           = 1
	legacyLifecycleVersion  = 4
	unkeyedVersion          = 5
	unkeyedLifecycleVersion = 6
	stateVersion            = 7
	stateLifecycleVersion   = 8
)

// keyedEpoch is what a keyed state's floor is a difference from: a
// floor of these years takes four bytes or fewer, not five.
const keyedEpoch = 1767225600 * int64(1e9) // 2026-01-01T00:00:00Z

var errCorrupt = errors.New("permission: corrupt cached state")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeState returns s's encoding in a slice of its own, of the smallest
// size class that holds it: stores may keep it (store.Tx.Put), so a loose
// estimate of its capacity would be held by every pair. contact is the
// contact of the key the state is stored under (see the keyed versions
// above).
func encodeState(s *pairState, contact string) []byte {
	buf := scratchPool.Get().(*[]byte)
	e := encoder{b: (*buf)[:0]}
	e.lits.seed(contact)
	e.state(s)
	out := bytes.Clone(e.b)
	*buf = e.b
	scratchPool.Put(buf)
	return out
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// encoder writes the keyed compact encoding (versions 7 and 8).
type encoder struct {
	b     []byte
	base  int64    // the floor: later instants are written as differences from it
	lits  literals // the contact and the strings written so far, which later ones refer to
	times instants // the instants written so far, which later ones refer to
}

// literals are the strings a state's encoding holds with their bytes, in
// order, which later strings refer to by number. The first few are held
// in place: a slice of an array of the encoder's (or the decoder's) own
// would move it to the heap.
type literals struct {
	first [8]string
	more  []string
	n     int
}

func (l *literals) at(i int) string {
	if i < len(l.first) {
		return l.first[i]
	}
	return l.more[i-len(l.first)]
}

// index returns the number of s, or -1.
func (l *literals) index(s string) int {
	for i := range l.n {
		if l.at(i) == s {
			return i
		}
	}
	return -1
}

func (l *literals) add(s string) {
	if l.n < len(l.first) {
		l.first[l.n] = s
	} else {
		l.more = append(l.more, s)
	}
	l.n++
}

// seed makes the pair's contact the first string, which a keyed state
// refers to without writing it.
func (l *literals) seed(contact string) {
	if contact != "" {
		l.add(contact)
	}
}

// instants are the first instants a keyed state writes in full, which
// later equal ones refer to by number. Only the first few are held (and
// referred to): a state of one grant holds three or four distinct ones.
type instants struct {
	first [8]int64
	n     int
}

// index returns the number of t, or -1.
func (x *instants) index(t int64) int {
	for i, v := range x.first[:x.n] {
		if v == t {
			return i
		}
	}
	return -1
}

func (x *instants) add(t int64) {
	if x.n < len(x.first) {
		x.first[x.n] = t
		x.n++
	}
}

func (e *encoder) state(s *pairState) {
	v := byte(stateVersion)
	if s.hasLifecycle() {
		v = stateLifecycleVersion
	}
	e.b = append(e.b, v)
	e.base = keyedEpoch
	e.time(s.floor)
	e.base = s.floor
	e.time(s.wake)
	if l := s.listed; l.ok {
		kind := byte(1)
		if l.kind == Permanent {
			kind = 2
		}
		e.b = append(e.b, kind)
		e.str(string(l.source))
		e.time(l.granted)
		e.time(l.expires)
		e.budget(l.callsLeft)
		e.budget(l.streak)
		e.str(l.waID)
		e.str(l.userID)
	} else {
		e.b = append(e.b, 0)
	}
	e.count(len(s.grants))
	for _, g := range s.grants {
		e.str(g.call)
		if g.call == "" {
			e.time(g.at)
			e.time(g.exp)
			e.str(string(g.source))
			e.str(g.id)
			continue
		}
		e.time(g.callAt)
		e.time(g.callExp)
		e.time(g.replyAt)
		e.time(g.replyExp)
		e.str(g.replyID)
	}
	e.count(len(s.revs))
	for _, r := range s.revs {
		e.time(r.at)
		e.time(r.eff)
		e.str(string(r.reason))
		e.str(r.id)
	}
	e.count(len(s.act))
	for _, a := range s.act {
		e.time(a.at)
		e.str(a.kind)
		e.str(a.id)
	}
	e.count(len(s.ids))
	for _, x := range s.ids {
		e.str(x.id)
		e.time(x.since)
	}
	if v == stateLifecycleVersion {
		e.lifecycle(s)
	}
}

// budget writes a count of the call budget, never negative (rules.go), as
// the uvarint of its bits: one byte below 128, and any int still reads
// back as itself.
func (e *encoder) budget(v int) { e.b = binary.AppendUvarint(e.b, uint64(v)) }
func (e *encoder) count(n int)  { e.b = binary.AppendUvarint(e.b, uint64(n)) }

// An instant is a uvarint whose two low bits say what the rest is:
//
//	0: 0 none, 1 never, 2 the instant follows as a plain varint,
//	   3+i (keyed versions) the i-th instant written in full (instants)
//	1: the zigzag of its difference from the base, in seconds
//	2: the zigzag of its difference from the base, in nanoseconds
//	3 (keyed versions): the same in microseconds
//
// A difference is taken in two's complement, so that any two instants
// have one. Form 3 holds only differences that are not whole seconds,
// form 2 only those that are not whole microseconds either (not whole
// seconds in versions 5 and 6), and the plain varint only those whose
// form 2 would not fit. A keyed state writes an instant it holds among
// its instants as a reference, and only then.
const (
	timeSpecial = iota
	timeSeconds
	timeNanos
	timeMicros
)

const timeRepeat = 3 // the first special value that refers to an instant

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func (e *encoder) time(t int64) {
	switch t {
	case none:
		e.b = append(e.b, 0<<2|timeSpecial)
		return
	case never:
		e.b = append(e.b, 1<<2|timeSpecial)
		return
	}
	if i := e.times.index(t); i >= 0 {
		e.b = binary.AppendUvarint(e.b, uint64(timeRepeat+i)<<2|timeSpecial)
		return
	}
	e.times.add(t)
	d := int64(uint64(t) - uint64(e.base))
	switch z := zigzag(d); {
	case d%1e9 == 0:
		e.b = binary.AppendUvarint(e.b, zigzag(d/1e9)<<2|timeSeconds)
	case d%1e3 == 0:
		e.b = binary.AppendUvarint(e.b, zigzag(d/1e3)<<2|timeMicros)
	case z < 1<<62:
		e.b = binary.AppendUvarint(e.b, z<<2|timeNanos)
	default:
		e.b = append(e.b, 2<<2|timeSpecial)
		e.b = binary.AppendVarint(e.b, t)
	}
}

// A string is a uvarint whose two low bits say what it is: 0 the empty
// string (the uvarint is 0), 1 its length, its bytes following, 2 its index
// in stateConstants, 3 the index of the earlier string of the state it
// repeats (the strings written with their bytes, numbered in order).
const (
	strEmpty = iota
	strBytes
	strConstant
	strRepeat
)

// stateConstants are the strings of the closed sets a state holds
// (sources, revocation reasons, activity kinds), by their code. The codes
// are stored: append to this list, never reorder or remove.
var stateConstants = [...]string{
	string(SourceRequest), string(SourceCallback), string(SourceInboundCall), string(SourceProfile), string(SourceReconcile),
	string(RevokeRejected), string(RevokeProfile), string(RevokeAutomatic), string(RevokeReconciled),
	actReply, actRequest, actRequestUsage, actCallUsage, actCallOut, actCallMissed, actCallIn,
}

// constants maps each of stateConstants to its code.
var constants = func() map[string]int {
	m := map[string]int{}
	for i, s := range stateConstants {
		m[s] = i
	}
	return m
}()

func (e *encoder) str(s string) {
	if s == "" {
		e.b = append(e.b, strEmpty)
		return
	}
	if i, ok := constants[s]; ok {
		e.b = binary.AppendUvarint(e.b, uint64(i)<<2|strConstant)
		return
	}
	if i := e.lits.index(s); i >= 0 {
		e.b = binary.AppendUvarint(e.b, uint64(i)<<2|strRepeat)
		return
	}
	e.lits.add(s)
	e.b = binary.AppendUvarint(e.b, uint64(len(s))<<2|strBytes)
	e.b = append(e.b, s...)
}

// decoder reads every encoding: compact, keyed (versions 7 and 8) or not
// (5 and 6), or the first (1 and 4), in which instants are plain varints
// and strings length-prefixed.
type decoder struct {
	b       []byte
	err     error
	compact bool
	keyed   bool      // versions 7 and 8 (compact too)
	base    int64     // compact: the floor, once read
	lits    literals  // compact: the contact (keyed) and the strings read with their bytes
	times   instants  // keyed: the instants read in full
	seen    [4]string // first encoding: the last identifiers decoded, which a state repeats
	next    int
	mem     *stateMem // where the state's grants and identifiers go; nil: the heap
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != varintLen(v) { // one encoding per value
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// budget reads a count of the call budget (see encoder.budget); versions
// before 7 wrote it as a varint.
func (d *decoder) budget() int {
	if d.keyed {
		return int(d.uvarint())
	}
	return int(d.varint())
}

func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) { // every element takes at least a byte
		d.fail()
		return 0
	}
	return int(v)
}

// time reads an instant (see encoder.time).
func (d *decoder) time() int64 {
	if !d.compact {
		return d.varint()
	}
	u := d.uvarint()
	if u&3 == timeSpecial {
		switch v := u >> 2; {
		case v == 0:
			return none
		case v == 1:
			return never
		case v >= timeRepeat:
			if i := v - timeRepeat; d.keyed && i < uint64(d.times.n) {
				return d.times.first[i]
			}
			d.fail()
			return 0
		}
	}
	t, ok := d.full(u)
	if !ok || (d.keyed && d.times.index(t) >= 0) { // a held instant is written as a reference
		d.fail()
		return 0
	}
	if d.keyed {
		d.times.add(t)
	}
	return t
}

// full reads an instant written in full, tagged u: a plain varint or a
// difference from the base, in the one form the encoder picks for it.
func (d *decoder) full(u uint64) (int64, bool) {
	v := u >> 2
	switch u & 3 {
	case timeSpecial:
		if v != 2 {
			return 0, false
		}
		t := d.varint()
		diff := int64(uint64(t) - uint64(d.base))
		if t == none || t == never || diff%1e9 == 0 || zigzag(diff) < 1<<62 || (d.keyed && diff%1e3 == 0) {
			return 0, false // another form holds it
		}
		return t, d.err == nil
	case timeSeconds:
		return d.scaled(unzigzag(v), 1e9)
	case timeMicros:
		if dm := unzigzag(v); d.keyed && dm%1e6 != 0 {
			return d.scaled(dm, 1e3)
		}
	case timeNanos:
		if dn := unzigzag(v); dn%1e9 != 0 && (!d.keyed || dn%1e3 != 0) {
			return d.scaled(dn, 1)
		}
	}
	return 0, false
}

// scaled returns the base plus n units, unless that overflows or is a
// special instant.
func (d *decoder) scaled(n, unit int64) (int64, bool) {
	if n > math.MaxInt64/unit || n < math.MinInt64/unit {
		return 0, false
	}
	t := int64(uint64(d.base) + uint64(n*unit))
	return t, t != none && t != never
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// string reads a string (see encoder.str).
func (d *decoder) string() string {
	if !d.compact {
		return d.legacyString()
	}
	u := d.uvarint()
	v := u >> 2
	switch u & 3 {
	case strEmpty:
		if u == 0 {
			return ""
		}
	case strBytes:
		if v == 0 || v > uint64(len(d.b)) {
			break
		}
		b := d.b[:v]
		if _, ok := constants[string(b)]; ok {
			break // written as its code
		}
		if d.lits.index(string(b)) >= 0 {
			break // written as a repeat
		}
		d.b = d.b[v:]
		s := string(b)
		d.lits.add(s)
		return s
	case strConstant:
		if v < uint64(len(stateConstants)) {
			return stateConstants[v]
		}
	case strRepeat:
		if v < uint64(d.lits.n) {
			return d.lits.at(int(v))
		}
	}
	d.fail()
	return ""
}

func (d *decoder) legacyString() string {
	n := d.count()
	if d.err != nil || n > len(d.b) {
		d.fail()
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	if n == 0 {
		return ""
	}
	if i, ok := constants[string(b)]; ok { // the conversion does not allocate
		return stateConstants[i]
	}
	for _, s := range d.seen {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	d.seen[d.next] = s
	d.next = (d.next + 1) % len(d.seen)
	return s
}

// decodeState reads a state stored under a key whose contact is contact.
func decodeState(b []byte, contact string) (pairState, error) { return decodeStateIn(b, contact, nil) }

// decodeStateIn is decodeState with the state's grants and identifiers
// taken from mem (nil: the heap).
func decodeStateIn(b []byte, contact string, mem *stateMem) (pairState, error) {
	s := pairState{floor: none, wake: none}
	if len(b) == 0 {
		return s, nil
	}
	d := &decoder{b: b, mem: mem}
	v := d.byte()
	switch v {
	case stateVersion, stateLifecycleVersion:
		d.compact, d.keyed, d.base = true, true, keyedEpoch
		d.lits.seed(contact)
	case unkeyedVersion, unkeyedLifecycleVersion:
		d.compact = true
	case legacyVersion, legacyLifecycleVersion:
	default:
		return s, fmt.Errorf("%w: version %d", errCorrupt, v)
	}
	s.floor = d.time()
	d.base = s.floor
	s.wake = d.time()
	switch kind := d.byte(); kind {
	case 0:
	case 1, 2:
		s.listed.ok, s.listed.kind = true, Temporary
		if kind == 2 {
			s.listed.kind = Permanent
		}
		s.listed.source = Source(d.string())
		s.listed.granted, s.listed.expires = d.time(), d.time()
		s.listed.callsLeft, s.listed.streak = d.budget(), d.budget()
		s.listed.waID, s.listed.userID = d.string(), d.string()
	default:
		d.fail()
	}
	if n := d.count(); n > 0 {
		s.grants = d.mem.permits(n)
		for i := range s.grants {
			g := &s.grants[i]
			g.call = d.string()
			g.callAt, g.callExp, g.replyAt, g.replyExp = none, none, none, none
			if g.call == "" {
				g.at, g.exp = d.time(), d.time()
				g.source, g.id = Source(d.string()), d.string()
				continue
			}
			g.callAt, g.callExp, g.replyAt, g.replyExp = d.time(), d.time(), d.time(), d.time()
			g.replyID = d.string()
		}
	}
	if n := d.count(); n > 0 {
		s.revs = make([]revocation, n)
		for i := range s.revs {
			at, eff := d.time(), d.time()
			s.revs[i] = revocation{at: at, eff: eff, reason: RevokeReason(d.string()), id: d.string()}
		}
	}
	if n := d.count(); n > 0 {
		s.act = make([]activity, n)
		for i := range s.act {
			at := d.time()
			s.act[i] = activity{at: at, kind: d.string(), id: d.string()}
		}
	}
	if n := d.count(); n > 0 {
		s.ids = d.mem.idents(n)
		for i := range s.ids {
			id := d.string()
			s.ids[i] = ident{id: id, since: d.time()}
		}
	}
	if v == stateLifecycleVersion || v == unkeyedLifecycleVersion || v == legacyLifecycleVersion {
		s.decodeLifecycle(d)
	}
	if d.err != nil || len(d.b) != 0 {
		return pairState{floor: none, wake: none}, errCorrupt
	}
	return s, nil
}

// An identifier that is not its person's contact is stored as an alias:
// its key holds the contact it resolves to.
const aliasCodecVersion = 3

func encodeAlias(contact string) []byte {
	return appendString([]byte{aliasCodecVersion}, contact)
}

// record kinds under a pair key.
const (
	recordNone = iota
	recordPerson
	recordAlias
)

// decodeRecord reads what a pair key, whose contact is contact, holds: a
// person's state, or an alias naming the person's contact.
func decodeRecord(b []byte, contact string) (kind int, s pairState, alias string, err error) {
	return decodeRecordIn(b, contact, nil)
}

// decodeRecordIn is decodeRecord with decodeStateIn's mem.
func decodeRecordIn(b []byte, contact string, mem *stateMem) (kind int, s pairState, alias string, err error) {
	if len(b) > 0 && b[0] == aliasCodecVersion {
		d := &decoder{b: b[1:]}
		alias = d.string()
		if d.err != nil || len(d.b) != 0 || alias == "" {
			return recordNone, s, "", fmt.Errorf("%w: alias", errCorrupt)
		}
		return recordAlias, s, alias, nil
	}
	s, err = decodeStateIn(b, contact, mem)
	if err != nil {
		return recordNone, s, "", err
	}
	if len(b) == 0 {
		return recordNone, s, "", nil
	}
	return recordPerson, s, "", nil
}

// A channel's own state (its callback settings) is stored under the key
// with an empty contact, in its own encoding.
const channelCodecVersion = 2

func encodeChannel(c *channelState) []byte {
	b := make([]byte, 0, 2+16*len(c.settings))
	b = append(b, channelCodecVersion)
	b = binary.AppendUvarint(b, uint64(len(c.settings)))
	for _, x := range c.settings {
		b = binary.AppendVarint(b, x.at)
		b = appendString(b, string(x.status))
	}
	return b
}

func decodeChannel(b []byte) (*channelState, error) {
	c := &channelState{}
	return c, c.decode(b)
}

// decode sets c from its encoding; on an error c is empty.
func (c *channelState) decode(b []byte) error {
	*c = channelState{}
	if len(b) == 0 {
		return nil
	}
	d := &decoder{b: b}
	if v := d.byte(); v != channelCodecVersion {
		return fmt.Errorf("%w: channel state version %d", errCorrupt, v)
	}
	if n := d.count(); n > 0 {
		c.settings = make([]setting, n)
		for i := range c.settings {
			at := d.varint()
			c.settings[i] = setting{at: at, status: CallbackStatus(d.string())}
		}
	}
	if d.err != nil || len(d.b) != 0 {
		*c = channelState{}
		return errCorrupt
	}
	return nil
}

// stateMem holds the grants and identifiers of the states a batch
// decodes, so that a state costs no allocation of its own: a sweep
// decodes a state per pair it expires, and these were two of its three
// allocations per pair. What it hands out is valid until reset, and each
// slice's capacity is its length, so that an append moves it to the heap
// rather than over the next state's.
type stateMem struct {
	grants slab[permit]
	ids    slab[ident]
}

func (m *stateMem) permits(n int) []permit {
	if m == nil {
		return make([]permit, n)
	}
	return m.grants.take(n)
}

func (m *stateMem) idents(n int) []ident {
	if m == nil {
		return make([]ident, n)
	}
	return m.ids.take(n)
}

// reset zeroes what m handed out, for reuse: nothing it kept holds a
// pointer into the batch.
func (m *stateMem) reset() {
	m.grants.reset()
	m.ids.reset()
}

// slab hands out slices of chunks it keeps from batch to batch.
type slab[T any] struct {
	chunks [][]T
	chunk  int // chunks[chunk][off:] is free
	off    int
}

const slabItems = 256

func (s *slab[T]) take(n int) []T {
	if n > slabItems/4 {
		return make([]T, n) // rare: a state with many grants or identifiers
	}
	if s.chunk < len(s.chunks) && s.off+n > slabItems {
		s.chunk, s.off = s.chunk+1, 0
	}
	if s.chunk == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabItems))
	}
	out := s.chunks[s.chunk][s.off : s.off+n : s.off+n]
	s.off += n
	return out
}

// reset zeroes only what was handed out: a batch of one Record uses a few
// items of a chunk, and clearing all of it cost 6% of a re-grant.
func (s *slab[T]) reset() {
	for i := range min(s.chunk, len(s.chunks)) {
		clear(s.chunks[i])
	}
	if s.chunk < len(s.chunks) {
		clear(s.chunks[s.chunk][:s.off])
	}
	s.chunk, s.off = 0, 0
}
