package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/benbjohnson/clock"
)

// Defaults of Config's zero fields.
const (
	// DefaultBaseURL is Meta's Graph API host.
	DefaultBaseURL = "https://graph.facebook.com"
	// DefaultAPIVersion is the Graph API version of Meta's calling docs
	// (2026). Pin the version your app is on in Config.APIVersion.
	DefaultAPIVersion = "v25.0"
	// DefaultMaxRetries is how many times a rate-limited call is retried.
	DefaultMaxRetries = 5
	// DefaultInitialBackoff is the first wait after a rate limit without
	// Retry-After; each further wait doubles, up to DefaultMaxBackoff.
	DefaultInitialBackoff = time.Second
	// DefaultMaxBackoff caps the doubling backoff.
	DefaultMaxBackoff = time.Minute
	// DefaultMaxResponseBytes bounds a response body.
	DefaultMaxResponseBytes = 1 << 20
)

// Config configures a Client. Only AccessToken is required.
type Config struct {
	// BaseURL is the Graph API's scheme and host, without a version.
	// Default DefaultBaseURL; tests point it at a cloudapitest.Server.
	BaseURL string
	// APIVersion is the path prefix of every call, e.g. "v25.0". Default
	// DefaultAPIVersion.
	APIVersion string
	// AccessToken is the system-user or business token, sent as
	// "Authorization: Bearer …". Required.
	AccessToken string
	// HTTPClient sends the requests. Default http.DefaultClient. Its
	// Timeout (if any) bounds each attempt; the caller's context bounds the
	// whole call, retries included.
	HTTPClient *http.Client
	// Clock measures backoff waits. Default the real clock; tests inject
	// a clock.Mock and advance it (see OnRetry).
	Clock clock.Clock
	// MaxRetries is how many times one call is retried after a rate limit
	// (HTTP 429, or codes 613, 4, 80007, 130429). Default
	// DefaultMaxRetries; negative disables retries. Other errors are never
	// retried: a send that failed in transit may have reached Meta, and a
	// second one would spend the user's request budget.
	MaxRetries int
	// InitialBackoff is the wait after the first rate limit when Meta sent
	// no Retry-After; it doubles per retry up to MaxBackoff. A Retry-After
	// is honoured as given. Defaults DefaultInitialBackoff and
	// DefaultMaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
	// OnRetry, when set, is called before each backoff wait with the
	// attempt that failed (1 for the first), the wait and the error. The
	// wait's timer already exists when it is called, so a test holding a
	// clock.Mock may advance the clock once it has been called.
	OnRetry func(attempt int, wait time.Duration, err error)
	// MaxResponseBytes bounds a response body read. Default
	// DefaultMaxResponseBytes (1 MiB).
	MaxResponseBytes int64
}

// Client calls the part of Meta's WhatsApp Cloud API that call
// permissions need. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // BaseURL + "/" + APIVersion
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.AccessToken == "" {
		return nil, fmt.Errorf("%w: Config.AccessToken is required", ErrInvalidRequest)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: Config.BaseURL %q is not an http(s) URL", ErrInvalidRequest, cfg.BaseURL)
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = cfg.InitialBackoff
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	base := strings.TrimRight(cfg.BaseURL, "/") + "/" + strings.Trim(cfg.APIVersion, "/")
	return &Client{cfg: cfg, base: base}, nil
}

// endpoint is the URL of /<phoneNumberID>/<edge>?query.
func (c *Client) endpoint(phoneNumberID, edge string, query url.Values) (string, error) {
	if phoneNumberID == "" {
		return "", fmt.Errorf("%w: phone number id is empty", ErrInvalidRequest)
	}
	u := c.base + "/" + url.PathEscape(phoneNumberID) + "/" + edge
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u, nil
}

// do sends method to url with body (JSON-encoded when not nil) and decodes
// a 2xx answer into out, retrying rate limits within ctx.
func (c *Client) do(ctx context.Context, method, url string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("cloudapi: encode request: %w", err)
		}
	}
	backoff := c.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, method, url, payload, out)
		var apiErr *Error
		if err == nil || !errors.As(err, &apiErr) || !apiErr.RateLimited() || attempt > c.cfg.MaxRetries {
			return err
		}
		wait := apiErr.RetryAfter
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, c.cfg.MaxBackoff)
		}
		t := c.cfg.Clock.Timer(wait)
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(attempt, wait, err)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cloudapi: gave up waiting to retry: %w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method, url string, payload []byte, out any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("cloudapi: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("cloudapi: %s %s: %w", method, redact(req), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("cloudapi: read response: %w", err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return fmt.Errorf("%w: response over %d bytes", ErrMalformedResponse, c.cfg.MaxResponseBytes)
	}
	if apiErr, ok := decodeError(resp.StatusCode, resp.Header, data, c.cfg.Clock.Now()); ok {
		return apiErr
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedResponse, err)
	}
	return nil
}

// redact is the request's URL without its query, which may carry a user's
// phone number.
func redact(r *http.Request) string {
	u := *r.URL
	u.RawQuery = ""
	return u.String()
}
