// Command loadgen posts signed, fixture-based WhatsApp webhooks to a
// server over keep-alive connections and reports how fast it answers:
// webhooks per second, POST→200 latency percentiles, and the non-200
// answers. It is the client half of the reference-server benchmark
// (bench/cmd/serverbench runs the server, loadgen against it, and counts
// the ledger).
//
// Every body is one of the fixture shapes (-fixtures, in turn) with users
// and item ids of its own and timestamps of now, so nothing dedupes:
//
//	loadgen -url http://127.0.0.1:8080/webhook -secret S -n 20000 -c 32
//	loadgen -url … -secret S -rate 4000 -duration 10m -interval 1m -json
//
// Without -rate each of the -c clients posts its next body as soon as the
// previous one is answered (closed loop). With -rate bodies are sent on a
// fixed schedule by the -c clients (open loop, for a soak) and latency is
// measured from each body's scheduled time, so a stalled server shows as
// latency rather than as a slower schedule. -duration bounds the run in
// time, -n in bodies (the first reached ends it; -n 0 with -duration:
// no count bound).
//
// With -json it prints one JSON object per -interval and a final one
// (final: true); otherwise a line of text each.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

// config is what a run is built from.
type config struct {
	URL      string
	Secret   string
	N        int
	Clients  int
	Rate     float64
	Users    int // bodies name users of body i % Users (0: every body its own users)
	Duration time.Duration
	Interval time.Duration
	Fixtures string
	Names    []string
	JSON     bool
	Timeout  time.Duration
}

func main() {
	var cfg config
	var names string
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/webhook", "webhook URL")
	flag.StringVar(&cfg.Secret, "secret", os.Getenv("CALLREADY_APP_SECRET"), "app secret the bodies are signed with (default $CALLREADY_APP_SECRET)")
	flag.IntVar(&cfg.N, "n", 20000, "bodies to post (0: no bound, with -duration)")
	flag.IntVar(&cfg.Clients, "c", 32, "concurrent clients, one keep-alive connection each")
	flag.Float64Var(&cfg.Rate, "rate", 0, "bodies per second on a fixed schedule (0: as fast as answered)")
	flag.IntVar(&cfg.Users, "users", 0, "bound the population: body i names the users of body i % users, with ids still its own (0: new users in every body)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: when -n are posted)")
	flag.DurationVar(&cfg.Interval, "interval", 0, "also report every interval (e.g. 1m for the soak's p99 per minute)")
	flag.StringVar(&cfg.Fixtures, "fixtures", "../webhook/testdata/fixtures", "directory of the fixture bodies")
	flag.StringVar(&names, "shapes", strings.Join(DefaultFixtures, ","), "fixture files posted in turn, comma-separated")
	flag.BoolVar(&cfg.JSON, "json", false, "print JSON objects instead of text")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "timeout of one POST")
	flag.Parse()
	cfg.Names = strings.Split(names, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Report is one interval's or the whole run's figures.
type Report struct {
	Final     bool        `json:"final"`
	Elapsed   float64     `json:"elapsed_s"` // since the start
	Seconds   float64     `json:"seconds"`   // this report's span
	Posted    int         `json:"posted"`
	OK        int         `json:"ok"`
	Non200    int         `json:"non_200"`
	Errors    int         `json:"errors"`    // transport errors (no answer)
	Events    int         `json:"events_ok"` // permission events in the bodies answered 200
	PerSecond float64     `json:"webhooks_per_s"`
	P50       float64     `json:"p50_ms"`
	P99       float64     `json:"p99_ms"`
	Max       float64     `json:"max_ms"`
	Statuses  map[int]int `json:"statuses,omitempty"` // non-200 answers by status
	FirstErr  string      `json:"first_error,omitempty"`
}

// sample is one POST's outcome.
type sample struct {
	latency time.Duration
	status  int // 0: no answer
	events  int
	err     error
}

// job is one body to post.
type job struct {
	body   []byte
	events int
	due    time.Time // scheduled send time (rate mode), else zero
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.Secret == "" {
		return errors.New("no -secret (or CALLREADY_APP_SECRET)")
	}
	if cfg.Clients <= 0 {
		return errors.New("-c must be positive")
	}
	if cfg.N <= 0 && cfg.Duration <= 0 {
		return errors.New("-n or -duration must bound the run")
	}
	fx, err := loadFixtures(cfg.Fixtures, cfg.Names)
	if err != nil {
		return err
	}
	gen := &generator{fixtures: fx, users: cfg.Users}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	// Closed loop with a count: build every body first, so the clients
	// spend their time posting.
	var pre []job
	if cfg.Rate <= 0 && cfg.Duration <= 0 {
		pre = make([]job, cfg.N)
		for i := range pre {
			if pre[i], err = gen.next(time.Now()); err != nil {
				return err
			}
		}
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Clients,
		MaxIdleConnsPerHost: cfg.Clients,
		MaxConnsPerHost:     cfg.Clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	jobs := make(chan job, cfg.Clients)
	samples := make(chan sample, 4*cfg.Clients)
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			for j := range jobs {
				// Not ctx: a POST in flight when the run ends is answered.
				samples <- post(context.WithoutCancel(ctx), client, cfg, j)
			}
		})
	}
	start := time.Now()
	// The feeder: from the prebuilt bodies, as fast as the clients take
	// them, or on the -rate schedule.
	var genErr atomic.Value
	go func() {
		defer close(jobs)
		for i := 0; cfg.N <= 0 || i < cfg.N; i++ {
			var j job
			if pre != nil {
				j = pre[i]
			} else {
				if cfg.Rate > 0 {
					due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
					}
					j.due = due
				}
				b, err := gen.next(time.Now())
				if err != nil {
					genErr.Store(err)
					return
				}
				j.body, j.events = b.body, b.events
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(samples) }()

	total := newAgg()
	var win *agg
	var tick <-chan time.Time
	if cfg.Interval > 0 {
		win = newAgg()
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	last := start
	for done := false; !done; {
		select {
		case s, ok := <-samples:
			if !ok {
				done = true
				break
			}
			total.add(s)
			if win != nil {
				win.add(s)
			}
		case now := <-tick:
			r := win.report(now.Sub(last))
			r.Elapsed = now.Sub(start).Seconds()
			if err := emit(out, cfg.JSON, r); err != nil {
				return err
			}
			win, last = newAgg(), now
		}
	}
	if err, _ := genErr.Load().(error); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if win != nil && len(win.lat) > 0 {
		r := win.report(time.Since(last))
		r.Elapsed = elapsed.Seconds()
		if err := emit(out, cfg.JSON, r); err != nil {
			return err
		}
	}
	r := total.report(elapsed)
	r.Final, r.Elapsed = true, elapsed.Seconds()
	return emit(out, cfg.JSON, r)
}

// post sends one body and reads the whole answer, so the connection is
// reused.
func post(ctx context.Context, client *http.Client, cfg config, j job) sample {
	req, err := webhooktest.NewRequest(ctx, cfg.URL, cfg.Secret, j.body)
	if err != nil {
		return sample{err: err}
	}
	sent := time.Now()
	if !j.due.IsZero() {
		sent = j.due
	}
	resp, err := client.Do(req)
	if err != nil {
		return sample{latency: time.Since(sent), err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return sample{latency: time.Since(sent), status: resp.StatusCode, events: j.events}
}

// generator builds the bodies in turn over the fixtures.
type generator struct {
	mu       sync.Mutex
	fixtures []*fixture
	users    int
	i        int
	events   map[*fixture]int // events per body of a fixture, once its first body parsed
}

// next returns the next body. Only each fixture's first body is parsed
// (to check it and count its events): the others differ in ids, users and
// times only, and parsing every one took a quarter of loadgen's CPU, which
// the server shares on a small machine (TestBodiesAreDistinct checks
// that every body parses whole, with that count).
func (g *generator) next(now time.Time) (job, error) {
	g.mu.Lock()
	i := g.i
	g.i++
	f := g.fixtures[i%len(g.fixtures)]
	events, counted := g.events[f]
	g.mu.Unlock()
	b := f.body(i, g.users, now)
	if !counted {
		var err error
		if events, err = countEvents(f.name, i, b); err != nil {
			return job{}, err
		}
		g.mu.Lock()
		if g.events == nil {
			g.events = map[*fixture]int{}
		}
		g.events[f] = events
		g.mu.Unlock()
	}
	return job{body: b, events: events}, nil
}

// countEvents parses body i of the fixture named name and counts its
// events; a body that does not parse, or has a quarantined part, is an
// error.
func countEvents(name string, i int, body []byte) (int, error) {
	batch, err := webhook.Parse(body)
	if err != nil {
		return 0, fmt.Errorf("%s: body %d does not parse: %w", name, i, err)
	}
	if len(batch.Quarantined) > 0 {
		return 0, fmt.Errorf("%s: body %d has a quarantined part: %s", name, i, batch.Quarantined[0].Error)
	}
	return len(batch.Events), nil
}

// agg accumulates samples.
type agg struct {
	lat      []time.Duration
	ok, non  int
	errs     int
	events   int
	statuses map[int]int
	firstErr string
}

func newAgg() *agg { return &agg{statuses: map[int]int{}} }

func (a *agg) add(s sample) {
	switch {
	case s.err != nil:
		a.errs++
		if a.firstErr == "" {
			a.firstErr = s.err.Error()
		}
		return
	case s.status == http.StatusOK:
		a.ok++
		a.events += s.events
	default:
		a.non++
		a.statuses[s.status]++
	}
	a.lat = append(a.lat, s.latency)
}

func (a *agg) report(span time.Duration) Report {
	r := Report{
		Seconds: span.Seconds(), Posted: a.ok + a.non + a.errs, OK: a.ok, Non200: a.non, Errors: a.errs,
		Events: a.events, FirstErr: a.firstErr,
	}
	if len(a.statuses) > 0 {
		r.Statuses = a.statuses
	}
	if span > 0 {
		r.PerSecond = float64(a.ok) / span.Seconds()
	}
	if len(a.lat) > 0 {
		slices.Sort(a.lat)
		r.P50 = ms(quantile(a.lat, 0.50))
		r.P99 = ms(quantile(a.lat, 0.99))
		r.Max = ms(a.lat[len(a.lat)-1])
	}
	return r
}

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func emit(w io.Writer, asJSON bool, r Report) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	what := "interval"
	if r.Final {
		what = "total"
	}
	_, err := fmt.Fprintf(w, "%s %.1fs: %d posted, %d ok (%d events), %d non-200, %d errors; %.0f webhooks/s; POST→200 p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		what, r.Elapsed, r.Posted, r.OK, r.Events, r.Non200, r.Errors, r.PerSecond, r.P50, r.P99, r.Max)
	if err == nil && r.FirstErr != "" {
		_, err = fmt.Fprintf(w, "  first error: %s\n", r.FirstErr)
	}
	return err
}
