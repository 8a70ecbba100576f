// Package webhook receives Meta's WhatsApp Business webhooks and records
// the call permissions they carry in a permission.Tracker (or any
// Recorder).
//
// A Handler is an http.Handler; mount it on any router at the callback URL
// configured in Meta's app dashboard:
//
//	h, err := webhook.New(webhook.Config{
//		AppSecret:   os.Getenv("META_APP_SECRET"),
//		VerifyToken: os.Getenv("META_VERIFY_TOKEN"),
//		Recorder:    tracker,
//		OnMessage:   crm.SaveMessage, // optional: the chat history
//	})
//	mux.Handle("/webhooks/whatsapp", h)
//
// # What it answers
//
// GET is Meta's verification handshake: hub.mode=subscribe and a
// hub.verify_token equal (in constant time) to Config.VerifyToken get 200
// and the hub.challenge as text/plain; anything else gets 403.
//
// POST is a delivery, handled in this order, each step before the next:
//
//   - no or empty X-Hub-Signature-256: 401;
//   - body over Config.MaxBodyBytes (4 MiB by default, above Meta's 3 MB): 413;
//   - signature not "sha256=" + the hex HMAC-SHA256 of the raw body keyed
//     with the app secret, compared in constant time: 403. Upper-case hex
//     digits are accepted: they spell the same digest;
//   - body wrong as a whole: not JSON, or object or entry of the wrong
//     type (ErrMalformed): 400; object other than ObjectWhatsApp
//     (ErrWrongObject): 400;
//   - the parts of the body that cannot be recorded (Batch.Quarantined)
//     put in Config.Quarantine: an error gives 503;
//   - OnBatch; an error gives 503;
//   - every event of the body recorded in one Recorder.Record call; if the
//     Recorder refuses it with permission.ErrInvalidEvent, each event is
//     recorded alone and the refused ones are quarantined too; any other
//     error gives 503 so that Meta retries;
//   - then OnMessage, OnCall, OnStatus and OnSetting; an error from one
//     gives 503;
//   - 200.
//
// So 200 means every event is durable and every part of the body that is
// not an event or a callback's item is in the quarantine. One bad item
// never costs the others: Meta would re-deliver a refused body for 7 days
// and then drop it, with the good replies of other users in it. 4xx are
// kept for requests wrong as a whole (signature, size, not JSON, wrong
// object), and nothing is recorded or quarantined on any 4xx. Meta
// delivers at least once and in no order; the tracker's state depends on
// the set of events and Quarantine.Put keeps an item once, so the
// re-deliveries that a 503 causes are harmless. Callbacks may see a
// message again after a 503 and must dedupe by id. Other methods get 405.
//
// # The quarantine
//
// A QuarantinedItem is the raw JSON of the smallest part that failed (an
// element of messages[], calls[], statuses[] or contacts[]; a change
// value; a change; an entry), where it was (Path, e.g.
// "entry[0].changes[1].value.calls[0]"), why (Error), when it first
// arrived (ReceivedAt) and its ID (QuarantineID: SHA-256 of the raw bytes,
// so a re-delivery is stored once). Quarantine is the interface:
// MemoryQuarantine (the default, lost on restart) and sqlstore's
// Store.Quarantine (SQLite, PostgreSQL) implement it and pass
// webhooktest.RunQuarantine. List pages newest first; items are kept for
// QuarantineConfig.Retention, 30 days by default
// (DefaultQuarantineRetention). Stats.Quarantined counts the items put.
//
// Quarantined are: items with a wrong-typed field the parser reads; an
// unknown call_permission_reply response, call direction (for connect and
// terminate) or callback_permission_status; a permission or call item with
// no channel, no user, no timestamp or (calls) no id; an expiry not after
// the reply; a channel, user or item id a store cannot hold (a NUL byte,
// over permission.MaxIDLength bytes), and any event
// permission.Event.Validate refuses; a settings change with no number or
// no time.
//
// # What it reads
//
// Envelope: object (must be "whatsapp_business_account"), entry[], and of
// each entry: time (only for settings changes without a timestamp),
// changes[]; of each change: field and value. Changes whose field is not
// "messages", "calls" or "account_settings_update" are ignored, as is the
// entry's id (the WABA id).
//
// field "messages" and "calls", value:
//
//	metadata.phone_number_id      the channel of everything in the value
//	metadata.display_phone_number Channel.DisplayPhoneNumber; a call side equal to it is never the user
//	contacts[]: wa_id, user_id, profile.name
//	                              fill in the other half of a user's identity and the name
//	messages[]: id, from, from_user_id, timestamp, type, context.id, text.body,
//	            interactive.type, interactive.call_permission_reply.{response,
//	            is_permanent, expiration_timestamp, response_source}
//	calls[]:    id, event, direction, timestamp, from, to, from_user_id, to_user_id,
//	            status, start_time, end_time, duration,
//	            errors[].{code, title, message, error_data.details}
//	statuses[]: id, type, status, timestamp, recipient_id, recipient_user_id,
//	            errors[].{code, title, message, error_data.details}
//
// field "account_settings_update", value (Meta publishes no sample; read
// tolerantly): type (when present, must be "PHONE_NUMBER_SETTINGS", any
// case; other types are ignored), phone_number_id (string or number) or
// metadata.phone_number_id, timestamp (else entry.time), and
// calling.callback_permission_status under phone_number_settings or
// directly under the value: ENABLED, DISABLED or NOT_SET, any case, into
// Batch.Settings (and OnSetting), and as a permission.EventCallbackSetting
// (enabled, disabled, unknown) into Batch.Events, so the tracker records
// it as the channel's state. A settings value without that field is
// ignored.
//
// Timestamps (timestamp, expiration_timestamp, start_time, end_time) and
// duration are unix seconds sent as strings or numbers; error codes as
// numbers or strings. Everything else is ignored: messaging_product,
// context.from, the other fields of messages (image, button, system,
// referral, errors, …), statuses' conversation, pricing and biz_opaque_
// callback_data, the value-level errors[], the other calling settings
// (status, call_icon_visibility, call_hours, sip, …), unknown fields and
// unknown message types. Ignored messages still reach OnMessage, and
// message statuses OnStatus, with their raw JSON.
//
// # From webhook items to events
//
// The channel is value.metadata.phone_number_id. The contact is the user's
// wa_id (messages' from, the user side of a call), or the BSUID
// (from_user_id, user_id) when no phone number is known; value.contacts
// fills in the missing half. Message, Call and MessageStatus keep both ids
// and the profile name.
//
//	call_permission_reply accept, temporary  EventGrant, ExpiresAt = expiration_timestamp (absent: the tracker's TTL),
//	                                          SourceCallback if response_source=automatic or context.id is a wacid.…,
//	                                          else SourceRequest
//	accept, permanent, with context           EventGrant Permanent, SourceRequest (SourceCallback as above)
//	accept, permanent, no context             EventGrant Permanent, SourceProfile
//	reject, response_source=automatic         EventRevoke RevokeAutomatic
//	reject, user_action, with context         EventRevoke RevokeRejected
//	reject, user_action, no context           EventRevoke RevokeProfile
//	calls[] USER_INITIATED connect            EventInboundCall, not Connected (a connect precedes any answer)
//	calls[] USER_INITIATED terminate          EventInboundCall, Connected if duration > 0 or start_time;
//	                                          At = start_time when present
//	calls[] BUSINESS_INITIATED terminate      EventBusinessCall, Connected as above; none if errors[] holds a
//	                                          technical failure (138019 to 138023)
//	calls[] BUSINESS_INITIATED connect        no event (OnCall only)
//	statuses[] type=call ACCEPTED / REJECTED  EventBusinessCall, Connected / not (none on a technical failure)
//	statuses[] type=call RINGING              no event (OnCall only)
//	any other message or status               OnMessage / OnStatus only
//
// A terminate with status COMPLETED but no duration and no start_time was
// not picked up: it is not Connected. Every event's ID is Meta's message
// or call id, At its timestamp (an inbound call's start), Origin
// permission.OriginWebhook, and a permission reply's Context its
// context.id: the request message (wamid.…) or call (wacid.…) it answers.
// A call reported by connect, terminate and statuses converges in the
// tracker by its id. For a user-initiated call the user is the caller, for
// a business-initiated one the callee; a side equal to the business's
// display number is never taken for the user, since Meta's samples swap
// from and to.
//
// The errors[] of calls and statuses are in Call.Errors and
// MessageStatus.Errors; ItemError.Reason maps their codes to
// permission.Reason (permission.MetaErrorReasonOf), e.g. 131026 on a
// failed permission request: the user's app is too old to show it.
//
// Parse is the pure parser behind the handler: no I/O, no clock.
//
// # Operations
//
// Stats returns counters to export: requests received and accepted, events
// recorded, changes caused, items quarantined, and refusals by Reason.
// Logs go to Config.Logger: refusals at Warn (Error for 5xx), each
// quarantined item's path, error and ID at Warn, one Info record per
// delivery with counts, and event types and ids at Debug; never names,
// phone numbers or message text.
//
// Package webhooktest signs and posts bodies (or fixture files) to a URL or
// a Handler, for tests and simulators; Sign computes the header value.
package webhook
