package webhook_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/webhook"
)

// The callback setting through the signed handler, on memory, SQLite and
// PostgreSQL: a call alone lists its caller as unconfirmed; Meta's
// account_settings_update saying DISABLED since before the call withdraws
// that grant, whatever the order; Meta's automatic reply for the call then
// grants it, confirmed.
func TestCallbackSettingThroughTheHandler(t *testing.T) {
	backends := map[string]openBackend{"memory": memoryBackend}
	for name, db := range sqlBackends {
		backends[name] = sqlBackend(db)
	}
	// DISABLED for the main channel from 1767170000 (before Tomás's call).
	disabled := strings.NewReplacer(
		`"106540352299999"`, `"`+chanMain+`"`,
		`"timestamp":"1767240000"`, `"timestamp":"1767170000"`,
	)
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			for _, settingsFirst := range []bool{false, true} {
				tr, q := open(t)
				h := newHandler(t, webhook.Config{Recorder: tr, Quarantine: q})
				settings := []byte(disabled.Replace(string(readFixture(t, "settings-callback-disabled.json"))))
				if settingsFirst {
					require.Equal(t, http.StatusOK, post(t, h, settings))
				}
				require.Equal(t, http.StatusOK, post(t, h, readFixture(t, "call-inbound-missed.json")))
				if !settingsFirst {
					x := explain(t, tr, chanMain, tomas)
					require.True(t, x.Callable)
					assert.True(t, x.Entry.Unconfirmed, "a call alone is unconfirmed")
					require.Equal(t, http.StatusOK, post(t, h, settings))
				}
				x := explain(t, tr, chanMain, tomas)
				assert.False(t, x.Callable, "callback setting disabled at the call: %s", x.Reason)
				assert.Empty(t, list(t, tr, chanMain))

				require.Equal(t, http.StatusOK, post(t, h, readFixture(t, "permission-callback-automatic.json")))
				x = explain(t, tr, chanMain, tomas)
				require.True(t, x.Callable, "Meta's reply grants: %s", x.Reason)
				assert.False(t, x.Entry.Unconfirmed)
			}
		})
	}
}
