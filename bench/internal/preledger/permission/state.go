package permission

import (
	"cmp"
	"slices"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
)

// The merge rules. A pair's state keeps three slots, each merged by "the
// newer event wins" with total tie-breakers, plus a set of recent activity:
//
//   - the latest temporary grant (time, expiry, source),
//   - the latest permanent grant,
//   - the latest revocation.
//
// Every slot is a join (max) over a total order, so the state after any set
// of events is the same whatever the order and however often each repeats.
// Callability at an instant is then a pure function of the state and that
// instant (entryAt). A revocation ends every grant not newer than itself;
// on equal times the revocation wins, since calling without permission
// costs more than waiting for the next grant.

// Activity kinds kept in store.State.Activity.
const (
	actRequest      = "request"        // permission request sent by the business
	actCallOut      = "call_connected" // business-initiated call picked up
	actCallMissed   = "call_unanswered"
	actCallIn       = "call_in_connected" // user-initiated call picked up
	activityHorizon = 8 * 24 * time.Hour  // longest window kept (7 d) plus slack
)

var sourceRank = map[string]int{
	string(SourceInboundCall): 1, string(SourceRequest): 2, string(SourceCallback): 3, string(SourceProfile): 4,
}

var reasonRank = map[string]int{
	string(RevokeRejected): 1, string(RevokeProfile): 2, string(RevokeAutomatic): 3,
}

// compareGrant orders grants: time, then expiry, then source, then id.
func compareGrant(a, b store.Grant) int {
	return cmp.Or(
		a.At.Compare(b.At),
		a.ExpiresAt.Compare(b.ExpiresAt),
		cmp.Compare(sourceRank[a.Source], sourceRank[b.Source]),
		cmp.Compare(a.Source, b.Source),
		cmp.Compare(a.EventID, b.EventID),
	)
}

func compareRevocation(a, b store.Revocation) int {
	return cmp.Or(
		a.At.Compare(b.At),
		cmp.Compare(reasonRank[a.Reason], reasonRank[b.Reason]),
		cmp.Compare(a.Reason, b.Reason),
		cmp.Compare(a.EventID, b.EventID),
	)
}

func compareActivity(a, b store.Activity) int {
	return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
}

// merge folds one validated event into s and reports whether s changed.
// callbacks says whether an inbound call grants callback permission.
func merge(s *store.State, e Event, ttl time.Duration, callbacks bool) bool {
	switch e.Type {
	case EventGrant:
		g := store.Grant{At: e.At, Source: string(e.Source), EventID: e.ID}
		if e.Permanent {
			return mergeGrant(&s.Permanent, g)
		}
		g.ExpiresAt = e.ExpiresAt
		return mergeGrant(&s.Temporary, g)
	case EventRevoke:
		r := store.Revocation{At: e.At, Reason: string(e.Reason), EventID: e.ID}
		if compareRevocation(r, s.Revoked) > 0 {
			s.Revoked = r
			return true
		}
		return false
	case EventInboundCall:
		changed := false
		if callbacks {
			g := store.Grant{At: e.At, ExpiresAt: e.At.Add(ttl), Source: string(SourceInboundCall), EventID: e.ID}
			changed = mergeGrant(&s.Temporary, g)
		}
		if e.Connected {
			changed = mergeActivity(s, store.Activity{Kind: actCallIn, ID: e.ID, At: e.At}) || changed
		}
		return changed
	case EventRequestSent:
		return mergeActivity(s, store.Activity{Kind: actRequest, ID: e.ID, At: e.At})
	case EventBusinessCall:
		kind := actCallMissed
		if e.Connected {
			kind = actCallOut
		}
		return mergeActivity(s, store.Activity{Kind: kind, ID: e.ID, At: e.At})
	}
	return false
}

func mergeGrant(slot *store.Grant, g store.Grant) bool {
	if compareGrant(g, *slot) > 0 {
		*slot = g
		return true
	}
	return false
}

// mergeActivity adds a to the set of (kind, id, time) triples, keeping it
// sorted and trimmed to the horizon behind its newest element. The final
// set is exactly the events within the horizon of the newest one, whatever
// the order, because the trim threshold only moves forward. Rules that
// relate triples (one call seen as both unanswered and connected) are
// applied when reading (see summarize), never here.
func mergeActivity(s *store.State, a store.Activity) bool {
	i, found := slices.BinarySearchFunc(s.Activity, a, compareActivity)
	if found {
		return false
	}
	if n := len(s.Activity); n > 0 && a.At.Before(s.Activity[n-1].At.Add(-activityHorizon)) {
		return false
	}
	s.Activity = slices.Insert(s.Activity, i, a)
	cut := s.Activity[len(s.Activity)-1].At.Add(-activityHorizon)
	drop := 0
	for drop < len(s.Activity) && s.Activity[drop].At.Before(cut) {
		drop++
	}
	s.Activity = slices.Delete(s.Activity, 0, drop)
	return true
}

// summary is a pair's activity read as Meta counts it: each call or
// request once, by id, at its earliest report; a call reported both
// unanswered and connected (a status, then a terminate) counts as connected.
type summary struct {
	connectedOut []time.Time // business calls picked up, ascending
	unanswered   []time.Time // business calls not picked up, ascending
	requests     []time.Time // permission requests sent, ascending
	connected    []time.Time // connected calls, either direction, ascending
}

// lastConnected is the newest connected call at or before now (any, when
// now is zero): request windows and the unanswered streak restart there.
func (sum summary) lastConnected(now time.Time) time.Time {
	for i := len(sum.connected) - 1; i >= 0; i-- {
		if now.IsZero() || !sum.connected[i].After(now) {
			return sum.connected[i]
		}
	}
	return time.Time{}
}

func summarize(s *store.State) summary {
	var sum summary
	if len(s.Activity) == 0 {
		return sum // the common case: no allocation
	}
	first := make(map[[2]string]time.Time, len(s.Activity))
	for _, a := range s.Activity { // ascending: the first seen is the earliest
		k := [2]string{a.Kind, a.ID}
		if _, ok := first[k]; !ok {
			first[k] = a.At
		}
	}
	for _, a := range s.Activity {
		if first[[2]string{a.Kind, a.ID}] != a.At {
			continue
		}
		switch a.Kind {
		case actCallOut:
			sum.connectedOut = append(sum.connectedOut, a.At)
			sum.connected = append(sum.connected, a.At)
		case actCallIn:
			sum.connected = append(sum.connected, a.At)
		case actCallMissed:
			if _, picked := first[[2]string{actCallOut, a.ID}]; !picked {
				sum.unanswered = append(sum.unanswered, a.At)
			}
		case actRequest:
			sum.requests = append(sum.requests, a.At)
		}
	}
	return sum
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// entryAt returns the callable entry of s at now, if any. A permanent grant
// newer than the last revocation wins over a temporary one.
func entryAt(k store.Key, s *store.State, now time.Time) (Entry, bool) {
	rev := s.Revoked.At
	if p := s.Permanent; !p.At.IsZero() && p.At.After(rev) {
		return Entry{Channel: k.Channel, Contact: k.Contact, Kind: Permanent, Source: Source(p.Source), GrantedAt: p.At}, true
	}
	if t := s.Temporary; !t.At.IsZero() && t.At.After(rev) && now.Before(t.ExpiresAt) {
		return Entry{Channel: k.Channel, Contact: k.Contact, Kind: Temporary, Source: Source(t.Source), GrantedAt: t.At, ExpiresAt: t.ExpiresAt}, true
	}
	return Entry{}, false
}

// pendingExpiry reports whether s holds a temporary entry that has reached
// its expiry at now but whose expiry is not yet in the change log.
func pendingExpiry(k store.Key, s *store.State, now time.Time) (Entry, bool) {
	t := s.Temporary
	if t.At.IsZero() || now.Before(t.ExpiresAt) || t.ExpiresAt.Equal(s.ExpiryNoted) {
		return Entry{}, false
	}
	// Was it the callable entry just before it expired?
	e, ok := entryAt(k, s, t.ExpiresAt.Add(-time.Nanosecond))
	if !ok || e.Kind != Temporary {
		return Entry{}, false
	}
	return e, true
}

// transition computes the changes between the entries of before and after
// at now (after any pending expiry of before has been taken out).
func transition(before, after Entry, hadBefore, hasAfter bool, s *store.State, at time.Time) (Change, bool) {
	switch {
	case !hadBefore && hasAfter:
		return Change{Type: Granted, At: at, Entry: after}, true
	case hadBefore && !hasAfter:
		typ := Revoked
		if s.Revoked.At.Before(before.GrantedAt) {
			typ = Expired // replaced by a newer grant that is already over
		}
		return Change{Type: typ, At: at, Entry: before}, true
	case hadBefore && hasAfter && before != after:
		return Change{Type: Extended, At: at, Entry: after}, true
	}
	return Change{}, false
}
