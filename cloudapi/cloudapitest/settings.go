package cloudapitest

import (
	"net/http"
)

// CallingSettings is the server's model of a business number's calling
// settings, answered by GET /<version>/<PHONE_NUMBER_ID>/settings.
type CallingSettings struct {
	// Status is calling.status: "ENABLED" or "DISABLED". Empty: "ENABLED".
	Status string
	// CallbackPermissionStatus is calling.callback_permission_status:
	// "ENABLED", "DISABLED" or "NOT_SET". Empty: omitted from the answer,
	// as a number that never set it may.
	CallbackPermissionStatus string
}

// SetCallingSettings changes what GET settings answers for the number,
// without any webhook (as when the account_settings_update webhook was
// lost).
func (s *Server) SetCallingSettings(channel string, c CallingSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		s.settings = map[string]CallingSettings{}
	}
	s.settings[channel] = c
}

// CallingSettings is the number's calling settings as GET settings
// answers them.
func (s *Server) CallingSettings(channel string) CallingSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settingsLocked(channel)
}

func (s *Server) settingsLocked(channel string) CallingSettings {
	c, ok := s.settings[channel]
	if !ok {
		c = CallingSettings{CallbackPermissionStatus: s.cfg.CallbackPermissionStatus}
	}
	if c.Status == "" {
		c.Status = "ENABLED"
	}
	return c
}

// getSettings answers GET settings in the shape of Meta's phone number
// settings: {"calling":{"status","call_icon_visibility",
// "callback_permission_status",…}}.
func (s *Server) getSettings(w http.ResponseWriter, channel string) {
	s.mu.Lock()
	c := s.settingsLocked(channel)
	s.mu.Unlock()
	calling := map[string]any{
		"status":               c.Status,
		"call_icon_visibility": "DEFAULT",
		"call_hours":           map[string]any{"status": "DISABLED"},
		"sip":                  map[string]any{"status": "DISABLED"},
	}
	if c.CallbackPermissionStatus != "" {
		calling["callback_permission_status"] = c.CallbackPermissionStatus
	}
	writeJSON(w, http.StatusOK, map[string]any{"calling": calling})
}
