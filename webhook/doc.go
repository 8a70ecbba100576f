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
//   - body that Parse refuses (see ErrMalformed): 400;
//   - every event of the body recorded in one Recorder.Record call: an
//     error wrapping permission.ErrInvalidEvent gives 400, any other error
//     503 so that Meta retries;
//   - then OnMessage, OnCall and OnStatus; an error from one gives 503;
//   - 200.
//
// So 200 means every event is durable. Meta delivers at least once and in
// no order; the tracker's state depends on the set of events, so the
// re-deliveries that a 503 causes are harmless. Callbacks may see a message
// again after a 503 and must dedupe by id. Other methods get 405. Nothing is
// recorded on any 4xx.
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
//	calls[] USER_INITIATED terminate          EventInboundCall, Connected if duration, start_time or COMPLETED
//	calls[] BUSINESS_INITIATED terminate      EventBusinessCall, Connected as above
//	calls[] BUSINESS_INITIATED connect        no event (OnCall only)
//	statuses[] type=call ACCEPTED / REJECTED  EventBusinessCall, Connected / not
//	statuses[] type=call RINGING              no event (OnCall only)
//	any other message or status               OnMessage / OnStatus only
//
// Every event's ID is Meta's message or call id and At its timestamp, so a
// call reported by connect, terminate and statuses converges in the
// tracker. For a user-initiated call the user is the caller, for a
// business-initiated one the callee; a side equal to the business's display
// number is never taken for the user, since Meta's samples swap from and to.
//
// Parse is the pure parser behind the handler. It reads every entry, change
// and item; ignores unknown fields, change fields, message types and
// objects; reads timestamps sent as strings or numbers; and refuses
// (ErrMalformed) a body that is not JSON, has a wrong-typed field it reads,
// or has a permission or call item it cannot attribute or understand (no
// channel, user, time or call id; an unknown response or call direction).
// Refusing such a body with 400 makes Meta deliver it again, so a handler
// upgraded meanwhile still gets the fact instead of dropping it.
//
// # Operations
//
// Stats returns counters to export: requests received and accepted, events
// recorded, changes caused, and refusals by Reason. Logs go to
// Config.Logger: refusals at Warn (Error for 5xx), one Info record per
// delivery with counts, and event types and ids at Debug; never names,
// phone numbers or message text.
//
// Package webhooktest signs and posts bodies (or fixture files) to a URL or
// a Handler, for tests and simulators; Sign computes the header value.
package webhook
