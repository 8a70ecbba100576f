package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Status is a user's call permission as Meta sees it.
type Status string

const (
	StatusNoPermission Status = "no_permission"
	StatusTemporary    Status = "temporary"
	StatusPermanent    Status = "permanent"
)

// Action names in Permissions.Actions.
const (
	ActionSendCallPermissionRequest = "send_call_permission_request"
	ActionStartCall                 = "start_call"
)

// Permissions is Meta's answer to GET /<PHONE_NUMBER_ID>/call_permissions
// for one user (spec §5).
type Permissions struct {
	// Status is permission.status.
	Status Status
	// ExpiresAt is the temporary permission's end
	// (permission.expiration_time, or permission.expiration as some answers
	// spell it); zero when absent.
	ExpiresAt time.Time
	// Actions are the business's possible actions towards the user with
	// their limits, as Meta listed them.
	Actions []Action
}

// Action looks up an action by name (ActionSendCallPermissionRequest,
// ActionStartCall).
func (p Permissions) Action(name string) (Action, bool) {
	for _, a := range p.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}

// Action is one entry of actions[].
type Action struct {
	Name       string  // action_name
	CanPerform bool    // can_perform_action
	Limits     []Limit // limits[]
}

// Limit is one rolling window of an action's budget.
type Limit struct {
	// TimePeriod is the window as Meta spells it, an ISO 8601 duration
	// ("PT24H", "P7D").
	TimePeriod string
	// Period is TimePeriod parsed; 0 when it is absent or not a duration
	// ParseISODuration reads.
	Period       time.Duration
	MaxAllowed   int // max_allowed
	CurrentUsage int // current_usage
	// ExpiresAt is limit_expiration_time: when the exhausted window frees
	// up. Zero when absent.
	ExpiresAt time.Time
}

// Remaining is MaxAllowed - CurrentUsage, at least 0.
func (l Limit) Remaining() int { return max(0, l.MaxAllowed-l.CurrentUsage) }

// CallPermissions asks Meta for the user's call permission on the business
// number phoneNumberID: by user_wa_id when who.Phone is set, else by
// recipient (BSUID or parent BSUID). Meta rate-limits this endpoint
// (613); the client backs off and retries as Config says.
func (c *Client) CallPermissions(ctx context.Context, phoneNumberID string, who Recipient) (Permissions, error) {
	if err := who.validate(); err != nil {
		return Permissions{}, err
	}
	q := url.Values{}
	if who.Phone != "" {
		q.Set("user_wa_id", who.Phone)
	} else {
		q.Set("recipient", who.UserID)
	}
	u, err := c.endpoint(phoneNumberID, "call_permissions", q)
	if err != nil {
		return Permissions{}, err
	}
	var resp permissionsResponse
	if err := c.do(ctx, http.MethodGet, u, nil, &resp); err != nil {
		return Permissions{}, err
	}
	return resp.permissions()
}

type permissionsResponse struct {
	Permission *struct {
		Status         Status   `json:"status"`
		ExpirationTime unixTime `json:"expiration_time"`
		Expiration     unixTime `json:"expiration"`
	} `json:"permission"`
	Actions []struct {
		ActionName       string `json:"action_name"`
		CanPerformAction bool   `json:"can_perform_action"`
		Limits           []struct {
			TimePeriod          string   `json:"time_period"`
			MaxAllowed          int      `json:"max_allowed"`
			CurrentUsage        int      `json:"current_usage"`
			LimitExpirationTime unixTime `json:"limit_expiration_time"`
		} `json:"limits"`
	} `json:"actions"`
}

func (r *permissionsResponse) permissions() (Permissions, error) {
	if r.Permission == nil || r.Permission.Status == "" {
		return Permissions{}, fmt.Errorf("%w: no permission.status", ErrMalformedResponse)
	}
	p := Permissions{Status: r.Permission.Status, ExpiresAt: r.Permission.ExpirationTime.t}
	if p.ExpiresAt.IsZero() {
		p.ExpiresAt = r.Permission.Expiration.t
	}
	for _, a := range r.Actions {
		act := Action{Name: a.ActionName, CanPerform: a.CanPerformAction}
		for _, l := range a.Limits {
			period, _ := ParseISODuration(l.TimePeriod)
			act.Limits = append(act.Limits, Limit{
				TimePeriod: l.TimePeriod, Period: period,
				MaxAllowed: l.MaxAllowed, CurrentUsage: l.CurrentUsage,
				ExpiresAt: l.LimitExpirationTime.t,
			})
		}
		p.Actions = append(p.Actions, act)
	}
	return p, nil
}

// unixTime decodes unix seconds sent as a number or a string; null, "" and
// 0 are absent.
type unixTime struct{ t time.Time }

// maxUnix bounds accepted timestamps (year 2242), so a garbage value cannot
// overflow time arithmetic downstream.
const maxUnix = 1 << 33

func (u *unixTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// A float such as 1745343479.0 is still whole seconds.
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("unix time %q: not whole seconds", b)
		}
		n = int64(f)
	}
	if n < 0 || n > maxUnix {
		return fmt.Errorf("unix time %d out of range", n)
	}
	if n > 0 {
		u.t = time.Unix(n, 0).UTC()
	}
	return nil
}

// ParseISODuration parses the ISO 8601 durations Meta uses for limit
// windows: "P" followed by optional weeks (W) and days (D), then optionally
// "T" with hours (H), minutes (M) and seconds (S), each a non-negative
// integer, e.g. "PT24H", "P7D", "P1DT12H". Years and months, which have no
// fixed length, are refused, as are fractions and signs.
func ParseISODuration(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) { return 0, fmt.Errorf("cloudapi: %q is not an ISO 8601 duration", s) }
	if len(s) < 3 || s[0] != 'P' {
		return bad()
	}
	const maxTotal = 1 << 62
	var total int64
	inTime, seen := false, false
	units := "WD" // allowed designators, in order, before T
	for i := 1; i < len(s); {
		if s[i] == 'T' {
			if inTime || i == len(s)-1 {
				return bad()
			}
			inTime, units = true, "HMS"
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j == len(s) || j-i > 12 {
			return bad()
		}
		n, _ := strconv.ParseInt(s[i:j], 10, 64)
		k := bytes.IndexByte([]byte(units), s[j])
		if k < 0 {
			return bad()
		}
		units = units[k+1:] // each designator at most once, in order
		var unit time.Duration
		switch s[j] {
		case 'W':
			unit = 7 * 24 * time.Hour
		case 'D':
			unit = 24 * time.Hour
		case 'H':
			unit = time.Hour
		case 'M':
			unit = time.Minute
		case 'S':
			unit = time.Second
		}
		if n > (maxTotal-total)/int64(unit) {
			return bad()
		}
		total += n * int64(unit)
		seen = true
		i = j + 1
	}
	if !seen {
		return bad()
	}
	return time.Duration(total), nil
}
