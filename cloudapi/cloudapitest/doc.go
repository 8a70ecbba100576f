// Package cloudapitest is a fake of Meta's Cloud API endpoints for call
// permissions, as an httptest server on loopback, for tests and demos.
// Point cloudapi.Config.BaseURL at Server.URL and use Server.AccessToken.
//
// It models what Meta does, per business number and user:
//
//   - POST /<version>/<PHONE_NUMBER_ID>/messages accepts exactly the call
//     permission request payloads (free-form interactive or template; other
//     fields or types get error 100) and answers with the wamid and the
//     user's wa_id and BSUID. Unknown users are registered on the fly.
//   - Request limits: 1 per 24 h and 2 per 7 days (error 138009); both
//     windows restart with a connected call the test reports
//     (ConnectedCall). A user holding a permanent permission gets 138017.
//     A user on an old app (User.OldApp, SetOldApp) gets the message, but
//     then a failed status webhook with error 131026 is posted instead of
//     the request showing.
//   - GET /<version>/<PHONE_NUMBER_ID>/call_permissions?user_wa_id= or
//     ?recipient= (BSUID or parent BSUID) answers from the model:
//     status, expiry, and both actions with their limits and usage.
//   - GET /<version>/<PHONE_NUMBER_ID>/settings answers the number's
//     calling settings (status, callback_permission_status: "ENABLED"
//     unless Config.CallbackPermissionStatus or SetCallingSettings say
//     otherwise).
//   - Every request needs the bearer token (190 when wrong, 2500 when
//     missing). RateLimitNext answers HTTP 429 (613 on GET, 130429 on
//     sends), optionally with Retry-After; FailNext answers any error.
//
// The server plays the user too: Reply (or Config.AutoReply) accepts,
// temporarily or permanently, or rejects a request after a delay measured
// on the injected clock, by posting a call_permission_reply webhook shaped
// exactly like Meta's, with context.id = the request's wamid, signed
// (X-Hub-Signature-256) with Config.AppSecret, so webhook.Handler accepts
// it. A Lost reply changes Meta's state without a webhook, and
// SetPermission rewrites it outright: the drift a reconciler must find.
//
// With a clock.Mock, nothing happens by itself: advance the clock past a
// reply's delay and wait on its Delivery (returned by Reply, and listed by
// Deliveries for auto replies and failed statuses). Requests lists what
// was sent; Permission is Meta's current answer for a user.
package cloudapitest
