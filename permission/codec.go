package permission

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// The cached pairState travels through the store as store.State.Data, in
// a compact binary form: a version byte, then varints and length-prefixed
// strings. Stores treat it as opaque bytes.

const codecVersion = 1

var errCorrupt = errors.New("permission: corrupt cached state")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeState returns s's encoding in a slice of its own, of the smallest
// size class that holds it: stores may keep it (store.Tx.Put), so a loose
// estimate of its capacity would be held by every pair.
func encodeState(s *pairState) []byte {
	buf := scratchPool.Get().(*[]byte)
	b := appendState((*buf)[:0], s)
	out := bytes.Clone(b)
	*buf = b
	scratchPool.Put(buf)
	return out
}

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func appendState(b []byte, s *pairState) []byte {
	b = append(b, s.codecVersion())
	b = binary.AppendVarint(b, s.floor)
	b = binary.AppendVarint(b, s.wake)
	if l := s.listed; l.ok {
		kind := byte(1)
		if l.kind == Permanent {
			kind = 2
		}
		b = append(b, kind)
		b = appendString(b, string(l.source))
		b = binary.AppendVarint(b, l.granted)
		b = binary.AppendVarint(b, l.expires)
		b = binary.AppendVarint(b, int64(l.callsLeft))
		b = binary.AppendVarint(b, int64(l.streak))
		b = appendString(b, l.waID)
		b = appendString(b, l.userID)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s.grants)))
	for _, g := range s.grants {
		b = appendString(b, g.call)
		if g.call == "" {
			b = binary.AppendVarint(b, g.at)
			b = binary.AppendVarint(b, g.exp)
			b = appendString(b, string(g.source))
			b = appendString(b, g.id)
			continue
		}
		b = binary.AppendVarint(b, g.callAt)
		b = binary.AppendVarint(b, g.callExp)
		b = binary.AppendVarint(b, g.replyAt)
		b = binary.AppendVarint(b, g.replyExp)
		b = appendString(b, g.replyID)
	}
	b = binary.AppendUvarint(b, uint64(len(s.revs)))
	for _, r := range s.revs {
		b = binary.AppendVarint(b, r.at)
		b = binary.AppendVarint(b, r.eff)
		b = appendString(b, string(r.reason))
		b = appendString(b, r.id)
	}
	b = binary.AppendUvarint(b, uint64(len(s.act)))
	for _, a := range s.act {
		b = binary.AppendVarint(b, a.at)
		b = appendString(b, a.kind)
		b = appendString(b, a.id)
	}
	b = binary.AppendUvarint(b, uint64(len(s.ids)))
	for _, x := range s.ids {
		b = appendString(b, x.id)
		b = binary.AppendVarint(b, x.since)
	}
	return s.appendLifecycle(b)
}

type decoder struct {
	b    []byte
	err  error
	seen [4]string // the last identifiers decoded: a state repeats them
	next int
}

// constants are the strings a state holds from a closed set (sources,
// revocation reasons, activity kinds): decoding one allocates nothing.
var constants = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		string(SourceRequest), string(SourceCallback), string(SourceInboundCall), string(SourceProfile), string(SourceReconcile),
		string(RevokeRejected), string(RevokeProfile), string(RevokeAutomatic), string(RevokeReconciled),
		actReply, actRequest, actRequestUsage, actCallUsage, actCallOut, actCallMissed, actCallIn,
	} {
		m[s] = s
	}
	return m
}()

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

func (d *decoder) count() int {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(len(d.b)) || n != uvarintLen(v) { // every element takes at least a byte
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

func (d *decoder) string() string {
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
	if s, ok := constants[string(b)]; ok { // the conversion does not allocate
		return s
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

func decodeState(b []byte) (pairState, error) {
	s := pairState{floor: none, wake: none}
	if len(b) == 0 {
		return s, nil
	}
	d := &decoder{b: b}
	v := d.byte()
	if v != codecVersion && v != lifecycleCodecVersion {
		return s, fmt.Errorf("%w: version %d", errCorrupt, v)
	}
	s.floor, s.wake = d.varint(), d.varint()
	switch kind := d.byte(); kind {
	case 0:
	case 1, 2:
		s.listed.ok, s.listed.kind = true, Temporary
		if kind == 2 {
			s.listed.kind = Permanent
		}
		s.listed.source = Source(d.string())
		s.listed.granted, s.listed.expires = d.varint(), d.varint()
		s.listed.callsLeft, s.listed.streak = int(d.varint()), int(d.varint())
		s.listed.waID, s.listed.userID = d.string(), d.string()
	default:
		d.fail()
	}
	if n := d.count(); n > 0 {
		s.grants = make([]permit, n)
		for i := range s.grants {
			g := &s.grants[i]
			g.call = d.string()
			g.callAt, g.callExp, g.replyAt, g.replyExp = none, none, none, none
			if g.call == "" {
				g.at, g.exp = d.varint(), d.varint()
				g.source, g.id = Source(d.string()), d.string()
				continue
			}
			g.callAt, g.callExp, g.replyAt, g.replyExp = d.varint(), d.varint(), d.varint(), d.varint()
			g.replyID = d.string()
		}
	}
	if n := d.count(); n > 0 {
		s.revs = make([]revocation, n)
		for i := range s.revs {
			at, eff := d.varint(), d.varint()
			s.revs[i] = revocation{at: at, eff: eff, reason: RevokeReason(d.string()), id: d.string()}
		}
	}
	if n := d.count(); n > 0 {
		s.act = make([]activity, n)
		for i := range s.act {
			at := d.varint()
			s.act[i] = activity{at: at, kind: d.string(), id: d.string()}
		}
	}
	if n := d.count(); n > 0 {
		s.ids = make([]ident, n)
		for i := range s.ids {
			id := d.string()
			s.ids[i] = ident{id: id, since: d.varint()}
		}
	}
	if v == lifecycleCodecVersion {
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

// decodeRecord reads what a pair key holds: a person's state, or an alias
// naming the person's contact.
func decodeRecord(b []byte) (kind int, s pairState, alias string, err error) {
	if len(b) > 0 && b[0] == aliasCodecVersion {
		d := &decoder{b: b[1:]}
		alias = d.string()
		if d.err != nil || len(d.b) != 0 || alias == "" {
			return recordNone, s, "", fmt.Errorf("%w: alias", errCorrupt)
		}
		return recordAlias, s, alias, nil
	}
	s, err = decodeState(b)
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
