package cloudapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/callready/callready/permission"
)

// Sentinel errors. Errors returned by the Client wrap at most one of them;
// test with errors.Is.
var (
	// ErrInvalidRequest: the call's arguments cannot make a valid request
	// (no phone number id, no recipient, no template name or language). No
	// request was sent.
	ErrInvalidRequest = errors.New("cloudapi: invalid request")
	// ErrMalformedResponse: Meta answered 2xx with a body that is not the
	// documented shape (not JSON, or no message id).
	ErrMalformedResponse = errors.New("cloudapi: malformed response")
	// ErrRateLimited matches every *Error that IsRateLimited reports, so
	// errors.Is(err, ErrRateLimited) holds when retries ran out.
	ErrRateLimited = errors.New("cloudapi: rate limited")
)

// Meta error codes the client and its callers branch on (spec §10).
const (
	CodeCallingDisabled      = 138000 // calling not enabled on the business number (HTTP 401)
	CodeUserCannotBeCalled   = 138001 // the user cannot receive calls (HTTP 400)
	CodeCallRateLimit        = 138005 // call rate limit of the business number (HTTP 429)
	CodeNoPermission         = 138006 // no approved call permission (HTTP 401)
	CodeRequestLimit         = 138009 // permission request limit: 1 / 24 h or 2 / 7 d (HTTP 400)
	CodeCallLimit            = 138012 // business-initiated call cap (HTTP 400)
	CodePermanentHeld        = 138017 // the user already holds a permanent permission (HTTP 400)
	CodeUnsupportedApp       = 131026 // message undeliverable, e.g. the user's app is too old (status webhook)
	CodeRecipientNotAllowed  = 131030 // recipient not in the allowed list of a test number (HTTP 400)
	CodeCallPermissionsLimit = 613    // GET call_permissions rate limit (HTTP 429)
	CodeInvalidParameter     = 100    // Graph API: invalid parameter
	CodeInvalidToken         = 190    // Graph API: invalid or expired access token (HTTP 401)
)

// rateLimitCodes are the codes the client backs off on, besides any HTTP
// 429: 613 (call_permissions), and Graph's throttles 4 (application), 80007
// (WhatsApp Business account) and 130429 (Cloud API throughput).
var rateLimitCodes = map[int]bool{CodeCallPermissionsLimit: true, 4: true, 80007: true, 130429: true}

// Error is Meta's error envelope,
// {"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}},
// with the HTTP status it came with. A body that is not the envelope (a
// proxy's HTML page) gives an Error with Code 0 and the start of the body
// as Message. Use errors.As to get it from a Client's error.
type Error struct {
	HTTPStatus int    // the response's status code
	Code       int    // error.code, e.g. 138009
	Subcode    int    // error.error_subcode, 0 when absent
	Type       string // error.type, e.g. "OAuthException"
	Message    string // error.message
	Details    string // error.error_data.details
	FBTraceID  string // error.fbtrace_id, for Meta support
	// RetryAfter is the response's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudapi: meta error %d", e.Code)
	if e.Subcode != 0 {
		fmt.Fprintf(&b, "/%d", e.Subcode)
	}
	fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Details != "" {
		b.WriteString(": " + e.Details)
	}
	if e.FBTraceID != "" {
		b.WriteString(" [fbtrace_id " + e.FBTraceID + "]")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRateLimited) true for rate-limit errors.
func (e *Error) Is(target error) bool {
	return target == ErrRateLimited && e.RateLimited()
}

// RateLimited reports whether Meta throttled the call: HTTP 429, or code
// 613, 4, 80007 or 130429. The Client retries these.
func (e *Error) RateLimited() bool {
	return e.HTTPStatus == http.StatusTooManyRequests || rateLimitCodes[e.Code]
}

// Reason maps the error code to the permission.Reason a local decision
// would give (138006 no permission, 138009 request limit, 138012 call cap,
// 138017 permanent held, and the others permission.MetaErrorReason knows).
func (e *Error) Reason() (permission.Reason, bool) {
	// The message and details say which request window a 138009 hit.
	return permission.MetaErrorReasonOf(e.Code, e.Message+" "+e.Details)
}

// Reason is the permission.Reason for err when it is, or wraps, an *Error
// whose code has one; false otherwise.
func Reason(err error) (permission.Reason, bool) {
	var e *Error
	if !errors.As(err, &e) {
		return "", false
	}
	return e.Reason()
}

// Code is the Meta error code of err when it is, or wraps, an *Error; 0
// otherwise.
func Code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// IsRateLimited reports whether err is, or wraps, a rate-limit *Error.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.RateLimited()
}

type errorEnvelope struct {
	Error *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		FBTraceID string `json:"fbtrace_id"`
		ErrorData *struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

// maxMessageSnippet bounds the Message of an Error made from a body that
// is not Meta's envelope.
const maxMessageSnippet = 256

// decodeError builds the Error of a non-2xx answer (or a 2xx one carrying
// an "error" object); ok is false when body has no envelope and status is
// 2xx.
func decodeError(status int, header http.Header, body []byte, now time.Time) (*Error, bool) {
	e := &Error{HTTPStatus: status, RetryAfter: parseRetryAfter(header.Get("Retry-After"), now)}
	var env errorEnvelope
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code, e.Subcode, e.Type = env.Error.Code, env.Error.Subcode, env.Error.Type
		e.Message, e.FBTraceID = env.Error.Message, env.Error.FBTraceID
		if env.Error.ErrorData != nil {
			e.Details = env.Error.ErrorData.Details
		}
		return e, true
	}
	if status >= 200 && status < 300 {
		return nil, false
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > maxMessageSnippet {
		msg = msg[:maxMessageSnippet] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e, true
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (relative to now). Absent, unparseable or past: 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter caps a Retry-After the client honours, so an absurd value
// cannot overflow; the caller's context bounds any real wait.
const maxRetryAfter = 24 * time.Hour
