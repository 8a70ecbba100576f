package main

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// several servers (tests) can live in one process.
type metrics struct {
	s           *server
	reg         *prometheus.Registry
	subscribers prometheus.Gauge
	changes     *prometheus.CounterVec
	// webhookStats reads the webhook handler's counters; set once the
	// handler exists.
	webhookStats func() webhook.Stats
	// resyncs counts the times watch found its revision compacted away.
	resyncs atomic.Int64

	callableDesc, webhooksDesc, eventsDesc *prometheus.Desc
}

func newMetrics(s *server) *metrics {
	m := &metrics{
		s:   s,
		reg: prometheus.NewRegistry(),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callready_sse_subscribers",
			Help: "Open Server-Sent Events streams (agents watching a channel).",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callready_permission_changes_total",
			Help: "Changes to the callable lists since start, by type (granted, extended, updated, revoked, expired).",
		}, []string{"type"}),
		callableDesc: prometheus.NewDesc("callready_callable_contacts",
			"Contacts callable right now, per channel.", []string{"channel"}, nil),
		webhooksDesc: prometheus.NewDesc("callready_webhook_requests_total",
			"Webhook POSTs since start by outcome: accepted, or the reason they were refused.", []string{"outcome"}, nil),
		eventsDesc: prometheus.NewDesc("callready_webhook_events_recorded_total",
			"Permission events recorded from webhooks since start.", nil, nil),
	}
	for _, t := range []permission.ChangeType{permission.Granted, permission.Extended, permission.Updated, permission.Revoked, permission.Expired} {
		m.changes.WithLabelValues(string(t)) // export zeros before the first change
	}
	m.reg.MustRegister(m.subscribers, m.changes, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Describe and Collect make metrics a collector of the values computed at
// scrape time: callable counts from the tracker, webhook counters from the
// handler.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.callableDesc
	ch <- m.webhooksDesc
	ch <- m.eventsDesc
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := m.s.clock.Now()
	for _, c := range m.s.inbox.channelList() {
		n, _, err := m.s.tracker.Count(c.Channel, now, 0)
		if err != nil {
			return // closing: no gauges
		}
		ch <- prometheus.MustNewConstMetric(m.callableDesc, prometheus.GaugeValue, float64(n), c.Channel)
	}
	if m.webhookStats == nil {
		return
	}
	st := m.webhookStats()
	ch <- prometheus.MustNewConstMetric(m.webhooksDesc, prometheus.CounterValue, float64(st.Accepted), "accepted")
	for reason, n := range st.Rejected {
		ch <- prometheus.MustNewConstMetric(m.webhooksDesc, prometheus.CounterValue, float64(n), string(reason))
	}
	ch <- prometheus.MustNewConstMetric(m.eventsDesc, prometheus.CounterValue, float64(st.Recorded))
}

// watch counts the tracker's changes (expiries among them) after revision
// after until ctx ends or the tracker closes. A lagging watcher resumes
// from its last revision. When the change log no longer holds that
// revision (ErrResync: it was compacted), the changes in between are gone
// for good: the watcher resumes from the tracker's current revision, so it
// never resubscribes in a loop, and counts from there.
func (m *metrics) watch(ctx context.Context, after int64) {
	for {
		sub, err := m.s.tracker.Subscribe(permission.SubscribeOptions{After: after})
		if err != nil {
			return // closed
		}
		err = m.count(ctx, sub, &after)
		sub.Close()
		switch {
		case ctx.Err() != nil, errors.Is(err, permission.ErrClosed):
			return
		case errors.Is(err, permission.ErrResync):
			m.resyncs.Add(1)
			after = max(after, m.s.tracker.Revision())
		default: // lagged, or a store error replaying: retry shortly
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// count reads sub until it fails, moving *after along.
func (m *metrics) count(ctx context.Context, sub *permission.Subscription, after *int64) error {
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		m.changes.WithLabelValues(string(c.Type)).Inc()
		*after = c.Revision
	}
}
