package webhook_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/webhook"
)

// replyFrom is a permission reply from a user named by phone and/or BSUID
// (contacts[] and from/from_user_id as Meta sends them).
func replyFrom(waID, userID, id string, ts int64, response string) []byte {
	contact := fmt.Sprintf(`{"profile":{"name":"Olivia"},"wa_id":%q,"user_id":%q}`, waID, userID)
	from := fmt.Sprintf(`"from":%q,"from_user_id":%q,`, waID, userID)
	return body("messages", fmt.Sprintf(`"contacts":[%s],"messages":[{%s"id":%q,"timestamp":"%d","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":%q,"is_permanent":true,"response_source":"user_action"}},"context":{"from":"15550783881","id":"wamid.REQ"}}]`,
		contact, from, id, ts, response))
}

// Identity through the signed handler on memory, SQLite and PostgreSQL:
// a permanent grant that shows phone and BSUID, then a revoke from a
// device that sends only the BSUID; and a number change.
func TestIdentityThroughTheHandler(t *testing.T) {
	backends := map[string]openBackend{"memory": memoryBackend}
	for name, db := range sqlBackends {
		backends[name] = sqlBackend(db)
	}
	const oldPhone, newPhone, userID = "61412345678", "61498765432", "AU.55556666777788889999"
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			tr, q := open(t)
			h := newHandler(t, webhook.Config{Recorder: tr, Quarantine: q})
			require.Equal(t, http.StatusOK, post(t, h, replyFrom(oldPhone, userID, "wamid.G", 1767290000, "accept")))
			x := explain(t, tr, chanMain, "+61 412 345 678")
			require.True(t, x.Callable, x.Reason)
			assert.Equal(t, userID, x.Contact, "listed under the BSUID")

			// The number changes: the permission stays with the person.
			require.Equal(t, http.StatusOK, post(t, h, readFixture(t, "system-user-changed-number.json")))
			for _, id := range []string{oldPhone, newPhone, userID} {
				assert.True(t, explain(t, tr, chanMain, id).Callable, id)
			}
			require.Len(t, list(t, tr, chanMain), 1, "one row for the person")

			// A revoke that names only the BSUID ends it, by any identifier.
			require.Equal(t, http.StatusOK, post(t, h, replyFrom("", userID, "wamid.R", 1767310000, "reject")))
			for _, id := range []string{oldPhone, newPhone, userID} {
				x := explain(t, tr, chanMain, id)
				assert.False(t, x.Callable, "%s: %s", id, x.Reason)
			}
			assert.Empty(t, list(t, tr, chanMain))
		})
	}
}
