package permission

import "encoding/binary"

// The request lifecycle's part of a pair's state: the pending request
// listed and a request claim. A state with either is written as version 8
// (6 unkeyed, 4 in the first encoding): version 7's fields, then those
// two. A state with neither is version 7 (5, 1) and holds no byte for
// them.

func (s *pairState) hasLifecycle() bool { return s.pend.ok || s.claim.token != "" }

func (e *encoder) lifecycle(s *pairState) {
	if p := s.pend; p.ok {
		e.b = append(e.b, 1)
		e.str(p.contact)
		e.str(p.id)
		e.time(p.sent)
		e.time(p.lapses)
		e.str(p.waID)
		e.str(p.userID)
	} else {
		e.b = append(e.b, 0)
	}
	if c := s.claim; c.token != "" {
		e.b = append(e.b, 1)
		e.str(c.token)
		e.time(c.at)
		e.time(c.until)
	} else {
		e.b = append(e.b, 0)
	}
}

func (s *pairState) decodeLifecycle(d *decoder) {
	switch d.byte() {
	case 0:
	case 1:
		s.pend.ok = true
		s.pend.contact, s.pend.id = d.string(), d.string()
		s.pend.sent, s.pend.lapses = d.time(), d.time()
		s.pend.waID, s.pend.userID = d.string(), d.string()
	default:
		d.fail()
	}
	switch d.byte() {
	case 0:
	case 1:
		s.claim.token = d.string()
		s.claim.at, s.claim.until = d.time(), d.time()
		if s.claim.token == "" {
			d.fail()
		}
	default:
		d.fail()
	}
	if !s.pend.ok && s.claim.token == "" {
		d.fail() // written without the lifecycle: one encoding per state
	}
}

// varintLen is the length of v's (minimal) varint encoding: the decoder
// refuses longer ones, so a state has one encoding.
func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
