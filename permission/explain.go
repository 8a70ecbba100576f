package permission

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callready/callready/store"
)

// Status is why a contact is or is not callable.
type Status string

const (
	StatusNeverGranted     Status = "never_granted"     // no grant ever seen
	StatusTemporary        Status = "temporary"         // callable until ExpiresAt
	StatusPermanent        Status = "permanent"         // callable until revoked
	StatusExpired          Status = "expired"           // the last temporary grant ran out
	StatusRejected         Status = "rejected"          // the user rejected a request
	StatusRevokedProfile   Status = "revoked_profile"   // switched off from the business profile
	StatusRevokedAutomatic Status = "revoked_automatic" // Meta revoked it after unanswered calls
	// StatusRevokedReconciled: Meta's call_permissions answer said no
	// permission, replacing what the ledger showed.
	StatusRevokedReconciled Status = "revoked_reconciled"
)

// Evidence is one recorded event behind an explanation: a ledger event.
type Evidence struct {
	What      string    // "temporary grant", "permanent grant", "callback grant", "inbound call" or "revocation"
	At        time.Time // the event's time
	ExpiresAt time.Time // temporary grants: until when the event grants
	Source    Source    // grants only
	Reason    RevokeReason
	EventID   string // Meta's id, when known
	Context   string // the message or call the event answers, when known
	Origin    Origin
	// RecordedAt is when the tracker recorded the event, and Revision the
	// pair's change-log revision once it was applied.
	RecordedAt time.Time
	Revision   int64
}

// Explanation says whether one contact is callable at an instant, and why.
type Explanation struct {
	Channel string
	Contact string
	At      time.Time // the instant explained
	// KnownAt, when set, is the instant the answer is limited to: only
	// events recorded by then count (what the tracker knew at KnownAt).
	KnownAt  time.Time
	Callable bool
	Status   Status
	// Since is when the status began: the grant, the revocation, or the
	// expiry. Zero for StatusNeverGranted.
	Since time.Time
	// Entry is the callable entry, when Callable.
	Entry Entry
	// Reason is the status in one sentence, for people.
	Reason string
	// Evidence lists the recorded events the status rests on, oldest
	// first: the grant that covers At (or the last one that ended) and the
	// revocation that ended it.
	Evidence []Evidence
	// Limits is the call and request budget at At (see Limits).
	Limits Limits
}

// ExplainOption refines a question to Explain, CanCall or CanRequest.
type ExplainOption func(*explainOptions)

type explainOptions struct{ knownAt time.Time }

// KnownAt limits the answer to what was recorded by t: "what did we know
// at t?" (did the agent who dialled at 14:05 see the revoke that arrived at
// 14:07?). Without it, every event recorded so far counts.
func KnownAt(t time.Time) ExplainOption {
	return func(o *explainOptions) { o.knownAt = t.UTC() }
}

// Explain answers "was the contact callable at now?" (the tracker's clock
// when now is zero) from the pair's ledger: every event with an event time
// up to now counts, or with KnownAt only those also recorded by then. It
// names the deciding events with their event and recorded times. Instants
// before the ledger's retention horizon fail with ErrBeyondRetention.
func (t *Tracker) Explain(ctx context.Context, channel, contact string, now time.Time, opts ...ExplainOption) (Explanation, error) {
	if channel == "" || contact == "" {
		return Explanation{}, errors.New("permission: Explain needs a channel and a contact")
	}
	if t.closed() {
		return Explanation{}, ErrClosed
	}
	var o explainOptions
	for _, opt := range opts {
		opt(&o)
	}
	clockNow := t.clock.Now()
	if now.IsZero() {
		now = clockNow
	}
	now = now.UTC()
	if err := t.checkHorizon(now, clockNow); err != nil {
		return Explanation{}, err
	}
	k, all, err := t.personLedger(ctx, channel, contact)
	if err != nil {
		return Explanation{}, err
	}
	evs := asOf(slices.Clone(all), now, o.knownAt)
	chEvs, err := ledgerOfPair(ctx, t.store, store.Key{Channel: channel})
	if err != nil {
		return Explanation{}, err
	}
	x := explain(k, evs, all, channelOf(asOf(chEvs, now, o.knownAt)), t.cfg.ConfirmedCallbacksOnly, now, t.cfg.Limits)
	x.KnownAt = o.knownAt
	return x, nil
}

// Person is a user of one channel as the tracker knows them: every
// identifier Meta showed together names the same person.
type Person struct {
	Channel string
	// Contact is the identifier the person is listed under: the newest
	// BSUID when one is known, else the newest phone number.
	Contact string
	// WaID and UserID are the newest phone number and BSUID (either may
	// be empty).
	WaID, UserID string
	// IDs are all the person's identifiers, sorted: old numbers and BSUIDs
	// stay resolvable.
	IDs []string
}

// Person resolves any identifier of a user (a phone number, with or
// without "+" and separators, a BSUID or a parent BSUID) to the person it
// names on channel. An identifier never seen is a person of its own.
func (t *Tracker) Person(ctx context.Context, channel, id string) (Person, error) {
	if t.closed() {
		return Person{}, ErrClosed
	}
	k, s, err := t.resolvePerson(ctx, channel, id)
	if err != nil {
		return Person{}, err
	}
	p := Person{Channel: channel, Contact: k.Contact}
	for _, x := range s.ids {
		p.IDs = append(p.IDs, x.id)
	}
	if len(p.IDs) == 0 {
		p.IDs = []string{k.Contact}
		s.addIdent(k.Contact, 0)
	}
	p.WaID, p.UserID = s.phoneAndUser()
	return p, nil
}

// resolvePerson follows an identifier to its person's record.
func (t *Tracker) resolvePerson(ctx context.Context, channel, id string) (store.Key, pairState, error) {
	k := store.Key{Channel: channel, Contact: NormalizeContact(id)}
	for range 2 {
		st, err := t.store.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return k, pairState{}, err
		}
		kind, s, alias, err := decodeRecord(st.Data, k.Contact)
		if err != nil {
			return k, pairState{}, fmt.Errorf("%s/%s: %w", k.Channel, k.Contact, err)
		}
		if kind == recordAlias {
			k.Contact = alias
			continue
		}
		return k, s, nil
	}
	return k, pairState{floor: none, wake: none}, nil
}

// personLedger resolves any identifier of a person to the person's
// contact and reads the ledger events of all the person's identifiers, in
// (At, Seq) order.
func (t *Tracker) personLedger(ctx context.Context, channel, contact string) (store.Key, []store.LedgerEvent, error) {
	k, s, err := t.resolvePerson(ctx, channel, contact)
	if err != nil {
		return k, nil, err
	}
	ids := []string{k.Contact}
	if len(s.ids) > 0 {
		ids = ids[:0]
		for _, x := range s.ids {
			ids = append(ids, x.id)
		}
	}
	var evs []store.LedgerEvent
	for _, id := range ids {
		more, err := ledgerOfPair(ctx, t.store, store.Key{Channel: channel, Contact: id})
		if err != nil {
			return k, nil, err
		}
		evs = append(evs, more...)
	}
	if len(ids) > 1 {
		slices.SortFunc(evs, ledgerOrder)
	}
	return k, evs, nil
}

// checkHorizon refuses instants the ledger no longer holds.
func (t *Tracker) checkHorizon(at, now time.Time) error {
	if h := t.horizon(now); !h.IsZero() && at.Before(h) {
		return fmt.Errorf("%w: %s is before %s (Config.LedgerRetention %s)", ErrBeyondRetention, stamp(at), stamp(h), t.cfg.LedgerRetention)
	}
	return nil
}

// asOf keeps the events in effect by at (an event time up to at, or for a
// revocation stamped ahead, recorded by at) and, when knownAt is set,
// recorded by knownAt.
func asOf(evs []store.LedgerEvent, at, knownAt time.Time) []store.LedgerEvent {
	return slices.DeleteFunc(evs, func(e store.LedgerEvent) bool {
		early := e.Type == store.LedgerRevoke && !e.RecordedAt.IsZero() && !e.RecordedAt.After(at)
		return (e.At.After(at) && !early) || (!knownAt.IsZero() && e.RecordedAt.After(knownAt))
	})
}

// explain is a pure function of a pair's events and an instant.
// Who the person is does not depend on the instant asked about: the
// identifiers come from all their events (ids), the facts from evs.
func explain(k store.Key, evs, ids []store.LedgerEvent, cb *channelState, confirmedOnly bool, now time.Time, lc LimitsConfig) Explanation {
	s := foldLedger(evs)
	for i := range ids {
		s.addIdent(ids[i].Key.Contact, ids[i].At.UnixNano())
		for _, a := range ids[i].Aliases {
			s.addIdent(a, ids[i].At.UnixNano())
		}
	}
	s.callbacks, s.confirmedOnly = cb, confirmedOnly
	t := now.UnixNano()
	x := Explanation{Channel: k.Channel, Contact: k.Contact, At: now, Limits: s.budget(t, lc)}
	var refs []int
	if g, ok := s.covering(t); ok {
		e := s.entryAt(t, lc).entry(k)
		x.Callable, x.Entry, x.Since = true, e, e.GrantedAt
		refs = g.refs
		if e.Kind == Permanent {
			x.Status, x.Reason = StatusPermanent, fmt.Sprintf("permanent permission (%s) since %s", e.Source, stamp(e.GrantedAt))
		} else {
			x.Status, x.Reason = StatusTemporary, fmt.Sprintf("temporary permission (%s) granted %s, expires %s", e.Source, stamp(e.GrantedAt), stamp(e.ExpiresAt))
		}
	} else {
		refs = x.ended(&s, t)
	}
	x.Evidence = evidence(evs, refs)
	return x
}

// ended sets the status of a pair not callable at t: the grant whose
// permission lasted latest, ended by a revocation or by its expiry; a
// revocation alone; or nothing at all. It returns the deciding events.
func (x *Explanation) ended(s *pairState, t int64) []int {
	var last *permit
	var lastEnd int64
	var by *revocation
	for i := range s.grants {
		g := &s.grants[i]
		start, end, _, ok := s.span(g)
		if !ok || start > t {
			continue
		}
		var rv *revocation
		for j := range s.revs {
			if r := &s.revs[j]; r.at >= start && r.eff <= t && r.eff < end {
				rv, end = r, r.eff
				break
			}
		}
		if last == nil || end > lastEnd || (end == lastEnd && rv != nil) {
			last, lastEnd, by = g, end, rv
		}
	}
	if last == nil {
		if r, ok := s.lastRevocation(t); ok {
			x.revoked(r)
			return r.refs
		}
		x.Status, x.Reason = StatusNeverGranted, "no permission was ever granted: send a call permission request"
		return nil
	}
	refs := slices.Clone(last.refs)
	if by != nil {
		x.revoked(by)
		return append(refs, by.refs...)
	}
	x.Status, x.Since = StatusExpired, fromNs(lastEnd)
	x.Reason = "temporary permission expired at " + stamp(x.Since)
	return refs
}

func (x *Explanation) revoked(r *revocation) {
	x.Since = fromNs(r.eff)
	switch r.reason {
	case RevokeProfile:
		x.Status, x.Reason = StatusRevokedProfile, "the user switched calls off from the business profile at "+stamp(x.Since)
	case RevokeAutomatic:
		x.Status, x.Reason = StatusRevokedAutomatic, "Meta revoked permission after unanswered calls at "+stamp(x.Since)
	case RevokeReconciled:
		x.Status, x.Reason = StatusRevokedReconciled, "Meta's call_permissions answer at "+stamp(x.Since)+" replaced ours: no permission"
	default:
		x.Status, x.Reason = StatusRejected, "the user rejected the permission request at "+stamp(x.Since)
	}
}

// evidence lists the ledger events refs names, oldest first, once each.
func evidence(evs []store.LedgerEvent, refs []int) []Evidence {
	slices.Sort(refs)
	refs = slices.Compact(refs)
	out := make([]Evidence, 0, len(refs))
	for _, i := range refs {
		e := &evs[i]
		ev := Evidence{At: e.At, ExpiresAt: e.ExpiresAt, Source: Source(e.Source), Reason: RevokeReason(e.Reason),
			EventID: e.ID, Context: e.Context, Origin: Origin(e.Origin), RecordedAt: e.RecordedAt, Revision: e.Revision}
		switch eventTypeByName[e.Type] {
		case EventRevoke:
			ev.What = "revocation"
		case EventInboundCall:
			ev.What = "inbound call"
		default:
			switch {
			case e.Permanent:
				ev.What = "permanent grant"
			case Source(e.Source) == SourceCallback:
				ev.What = "callback grant"
			default:
				ev.What = "temporary grant"
			}
		}
		out = append(out, ev)
	}
	// A total order, so the evidence does not depend on delivery order.
	slices.SortFunc(out, func(a, b Evidence) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.What, b.What), cmp.Compare(a.EventID, b.EventID),
			cmp.Compare(a.Context, b.Context), a.ExpiresAt.Compare(b.ExpiresAt), a.RecordedAt.Compare(b.RecordedAt))
	})
	return out
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
