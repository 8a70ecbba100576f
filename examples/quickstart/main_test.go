package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out))
	s := out.String()
	for _, want := range []string{
		"day  0 (Dec 31): 3 callable, 0 expired today",
		"day  1 (Jan 1): 2 callable, 0 expired today",                             // Luca rejected
		"34612345678    temporary inbound_call until Jan 9 09:00 (168h0m0s left)", // the missed call
		"day  7 (Jan 7): 2 callable, 1 expired today",                             // Sheena's 7 days are over
		"day  9 (Jan 9): 1 callable, 1 expired today",                             // and Tomás's call-back window
		"why not 393331234567? the user rejected the permission request at 2026-01-01T09:00:00Z",
	} {
		require.Contains(t, s, want)
	}
}
