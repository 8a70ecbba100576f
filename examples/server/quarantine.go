package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	sqlstore "github.com/callready/callready/store/sql"
	"github.com/callready/callready/webhook"
)

// The webhook quarantine: the parts of verified webhook bodies the handler
// could not record (an unknown call direction, an id no store can hold, a
// wrong-typed field), kept raw in the database for 30 days
// (webhook.DefaultQuarantineRetention) and listed by GET /api/quarantine.

func newQuarantine(st *sqlstore.Store, o serverOptions) *sqlstore.Quarantine {
	return st.Quarantine(webhook.QuarantineConfig{Clock: o.Clock})
}

type quarantinedJSON struct {
	ReceivedAt time.Time       `json:"received_at"`
	Error      string          `json:"error"`
	Raw        json.RawMessage `json:"raw"`
}

// rawJSON shows a quarantined item's bytes as JSON: as they are when they
// are a JSON value in valid UTF-8 (what Meta sends), with invalid bytes
// replaced otherwise, and as a string when they are not JSON at all.
func rawJSON(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	if !utf8.Valid(raw) {
		raw = []byte(strings.ToValidUTF8(string(raw), "\uFFFD"))
	}
	if json.Valid(raw) {
		return raw
	}
	b, _ := json.Marshal(string(raw))
	return b
}

// listQuarantine answers GET /api/quarantine?limit=&cursor=: the newest
// quarantined items first, paged like the callable list.
func (s *server) listQuarantine(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	limit := 0
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > webhook.MaxQuarantinePage {
			writeError(w, http.StatusBadRequest, "limit: want an integer from 1 to "+strconv.Itoa(webhook.MaxQuarantinePage))
			return
		}
		limit = n
	}
	items, next, err := s.quarantine.List(r.Context(), v.Get("cursor"), limit)
	if errors.Is(err, webhook.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not from this listing, or corrupted")
		return
	}
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	out := make([]quarantinedJSON, len(items))
	for i, it := range items {
		out[i] = quarantinedJSON{ReceivedAt: it.ReceivedAt.UTC(), Error: it.Error, Raw: rawJSON(it.Raw)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "next_cursor": next})
}

// quarantineMetrics exports the quarantine: items set aside since start
// (from the handler's counters) and items held in the database now.
type quarantineMetrics struct {
	s                   *server
	stats               func() webhook.Stats
	totalDesc, heldDesc *prometheus.Desc
}

func newQuarantineMetrics(s *server, stats func() webhook.Stats) *quarantineMetrics {
	return &quarantineMetrics{
		s: s, stats: stats,
		totalDesc: prometheus.NewDesc("callready_webhook_quarantined_total",
			"Webhook items quarantined since start (unreadable, unattributable or unstorable items; a re-delivered item counts again).", nil, nil),
		heldDesc: prometheus.NewDesc("callready_webhook_quarantine_items",
			"Quarantined webhook items held now, within the retention (GET /api/quarantine lists them).", nil, nil),
	}
}

func (m *quarantineMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.totalDesc
	ch <- m.heldDesc
}

func (m *quarantineMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.totalDesc, prometheus.CounterValue, float64(m.stats().Quarantined))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n, err := m.s.quarantine.Len(ctx)
	if err != nil {
		m.s.log.Error("metrics: counting the quarantine", "err", err)
		return // the gauge is missing from this scrape rather than wrong
	}
	ch <- prometheus.MustNewConstMetric(m.heldDesc, prometheus.GaugeValue, float64(n))
}
