package permission

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/callready/callready/store"
)

// The rules that decide "callable". Everything in this file is a pure
// function of a pair's recorded events and an instant: no locks, no I/O, no
// clock. The tracker keeps the fold of each pair's events (pairState) as a
// cache next to the ledger; as-of questions fold the ledger itself.
//
// For a pair at instant T, counting only events with event time <= T:
//
//   - a temporary grant at g with expiry e covers [g, e); a permanent one
//     covers [g, ∞); a revocation at r ends every grant with g <= r (a tie
//     goes to the revocation), from r on, or from when it was recorded if
//     that is earlier: a revoke stamped ahead of our clock never leaves a
//     contact callable (grants stamped ahead wait for their time);
//   - the pair is callable at T iff some grant covers T and no revocation r
//     has g <= r and takes effect by T; the entry shows the covering grant
//     that lasts longest (permanent first, then the latest expiry, then the
//     latest grant time);
//   - an inbound call grants from the call's own start (when the channel's
//     callback grants are on); Meta's automatic reply whose context names
//     that call is the same grant: its expiry replaces the one derived from
//     the call, whichever arrives first, and the grant starts at the call;
//   - the unanswered streak counts unanswered business calls since the
//     later of the last connected call and the last revocation.
//
// Every part of pairState is a set (or a max) over the events, so any order
// and any duplication of the same events give the same state. The cache
// also drops what can no longer decide anything at or after its floor (the
// latest instant it was recorded at); instants before the floor are
// answered from the ledger.

// none marks an absent instant in unix nanoseconds (0 is 1970, a real
// instant on a mock clock).
const none = math.MinInt64

// callReplyWindow is how long after an inbound call its grant is kept in
// the cache even when over, so that Meta's callback reply (redelivered for
// up to 7 days) still finds the call's start.
const callReplyWindow = 8 * 24 * time.Hour

// Activity kinds.
const (
	actRequest = "request" // permission request sent by the business
	// Usage Meta counted that no recorded event explains (a reconciliation
	// recorded it with SourceReconcile): it counts against the limits and
	// nothing else (no pending request, no limit reset, no streak).
	actRequestUsage = "request_usage"
	actCallUsage    = "call_usage"
	actCallOut      = "call_connected" // business-initiated call picked up
	actCallMissed   = "call_unanswered"
	actCallIn       = "call_in_connected" // user-initiated call picked up
	// activityHorizon is the longest window kept (7 d) plus slack, behind
	// the newest activity.
	activityHorizon = 8 * 24 * time.Hour
)

// rec is one ledger event as the rules read it.
type rec struct {
	typ       EventType
	id, ctx   string
	at        int64
	exp       int64 // grants: expiry (never if permanent); inbound calls: end of the callback grant, none if it grants nothing
	recorded  int64 // when the tracker recorded it; none if unknown
	connected bool
	source    Source
	reason    RevokeReason
	contact   string   // the identifier the event names
	aliases   []string // the other identifiers it carried
	ref       int      // index in the events an explanation folds; -1 in the cache
}

// permit is a grant as the rules keep it.
type permit struct {
	at, exp int64 // plain grants; exp is never for permanent ones
	source  Source
	id      string
	// Call-linked grants: an inbound call and Meta's callback reply for it.
	call     string
	callAt   int64 // the call's start, none if not seen
	callExp  int64 // end of the call's own grant, none if it grants nothing
	replyAt  int64 // none if no reply seen
	replyExp int64
	replyID  string
	refs     []int
}

// span returns the interval the grant covers and its source, whatever the
// channel's callback setting (see pairState.span); ok is false for a call
// seen without a grant of its own and without a reply yet.
func (g *permit) span() (start, end int64, src Source, ok bool) {
	if g.call == "" {
		return g.at, g.exp, g.source, true
	}
	start = g.callAt
	if start == none || (g.replyAt != none && g.replyAt < start) {
		start = g.replyAt
	}
	switch {
	case g.replyAt != none:
		return start, g.replyExp, SourceCallback, true
	case g.callExp != none:
		return start, g.callExp, SourceInboundCall, true
	}
	return 0, 0, "", false
}

type revocation struct {
	at     int64
	eff    int64 // when it takes effect: at, or its recording if earlier
	reason RevokeReason
	id     string
	refs   []int
}

type activity struct {
	kind string
	id   string
	at   int64
}

// listed is the entry a pair last put in the change log.
type listed struct {
	ok                bool
	kind              Kind
	source            Source
	granted, expires  int64 // expires is never for permanent entries
	callsLeft, streak int
	waID, userID      string
}

type pairState struct {
	grants []permit     // plain grants by (at, exp, source, id), then call-linked by call id
	revs   []revocation // by (at, reason, id)
	act    []activity   // by (at, kind, id)
	floor  int64        // latest instant recorded at; none before any event
	listed listed
	wake   int64   // next instant the clock changes the pair; none
	ids    []ident // the person's identifiers, by id

	// The request lifecycle's listed state, encoded (codec_lifecycle.go).
	pend  pendListed   // the pending request last listed (pending.go)
	claim requestClaim // a request being sent (send.go)

	// Not part of the fold (not encoded): what the tracker knows of the
	// channel when it evaluates the pair.
	callbacks     *channelState // the channel's callback setting; nil: unknown
	confirmedOnly bool          // Config.ConfirmedCallbacksOnly
}

// channelState is the fold of a channel's own events: its callback
// permission setting over time (Meta's callback_permission_status).
type channelState struct {
	settings []setting // by (at, status)
}

type setting struct {
	at     int64
	status CallbackStatus
}

var statusRank = map[CallbackStatus]int{CallbackUnknown: 1, CallbackEnabled: 2, CallbackDisabled: 3}

// fold adds a setting; the latest by event time is in effect, and on equal
// times the more restrictive one.
func (c *channelState) fold(at int64, st CallbackStatus) bool {
	x := setting{at, st}
	i, found := slices.BinarySearchFunc(c.settings, x, func(a, b setting) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(statusRank[a.status], statusRank[b.status]))
	})
	if found {
		return false
	}
	c.settings = slices.Insert(c.settings, i, x)
	return true
}

// at is the setting in effect at t: unknown before any.
func (c *channelState) at(t int64) CallbackStatus {
	if c != nil {
		for i := len(c.settings) - 1; i >= 0; i-- {
			if c.settings[i].at <= t {
				return c.settings[i].status
			}
		}
	}
	return CallbackUnknown
}

// span is the interval a grant covers and its source, under the channel's
// callback setting: a call alone grants only while the setting at the
// call's start is enabled or unknown (and not at all with
// ConfirmedCallbacksOnly); Meta's reply always does.
func (s *pairState) span(g *permit) (start, end int64, src Source, ok bool) {
	start, end, src, ok = g.span()
	if ok && src == SourceInboundCall && (s.confirmedOnly || s.callbacks.at(g.callAt) == CallbackDisabled) {
		return 0, 0, "", false
	}
	return start, end, src, ok
}

var sourceRank = map[Source]int{SourceInboundCall: 1, SourceRequest: 2, SourceCallback: 3, SourceProfile: 4, SourceReconcile: 5}

var reasonRank = map[RevokeReason]int{RevokeRejected: 1, RevokeProfile: 2, RevokeAutomatic: 3, RevokeReconciled: 4}

func cmpGrant(a, b *permit) int {
	if (a.call == "") != (b.call == "") {
		if a.call == "" {
			return -1
		}
		return 1
	}
	if a.call != "" {
		return cmp.Compare(a.call, b.call)
	}
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.exp, b.exp),
		cmp.Compare(sourceRank[a.source], sourceRank[b.source]), cmp.Compare(a.source, b.source), cmp.Compare(a.id, b.id))
}

func cmpRev(a, b *revocation) int {
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(reasonRank[a.reason], reasonRank[b.reason]),
		cmp.Compare(a.reason, b.reason), cmp.Compare(a.id, b.id))
}

func cmpAct(a, b activity) int {
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id))
}

// ident is one of a person's identifiers and the earliest event time it
// was seen at.
type ident struct {
	id    string
	since int64
}

// isPhone reports whether an identifier is a phone number (wa_id digits)
// rather than a BSUID.
func isPhone(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return id != ""
}

// addIdent adds an identifier, keeping its earliest sighting.
func (s *pairState) addIdent(id string, at int64) bool {
	i, found := slices.BinarySearchFunc(s.ids, id, func(x ident, id string) int { return cmp.Compare(x.id, id) })
	if !found {
		s.ids = slices.Insert(s.ids, i, ident{id, at})
		return true
	}
	if at < s.ids[i].since {
		s.ids[i].since = at
		return true
	}
	return false
}

// contact is the identifier a person is listed under: the newest BSUID
// (first seen latest), else the newest phone number; ties by the larger
// string. A function of the set of identifiers and their first sightings.
func (s *pairState) contact() string {
	best, bestBSUID := -1, false
	for i, x := range s.ids {
		bsuid := !isPhone(x.id)
		if best < 0 || (bsuid && !bestBSUID) ||
			(bsuid == bestBSUID && cmp.Or(cmp.Compare(x.since, s.ids[best].since), cmp.Compare(x.id, s.ids[best].id)) > 0) {
			best, bestBSUID = i, bsuid
		}
	}
	if best < 0 {
		return ""
	}
	return s.ids[best].id
}

// phoneAndUser are the person's newest phone number and newest BSUID.
func (s *pairState) phoneAndUser() (waID, userID string) {
	var ps, us int64 = none, none
	for _, x := range s.ids {
		if isPhone(x.id) {
			if x.since > ps || (x.since == ps && x.id > waID) {
				waID, ps = x.id, x.since
			}
		} else if x.since > us || (x.since == us && x.id > userID) {
			userID, us = x.id, x.since
		}
	}
	return waID, userID
}

// union folds another person's state into s: two identifiers Meta showed
// together were two persons so far. Every part is a set or a max, so the
// union equals the fold of both persons' events together.
func (s *pairState) union(o *pairState) {
	for _, g := range o.grants {
		if g.call == "" {
			i, found := slices.BinarySearchFunc(s.grants, &g, func(a permit, b *permit) int { return cmpGrant(&a, b) })
			if !found {
				s.grants = slices.Insert(s.grants, i, g)
			}
			continue
		}
		m := s.callGrant(g.call)
		if g.callAt != none && (m.callAt == none || g.callAt < m.callAt) {
			m.callAt = g.callAt
		}
		if g.callExp != none && m.callAt != none {
			// As fold computes it: the call's own grant lasts its length
			// from the call's start.
			length := g.callExp - g.callAt
			if m.callExp != none {
				length = max(length, m.callExp-m.callAt)
			}
			m.callExp = m.callAt + length
		}
		if g.replyAt != none && (m.replyAt == none || cmp.Or(cmp.Compare(g.replyExp, m.replyExp), cmp.Compare(g.replyAt, m.replyAt), cmp.Compare(g.replyID, m.replyID)) > 0) {
			m.replyAt, m.replyExp, m.replyID = g.replyAt, g.replyExp, g.replyID
		}
	}
	for _, r := range o.revs {
		i, found := slices.BinarySearchFunc(s.revs, &r, func(a revocation, b *revocation) int { return cmpRev(&a, b) })
		if !found {
			s.revs = slices.Insert(s.revs, i, r)
		} else if r.eff < s.revs[i].eff {
			s.revs[i].eff = r.eff
		}
	}
	for _, a := range o.act {
		s.addActivity(a)
	}
	for _, x := range o.ids {
		s.addIdent(x.id, x.since)
	}
	if o.floor > s.floor {
		s.floor = o.floor
	}
}

// fold applies one event to s. It reports whether the derived state changed.
func (s *pairState) fold(e rec) bool {
	changed := s.addIdent(e.contact, e.at)
	for _, id := range e.aliases {
		changed = s.addIdent(id, e.at) || changed
	}
	changed = s.foldReply(e) || changed
	return s.foldFacts(e) || changed
}

func (s *pairState) foldFacts(e rec) bool {
	switch e.typ {
	case EventGrant:
		if e.source == SourceCallback && e.ctx != "" {
			g := s.callGrant(e.ctx)
			// Two replies for one call: the later expiry (then the later
			// reply, then the id) stands.
			if g.replyAt != none && cmp.Or(cmp.Compare(e.exp, g.replyExp), cmp.Compare(e.at, g.replyAt), cmp.Compare(e.id, g.replyID)) <= 0 {
				return addRef(&g.refs, e.ref)
			}
			g.replyAt, g.replyExp, g.replyID = e.at, e.exp, e.id
			addRef(&g.refs, e.ref)
			return true
		}
		g := permit{at: e.at, exp: e.exp, source: e.source, id: e.id, callAt: none, callExp: none, replyAt: none, replyExp: none}
		i, found := slices.BinarySearchFunc(s.grants, &g, func(a permit, b *permit) int { return cmpGrant(&a, b) })
		if found {
			return addRef(&s.grants[i].refs, e.ref)
		}
		addRef(&g.refs, e.ref)
		s.grants = slices.Insert(s.grants, i, g)
		return true
	case EventRevoke:
		r := revocation{at: e.at, eff: e.at, reason: e.reason, id: e.id}
		if e.recorded != none && e.recorded < e.at {
			r.eff = e.recorded
		}
		i, found := slices.BinarySearchFunc(s.revs, &r, func(a revocation, b *revocation) int { return cmpRev(&a, b) })
		if found {
			if r.eff < s.revs[i].eff {
				s.revs[i].eff = r.eff
				addRef(&s.revs[i].refs, e.ref)
				return true
			}
			return addRef(&s.revs[i].refs, e.ref)
		}
		addRef(&r.refs, e.ref)
		s.revs = slices.Insert(s.revs, i, r)
		return true
	case EventInboundCall:
		g := s.callGrant(e.id)
		changed := false
		if g.callAt == none || e.at < g.callAt {
			g.callAt, changed = e.at, true
		}
		if e.exp != none && (g.callExp == none || g.callAt+(e.exp-e.at) != g.callExp) {
			// The call's own grant lasts as long from the call's start.
			g.callExp, changed = g.callAt+(e.exp-e.at), true
		}
		addRef(&g.refs, e.ref)
		if e.connected {
			changed = s.addActivity(activity{actCallIn, e.id, e.at}) || changed
		}
		return changed
	case EventRequestSent:
		if e.source == SourceReconcile {
			return s.addActivity(activity{actRequestUsage, e.id, e.at})
		}
		return s.addActivity(activity{actRequest, e.id, e.at})
	case EventBusinessCall:
		if e.source == SourceReconcile {
			return s.addActivity(activity{actCallUsage, e.id, e.at})
		}
		kind := actCallMissed
		if e.connected {
			kind = actCallOut
		}
		return s.addActivity(activity{kind, e.id, e.at})
	}
	return false
}

func addRef(refs *[]int, ref int) bool {
	if ref >= 0 {
		*refs = append(*refs, ref)
	}
	return false
}

// callGrant returns the call-linked grant of a call, adding an empty one.
func (s *pairState) callGrant(call string) *permit {
	key := permit{call: call}
	i, found := slices.BinarySearchFunc(s.grants, &key, func(a permit, b *permit) int { return cmpGrant(&a, b) })
	if !found {
		s.grants = slices.Insert(s.grants, i, permit{call: call, callAt: none, callExp: none, replyAt: none, replyExp: none})
	}
	return &s.grants[i]
}

// addActivity adds a to the set, trimmed to the horizon behind its newest
// element; the threshold only moves forward, so the result is the same for
// any order.
func (s *pairState) addActivity(a activity) bool {
	i, found := slices.BinarySearchFunc(s.act, a, cmpAct)
	if found {
		return false
	}
	if n := len(s.act); n > 0 && a.at < s.act[n-1].at-int64(activityHorizon) {
		return false
	}
	s.act = slices.Insert(s.act, i, a)
	cut := s.act[len(s.act)-1].at - int64(activityHorizon)
	drop := 0
	for drop < len(s.act) && s.act[drop].at < cut {
		drop++
	}
	s.act = slices.Delete(s.act, 0, drop)
	return true
}

// compact raises the floor to at and drops what can no longer decide
// anything at or after it: revocations older than the latest one at or
// before the floor, grants that one ended, and temporary grants over by the
// floor (call-linked ones only once Meta can no longer deliver their
// reply). Compaction commutes with fold, so the cache equals a fresh fold
// of the ledger compacted at the same floor.
func (s *pairState) compact(at int64) {
	if at > s.floor {
		s.floor = at
	}
	f := s.floor
	revF := int64(none) // latest revocation at or before the floor
	for _, r := range s.revs {
		if r.at <= f {
			revF = r.at
		}
	}
	if revF != none {
		s.revs = slices.DeleteFunc(s.revs, func(r revocation) bool { return r.at < revF })
	}
	s.grants = slices.DeleteFunc(s.grants, func(g permit) bool {
		start, end, _, ok := g.span()
		if g.call != "" {
			seen := g.callAt
			if seen == none {
				seen = g.replyAt
			}
			if f-seen < int64(callReplyWindow) {
				return false // the other half (call or reply) may still come
			}
		}
		return !ok || start <= revF || end <= f
	})
}

// covering returns the grant that makes the pair callable at t, if any.
func (s *pairState) covering(t int64) (*permit, bool) {
	var best *permit
	var bs, be int64
	var bsrc Source
	for i := range s.grants {
		g := &s.grants[i]
		start, end, src, ok := s.holding(g, t)
		if !ok {
			continue
		}
		if best == nil || cmp.Or(cmp.Compare(end, be), cmp.Compare(start, bs), cmp.Compare(sourceRank[src], sourceRank[bsrc])) > 0 {
			best, bs, be, bsrc = g, start, end, src
		}
	}
	return best, best != nil
}

// holding is g's span when g holds the pair at t: started, not ended and
// not revoked since it started.
func (s *pairState) holding(g *permit, t int64) (start, end int64, src Source, ok bool) {
	start, end, src, ok = s.span(g)
	if !ok || start > t || t >= end || s.revokedIn(start, t) {
		return 0, 0, "", false
	}
	return start, end, src, true
}

// outlasted reports whether a grant ending at end is not the covering one
// just before it: another grant holds the pair then and ends later, so the
// entry (the covering grant's, see covering) does not change at end
// because of that end. Whatever else happens at end is a wake-up of its
// own.
func (s *pairState) outlasted(end int64) bool {
	if end == never {
		return false
	}
	for i := range s.grants {
		if _, e, _, ok := s.holding(&s.grants[i], end-1); ok && e > end {
			return true
		}
	}
	return false
}

// revokedIn reports whether a revocation at or after from takes effect by
// to.
func (s *pairState) revokedIn(from, to int64) bool {
	i, _ := slices.BinarySearchFunc(s.revs, from, func(r revocation, t int64) int { return cmp.Compare(r.at, t) })
	for ; i < len(s.revs); i++ {
		if s.revs[i].eff <= to {
			return true
		}
	}
	return false
}

// lastRevocation is the latest revocation in effect by t.
func (s *pairState) lastRevocation(t int64) (*revocation, bool) {
	for i := len(s.revs) - 1; i >= 0; i-- {
		if s.revs[i].eff <= t {
			return &s.revs[i], true
		}
	}
	return nil, false
}

// entryAt is the listed form of the pair at t, budget included.
func (s *pairState) entryAt(t int64, lc LimitsConfig) listed {
	g, ok := s.covering(t)
	if !ok {
		return listed{}
	}
	start, end, src, _ := s.span(g)
	l := listed{ok: true, kind: Temporary, source: src, granted: start, expires: end}
	if end == never {
		l.kind = Permanent
	}
	b := s.budget(t, lc)
	l.callsLeft, l.streak = b.CallsLeft, b.UnansweredStreak
	l.waID, l.userID = s.phoneAndUser()
	return l
}

// wakeAfter is the next instant after t at which the clock alone may
// change the pair's listed entry: a grant starting or ending, a revocation
// taking effect, a connected call leaving the call window, an activity
// stamped ahead of t, a pending request lapsing. A grant revoked by t
// gives none, nor does the end of a grant another outlasts (see
// outlasted): a re-grant moves the wake-up to its own end instead of
// leaving one at the end it superseded.
func (s *pairState) wakeAfter(t int64, lc LimitsConfig) int64 {
	w := int64(none)
	see := func(v int64) {
		if v > t && v != never && (w == none || v < w) {
			w = v
		}
	}
	for i := range s.grants {
		start, end, _, ok := s.span(&s.grants[i])
		if !ok || s.revokedIn(start, t) {
			continue // never covers again
		}
		see(start)
		if !s.outlasted(end) {
			see(end)
		}
	}
	for _, r := range s.revs {
		see(r.eff)
	}
	for _, a := range s.act {
		see(a.at)
		switch a.kind {
		case actCallOut:
			see(a.at + int64(lc.CallWindow))
		case actRequest:
			see(a.at + int64(PendingTTL)) // the request lapses (pending_rules.go)
		}
	}
	return w
}

// summary is a pair's activity read as Meta counts it: each call or request
// once, by id, at its earliest report; a call reported both unanswered and
// connected counts as connected.
type summary struct {
	connectedOut []int64 // business calls picked up, ascending
	unanswered   []int64 // business calls not picked up, ascending
	requests     []int64 // permission requests sent, ascending
	connected    []int64 // connected calls, either direction, ascending
}

func (s *pairState) summarize() summary {
	var sum summary
	if len(s.act) == 0 {
		return sum
	}
	first := make(map[[2]string]int64, len(s.act))
	for _, a := range s.act { // ascending: the first seen is the earliest
		if _, ok := first[[2]string{a.kind, a.id}]; !ok {
			first[[2]string{a.kind, a.id}] = a.at
		}
	}
	for _, a := range s.act {
		if first[[2]string{a.kind, a.id}] != a.at {
			continue
		}
		switch a.kind {
		case actCallOut:
			sum.connectedOut = append(sum.connectedOut, a.at)
			sum.connected = append(sum.connected, a.at)
		case actCallIn:
			sum.connected = append(sum.connected, a.at)
		case actCallMissed:
			if _, picked := first[[2]string{actCallOut, a.id}]; !picked {
				sum.unanswered = append(sum.unanswered, a.at)
			}
		case actRequest, actRequestUsage:
			sum.requests = append(sum.requests, a.at)
		case actCallUsage:
			sum.connectedOut = append(sum.connectedOut, a.at) // a call slot, not a connection
		}
	}
	return sum
}

// latestAtOrBefore is the last element of an ascending list <= t, or none.
func latestAtOrBefore(ts []int64, t int64) int64 {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i] <= t {
			return ts[i]
		}
	}
	return none
}

// budget computes the pair's call and request budget at t. Windows are
// rolling: an event at a counts while t < a + window. Request windows
// restart at the last connected call; the unanswered streak at the later
// of that call and the last revocation.
func (s *pairState) budget(t int64, c LimitsConfig) Limits {
	var l Limits
	sum := s.summarize()
	reset := latestAtOrBefore(sum.connected, t)
	streakFrom := reset
	if r, ok := s.lastRevocation(t); ok && r.at > streakFrom {
		streakFrom = r.at
	}
	var calls, dayReqs, weekReqs []int64
	for _, at := range sum.connectedOut {
		if at <= t && t-at < int64(c.CallWindow) {
			calls = append(calls, at)
		}
	}
	for _, at := range sum.unanswered {
		if at > streakFrom && at <= t {
			l.UnansweredStreak++
		}
	}
	for _, at := range sum.requests {
		if at <= reset || at > t {
			continue
		}
		if t-at < int64(week) {
			weekReqs = append(weekReqs, at)
		}
		if t-at < int64(day) {
			dayReqs = append(dayReqs, at)
		}
	}
	l.CallsLeft = max(0, c.CallsPerWindow-len(calls))
	if l.CallsLeft == 0 {
		// The slot that frees first belongs to the call that makes the
		// count exceed the cap once it leaves the window.
		l.CallsFreeAt = fromNs(calls[len(calls)-c.CallsPerWindow] + int64(c.CallWindow))
	}
	l.CallsBeforeRevoke = max(0, c.UnansweredRevoke-l.UnansweredStreak)
	if l.UnansweredStreak >= c.UnansweredWarning {
		l.Warning = streakWarning(l.UnansweredStreak, l.CallsBeforeRevoke)
	}
	dayLeft := max(0, c.RequestsPerDay-len(dayReqs))
	weekLeft := max(0, c.RequestsPerWeek-len(weekReqs))
	l.RequestsLeft, l.RequestsLeftDay, l.RequestsLeftWeek = min(dayLeft, weekLeft), dayLeft, weekLeft
	var next int64 = none
	if dayLeft == 0 {
		next = dayReqs[len(dayReqs)-c.RequestsPerDay] + int64(day)
	}
	if weekLeft == 0 {
		next = max(next, weekReqs[len(weekReqs)-c.RequestsPerWeek]+int64(week))
	}
	if next != none {
		l.NextRequestAt = fromNs(next)
	}
	return l
}

func streakWarning(streak, left int) string {
	if left == 0 {
		return strconv.Itoa(streak) + " unanswered calls in a row: Meta revokes permission"
	}
	return strconv.Itoa(streak) + " unanswered in a row: " + strconv.Itoa(left) + " more will revoke permission"
}

// transition is the change from the entry last listed to the current one:
// none when they are equal. at is when the change took effect: the event's
// time, or for clock-caused changes the instant the clock reached. A new
// grant after a gap in which the pair was not callable is two changes: the
// end of the old entry (split reports it), then Granted.
func (s *pairState) transition(prev, cur listed, at int64) (ChangeType, int64, bool) {
	switch {
	case !prev.ok && cur.ok:
		return Granted, at, true
	case prev.ok && !cur.ok:
		if typ, end, ok := s.ending(prev); ok {
			return typ, end, true
		}
		return Revoked, at, true
	case prev.ok && cur.ok && prev != cur:
		if prev.kind == cur.kind && prev.source == cur.source && prev.granted == cur.granted && prev.expires == cur.expires &&
			prev.waID == cur.waID && prev.userID == cur.userID {
			return Updated, at, true
		}
		return Extended, at, true
	}
	return "", 0, false
}

// ending is how and when a listed entry stops: the first revocation within
// its span, else its expiry.
func (s *pairState) ending(l listed) (ChangeType, int64, bool) {
	for _, r := range s.revs {
		if r.at >= l.granted && r.eff < l.expires {
			return Revoked, r.eff, true
		}
	}
	if l.kind == Temporary && l.expires <= s.floor {
		return Expired, l.expires, true
	}
	// Neither revoked nor over: withdrawn (a callback setting that says the
	// call granted nothing), reported as a revocation when it happened.
	return "", 0, false
}

// split reports whether the entry last listed ended, by the floor, at an
// instant the pair was not callable, before cur took its place: then its
// end is a change of its own.
func (s *pairState) split(prev, cur listed, lc LimitsConfig) (ChangeType, int64, bool) {
	if !prev.ok || !cur.ok || (prev.granted == cur.granted && prev.expires == cur.expires && prev.source == cur.source) {
		return "", 0, false
	}
	typ, end, ok := s.ending(prev)
	if !ok || end > s.floor || s.entryAt(end, lc).ok {
		return "", 0, false
	}
	return typ, end, true
}

func (l listed) entry(k store.Key) Entry {
	e := Entry{Channel: k.Channel, Contact: k.Contact, Kind: l.kind, Source: l.source,
		GrantedAt: fromNs(l.granted), CallsLeft: l.callsLeft, UnansweredStreak: l.streak, WaID: l.waID, UserID: l.userID}
	if l.kind == Temporary {
		e.ExpiresAt = fromNs(l.expires)
	}
	e.Unconfirmed = e.Source == SourceInboundCall
	return e
}

func fromNs(n int64) time.Time {
	if n == none {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func toNs(t time.Time) int64 {
	if t.IsZero() {
		return none
	}
	return t.UnixNano()
}
