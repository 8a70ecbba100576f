package permission

import (
	"regexp"
)

// Reasons that only Meta's error codes produce: no local decision returns
// them, but a host that gets one of these codes back from the Cloud API
// (or in a webhook's errors[]) can show it next to the local reasons.
const (
	// ReasonRequestLimit: a permission request limit was hit (Meta 138009)
	// and Meta's message does not say which window.
	ReasonRequestLimit Reason = "request_limit"
	// ReasonCallingNotEnabled: calling is not enabled on the business
	// number (Meta 138000).
	ReasonCallingNotEnabled Reason = "calling_not_enabled"
	// ReasonUserCannotBeCalled: the user cannot receive calls (not on
	// WhatsApp, terms not accepted, unsupported client; Meta 138001).
	ReasonUserCannotBeCalled Reason = "user_cannot_be_called"
	// ReasonCallRateLimit: the business number's call rate limit (Meta
	// 138005); back off and retry.
	ReasonCallRateLimit Reason = "call_rate_limit"
	// ReasonCallingUnavailable: business-initiated calling is not available
	// for this number or country (Meta 138013).
	ReasonCallingUnavailable Reason = "calling_unavailable"
	// ReasonCallingDisabled: calling is temporarily disabled for the
	// number, for low call quality (Meta 138014).
	ReasonCallingDisabled Reason = "calling_disabled_quality"
	// ReasonCallFailed: call setup or media failed (Meta 138019 to 138023):
	// a technical failure, not an unanswered call.
	ReasonCallFailed Reason = "call_failed"
	// ReasonAppTooOld: a permission request went to a WhatsApp app too old
	// to show it (Meta 131026).
	ReasonAppTooOld Reason = "app_too_old"
	// ReasonNotAllowedRecipient: the recipient is not in the allowed list
	// of a test number (Meta 131030).
	ReasonNotAllowedRecipient Reason = "recipient_not_allowed"
	// ReasonRateLimited: Meta's API rate limit, e.g. of GET
	// call_permissions (Meta 613); back off and retry.
	ReasonRateLimited Reason = "rate_limited"
)

// Meta's error codes that MetaErrorReason knows.
const (
	MetaCallingNotEnabled   = 138000
	MetaUserCannotBeCalled  = 138001
	MetaCallRateLimit       = 138005
	MetaNoPermission        = 138006
	MetaRequestLimit        = 138009
	MetaCallLimit           = 138012
	MetaCallingUnavailable  = 138013
	MetaCallingDisabled     = 138014
	MetaPermanentHeld       = 138017
	MetaCallFailedFirst     = 138019 // first of the call setup and media failures
	MetaCallFailedLast      = 138023 // last of them
	MetaAppTooOld           = 131026
	MetaNotAllowedRecipient = 131030
	MetaRateLimited         = 613
)

// MetaErrorReason maps a Meta Cloud API error code about calling or call
// permissions to the Reason callready uses for it, so a host that gets one
// back from Meta can show the same reason as a local decision. For 138009
// the code alone does not say which request window was hit:
// ReasonRequestLimit; MetaErrorReasonOf reads Meta's message to tell.
// ok is false for codes callready does not map.
func MetaErrorReason(code int) (r Reason, ok bool) {
	return MetaErrorReasonOf(code, "")
}

var (
	weekRE = regexp.MustCompile(`(?i)\b(7[ -]?days?|seven days?|week(ly)?|p7d)\b`)
	dayRE  = regexp.MustCompile(`(?i)\b(24[ -]?h(ours?)?|one day|1[ -]?day|daily|pt24h)\b`)
)

// MetaErrorReasonOf is MetaErrorReason reading also Meta's message (or
// error_data.details) of the error: for 138009 it returns
// ReasonRequestLimitDay when the text names only the 24-hour window,
// ReasonRequestLimitWeek when it names only the 7-day one, and
// ReasonRequestLimit otherwise.
func MetaErrorReasonOf(code int, message string) (r Reason, ok bool) {
	switch code {
	case MetaCallingNotEnabled:
		return ReasonCallingNotEnabled, true
	case MetaUserCannotBeCalled:
		return ReasonUserCannotBeCalled, true
	case MetaCallRateLimit:
		return ReasonCallRateLimit, true
	case MetaNoPermission:
		return ReasonNoPermission, true
	case MetaRequestLimit:
		day, week := dayRE.MatchString(message), weekRE.MatchString(message)
		switch {
		case day && !week:
			return ReasonRequestLimitDay, true
		case week && !day:
			return ReasonRequestLimitWeek, true
		}
		return ReasonRequestLimit, true
	case MetaCallLimit:
		return ReasonCallLimit, true
	case MetaCallingUnavailable:
		return ReasonCallingUnavailable, true
	case MetaCallingDisabled:
		return ReasonCallingDisabled, true
	case MetaPermanentHeld:
		return ReasonPermanentHeld, true
	case MetaAppTooOld:
		return ReasonAppTooOld, true
	case MetaNotAllowedRecipient:
		return ReasonNotAllowedRecipient, true
	case MetaRateLimited:
		return ReasonRateLimited, true
	}
	if IsCallFailure(code) {
		return ReasonCallFailed, true
	}
	return "", false
}

// IsCallFailure reports whether code is one of Meta's call setup or media
// failures (138019 to 138023): a business call that ended with one was not
// left unanswered by the user, and does not count toward the unanswered
// streak.
func IsCallFailure(code int) bool {
	return code >= MetaCallFailedFirst && code <= MetaCallFailedLast
}
