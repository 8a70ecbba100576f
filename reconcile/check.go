package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/permission"
)

// DriftKind names a disagreement between the tracker and Meta.
type DriftKind string

const (
	// MissedAccept: Meta says the user holds a permission the tracker does
	// not list (an accept webhook never arrived). Recorded as a grant with
	// Source permission.SourceReconcile and Meta's expiry (or permanent).
	MissedAccept DriftKind = "missed_accept"
	// MissedRevoke: Meta says no permission while the tracker lists one (a
	// reject, profile switch-off or automatic revoke was missed). Recorded
	// as a revocation with Reason permission.RevokeReconciled.
	MissedRevoke DriftKind = "missed_revoke"
	// WrongExpiry: both say temporary (or Meta temporary, the tracker
	// permanent) but the expiries differ by more than
	// Config.ExpiryTolerance. See CheckContact for what is recorded.
	WrongExpiry DriftKind = "wrong_expiry"
	// MetaPermanent: Meta says permanent, the tracker temporary. Recorded
	// as a permanent grant.
	MetaPermanent DriftKind = "meta_permanent"
	// ConfirmedCallback: the tracker listed a callback grant derived from
	// the user's call alone (unconfirmed) and Meta confirms it. Recorded
	// as a grant with Meta's expiry, so the entry is no longer
	// unconfirmed. Not a disagreement, but a correction of the list.
	ConfirmedCallback DriftKind = "confirmed_callback"
	// RequestBudget: Meta's usage of the permission request limits (24 h
	// or 7 d) leaves a different number of requests than the tracker's
	// Limits (requests sent by another tool, or not recorded). When Meta
	// counts more, the difference is recorded as usage (see usageEvents).
	RequestBudget DriftKind = "request_budget"
	// CallBudget: Meta's start_call usage leaves a different number of
	// calls than the tracker's Limits.CallsLeft; recorded as usage when
	// Meta counts more.
	CallBudget DriftKind = "call_budget"
)

// DriftKinds lists every kind, for metrics that show zeros.
var DriftKinds = []DriftKind{MissedAccept, MissedRevoke, WrongExpiry, MetaPermanent, ConfirmedCallback, RequestBudget, CallBudget}

// Drift is one disagreement a check found.
type Drift struct {
	Kind DriftKind `json:"kind"`
	// Detail says it for people.
	Detail string `json:"detail"`
	// Budget is set for RequestBudget and CallBudget.
	Budget *Budget `json:"budget,omitempty"`
}

// Budget compares one limit window of Meta's with the tracker's.
type Budget struct {
	Action       string    `json:"action"` // cloudapi.ActionSendCallPermissionRequest or ActionStartCall
	TimePeriod   string    `json:"time_period"`
	MaxAllowed   int       `json:"max_allowed"`
	CurrentUsage int       `json:"current_usage"`
	MetaLeft     int       `json:"meta_left"`
	OursLeft     int       `json:"ours_left"`
	FreeAt       time.Time `json:"limit_expiration_time,omitzero"` // Meta's limit_expiration_time
}

// State is one side's view of the permission.
type State struct {
	Callable bool `json:"callable"`
	// Kind is permission.Temporary or permission.Permanent when callable.
	Kind      permission.Kind `json:"kind,omitempty"`
	ExpiresAt time.Time       `json:"expires_at,omitzero"`
	// Status is the tracker's permission.Status, or Meta's
	// permission.status ("no_permission", "temporary", "permanent").
	Status string `json:"status"`
}

// Result is what one check found and did.
type Result struct {
	Channel string `json:"channel"`
	Contact string `json:"contact"`
	// CheckedAt is when Meta was asked: the time of the events recorded.
	CheckedAt time.Time `json:"checked_at"`
	Meta      State     `json:"meta"`
	// Before and After are the tracker's view before and after the
	// corrections (equal when nothing was recorded).
	Before State `json:"before"`
	After  State `json:"after"`
	// Drift lists the disagreements, empty when Meta agrees.
	Drift []Drift `json:"drift"`
	// Recorded are the events recorded to correct the tracker, and Changes
	// what they changed in the callable list.
	Recorded []permission.Event  `json:"-"`
	Changes  []permission.Change `json:"-"`
}

// CheckContact asks Meta (within the rate) about one contact of channel
// and records each disagreement with Origin permission.OriginReconcile,
// all at the instant Meta was asked (T):
//
//   - missed accept: a grant at T with Meta's expiry, or permanent;
//   - missed revoke (Meta: no permission, or a temporary one already
//     over): a revocation at T, Reason permission.RevokeReconciled;
//   - Meta permanent, ours temporary: a permanent grant at T;
//   - wrong expiry, Meta's later: a grant at T with Meta's expiry (the
//     tracker shows the covering grant that lasts longest, so it replaces
//     ours);
//   - wrong expiry, Meta's earlier (or Meta temporary, ours permanent): a
//     longer grant cannot be shortened by another grant, so a revocation
//     at T-1ns ends ours and a grant at T with Meta's expiry follows it.
//     The contact stays callable, shows Meta's expiry and lapses as
//     expired at it. A revocation also restarts the tracker's unanswered
//     streak: the streak is lost with the wrong grant (Meta's own streak
//     keeps counting and its automatic revoke still arrives by webhook).
//     A grant of ours stamped exactly at T is not ended: T is the clock's
//     instant of the check, after our listing;
//   - an unconfirmed callback grant Meta confirms: a grant at T with the
//     later of Meta's and our expiry, which covers the entry and confirms
//     it.
//
// Meta's request and call limits are compared with the tracker's Limits
// and reported as RequestBudget and CallBudget drift. Where Meta counts
// more use than we do, the difference is recorded as usage (see
// usageEvents), so the tracker's budget is corrected; where it counts less,
// nothing is recorded (ours errs toward not sending and not calling).
//
// An error from Meta is returned unrecorded (a rate limit beyond the
// client's retries is counted in Stats.RateLimited).
func (r *Reconciler) CheckContact(ctx context.Context, channel, contact string) (Result, error) {
	if channel == "" || contact == "" {
		return Result{}, fmt.Errorf("%w: channel and contact are required", ErrInvalidConfig)
	}
	// One check of a pair at a time: two at once (a round and a click)
	// would both see the drift and record the correction twice.
	unlock, err := r.pairs.lock(ctx, channel+"\x00"+contact)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if err := r.limiter.wait(ctx); err != nil {
		return Result{}, err
	}
	at := r.clk.Now()
	p, err := r.cfg.API.CallPermissions(ctx, channel, recipient(contact))
	if err != nil {
		r.count(func(s *Stats) {
			s.Errors++
			if rateLimited(err) {
				s.RateLimited++
			}
		})
		return Result{}, fmt.Errorf("reconcile: asking Meta about %s on %s: %w", contact, channel, err)
	}
	// Our view at T, read after Meta answered: webhooks that arrived
	// meanwhile count.
	ex, err := r.cfg.Tracker.Explain(ctx, channel, contact, at)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: explaining %s on %s: %w", contact, channel, err)
	}
	res := Result{Channel: channel, Contact: contact, CheckedAt: at, Meta: metaState(p, at), Before: ours(ex)}
	res.Drift, res.Recorded = r.compare(channel, contact, at, res.Meta, ex)
	budget := budgetDrift(p, ex.Limits)
	res.Drift = append(res.Drift, budget...)
	res.Recorded = append(res.Recorded, usageEvents(channel, contact, at, budget)...)
	res.After = res.Before
	if len(res.Recorded) > 0 {
		if res.Changes, err = r.cfg.Tracker.Record(ctx, res.Recorded...); err != nil {
			return Result{}, fmt.Errorf("reconcile: recording corrections for %s on %s: %w", contact, channel, err)
		}
		after, err := r.cfg.Tracker.Explain(ctx, channel, contact, at)
		if err != nil {
			return Result{}, fmt.Errorf("reconcile: explaining %s on %s: %w", contact, channel, err)
		}
		res.After = ours(after)
	}
	r.count(func(s *Stats) {
		s.Checks++
		for _, d := range res.Drift {
			s.Drift[d.Kind]++
		}
	})
	if len(res.Drift) > 0 && r.cfg.OnResult != nil {
		r.cfg.OnResult(res)
	}
	return res, nil
}

func metaState(p cloudapi.Permissions, at time.Time) State {
	switch {
	case p.Status == cloudapi.StatusPermanent:
		return State{Callable: true, Kind: permission.Permanent, Status: string(p.Status)}
	case p.Status == cloudapi.StatusTemporary && (p.ExpiresAt.IsZero() || p.ExpiresAt.After(at)):
		return State{Callable: true, Kind: permission.Temporary, ExpiresAt: p.ExpiresAt, Status: string(p.Status)}
	}
	return State{Status: string(cloudapi.StatusNoPermission)}
}

func ours(ex permission.Explanation) State {
	s := State{Callable: ex.Callable, Status: string(ex.Status)}
	if ex.Callable {
		s.Kind, s.ExpiresAt = ex.Entry.Kind, ex.Entry.ExpiresAt
	}
	return s
}

// compare decides the drift between Meta's view and ours at at, and the
// events that correct it.
func (r *Reconciler) compare(channel, contact string, at time.Time, meta State, ex permission.Explanation) ([]Drift, []permission.Event) {
	base := permission.Event{Channel: channel, Contact: contact, At: at, Origin: permission.OriginReconcile}
	grant := func(permanent bool, expires time.Time) permission.Event {
		e := base
		e.Type, e.Source, e.Permanent = permission.EventGrant, permission.SourceReconcile, permanent
		if !permanent {
			e.ExpiresAt = expires
		}
		return e
	}
	revoke := func(at time.Time) permission.Event {
		e := base
		e.Type, e.Reason, e.At = permission.EventRevoke, permission.RevokeReconciled, at
		return e
	}
	our := ex.Entry
	switch {
	case !meta.Callable && !ex.Callable:
		return nil, nil
	case meta.Callable && !ex.Callable:
		d := Drift{Kind: MissedAccept, Detail: fmt.Sprintf("Meta says %s (we said %s)", describe(meta), ex.Status)}
		return []Drift{d}, []permission.Event{grant(meta.Kind == permission.Permanent, meta.ExpiresAt)}
	case !meta.Callable:
		d := Drift{Kind: MissedRevoke, Detail: fmt.Sprintf("Meta says no permission (we listed %s)", describe(ours(ex)))}
		return []Drift{d}, []permission.Event{revoke(at)}
	case meta.Kind == permission.Permanent && our.Kind != permission.Permanent:
		d := Drift{Kind: MetaPermanent, Detail: fmt.Sprintf("Meta says permanent (we listed temporary until %s)", our.ExpiresAt.Format(time.RFC3339))}
		return []Drift{d}, []permission.Event{grant(true, time.Time{})}
	case meta.Kind == permission.Permanent:
		return nil, nil // both permanent
	case meta.ExpiresAt.IsZero():
		// Meta says temporary without saying until when: nothing to compare.
		return nil, nil
	case our.Kind == permission.Permanent || our.ExpiresAt.Sub(meta.ExpiresAt) > r.cfg.ExpiryTolerance:
		d := Drift{Kind: WrongExpiry, Detail: fmt.Sprintf("Meta says temporary until %s (we listed %s)", meta.ExpiresAt.Format(time.RFC3339), describe(ours(ex)))}
		return []Drift{d}, []permission.Event{revoke(at.Add(-time.Nanosecond)), grant(false, meta.ExpiresAt)}
	case meta.ExpiresAt.Sub(our.ExpiresAt) > r.cfg.ExpiryTolerance:
		d := Drift{Kind: WrongExpiry, Detail: fmt.Sprintf("Meta says temporary until %s (we listed %s)", meta.ExpiresAt.Format(time.RFC3339), describe(ours(ex)))}
		return []Drift{d}, []permission.Event{grant(false, meta.ExpiresAt)}
	case our.Unconfirmed:
		d := Drift{Kind: ConfirmedCallback, Detail: "Meta confirms the callback permission of the user's call"}
		return []Drift{d}, []permission.Event{grant(false, later(meta.ExpiresAt, our.ExpiresAt))}
	}
	return nil, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func describe(s State) string {
	switch {
	case s.Kind == permission.Permanent:
		return "permanent"
	case s.ExpiresAt.IsZero():
		return "temporary"
	}
	return "temporary until " + s.ExpiresAt.Format(time.RFC3339)
}

// usageEvents are the corrections for the budget drift where Meta counts
// more use than the tracker: one event per use Meta counted beyond ours,
// with SourceReconcile (a request or a call that counts against the limit
// and does nothing else: no pending request, no limit reset, no streak),
// stamped at limit_expiration_time minus the window so that it leaves the
// tracker's window when it leaves Meta's; without limit_expiration_time at
// the check's instant, which can only keep it counted longer than Meta
// does. Windows are corrected shortest first, and a use recorded for one
// counts toward a longer window it falls in (a request Meta counted today
// is in its 7-day count too). Their ids are derived from the window and
// the count, so checking again before anything changes records nothing
// new.
func usageEvents(channel, contact string, at time.Time, drift []Drift) []permission.Event {
	type window struct {
		d      Drift
		period time.Duration
	}
	var ws []window
	for _, d := range drift {
		if b := d.Budget; b != nil && b.OursLeft > b.MetaLeft {
			if period, err := cloudapi.ParseISODuration(b.TimePeriod); err == nil && period > 0 {
				ws = append(ws, window{d, period})
			}
		}
	}
	slices.SortStableFunc(ws, func(a, b window) int { return cmp.Compare(a.period, b.period) })
	var out []permission.Event
	for _, w := range ws {
		b := w.d.Budget
		typ := permission.EventRequestSent
		if w.d.Kind == CallBudget {
			typ = permission.EventBusinessCall
		}
		missing := b.OursLeft - b.MetaLeft
		for _, e := range out {
			if e.Type == typ && at.Sub(e.At) < w.period {
				missing-- // recorded for a shorter window, inside this one
			}
		}
		stamp := at
		if !b.FreeAt.IsZero() && b.FreeAt.Add(-w.period).Before(at) {
			stamp = b.FreeAt.Add(-w.period)
		}
		for i := range max(0, missing) {
			out = append(out, permission.Event{
				Type: typ, Channel: channel, Contact: contact, At: stamp, Source: permission.SourceReconcile,
				Origin: permission.OriginReconcile,
				ID:     fmt.Sprintf("reconcile.%s.%s.%d.%d", b.Action, b.TimePeriod, stamp.Unix(), b.CurrentUsage-i),
			})
		}
	}
	return out
}

// budgetDrift compares Meta's limits with the tracker's budget.
func budgetDrift(p cloudapi.Permissions, l permission.Limits) []Drift {
	var out []Drift
	check := func(kind DriftKind, action, period string, ours int) {
		a, ok := p.Action(action)
		if !ok {
			return
		}
		for _, lim := range a.Limits {
			if lim.TimePeriod != period || lim.MaxAllowed <= 0 || lim.Remaining() == ours {
				continue
			}
			b := &Budget{Action: action, TimePeriod: period, MaxAllowed: lim.MaxAllowed, CurrentUsage: lim.CurrentUsage,
				MetaLeft: lim.Remaining(), OursLeft: ours, FreeAt: lim.ExpiresAt}
			out = append(out, Drift{Kind: kind, Budget: b,
				Detail: fmt.Sprintf("Meta counts %d of %d used in %s for %s: %d left, we count %d", lim.CurrentUsage, lim.MaxAllowed, period, action, b.MetaLeft, ours)})
		}
	}
	check(RequestBudget, cloudapi.ActionSendCallPermissionRequest, "PT24H", l.RequestsLeftDay)
	check(RequestBudget, cloudapi.ActionSendCallPermissionRequest, "P7D", l.RequestsLeftWeek)
	check(CallBudget, cloudapi.ActionStartCall, "PT24H", l.CallsLeft)
	return out
}
