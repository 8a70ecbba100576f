package permission

import (
	"cmp"
	"time"
)

// The request lifecycle's rule, beside the others (rules.go): pure
// functions of a person's events and an instant.
//
// For a person at instant T, counting only events with event time <= T:
//
//   - the pending request is the latest request sent (EventRequestSent)
//     by event time, ties by the larger ID; a request reported twice
//     counts at its earliest report, as the limits count it. A newer
//     request replaces an older one as the pending request;
//   - it is pending at T iff T < its time + PendingTTL and no grant or
//     revoke whose Context names it (Meta's reply to it) took effect by T.
//     A reply takes effect at its event time, or when it was recorded if
//     that is earlier (as a revocation does): a reply stamped ahead of our
//     clock never leaves a request pending.
//
// Replies are kept in the pair's activity set (kind actReply, id = the
// Context they name, at = when they took effect), so they are a set like
// the rest of the fold and need no encoding of their own: any order and
// any duplication of the same events give the same answer.

// PendingTTL is how long a sent request stays pending without a reply.
// Meta lets the user answer a call permission request for 7 days after it
// was delivered; callready measures from the request's event time (when it
// was sent), so a request lapses at most a delivery delay early.
const PendingTTL = 7 * 24 * time.Hour

// actReply is the activity kind of a reply to a request: a grant (not a
// callback reply, whose Context names a call) or a revoke with a Context.
const actReply = "request_reply"

// pendingReq is a person's pending request at an instant.
type pendingReq struct {
	ok     bool
	id     string
	sent   int64 // the request's event time
	lapses int64 // sent + PendingTTL
}

// foldReply adds a reply's evidence to the activity set.
func (s *pairState) foldReply(e rec) bool {
	if e.ctx == "" || (e.typ != EventGrant && e.typ != EventRevoke) || (e.typ == EventGrant && e.source == SourceCallback) {
		return false
	}
	eff := e.at
	if e.recorded != none && e.recorded < eff {
		eff = e.recorded
	}
	return s.addActivity(activity{actReply, e.ctx, eff})
}

// pendingAt is the request pending at t, if any.
func (s *pairState) pendingAt(t int64) pendingReq {
	var r pendingReq
	first := make(map[string]int64)
	for _, a := range s.act { // ascending: the first seen is the earliest
		if a.kind != actRequest {
			continue
		}
		if _, ok := first[a.id]; !ok {
			first[a.id] = a.at
		}
	}
	for id, at := range first {
		if at > t {
			continue
		}
		if !r.ok || cmp.Or(cmp.Compare(at, r.sent), cmp.Compare(id, r.id)) > 0 {
			r = pendingReq{ok: true, id: id, sent: at}
		}
	}
	if !r.ok {
		return pendingReq{}
	}
	r.lapses = r.sent + int64(PendingTTL)
	if t >= r.lapses {
		return pendingReq{}
	}
	for _, a := range s.act {
		if a.kind == actReply && a.id == r.id && a.at <= t {
			return pendingReq{}
		}
	}
	return r
}

// answeredAt is when a reply to request id took effect, none if none did
// by t.
func (s *pairState) answeredAt(id string, t int64) int64 {
	for _, a := range s.act {
		if a.kind == actReply && a.id == id && a.at <= t {
			return a.at
		}
	}
	return none
}
