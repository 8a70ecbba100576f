package webhook_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
)

// body wraps value JSON in an envelope for field.
func body(field, value string) []byte {
	return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":%q,"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},%s}}]}]}`, field, value)
}

// reply is a messages value holding one permission reply.
func reply(context, replyJSON string) []byte {
	ctx := ""
	if context != "" {
		ctx = fmt.Sprintf(`"context":{"from":"15550783881","id":%q},`, context)
	}
	return body("messages", fmt.Sprintf(`"contacts":[{"profile":{"name":"N"},"wa_id":"111","user_id":"US.1"}],"messages":[{"from":"111","from_user_id":"US.1","id":"wamid.X","timestamp":"1767168000",%s"type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":%s}}]`, ctx, replyJSON))
}

func parseOne(t *testing.T, b []byte) permission.Event {
	t.Helper()
	batch, err := webhook.Parse(b)
	require.NoError(t, err)
	require.Len(t, batch.Events, 1)
	return batch.Events[0]
}

func TestParsePermissionReplies(t *testing.T) {
	at := unix(1767168000)
	// The reply's contacts[] shows the BSUID beside the phone: an alias.
	base := permission.Event{Channel: chanMain, Contact: "111", Aliases: []string{"US.1"}, At: at, ID: "wamid.X", Origin: permission.OriginWebhook}
	with := func(f func(*permission.Event)) permission.Event { e := base; f(&e); return e }
	tests := []struct {
		name    string
		context string
		reply   string
		want    permission.Event
	}{
		{"temporary accept", "wamid.REQ", `{"response":"accept","is_permanent":false,"expiration_timestamp":"1767772800","response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.ExpiresAt = permission.EventGrant, permission.SourceRequest, unix(1767772800)
			})},
		{"temporary accept, numeric expiry", "wamid.REQ", `{"response":"accept","expiration_timestamp":1767772800,"response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.ExpiresAt = permission.EventGrant, permission.SourceRequest, unix(1767772800)
			})},
		{"temporary accept, no expiry: the tracker's TTL applies", "wamid.REQ", `{"response":"accept","is_permanent":false,"response_source":"user_action"}`,
			with(func(e *permission.Event) { e.Type, e.Source = permission.EventGrant, permission.SourceRequest })},
		{"permanent accept of a request", "wamid.REQ", `{"response":"accept","is_permanent":true,"response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.Permanent = permission.EventGrant, permission.SourceRequest, true
			})},
		{"permanent accept ignores a stray expiry", "wamid.REQ", `{"response":"accept","is_permanent":true,"expiration_timestamp":"1767772800","response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.Permanent = permission.EventGrant, permission.SourceRequest, true
			})},
		{"profile grant", "", `{"response":"accept","is_permanent":true,"response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.Permanent = permission.EventGrant, permission.SourceProfile, true
			})},
		{"automatic callback grant", "wacid.CALL", `{"response":"accept","is_permanent":false,"expiration_timestamp":1767772800,"response_source":"automatic"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.ExpiresAt = permission.EventGrant, permission.SourceCallback, unix(1767772800)
			})},
		{"callback grant told by its wacid context", "wacid.CALL", `{"response":"accept","expiration_timestamp":1767772800,"response_source":"user_action"}`,
			with(func(e *permission.Event) {
				e.Type, e.Source, e.ExpiresAt = permission.EventGrant, permission.SourceCallback, unix(1767772800)
			})},
		{"reject of a request", "wamid.REQ", `{"response":"reject","response_source":"user_action"}`,
			with(func(e *permission.Event) { e.Type, e.Reason = permission.EventRevoke, permission.RevokeRejected })},
		{"switched off from the profile", "", `{"response":"reject","response_source":"user_action"}`,
			with(func(e *permission.Event) { e.Type, e.Reason = permission.EventRevoke, permission.RevokeProfile })},
		{"automatic revoke", "", `{"response":"reject","response_source":"automatic"}`,
			with(func(e *permission.Event) { e.Type, e.Reason = permission.EventRevoke, permission.RevokeAutomatic })},
		{"values compared case-insensitively", "", `{"response":"REJECT","response_source":"AUTOMATIC"}`,
			with(func(e *permission.Event) { e.Type, e.Reason = permission.EventRevoke, permission.RevokeAutomatic })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every reply keeps the id of what it answers.
			tt.want.Context = tt.context
			assert.Equal(t, tt.want, parseOne(t, reply(tt.context, tt.reply)))
		})
	}
}

func TestParseRejectsBadReplies(t *testing.T) {
	for name, r := range map[string]string{
		"unknown response":        `{"response":"maybe"}`,
		"expiry before the reply": `{"response":"accept","expiration_timestamp":"1767000000"}`,
		"expiry not a number":     `{"response":"accept","expiration_timestamp":"soon"}`,
		"expiry fractional":       `{"response":"accept","expiration_timestamp":1767772800.5}`,
		"is_permanent a string":   `{"response":"accept","is_permanent":"true"}`,
	} {
		assertQuarantinedOnly(t, reply("wamid.REQ", r), "entry[0].changes[0].value.messages[0]", name)
	}
	assertQuarantinedOnly(t, body("messages", `"messages":[{"from":"111","id":"wamid.X","timestamp":"1767168000","type":"interactive","interactive":{"type":"call_permission_reply"}}]`),
		"entry[0].changes[0].value.messages[0]", "reply object missing")
}

// assertQuarantinedOnly parses b and expects one quarantined item at path,
// raw as it was in the body, and nothing else.
func assertQuarantinedOnly(t *testing.T, b []byte, path, name string) webhook.QuarantinedItem {
	t.Helper()
	batch, err := webhook.Parse(b)
	require.NoError(t, err, name)
	assert.Empty(t, batch.Events, name)
	assert.Empty(t, batch.Messages, name)
	assert.Empty(t, batch.Calls, name)
	require.Len(t, batch.Quarantined, 1, name)
	q := batch.Quarantined[0]
	assert.Equal(t, path, q.Path, name)
	assert.True(t, json.Valid(q.Raw), name)
	assert.Contains(t, string(b), string(q.Raw), "%s: raw is the item as received", name)
	assert.Contains(t, q.Error, webhook.ErrMalformed.Error(), name)
	assert.Equal(t, webhook.QuarantineID(q.Raw), q.ID, name)
	return q
}

func TestParseTimestamps(t *testing.T) {
	for _, ts := range []string{`"1767168000"`, `1767168000`, `1767168000.0`, `" 1767168000 "`, `1.767168e9`} {
		b := body("calls", fmt.Sprintf(`"calls":[{"id":"wacid.A","from":"111","to":"15550783881","event":"connect","direction":"USER_INITIATED","timestamp":%s}]`, ts))
		assert.Equal(t, unix(1767168000), parseOne(t, b).At, ts)
	}
	for _, ts := range []string{`"0"`, `-5`, `"abc"`, `true`, `{}`, `99999999999999999999`, `"1e400"`} {
		b := body("calls", fmt.Sprintf(`"calls":[{"id":"wacid.A","from":"111","event":"connect","direction":"USER_INITIATED","timestamp":%s}]`, ts))
		assertQuarantinedOnly(t, b, "entry[0].changes[0].value.calls[0]", ts)
	}
	// A call event needs a time.
	assertQuarantinedOnly(t, body("calls", `"calls":[{"id":"wacid.A","from":"111","event":"connect","direction":"USER_INITIATED"}]`),
		"entry[0].changes[0].value.calls[0]", "no time")
}

func TestParseIdentity(t *testing.T) {
	t.Run("BSUID only", func(t *testing.T) {
		b := body("messages", `"contacts":[{"profile":{"name":"U"},"user_id":"US.42"}],"messages":[{"from_user_id":"US.42","id":"wamid.X","timestamp":"1767168000","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept","is_permanent":true,"response_source":"user_action"}}},{"from_user_id":"US.42","id":"wamid.Y","timestamp":"1767168001","type":"text","text":{"body":"hi"}}]`)
		batch, err := webhook.Parse(b)
		require.NoError(t, err)
		require.Len(t, batch.Events, 1)
		assert.Equal(t, "US.42", batch.Events[0].Contact)
		require.Len(t, batch.Messages, 1)
		assert.Equal(t, webhook.Contact{UserID: "US.42", Name: "U"}, batch.Messages[0].Contact)
	})
	t.Run("number change", func(t *testing.T) {
		batch, err := webhook.Parse(readFixture(t, "system-user-changed-number.json"))
		require.NoError(t, err)
		require.Len(t, batch.Events, 1)
		e := batch.Events[0]
		assert.Equal(t, permission.EventIdentity, e.Type)
		assert.Equal(t, "61412345678", e.Contact, "from: the old number")
		assert.Equal(t, []string{"61498765432"}, e.Aliases, "system.wa_id: the new number")
	})
	t.Run("BSUID change", func(t *testing.T) {
		batch, err := webhook.Parse(readFixture(t, "system-user-changed-user-id.json"))
		require.NoError(t, err)
		require.Len(t, batch.Events, 1)
		e := batch.Events[0]
		assert.Equal(t, permission.EventIdentity, e.Type)
		assert.Equal(t, "AU.11112222333344445555", e.Contact, "from_user_id: the old BSUID")
		assert.Equal(t, []string{"AU.99998888777766665555"}, e.Aliases, "system.user_id: the new BSUID")
	})
	t.Run("phone filled in from contacts", func(t *testing.T) {
		b := body("messages", `"contacts":[{"profile":{"name":"U"},"wa_id":"111","user_id":"US.42"}],"messages":[{"from_user_id":"US.42","id":"wamid.X","timestamp":"1767168000","type":"text","text":{"body":"hi"}}]`)
		batch, err := webhook.Parse(b)
		require.NoError(t, err)
		assert.Equal(t, webhook.Contact{WaID: "111", UserID: "US.42", Name: "U"}, batch.Messages[0].Contact)
		assert.Equal(t, "111", batch.Messages[0].Contact.Key())
	})
	t.Run("inbound call with from and to swapped", func(t *testing.T) {
		b := body("calls", `"calls":[{"id":"wacid.A","from":"15550783881","to":"111","event":"terminate","direction":"USER_INITIATED","timestamp":"1767168000","status":"FAILED"}]`)
		assert.Equal(t, "111", parseOne(t, b).Contact)
	})
	t.Run("business call: the user is the callee", func(t *testing.T) {
		b := body("calls", `"calls":[{"id":"wacid.B","from":"15550783881","to":"222","to_user_id":"US.2","event":"terminate","direction":"BUSINESS_INITIATED","timestamp":"1767168000","status":"COMPLETED","start_time":"1767167900","end_time":"1767168000","duration":100}]`)
		batch, err := webhook.Parse(b)
		require.NoError(t, err)
		assert.Equal(t, []permission.Event{{Type: permission.EventBusinessCall, Channel: chanMain, Contact: "222", Aliases: []string{"US.2"}, At: unix(1767168000), ID: "wacid.B", Connected: true, Origin: permission.OriginWebhook}}, batch.Events)
		require.Len(t, batch.Calls, 1)
		c := batch.Calls[0]
		assert.Equal(t, webhook.Contact{WaID: "222", UserID: "US.2"}, c.Contact)
		assert.Equal(t, 100*time.Second, c.Duration)
		assert.Equal(t, unix(1767167900), c.StartTime)
	})
	t.Run("lone contact when the item names nobody", func(t *testing.T) {
		b := body("calls", `"contacts":[{"wa_id":"333"}],"calls":[{"id":"wacid.C","event":"connect","direction":"USER_INITIATED","timestamp":"1767168000"}]`)
		assert.Equal(t, "333", parseOne(t, b).Contact)
	})
}

func TestParseCalls(t *testing.T) {
	call := func(fields string) []byte {
		return body("calls", `"calls":[{"id":"wacid.A","from":"111","to":"15550783881","timestamp":"1767168000",`+fields+`}]`)
	}
	ev := func(typ permission.EventType, connected bool) []permission.Event {
		return []permission.Event{{Type: typ, Channel: chanMain, Contact: "111", At: unix(1767168000), ID: "wacid.A", Connected: connected, Origin: permission.OriginWebhook}}
	}
	bcall := func(fields string) []byte {
		return body("calls", `"calls":[{"id":"wacid.A","to":"111","from":"15550783881","timestamp":"1767168000",`+fields+`}]`)
	}
	tests := []struct {
		name string
		body []byte
		want []permission.Event
	}{
		{"inbound connect: not yet answered", call(`"event":"connect","direction":"USER_INITIATED"`), ev(permission.EventInboundCall, false)},
		{"inbound missed", call(`"event":"terminate","direction":"USER_INITIATED","status":"FAILED"`), ev(permission.EventInboundCall, false)},
		{"inbound answered (duration)", call(`"event":"terminate","direction":"USER_INITIATED","status":"FAILED","duration":"12"`), ev(permission.EventInboundCall, true)},
		// COMPLETED alone is no proof of an answer: Meta sends it for
		// missed calls too, without duration or start_time.
		{"inbound completed but not picked up", call(`"event":"terminate","direction":"user_initiated","status":"completed"`), ev(permission.EventInboundCall, false)},
		{"inbound zero duration", call(`"event":"terminate","direction":"USER_INITIATED","status":"COMPLETED","duration":0`), ev(permission.EventInboundCall, false)},
		{"business completed but not picked up", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"COMPLETED"`), ev(permission.EventBusinessCall, false)},
		{"business answered (start_time)", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"COMPLETED","start_time":"1767167990"`), ev(permission.EventBusinessCall, true)},
		{"business technical failure: no outcome", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"FAILED","errors":[{"code":138021,"message":"Call setup failed","error_data":{"details":"media timeout"}}]`), nil},
		{"business failure that is not technical", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"FAILED","errors":[{"code":"138006","message":"No permission"}]`), ev(permission.EventBusinessCall, false)},
		{"status rejected with a technical failure", body("calls", `"statuses":[{"id":"wacid.A","type":"call","status":"REJECTED","timestamp":"1767168000","recipient_id":"111","errors":[{"code":138019}]}]`), nil},
		{"business connect: outcome unknown", bcall(`"event":"connect","direction":"BUSINESS_INITIATED"`), nil},
		{"business unanswered", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"FAILED"`), ev(permission.EventBusinessCall, false)},
		{"business answered", bcall(`"event":"terminate","direction":"BUSINESS_INITIATED","status":"COMPLETED","duration":30`), ev(permission.EventBusinessCall, true)},
		{"unknown call event", call(`"event":"ringing","direction":"USER_INITIATED"`), nil},
		{"status accepted", body("calls", `"statuses":[{"id":"wacid.A","type":"call","status":"ACCEPTED","timestamp":"1767168000","recipient_id":"111"}]`), ev(permission.EventBusinessCall, true)},
		{"status rejected", body("calls", `"statuses":[{"id":"wacid.A","type":"call","status":"REJECTED","timestamp":"1767168000","recipient_id":"111"}]`), ev(permission.EventBusinessCall, false)},
		{"status ringing", body("calls", `"statuses":[{"id":"wacid.A","type":"call","status":"RINGING","timestamp":"1767168000","recipient_id":"111"}]`), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batch, err := webhook.Parse(tt.body)
			require.NoError(t, err)
			assert.Equal(t, tt.want, batch.Events)
			assert.Len(t, batch.Calls, 1, "every call item reaches OnCall")
		})
	}
	for name, b := range map[string][]byte{
		"unknown direction": call(`"event":"terminate","direction":"SIDEWAYS"`),
		"no direction":      call(`"event":"terminate"`),
		"no call id":        body("calls", `"calls":[{"from":"111","event":"connect","direction":"USER_INITIATED","timestamp":"1767168000"}]`),
		"no channel":        []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"calls":[{"id":"wacid.A","from":"111","event":"connect","direction":"USER_INITIATED","timestamp":"1767168000"}]}}]}]}`),
		"duration a bool":   call(`"event":"terminate","direction":"USER_INITIATED","duration":true`),
		"error code a bool": call(`"event":"terminate","direction":"USER_INITIATED","errors":[{"code":true}]`),
		"NUL in the user":   body("calls", `"calls":[{"id":"wacid.A","from":"111\u0000","to":"15550783881","timestamp":"1767168000","event":"connect","direction":"USER_INITIATED"}]`),
		"call id too long":  body("calls", `"calls":[{"id":"wacid.`+strings.Repeat("A", 300)+`","from":"111","timestamp":"1767168000","event":"connect","direction":"USER_INITIATED"}]`),
	} {
		assertQuarantinedOnly(t, b, "entry[0].changes[0].value.calls[0]", name)
	}
}

func TestParseCallErrors(t *testing.T) {
	b := body("calls", `"calls":[{"id":"wacid.A","to":"111","from":"15550783881","timestamp":"1767168000","event":"terminate","direction":"BUSINESS_INITIATED","status":"FAILED","errors":[{"code":138022,"title":"Media failure","message":"Call media failed","error_data":{"details":"ICE timeout"}}]}]`)
	batch, err := webhook.Parse(b)
	require.NoError(t, err)
	assert.Empty(t, batch.Events, "a technical failure does not count toward the unanswered streak")
	require.Len(t, batch.Calls, 1, "it stays visible as a call")
	e := batch.Calls[0].Errors
	require.Equal(t, []webhook.ItemError{{Code: 138022, Title: "Media failure", Message: "Call media failed", Details: "ICE timeout"}}, e)
	assert.True(t, e[0].Technical())
	r, ok := e[0].Reason()
	assert.True(t, ok)
	assert.Equal(t, permission.ReasonCallFailed, r)

	// A message status's errors, mapped with their message.
	b = body("messages", `"statuses":[{"id":"wamid.R","status":"failed","timestamp":"1767168000","recipient_id":"111","errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Recipient's WhatsApp version does not support call permission requests"}}]}]`)
	batch, err = webhook.Parse(b)
	require.NoError(t, err)
	require.Len(t, batch.Statuses, 1)
	r, ok = batch.Statuses[0].Errors[0].Reason()
	assert.True(t, ok)
	assert.Equal(t, permission.ReasonAppTooOld, r)
}

func TestParseInboundCallAtItsStart(t *testing.T) {
	b := body("calls", `"calls":[{"id":"wacid.A","from":"111","to":"15550783881","timestamp":"1767168100","event":"terminate","direction":"USER_INITIATED","status":"COMPLETED","start_time":"1767168010","end_time":"1767168100","duration":90}]`)
	e := parseOne(t, b)
	assert.Equal(t, unix(1767168010), e.At, "the grant runs from start_time")
	assert.True(t, e.Connected)
}

func TestParseSettings(t *testing.T) {
	settings := func(value string) []byte {
		return fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1767168050,"changes":[{"field":"account_settings_update","value":%s}]}]}`, value)
	}
	tests := []struct {
		name  string
		value string
		want  []webhook.ChannelSetting
	}{
		{"under phone_number_settings", `{"type":"PHONE_NUMBER_SETTINGS","timestamp":"1767168000","phone_number_id":"106540352242922","phone_number_settings":{"calling":{"status":"ENABLED","callback_permission_status":"DISABLED"}}}`,
			[]webhook.ChannelSetting{{Channel: chanMain, CallbackPermission: webhook.CallbackDisabled, At: unix(1767168000)}}},
		{"directly under value, numeric id, entry time", `{"type":"phone_number_settings","phone_number_id":106540352242922,"calling":{"callback_permission_status":"enabled"}}`,
			[]webhook.ChannelSetting{{Channel: chanMain, CallbackPermission: webhook.CallbackEnabled, At: unix(1767168050)}}},
		{"metadata names the number", `{"metadata":{"phone_number_id":"106540352242922"},"timestamp":1767168000,"phone_number_settings":{"calling":{"callback_permission_status":"NOT_SET"}}}`,
			[]webhook.ChannelSetting{{Channel: chanMain, CallbackPermission: webhook.CallbackNotSet, At: unix(1767168000)}}},
		{"another setting type", `{"type":"WABA_SETTINGS","phone_number_id":"1","calling":{"callback_permission_status":"ENABLED"}}`, nil},
		{"calling without the callback setting", `{"type":"PHONE_NUMBER_SETTINGS","phone_number_id":"1","calling":{"status":"ENABLED"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batch, err := webhook.Parse(settings(tt.value))
			require.NoError(t, err)
			assert.Empty(t, batch.Quarantined)
			for i := range batch.Settings {
				assert.JSONEq(t, tt.value, string(batch.Settings[i].Raw))
				batch.Settings[i].Raw = nil
			}
			assert.Equal(t, tt.want, batch.Settings)
		})
	}
	for name, v := range map[string]string{
		"unknown status": `{"type":"PHONE_NUMBER_SETTINGS","timestamp":"1767168000","phone_number_id":"1","calling":{"callback_permission_status":"MAYBE"}}`,
		"no number":      `{"type":"PHONE_NUMBER_SETTINGS","timestamp":"1767168000","calling":{"callback_permission_status":"ENABLED"}}`,
		"bad timestamp":  `{"type":"PHONE_NUMBER_SETTINGS","timestamp":true,"phone_number_id":"1","calling":{"callback_permission_status":"ENABLED"}}`,
	} {
		assertQuarantinedOnly(t, settings(v), "entry[0].changes[0].value", name)
	}
	// No time anywhere: quarantined, since a setting without its time
	// cannot be ordered.
	b := []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"account_settings_update","value":{"phone_number_id":"1","calling":{"callback_permission_status":"ENABLED"}}}]}]}`)
	assertQuarantinedOnly(t, b, "entry[0].changes[0].value", "no time")
}

// One bad item anywhere costs only itself.
func TestParseQuarantinesOnlyTheBadItems(t *testing.T) {
	good := `{"from":"111","id":"wamid.G","timestamp":"1767168000","context":{"id":"wamid.REQ"},"type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept","is_permanent":true,"response_source":"user_action"}}}`
	bad := `{"from":"222","id":"wamid.B","timestamp":"1767168000","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"perhaps"}}}`
	b := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[
		{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"c1"},"messages":[%s,%s]}}]},
		{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":42},"messages":[%s]}}]},
		{"changes":"none"},
		7,
		{"changes":[{"field":"calls","value":{"metadata":{"phone_number_id":"c2"},"contacts":[{"wa_id":5},{"wa_id":"333"}],"calls":[{"id":"wacid.C","from":"333","event":"connect","direction":"USER_INITIATED","timestamp":"1767168000"}]}}]}
	]}`, bad, good, good)
	batch, err := webhook.Parse([]byte(b))
	require.NoError(t, err)
	var ids []string
	for _, e := range batch.Events {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"wamid.G", "wacid.C"}, ids)
	var paths []string
	for _, q := range batch.Quarantined {
		paths = append(paths, q.Path)
	}
	assert.Equal(t, []string{
		"entry[0].changes[0].value.messages[0]",
		"entry[1].changes[0].value",
		"entry[2]",
		"entry[3]",
		"entry[4].changes[0].value.contacts[0]",
	}, paths)
	assert.Contains(t, batch.Quarantined[0].Error, `unknown call_permission_reply response "perhaps"`)

	// Only a body wrong as a whole is refused.
	for name, b := range map[string]string{
		"not json":         `{"object":`,
		"entry not a list": `{"object":"whatsapp_business_account","entry":{}}`,
		"object a number":  `{"object":1}`,
	} {
		_, err := webhook.Parse([]byte(b))
		assert.ErrorIs(t, err, webhook.ErrMalformed, name)
	}
	for _, b := range []string{`{}`, `{"object":"page","entry":[]}`, `[]`} {
		_, err := webhook.Parse([]byte(b))
		if b == `[]` {
			assert.ErrorIs(t, err, webhook.ErrMalformed, b)
			continue
		}
		assert.ErrorIs(t, err, webhook.ErrWrongObject, b)
	}
}

func TestParseIgnoresTheUnknown(t *testing.T) {
	_, err := webhook.Parse([]byte(`{"object":"page","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":1}]}}]}]}`))
	require.ErrorIs(t, err, webhook.ErrWrongObject, "another object is not ours")

	b := []byte(`{"object":"whatsapp_business_account","new_top":1,"entry":[{"id":"1","time":1767168000,"changes":[
		{"field":"account_update","value":{"phone_number_id":123,"event":"VERIFIED"}},
		{"field":"message_template_status_update","value":[1,2,3]},
		{"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922","future":{"x":[1]}},
			"errors":[{"code":131051}],
			"messages":[{"from":"111","id":"wamid.I","timestamp":1767168000,"type":"image","image":{"id":"m1","mime_type":"image/jpeg"},"brand_new":true},
			            {"from":"111","id":"wamid.B","timestamp":"1767168001","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b","title":"Yes"}}}],
			"statuses":[{"id":"wamid.S","status":"read","timestamp":"1767168002","recipient_id":"111","pricing":{"billable":false}}]}}]}]}`)
	batch, err := webhook.Parse(b)
	require.NoError(t, err)
	assert.Empty(t, batch.Events)
	assert.Empty(t, batch.Quarantined)
	require.Len(t, batch.Messages, 2)
	assert.Equal(t, "image", batch.Messages[0].Type)
	assert.Equal(t, unix(1767168000), batch.Messages[0].Timestamp)
	assert.Equal(t, "interactive", batch.Messages[1].Type)
	require.Len(t, batch.Statuses, 1)
	assert.Equal(t, webhook.MessageStatus{Channel: chanMain, Contact: webhook.Contact{WaID: "111"}, ID: "wamid.S", Status: "read", Timestamp: unix(1767168002), Raw: batch.Statuses[0].Raw}, batch.Statuses[0])
}

func TestParseEveryEntryAndChange(t *testing.T) {
	// Two entries, each with two changes, each with two replies.
	item := func(id, contact string) string {
		return fmt.Sprintf(`{"from":%q,"id":%q,"timestamp":"1767168000","context":{"id":"wamid.R"},"type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept","is_permanent":true,"response_source":"user_action"}}}`, contact, id)
	}
	change := func(ch, a, b string) string {
		return fmt.Sprintf(`{"field":"messages","value":{"metadata":{"phone_number_id":%q},"messages":[%s,%s]}}`, ch, item(a, "1"+a), item(b, "1"+b))
	}
	b := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"changes":[%s,%s]},{"changes":[%s,%s]}]}`,
		change("c1", "1", "2"), change("c2", "3", "4"), change("c1", "5", "6"), change("c3", "7", "8"))
	batch, err := webhook.Parse([]byte(b))
	require.NoError(t, err)
	var ids, channels []string
	for _, e := range batch.Events {
		ids, channels = append(ids, e.ID), append(channels, e.Channel)
	}
	assert.Equal(t, []string{"1", "2", "3", "4", "5", "6", "7", "8"}, ids)
	assert.Equal(t, []string{"c1", "c1", "c2", "c2", "c1", "c1", "c3", "c3"}, channels)
}

// A business call seen twice, as a REJECTED status and as its terminate, at
// different times, counts once in the unanswered streak.
func TestBusinessCallReportedTwiceCountsOnce(t *testing.T) {
	tr := newTracker(t)
	h := newHandler(t, webhook.Config{Recorder: tr})
	require.Equal(t, 200, post(t, h, readFixture(t, "call-business-status-rejected.json")))
	terminate := body("calls", `"calls":[{"id":"wacid.HBgLMTIxODU1NTI4MjgVAgARGCAyODRQIAFRoA","from":"15550783881","to":"919812345678","event":"terminate","direction":"BUSINESS_INITIATED","timestamp":"1767200030","status":"FAILED"}]`)
	require.Equal(t, 200, post(t, h, terminate))
	assert.Equal(t, 1, explain(t, tr, chanMain, ravi).Limits.UnansweredStreak)
}

// BenchmarkParse: one Meta body (a temporary permission reply, 770 bytes).
func BenchmarkParse(b *testing.B) {
	body := readFixture(b, "permission-accept-temporary.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
