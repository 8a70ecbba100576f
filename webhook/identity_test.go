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

// The three identity scenarios in every order through the signed handler:
// the answer never depends on the order the webhooks arrive in.
func TestIdentityScenariosThroughTheHandlerInEveryOrder(t *testing.T) {
	backends := map[string]openBackend{"memory": memoryBackend}
	for name, db := range sqlBackends {
		backends[name] = sqlBackend(db)
	}
	const phone, userID = "61433445566", "AU.12121212121212121212"
	// A text message whose contacts[] shows both identifiers: the join.
	join := body("messages", fmt.Sprintf(`"contacts":[{"profile":{"name":"Mia"},"wa_id":%q,"user_id":%q}],"messages":[{"from":%q,"from_user_id":%q,"id":"wamid.JOIN","timestamp":"1767295000","type":"text","text":{"body":"hello"}}]`,
		phone, userID, phone, userID))
	for _, sc := range []struct {
		name   string
		bodies [][]byte
	}{
		{"BSUID grant, phone revoke", [][]byte{replyFrom("", userID, "wamid.G", 1767290000, "accept"), join, replyFrom(phone, "", "wamid.R", 1767310000, "reject")}},
		{"grant by phone, join later, revoke by BSUID", [][]byte{replyFrom(phone, "", "wamid.G", 1767290000, "accept"), replyFrom("", userID, "wamid.R", 1767310000, "reject"), join}},
		{"phone grant with the BSUID, revoke by BSUID", [][]byte{replyFrom(phone, userID, "wamid.G", 1767290000, "accept"), replyFrom("", userID, "wamid.R", 1767310000, "reject")}},
	} {
		for name, open := range backends {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}} {
					tr, q := open(t)
					h := newHandler(t, webhook.Config{Recorder: tr, Quarantine: q})
					for _, i := range order {
						if i < len(sc.bodies) {
							require.Equal(t, http.StatusOK, post(t, h, sc.bodies[i]))
						}
					}
					for _, id := range []string{phone, userID} {
						x := explain(t, tr, chanMain, id)
						assert.False(t, x.Callable, "order %v, by %s: %s", order, id, x.Reason)
					}
					assert.Empty(t, list(t, tr, chanMain), "order %v", order)
				}
			})
		}
	}
}
