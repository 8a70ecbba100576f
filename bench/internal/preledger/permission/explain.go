package permission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
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
)

// Evidence is one recorded event behind an explanation.
type Evidence struct {
	What      string    // "temporary grant", "permanent grant" or "revocation"
	At        time.Time // the event's time
	ExpiresAt time.Time // temporary grants only
	Source    Source    // grants only
	Reason    RevokeReason
	EventID   string // Meta's id, when known
}

// Explanation says whether one contact is callable at an instant, and why.
type Explanation struct {
	Channel  string
	Contact  string
	At       time.Time // the instant explained
	Callable bool
	Status   Status
	// Since is when the status began: the grant, the revocation, or the
	// expiry. Zero for StatusNeverGranted.
	Since time.Time
	// Entry is the callable entry, when Callable.
	Entry Entry
	// Reason is the status in one sentence, for people.
	Reason string
	// Evidence lists the recorded grants and revocation the status rests on,
	// oldest first.
	Evidence []Evidence
	// Limits is the call and request budget at At (see Limits).
	Limits Limits
}

// Explain reads one pair's state from the store and explains it at now (the
// tracker's clock when now is zero).
func (t *Tracker) Explain(ctx context.Context, channel, contact string, now time.Time) (Explanation, error) {
	if channel == "" || contact == "" {
		return Explanation{}, errors.New("permission: Explain needs a channel and a contact")
	}
	if now.IsZero() {
		now = t.clock.Now()
	}
	k := store.Key{Channel: channel, Contact: contact}
	s, err := t.store.Get(ctx, k)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Explanation{}, err
	}
	return explain(k, &s, now.UTC(), t.cfg.Limits), nil
}

func explain(k store.Key, s *store.State, now time.Time, lc LimitsConfig) Explanation {
	x := Explanation{Channel: k.Channel, Contact: k.Contact, At: now, Limits: limitsAt(s, now, lc)}
	for _, g := range []struct {
		what string
		g    store.Grant
	}{{"temporary grant", s.Temporary}, {"permanent grant", s.Permanent}} {
		if !g.g.At.IsZero() {
			x.Evidence = append(x.Evidence, Evidence{What: g.what, At: g.g.At, ExpiresAt: g.g.ExpiresAt, Source: Source(g.g.Source), EventID: g.g.EventID})
		}
	}
	if r := s.Revoked; !r.At.IsZero() {
		x.Evidence = append(x.Evidence, Evidence{What: "revocation", At: r.At, Reason: RevokeReason(r.Reason), EventID: r.EventID})
	}
	sortEvidence(x.Evidence)

	if e, ok := entryAt(k, s, now); ok {
		x.Callable, x.Entry, x.Since = true, e, e.GrantedAt
		if e.Kind == Permanent {
			x.Status, x.Reason = StatusPermanent, fmt.Sprintf("permanent permission (%s) since %s", e.Source, stamp(e.GrantedAt))
		} else {
			x.Status, x.Reason = StatusTemporary, fmt.Sprintf("temporary permission (%s) granted %s, expires %s", e.Source, stamp(e.GrantedAt), stamp(e.ExpiresAt))
		}
		return x
	}
	latest := s.Temporary.At
	if s.Permanent.At.After(latest) {
		latest = s.Permanent.At
	}
	switch {
	case latest.IsZero() && s.Revoked.At.IsZero():
		x.Status, x.Reason = StatusNeverGranted, "no permission was ever granted: send a call permission request"
	case !s.Revoked.At.IsZero() && !s.Revoked.At.Before(latest):
		x.Since = s.Revoked.At
		switch RevokeReason(s.Revoked.Reason) {
		case RevokeProfile:
			x.Status, x.Reason = StatusRevokedProfile, "the user switched calls off from the business profile at "+stamp(s.Revoked.At)
		case RevokeAutomatic:
			x.Status, x.Reason = StatusRevokedAutomatic, "Meta revoked permission after unanswered calls at "+stamp(s.Revoked.At)
		default:
			x.Status, x.Reason = StatusRejected, "the user rejected the permission request at "+stamp(s.Revoked.At)
		}
	default:
		x.Status, x.Since = StatusExpired, s.Temporary.ExpiresAt
		x.Reason = "temporary permission expired at " + stamp(s.Temporary.ExpiresAt)
	}
	return x
}

func sortEvidence(ev []Evidence) {
	slices.SortStableFunc(ev, func(a, b Evidence) int { return a.At.Compare(b.At) })
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
