package permission

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMetaErrorReasons(t *testing.T) {
	want := map[int]Reason{
		138000: ReasonCallingNotEnabled,
		138001: ReasonUserCannotBeCalled,
		138005: ReasonCallRateLimit,
		138006: ReasonNoPermission,
		138009: ReasonRequestLimit,
		138012: ReasonCallLimit,
		138013: ReasonCallingUnavailable,
		138014: ReasonCallingDisabled,
		138017: ReasonPermanentHeld,
		138019: ReasonCallFailed,
		138021: ReasonCallFailed,
		138023: ReasonCallFailed,
		131026: ReasonAppTooOld,
		131030: ReasonNotAllowedRecipient,
		613:    ReasonRateLimited,
	}
	seen := map[Reason]int{}
	for code, r := range want {
		got, ok := MetaErrorReason(code)
		assert.True(t, ok, "%d", code)
		assert.Equal(t, r, got, "%d", code)
		if r != ReasonCallFailed {
			seen[r]++
		}
	}
	for r, n := range seen {
		assert.Equal(t, 1, n, "%s is the reason of %d codes: reasons must be distinct", r, n)
	}
	for _, code := range []int{0, 131000, 138018, 138024, 100, -138006} {
		_, ok := MetaErrorReason(code)
		assert.False(t, ok, "%d", code)
	}
	assert.True(t, IsCallFailure(138020))
	assert.False(t, IsCallFailure(138012))
}

func TestMetaErrorReasonOfRequestWindows(t *testing.T) {
	for msg, want := range map[string]Reason{
		"":                                      ReasonRequestLimit,
		"Call permission request limit reached": ReasonRequestLimit,
		"limit of 1 request per 24 hours reached": ReasonRequestLimitDay,
		"Daily call permission request limit hit": ReasonRequestLimitDay,
		"limit PT24H exceeded":                    ReasonRequestLimitDay,
		"limit of 2 requests in 7 days reached":   ReasonRequestLimitWeek,
		"weekly permission request limit":         ReasonRequestLimitWeek,
		"P7D limit":                               ReasonRequestLimitWeek,
		// Both windows named: the message does not tell which one was hit.
		"1 request per 24 hours and 2 per 7 days": ReasonRequestLimit,
		"limit 124hours": ReasonRequestLimit,
	} {
		got, ok := MetaErrorReasonOf(138009, msg)
		assert.True(t, ok)
		assert.Equal(t, want, got, "%q", msg)
	}
	// Only 138009 reads the message.
	got, _ := MetaErrorReasonOf(138012, "7 days")
	assert.Equal(t, ReasonCallLimit, got)
}

func ExampleMetaErrorReasonOf() {
	r, _ := MetaErrorReasonOf(138009, "(#138009) Call permission request limit: 2 requests per 7 days")
	fmt.Println(r)
	r, _ = MetaErrorReason(138013)
	fmt.Println(r)
	// Output:
	// request_limit_7d
	// calling_unavailable
}
