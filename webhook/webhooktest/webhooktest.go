// Package webhooktest posts signed webhook bodies, the way Meta does, to a
// URL or straight to an http.Handler. It is for tests and simulators.
package webhooktest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/callready/callready/webhook"
)

// NewRequest returns a POST of body to url, signed with secret in the
// X-Hub-Signature-256 header, with Meta's content type.
func NewRequest(ctx context.Context, url, secret string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, secret))
	return req, nil
}

// Post sends body, signed with secret, to url with client
// (http.DefaultClient when nil). The caller closes the response body.
func Post(ctx context.Context, client *http.Client, url, secret string, body []byte) (*http.Response, error) {
	req, err := NewRequest(ctx, url, secret, body)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	return client.Do(req)
}

// PostFile posts the contents of the file at path (a fixture), signed.
func PostFile(ctx context.Context, client *http.Client, url, secret, path string) (*http.Response, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Post(ctx, client, url, secret, body)
}

// Serve sends body, signed with secret, to h in process and returns the
// response it wrote.
func Serve(h http.Handler, secret string, body []byte) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(body, secret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// ServeFile sends the contents of the file at path to h, signed.
func ServeFile(h http.Handler, secret, path string) (*http.Response, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Serve(h, secret, body), nil
}
