package cloudapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/callready/callready/permission"
)

// Values of CallingSettings.Status and CallingSettings.CallbackPermissionStatus
// as Meta spells them.
const (
	SettingEnabled  = "ENABLED"
	SettingDisabled = "DISABLED"
	// SettingNotSet is what a newly enabled number has been seen to answer
	// for callback_permission_status (spec §8).
	SettingNotSet = "NOT_SET"
)

// Settings is Meta's answer to GET /<PHONE_NUMBER_ID>/settings, the parts
// call permissions need (spec §8).
type Settings struct {
	Calling CallingSettings
}

// CallingSettings is the settings' calling object.
type CallingSettings struct {
	// Status is calling.status: whether calling is enabled on the number
	// (SettingEnabled, SettingDisabled), as Meta spells it; empty when
	// absent.
	Status string
	// CallbackPermissionStatus is calling.callback_permission_status:
	// SettingEnabled, SettingDisabled or SettingNotSet, upper-cased; empty
	// when absent.
	CallbackPermissionStatus string
	// CallIconVisibility is calling.call_icon_visibility ("DEFAULT",
	// "DISABLE_ALL"); empty when absent.
	CallIconVisibility string
}

// Callback maps CallbackPermissionStatus to the tracker's setting:
// ENABLED is permission.CallbackEnabled, DISABLED permission.CallbackDisabled,
// anything else (NOT_SET, absent, a value Meta adds later)
// permission.CallbackUnknown. Record it with
// permission.Tracker.SetCallbackPermission.
func (c CallingSettings) Callback() permission.CallbackStatus {
	switch c.CallbackPermissionStatus {
	case SettingEnabled:
		return permission.CallbackEnabled
	case SettingDisabled:
		return permission.CallbackDisabled
	}
	return permission.CallbackUnknown
}

// Settings asks Meta for the business number's settings. Meta's answer is
// the authority on the callback setting (the account_settings_update
// webhook carries the same value, with no published sample). Rate limits
// are retried as Config says.
func (c *Client) Settings(ctx context.Context, phoneNumberID string) (Settings, error) {
	u, err := c.endpoint(phoneNumberID, "settings", nil)
	if err != nil {
		return Settings{}, err
	}
	var resp settingsResponse
	if err := c.do(ctx, http.MethodGet, u, nil, &resp); err != nil {
		return Settings{}, err
	}
	return resp.settings()
}

// settingsResponse is read tolerantly: unknown fields are ignored, and the
// calling object may sit at the top level (as documented) or under
// "settings" (as some integrations have seen).
type settingsResponse struct {
	Calling  *callingJSON `json:"calling"`
	Settings *struct {
		Calling *callingJSON `json:"calling"`
	} `json:"settings"`
}

type callingJSON struct {
	Status                   string `json:"status"`
	CallbackPermissionStatus string `json:"callback_permission_status"`
	CallIconVisibility       string `json:"call_icon_visibility"`
}

func (r *settingsResponse) settings() (Settings, error) {
	c := r.Calling
	if c == nil && r.Settings != nil {
		c = r.Settings.Calling
	}
	if c == nil {
		return Settings{}, fmt.Errorf("%w: no calling settings", ErrMalformedResponse)
	}
	norm := func(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }
	return Settings{Calling: CallingSettings{
		Status:                   norm(c.Status),
		CallbackPermissionStatus: norm(c.CallbackPermissionStatus),
		CallIconVisibility:       norm(c.CallIconVisibility),
	}}, nil
}
