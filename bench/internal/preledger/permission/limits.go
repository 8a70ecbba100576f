package permission

import (
	"context"
	"strconv"
	"time"

	"github.com/callready/callready/bench/internal/preledger/store"
)

// LimitsConfig holds Meta's caps per (channel, contact). Meta changes these
// numbers over time; zero fields take today's values.
type LimitsConfig struct {
	// CallsPerWindow caps connected business-initiated calls per
	// CallWindow. Default 100 (it was 5 until 2025-10-12, 10 until 2025-12-18).
	CallsPerWindow int
	// CallWindow is the rolling window of CallsPerWindow. Default 24 h.
	CallWindow time.Duration
	// RequestsPerDay caps permission requests per rolling 24 h. Default 1.
	RequestsPerDay int
	// RequestsPerWeek caps permission requests per rolling 7 days. Default 2.
	// Both request windows restart after any connected call between the pair.
	RequestsPerWeek int
	// UnansweredWarning is the unanswered-call streak at which Meta asks the
	// user to reconsider. Default 2.
	UnansweredWarning int
	// UnansweredRevoke is the streak at which Meta revokes permission.
	// Default 4.
	UnansweredRevoke int
}

func (c LimitsConfig) withDefaults() LimitsConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.CallsPerWindow, 100)
	def(&c.RequestsPerDay, 1)
	def(&c.RequestsPerWeek, 2)
	def(&c.UnansweredWarning, 2)
	def(&c.UnansweredRevoke, 4)
	if c.CallWindow <= 0 {
		c.CallWindow = 24 * time.Hour
	}
	return c
}

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Limits is a pair's call and request budget at an instant.
type Limits struct {
	// CallsLeft is how many more business-initiated calls may connect in
	// the current window.
	CallsLeft int
	// CallsFreeAt is when the next call slot frees up, if CallsLeft is 0.
	CallsFreeAt time.Time
	// UnansweredStreak counts unanswered or rejected business calls since
	// the last connected call.
	UnansweredStreak int
	// CallsBeforeRevoke is how many more unanswered calls make Meta revoke
	// permission (UnansweredRevoke - UnansweredStreak, at least 0).
	CallsBeforeRevoke int
	// Warning is set once the streak reaches UnansweredWarning.
	Warning string
	// RequestsLeft is how many permission requests may be sent now: the
	// smaller of RequestsLeftDay and RequestsLeftWeek.
	RequestsLeft     int
	RequestsLeftDay  int // left in the rolling 24 h window
	RequestsLeftWeek int // left in the rolling 7 d window
	// NextRequestAt is when a request is possible again, if RequestsLeft is 0.
	NextRequestAt time.Time
}

// Reason explains a Decision.
type Reason string

const (
	ReasonAllowed          Reason = "allowed"
	ReasonNoPermission     Reason = "no_permission"     // never granted (Meta 138006)
	ReasonExpired          Reason = "expired"           // the temporary permission ran out (Meta 138006)
	ReasonRevoked          Reason = "revoked"           // rejected, switched off or revoked automatically (Meta 138006)
	ReasonCallLimit        Reason = "call_limit"        // connected-call cap of the window reached (Meta 138012)
	ReasonRequestLimitDay  Reason = "request_limit_24h" // request cap per 24 h reached (Meta 138009)
	ReasonRequestLimitWeek Reason = "request_limit_7d"  // request cap per 7 days reached (Meta 138009)
	ReasonPermanentHeld    Reason = "permanent_granted" // a permanent permission exists: no request needed (Meta 138017)
)

// MetaErrorReason maps a Meta Cloud API error code about calling to the
// Reason callready uses for it, so a host that gets one back from Meta can
// show the same reason as a local decision.
func MetaErrorReason(code int) (Reason, bool) {
	switch code {
	case 138006:
		return ReasonNoPermission, true
	case 138009:
		return ReasonRequestLimitDay, true
	case 138012:
		return ReasonCallLimit, true
	case 138017:
		return ReasonPermanentHeld, true
	}
	return "", false
}

// Decision answers "may we do this now?".
type Decision struct {
	Allowed bool
	Reason  Reason
	// RetryAt is when it becomes possible, when that is knowable (a window
	// frees up); zero otherwise (a permission must be granted first).
	RetryAt time.Time
	// Limits is the budget the decision was made on.
	Limits Limits
}

// CanCall decides whether the business may call the contact at now (the
// tracker's clock when zero): a permission must be held and the call cap
// must leave a call.
func (t *Tracker) CanCall(ctx context.Context, channel, contact string, now time.Time) (Decision, error) {
	x, err := t.Explain(ctx, channel, contact, now)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Limits: x.Limits}
	switch {
	case !x.Callable:
		d.Reason = statusReason(x.Status)
	case x.Limits.CallsLeft == 0:
		d.Reason, d.RetryAt = ReasonCallLimit, x.Limits.CallsFreeAt
		if x.Entry.Kind == Temporary && !d.RetryAt.Before(x.Entry.ExpiresAt) {
			d.RetryAt = time.Time{} // the permission ends before a slot frees up
		}
	default:
		d.Allowed, d.Reason = true, ReasonAllowed
	}
	return d, nil
}

// CanRequest decides whether the business may send a call permission
// request to the contact at now (the tracker's clock when zero).
func (t *Tracker) CanRequest(ctx context.Context, channel, contact string, now time.Time) (Decision, error) {
	x, err := t.Explain(ctx, channel, contact, now)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Limits: x.Limits}
	switch {
	case x.Callable && x.Entry.Kind == Permanent:
		d.Reason = ReasonPermanentHeld
	case x.Limits.RequestsLeft == 0:
		d.Reason, d.RetryAt = ReasonRequestLimitWeek, x.Limits.NextRequestAt
		if x.Limits.RequestsLeftDay == 0 {
			d.Reason = ReasonRequestLimitDay
		}
	default:
		d.Allowed, d.Reason = true, ReasonAllowed
	}
	return d, nil
}

func statusReason(s Status) Reason {
	switch s {
	case StatusExpired:
		return ReasonExpired
	case StatusRejected, StatusRevokedAutomatic, StatusRevokedProfile:
		return ReasonRevoked
	}
	return ReasonNoPermission
}

// limitsAt computes a pair's budget at now from its activity. Windows are
// rolling: an event at T counts while now < T + window. Request windows and
// the unanswered streak restart at the last connected call.
func limitsAt(s *store.State, now time.Time, c LimitsConfig) Limits {
	var l Limits
	sum := summarize(s)
	reset := sum.lastConnected(now)
	var calls, dayReqs, weekReqs []time.Time
	for _, at := range sum.connectedOut {
		if !at.After(now) && now.Sub(at) < c.CallWindow {
			calls = append(calls, at)
		}
	}
	for _, at := range sum.unanswered {
		if at.After(reset) && !at.After(now) {
			l.UnansweredStreak++
		}
	}
	for _, at := range sum.requests {
		if !at.After(reset) || at.After(now) {
			continue
		}
		if now.Sub(at) < week {
			weekReqs = append(weekReqs, at)
		}
		if now.Sub(at) < day {
			dayReqs = append(dayReqs, at)
		}
	}
	l.CallsLeft = max(0, c.CallsPerWindow-len(calls))
	if l.CallsLeft == 0 {
		// The slot that frees first belongs to the call that makes the
		// count exceed the cap once it leaves the window.
		l.CallsFreeAt = calls[len(calls)-c.CallsPerWindow].Add(c.CallWindow)
	}
	l.CallsBeforeRevoke = max(0, c.UnansweredRevoke-l.UnansweredStreak)
	if l.UnansweredStreak >= c.UnansweredWarning {
		l.Warning = streakWarning(l.UnansweredStreak, l.CallsBeforeRevoke)
	}
	dayLeft := max(0, c.RequestsPerDay-len(dayReqs))
	weekLeft := max(0, c.RequestsPerWeek-len(weekReqs))
	l.RequestsLeft, l.RequestsLeftDay, l.RequestsLeftWeek = min(dayLeft, weekLeft), dayLeft, weekLeft
	if dayLeft == 0 {
		l.NextRequestAt = dayReqs[len(dayReqs)-c.RequestsPerDay].Add(day)
	}
	if weekLeft == 0 {
		if at := weekReqs[len(weekReqs)-c.RequestsPerWeek].Add(week); at.After(l.NextRequestAt) {
			l.NextRequestAt = at
		}
	}
	return l
}

func streakWarning(streak, left int) string {
	if left == 0 {
		return strconv.Itoa(streak) + " unanswered calls in a row: Meta revokes permission"
	}
	return strconv.Itoa(streak) + " unanswered in a row: " + strconv.Itoa(left) + " more will revoke permission"
}

// pairActivity is the part of a pair's activity the index keeps with its
// entry, so listings can show calls left and the streak in O(1) per entry.
type pairActivity struct {
	calls  []int64 // connected business calls (unix ns), newest CallsPerWindow only
	streak int
}

func activityOf(s *store.State, c LimitsConfig) *pairActivity {
	var a pairActivity
	sum := summarize(s)
	for _, at := range sum.connectedOut {
		a.calls = append(a.calls, at.UnixNano())
	}
	for _, at := range sum.unanswered {
		if at.After(sum.lastConnected(time.Time{})) {
			a.streak++
		}
	}
	if len(a.calls) == 0 && a.streak == 0 {
		return nil
	}
	if n := len(a.calls); n > c.CallsPerWindow {
		a.calls = a.calls[n-c.CallsPerWindow:]
	}
	return &a
}

// callsLeft counts the free call slots at now.
func (a *pairActivity) callsLeft(now int64, c LimitsConfig) int {
	if a == nil {
		return c.CallsPerWindow
	}
	used := 0
	for _, t := range a.calls {
		if t <= now && now-t < int64(c.CallWindow) {
			used++
		}
	}
	return max(0, c.CallsPerWindow-used)
}
