package permission

import "encoding/binary"

// lifecycleCodecVersion is the pair state's encoding when it holds a
// pending request listed or a request claim: version 1's fields, then those
// two. A state with neither is still written as version 1, byte for byte,
// and both versions decode. (Versions 2 and 3 are the channel and alias
// records.)
const lifecycleCodecVersion = 4

func (s *pairState) codecVersion() byte {
	if s.pend.ok || s.claim.token != "" {
		return lifecycleCodecVersion
	}
	return codecVersion
}

func (s *pairState) appendLifecycle(b []byte) []byte {
	if s.codecVersion() != lifecycleCodecVersion {
		return b
	}
	if p := s.pend; p.ok {
		b = append(b, 1)
		b = appendString(b, p.contact)
		b = appendString(b, p.id)
		b = binary.AppendVarint(b, p.sent)
		b = binary.AppendVarint(b, p.lapses)
		b = appendString(b, p.waID)
		b = appendString(b, p.userID)
	} else {
		b = append(b, 0)
	}
	if c := s.claim; c.token != "" {
		b = append(b, 1)
		b = appendString(b, c.token)
		b = binary.AppendVarint(b, c.at)
		b = binary.AppendVarint(b, c.until)
	} else {
		b = append(b, 0)
	}
	return b
}

func (s *pairState) decodeLifecycle(d *decoder) {
	switch d.byte() {
	case 0:
	case 1:
		s.pend.ok = true
		s.pend.contact, s.pend.id = d.string(), d.string()
		s.pend.sent, s.pend.lapses = d.varint(), d.varint()
		s.pend.waID, s.pend.userID = d.string(), d.string()
	default:
		d.fail()
	}
	switch d.byte() {
	case 0:
	case 1:
		s.claim.token = d.string()
		s.claim.at, s.claim.until = d.varint(), d.varint()
		if s.claim.token == "" {
			d.fail()
		}
	default:
		d.fail()
	}
	if !s.pend.ok && s.claim.token == "" {
		d.fail() // written as version 1: one encoding per state
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
