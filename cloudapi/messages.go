package cloudapi

import (
	"context"
	"fmt"
	"net/http"
)

// Recipient names a WhatsApp user: by phone (wa_id digits, no "+"), by
// business-scoped user id (BSUID, e.g. "US.13491208655302741918", or a
// parent BSUID), or both.
type Recipient struct {
	// Phone is the user's wa_id: sent as "to", queried as "user_wa_id".
	Phone string
	// UserID is the BSUID: sent as "recipient", queried as "recipient".
	UserID string
}

func (r Recipient) validate() error {
	if r.Phone == "" && r.UserID == "" {
		return fmt.Errorf("%w: recipient has neither a phone number nor a user id", ErrInvalidRequest)
	}
	return nil
}

// PermissionRequest is a free-form interactive call permission request,
// for use inside the 24 h customer-service window (the user wrote within
// 24 h). Outside it, send a template (TemplateRequest).
type PermissionRequest struct {
	// To is the user. With both identifiers set, both are sent and Meta
	// uses the phone.
	To Recipient
	// Body is the optional interactive.body.text shown above the buttons.
	Body string
}

// TemplateRequest is a template message whose approved template (MARKETING
// or UTILITY) includes a call_permission_request component; it can be sent
// at any time.
type TemplateRequest struct {
	// To is the user, as for PermissionRequest.
	To Recipient
	// Name is the approved template's name. Required.
	Name string
	// Language is the template's language and locale code, e.g. "en_US".
	// Required.
	Language string
	// Parameters fill the template body's named parameters ({{first_name}}),
	// in order. Leave empty for a body without parameters.
	Parameters []NamedParameter
}

// NamedParameter is one named body parameter of a template.
type NamedParameter struct {
	Name string // parameter_name, as in the template's body text
	Text string // its value
}

// Contact is an identity Meta resolved for a send: contacts[] of the
// answer.
type Contact struct {
	Input        string // the identifier the request named (input)
	WaID         string // wa_id: the phone digits, empty for a username user Meta gives no phone for
	UserID       string // user_id: the BSUID
	ParentUserID string // parent_user_id, when the business is in a portfolio
}

// SendResult is Meta's answer to an accepted send.
type SendResult struct {
	// MessageID is the message's wamid (messages[0].id). Keep it: the
	// user's call_permission_reply names it in context.id.
	MessageID string
	// Contact is contacts[0]: who Meta resolved the recipient to. Zero when
	// Meta sent no contacts.
	Contact Contact
}

// The wire shapes of POST /<PHONE_NUMBER_ID>/messages (spec §9).
type (
	sendMessage struct {
		MessagingProduct string       `json:"messaging_product"`
		RecipientType    string       `json:"recipient_type"`
		To               string       `json:"to,omitempty"`
		Recipient        string       `json:"recipient,omitempty"`
		Type             string       `json:"type"`
		Interactive      *interactive `json:"interactive,omitempty"`
		Template         *template    `json:"template,omitempty"`
	}
	interactive struct {
		Type   string            `json:"type"`
		Body   *interactiveBody  `json:"body,omitempty"`
		Action interactiveAction `json:"action"`
	}
	interactiveBody struct {
		Text string `json:"text"`
	}
	interactiveAction struct {
		Name string `json:"name"`
	}
	template struct {
		Name       string              `json:"name"`
		Language   templateLanguage    `json:"language"`
		Components []templateComponent `json:"components,omitempty"`
	}
	templateLanguage struct {
		Code string `json:"code"`
	}
	templateComponent struct {
		Type       string              `json:"type"`
		Parameters []templateParameter `json:"parameters,omitempty"`
	}
	templateParameter struct {
		Type          string `json:"type"`
		ParameterName string `json:"parameter_name"`
		Text          string `json:"text"`
	}
	sendResponse struct {
		Contacts []struct {
			Input        string `json:"input"`
			WaID         string `json:"wa_id"`
			UserID       string `json:"user_id"`
			ParentUserID string `json:"parent_user_id"`
		} `json:"contacts"`
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
)

// callPermissionRequest is both interactive.type and
// interactive.action.name of a free-form request.
const callPermissionRequest = "call_permission_request"

// SendPermissionRequest sends a free-form call permission request from the
// business number phoneNumberID. Meta refuses it outside the customer
// service window, to a user holding a permanent permission (138017) and
// over the request limits (138009); see Reason.
func (c *Client) SendPermissionRequest(ctx context.Context, phoneNumberID string, req PermissionRequest) (SendResult, error) {
	if err := req.To.validate(); err != nil {
		return SendResult{}, err
	}
	msg := newMessage(req.To, "interactive")
	msg.Interactive = &interactive{Type: callPermissionRequest, Action: interactiveAction{Name: callPermissionRequest}}
	if req.Body != "" {
		msg.Interactive.Body = &interactiveBody{Text: req.Body}
	}
	return c.send(ctx, phoneNumberID, msg)
}

// SendPermissionTemplate sends a call permission request template from the
// business number phoneNumberID. Errors as for SendPermissionRequest.
func (c *Client) SendPermissionTemplate(ctx context.Context, phoneNumberID string, req TemplateRequest) (SendResult, error) {
	if err := req.To.validate(); err != nil {
		return SendResult{}, err
	}
	if req.Name == "" || req.Language == "" {
		return SendResult{}, fmt.Errorf("%w: template name and language are required", ErrInvalidRequest)
	}
	msg := newMessage(req.To, "template")
	msg.Template = &template{Name: req.Name, Language: templateLanguage{Code: req.Language}}
	if len(req.Parameters) > 0 {
		body := templateComponent{Type: "body"}
		for _, p := range req.Parameters {
			if p.Name == "" {
				return SendResult{}, fmt.Errorf("%w: template parameter without a name", ErrInvalidRequest)
			}
			body.Parameters = append(body.Parameters, templateParameter{Type: "text", ParameterName: p.Name, Text: p.Text})
		}
		msg.Template.Components = []templateComponent{body}
	}
	return c.send(ctx, phoneNumberID, msg)
}

func newMessage(to Recipient, typ string) *sendMessage {
	return &sendMessage{
		MessagingProduct: "whatsapp", RecipientType: "individual",
		To: to.Phone, Recipient: to.UserID, Type: typ,
	}
}

func (c *Client) send(ctx context.Context, phoneNumberID string, msg *sendMessage) (SendResult, error) {
	u, err := c.endpoint(phoneNumberID, "messages", nil)
	if err != nil {
		return SendResult{}, err
	}
	var resp sendResponse
	if err := c.do(ctx, http.MethodPost, u, msg, &resp); err != nil {
		return SendResult{}, err
	}
	if len(resp.Messages) == 0 || resp.Messages[0].ID == "" {
		return SendResult{}, fmt.Errorf("%w: no messages[0].id", ErrMalformedResponse)
	}
	res := SendResult{MessageID: resp.Messages[0].ID}
	if len(resp.Contacts) > 0 {
		k := resp.Contacts[0]
		res.Contact = Contact{Input: k.Input, WaID: k.WaID, UserID: k.UserID, ParentUserID: k.ParentUserID}
	}
	return res, nil
}
