// Package cloudapi is a small client for the part of Meta's WhatsApp Cloud
// API that call permissions need: sending call permission requests and
// asking Meta for one user's permission. It uses net/http only.
//
//	c, err := cloudapi.New(cloudapi.Config{AccessToken: os.Getenv("META_TOKEN")})
//	// Inside the 24 h customer-service window: a free-form request.
//	res, err := c.SendPermissionRequest(ctx, phoneNumberID, cloudapi.PermissionRequest{
//		To:   cloudapi.Recipient{Phone: "16505551234"},
//		Body: "May we call you about your order?",
//	})
//	// Outside it: an approved template with a call_permission_request component.
//	res, err = c.SendPermissionTemplate(ctx, phoneNumberID, cloudapi.TemplateRequest{
//		To: cloudapi.Recipient{UserID: "US.13491208655302741918"},
//		Name: "call_permission", Language: "en_US",
//		Parameters: []cloudapi.NamedParameter{{Name: "first_name", Text: "Sheena"}},
//	})
//	// res.MessageID is the wamid the user's reply names in context.id;
//	// res.Contact holds the wa_id and BSUID Meta resolved.
//	p, err := c.CallPermissions(ctx, phoneNumberID, cloudapi.Recipient{Phone: "16505551234"})
//
// # Wire format
//
// Sends are POST /<version>/<PHONE_NUMBER_ID>/messages with
// messaging_product "whatsapp", recipient_type "individual", "to" (phone)
// and/or "recipient" (BSUID; Meta uses "to" when both are present), and
// either type "interactive" with interactive.type and
// interactive.action.name "call_permission_request" and an optional
// interactive.body.text, or type "template" with template.name,
// template.language.code and a body component of named text parameters
// (the call_permission_request component is part of the approved
// template). The answer's messages[0].id and contacts[0] (input, wa_id,
// user_id, parent_user_id) become a SendResult.
//
// CallPermissions is GET /<version>/<PHONE_NUMBER_ID>/call_permissions with
// user_wa_id (when a phone is known) or recipient. permission.status,
// its expiry under either key Meta uses (expiration_time or expiration),
// and actions[] with can_perform_action and limits[] (time_period,
// max_allowed, current_usage, limit_expiration_time) become Permissions.
// Unix times are accepted as numbers or strings.
//
// Settings is GET /<version>/<PHONE_NUMBER_ID>/settings: the calling
// object's status, call_icon_visibility and callback_permission_status
// (spec §8), read tolerantly (at the top level or under "settings", any
// case; unknown fields ignored). CallingSettings.Callback maps the last to
// the tracker's permission.CallbackStatus (NOT_SET and absent are
// unknown); Meta's answer is the authority on the setting.
//
// # Errors
//
// Meta's error envelope,
// {"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}},
// becomes an *Error with the HTTP status; get it with errors.As, or use
// Code and Reason, which maps calling codes to the permission.Reason a
// local decision gives (138009 request limit, 138017 permanent held, …):
//
//	if r, ok := cloudapi.Reason(err); ok { show(r) }
//
// Rate limits (HTTP 429, or codes 613, 4, 80007, 130429) are retried
// within the caller's context: after Retry-After when Meta sends it, else
// after Config.InitialBackoff doubling up to Config.MaxBackoff, at most
// Config.MaxRetries times, waiting on the injected clock. Nothing else is
// retried: a send lost in transit may still have reached the user, and a
// second would spend the request budget (1 per 24 h, 2 per 7 days).
//
// Package cloudapitest is a fake of these endpoints, with Meta's limits and
// simulated users who answer by signed webhook, for tests and demos.
package cloudapi
