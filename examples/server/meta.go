package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
	"github.com/callready/callready/reconcile"
)

// metaConfig is the Meta Cloud API part of the configuration, from the
// environment (see README.md, "Meta Cloud API").
type metaConfig struct {
	Token      string   // CALLREADY_META_TOKEN: system-user access token; empty: no Cloud API
	BaseURL    string   // CALLREADY_META_API_URL: default cloudapi.DefaultBaseURL
	APIVersion string   // CALLREADY_META_API_VERSION: default cloudapi.DefaultAPIVersion
	Channels   []string // CALLREADY_META_PHONE_NUMBER_IDS: comma-separated phone number ids
	// Template and TemplateLanguage name the approved template with a
	// call_permission_request component, for permission requests outside
	// the 24 h window (CALLREADY_META_TEMPLATE, CALLREADY_META_TEMPLATE_LANGUAGE,
	// default "en_US").
	Template, TemplateLanguage string
	// ReconcileRate is GET call_permissions per second
	// (CALLREADY_RECONCILE_RATE, default reconcile.DefaultRate), and
	// ReconcileInterval the pause between rounds (CALLREADY_RECONCILE_INTERVAL,
	// a Go duration, default reconcile.DefaultInterval).
	ReconcileRate     float64
	ReconcileInterval time.Duration
}

// parseMetaConfig reads the CALLREADY_META_* and CALLREADY_RECONCILE_*
// variables. Errors are one line, fit to print as is.
func parseMetaConfig(getenv func(string) string) (metaConfig, error) {
	c := metaConfig{
		Token:            strings.TrimSpace(getenv("CALLREADY_META_TOKEN")),
		BaseURL:          strings.TrimSpace(getenv("CALLREADY_META_API_URL")),
		APIVersion:       strings.TrimSpace(getenv("CALLREADY_META_API_VERSION")),
		Template:         strings.TrimSpace(getenv("CALLREADY_META_TEMPLATE")),
		TemplateLanguage: strings.TrimSpace(getenv("CALLREADY_META_TEMPLATE_LANGUAGE")),
	}
	if c.TemplateLanguage == "" {
		c.TemplateLanguage = "en_US"
	}
	for id := range strings.SplitSeq(getenv("CALLREADY_META_PHONE_NUMBER_IDS"), ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !isDigits(id) || len(id) > 32 {
			return c, fmt.Errorf("bad CALLREADY_META_PHONE_NUMBER_IDS: %q is not a phone number id (digits)", id)
		}
		if !slices.Contains(c.Channels, id) {
			c.Channels = append(c.Channels, id)
		}
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("bad CALLREADY_META_API_URL %q: want an http(s) URL such as %s", c.BaseURL, cloudapi.DefaultBaseURL)
		}
	}
	if v := getenv("CALLREADY_RECONCILE_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > 1000 {
			return c, fmt.Errorf("bad CALLREADY_RECONCILE_RATE %q: want requests per second, above 0 and at most 1000", v)
		}
		c.ReconcileRate = r
	}
	if v := getenv("CALLREADY_RECONCILE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return c, fmt.Errorf("bad CALLREADY_RECONCILE_INTERVAL %q: want a duration of at least 1s, e.g. 15m", v)
		}
		c.ReconcileInterval = d
	}
	if c.Token != "" && len(c.Channels) == 0 {
		return c, errors.New("CALLREADY_META_TOKEN is set but CALLREADY_META_PHONE_NUMBER_IDS is empty: list the business phone number ids to check")
	}
	if c.Token == "" && len(c.Channels) > 0 {
		return c, errors.New("CALLREADY_META_PHONE_NUMBER_IDS is set but CALLREADY_META_TOKEN is empty")
	}
	return c, nil
}

// metaOptions is how the server reaches Meta. A zero value: no Cloud API,
// the check endpoint answers 503.
type metaOptions struct {
	API      reconcile.API
	Channels []string
	Rate     float64
	Burst    int
	Interval time.Duration
	// Template and TemplateLanguage are kept for permission requests.
	Template, TemplateLanguage string
	// OnWait is reconcile.Config.OnWait (tests advance their mock clock).
	OnWait func(time.Duration)
	// demoFake is the in-process fake of -demo, told of the requests the
	// demo records (demoMetaRequest).
	demoFake *cloudapitest.Server
}

// metaSetup is what openMeta built: the options, and in demo mode the
// in-process fake of Meta's API.
type metaSetup struct {
	options metaOptions
	fake    *cloudapitest.Server
}

func (m *metaSetup) close() {
	if m.fake != nil {
		m.fake.Close()
	}
}

// openMeta builds the Cloud API client from cfg.Meta. With -demo it starts
// cloudapitest's fake in process instead, on the demo channels, so "Check
// with Meta" works with no account.
func openMeta(cfg config) (*metaSetup, error) {
	mc := cfg.Meta
	opts := metaOptions{Rate: mc.ReconcileRate, Interval: mc.ReconcileInterval, Burst: 5,
		Template: mc.Template, TemplateLanguage: mc.TemplateLanguage}
	if cfg.Demo {
		phones := map[string]string{}
		for _, c := range demoChannels {
			phones[c.id] = c.display
			opts.Channels = append(opts.Channels, c.id)
		}
		// The simulated users answer some of the requests the server sends
		// (requests.go); main points the fake's webhooks at the server.
		fake := cloudapitest.New(cloudapitest.Config{PhoneNumbers: phones, AppSecret: cfg.AppSecret, AutoReply: demoAutoReply})
		api, err := cloudapi.New(cloudapi.Config{BaseURL: fake.URL(), AccessToken: fake.AccessToken(), HTTPClient: fake.Client()})
		if err != nil {
			fake.Close()
			return nil, err
		}
		opts.API, opts.demoFake = api, fake
		if opts.Template == "" {
			opts.Template = demoTemplate // the fake accepts any name: requests outside the 24 h window work too
		}
		return &metaSetup{options: opts, fake: fake}, nil
	}
	if mc.Token == "" {
		return &metaSetup{}, nil
	}
	api, err := cloudapi.New(cloudapi.Config{BaseURL: mc.BaseURL, APIVersion: mc.APIVersion, AccessToken: mc.Token})
	if err != nil {
		return nil, fmt.Errorf("bad Meta configuration: %v", err)
	}
	opts.API, opts.Channels = api, mc.Channels
	return &metaSetup{options: opts}, nil
}

// metaState is the server's link to Meta: the reconciler, when configured.
type metaState struct {
	s   *server
	rec *reconcile.Reconciler // nil: not configured
}

// newMetaState builds the reconciler from the server's options and
// registers its counters in /metrics.
func newMetaState(s *server) (*metaState, error) {
	m := &metaState{s: s}
	o := s.opts.Meta
	if o.API == nil {
		return m, nil
	}
	rec, err := reconcile.New(reconcile.Config{
		Tracker: s.tracker, API: o.API, Channels: o.Channels, Clock: s.clock,
		Rate: o.Rate, Burst: o.Burst, Interval: o.Interval, OnWait: o.OnWait,
		Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	m.rec = rec
	s.metrics.reg.MustRegister(reconcileCollector{rec})
	return m, nil
}

// startMeta runs the reconciler's loop until the server stops.
func (s *server) startMeta() {
	if s.meta == nil || s.meta.rec == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.bg.Go(func() {
		<-s.stopping
		cancel()
	})
	s.bg.Go(func() { _ = s.meta.rec.Run(ctx) })
}

// checkJSON is the answer of POST …/contacts/{contact}/check: the
// reconcile.Result (meta, before, after, drift) and what changed.
type checkJSON struct {
	reconcile.Result
	// Changed: corrections were recorded (the list may have changed).
	Changed bool `json:"changed"`
	// Changes are the callable-list changes the corrections caused.
	Changes []checkChangeJSON `json:"changes"`
}

type checkChangeJSON struct {
	Type     string `json:"type"`
	Revision int64  `json:"revision"`
}

// checkContact asks Meta's GET call_permissions about one contact now,
// records what disagrees (reconcile.CheckContact) and answers what
// changed: the "Check with Meta" action.
func (s *server) checkContact(w http.ResponseWriter, r *http.Request) {
	if s.meta == nil || s.meta.rec == nil {
		writeError(w, http.StatusServiceUnavailable, "Meta's Cloud API is not configured: set CALLREADY_META_TOKEN and CALLREADY_META_PHONE_NUMBER_IDS (or run with -demo)")
		return
	}
	ch, contact := r.PathValue("channel"), r.PathValue("contact")
	if !slices.Contains(s.opts.Meta.Channels, ch) {
		writeError(w, http.StatusNotFound, "channel "+strconv.Quote(ch)+" is not in CALLREADY_META_PHONE_NUMBER_IDS")
		return
	}
	if !validContact(contact) {
		writeError(w, http.StatusBadRequest, "bad contact: want a wa_id (digits) or a BSUID")
		return
	}
	res, err := s.meta.rec.CheckContact(r.Context(), ch, contact)
	if err != nil {
		var apiErr *cloudapi.Error
		switch {
		case r.Context().Err() != nil:
			return // the client went away
		case errors.As(err, &apiErr) && apiErr.RateLimited():
			if apiErr.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((apiErr.RetryAfter+time.Second-1)/time.Second)))
			}
			writeError(w, http.StatusTooManyRequests, "Meta's rate limit: try again shortly")
		case errors.As(err, &apiErr):
			s.log.Warn("check with Meta", "channel", ch, "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": "Meta answered: " + apiErr.Message, "code": apiErr.Code})
		case errors.Is(err, cloudapi.ErrMalformedResponse):
			s.log.Warn("check with Meta", "channel", ch, "err", err)
			writeError(w, http.StatusBadGateway, "Meta's answer could not be read")
		default:
			var urlErr *url.Error
			if errors.As(err, &urlErr) {
				s.log.Warn("check with Meta", "channel", ch, "err", err)
				writeError(w, http.StatusBadGateway, "Meta could not be reached")
				return
			}
			s.storeFailed(w, r, err)
		}
		return
	}
	out := checkJSON{Result: res, Changed: len(res.Recorded) > 0, Changes: []checkChangeJSON{}}
	if out.Drift == nil {
		out.Drift = []reconcile.Drift{}
	}
	for _, c := range res.Changes {
		out.Changes = append(out.Changes, checkChangeJSON{Type: string(c.Type), Revision: c.Revision})
	}
	writeJSON(w, http.StatusOK, out)
}

// validContact accepts a wa_id (digits) or a BSUID-like id (letters,
// digits, dots), within what every store holds.
func validContact(c string) bool {
	if c == "" || len(c) > permission.MaxIDLength {
		return false
	}
	for _, r := range c {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.') {
			return false
		}
	}
	return true
}

// reconcileCollector exports the reconciler's Stats at scrape time.
type reconcileCollector struct{ rec *reconcile.Reconciler }

var (
	reconcileChecksDesc = prometheus.NewDesc("callready_reconcile_checks_total",
		"Contacts Meta's call_permissions answered about since start.", nil, nil)
	reconcileErrorsDesc = prometheus.NewDesc("callready_reconcile_errors_total",
		"Failed calls to Meta since start; rate_limited: Meta's 613 beyond the client's retries.", []string{"kind"}, nil)
	reconcileDriftDesc = prometheus.NewDesc("callready_reconcile_drift_total",
		"Disagreements with Meta found since start, by kind (missed_accept, missed_revoke, wrong_expiry, meta_permanent, confirmed_callback, request_budget, call_budget).", []string{"kind"}, nil)
	reconcileSettingsDesc = prometheus.NewDesc("callready_reconcile_callback_settings_total",
		"Callback settings recorded from Meta's GET settings since start.", nil, nil)
)

func (c reconcileCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reconcileChecksDesc
	ch <- reconcileErrorsDesc
	ch <- reconcileDriftDesc
	ch <- reconcileSettingsDesc
}

func (c reconcileCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.rec.Stats()
	ch <- prometheus.MustNewConstMetric(reconcileChecksDesc, prometheus.CounterValue, float64(st.Checks))
	ch <- prometheus.MustNewConstMetric(reconcileErrorsDesc, prometheus.CounterValue, float64(st.RateLimited), "rate_limited")
	ch <- prometheus.MustNewConstMetric(reconcileErrorsDesc, prometheus.CounterValue, float64(st.Errors-st.RateLimited), "other")
	for _, k := range reconcile.DriftKinds {
		ch <- prometheus.MustNewConstMetric(reconcileDriftDesc, prometheus.CounterValue, float64(st.Drift[k]), string(k))
	}
	ch <- prometheus.MustNewConstMetric(reconcileSettingsDesc, prometheus.CounterValue, float64(st.CallbackSettings))
}
