// Command serverbench measures the reference server's webhook ingest as a
// user would run it: it builds examples/server and bench/cmd/loadgen,
// starts the server on a fresh SQLite file (and on a fresh PostgreSQL
// database when CALLREADY_TEST_POSTGRES names a server), posts signed
// fixture-based webhooks with loadgen (a separate process, over keep-alive
// connections), stops the server, counts the ledger rows to check that
// every event acknowledged with 200 is there, and prints a markdown table.
//
// From bench/:
//
//	go run ./cmd/serverbench -n 20000 -c 32
//	go run ./cmd/serverbench -soak 10m -rate 4000   # RSS every 10 s, p99 per minute
//
// With -soak the load runs at -rate for that long while the server's RSS
// (VmRSS of /proc/PID/status) is sampled every -sample, each sample with
// the share of the machine's CPU time the hypervisor stole since the one
// before (/proc/stat); loadgen reports the p99 of each minute.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

type options struct {
	n        int
	clients  int
	duration time.Duration
	soak     time.Duration
	rate     float64
	users    int
	sample   time.Duration
	warmup   time.Duration
	stores   string
	server   string
	fixtures string
	work     string
	keep     bool
	profile  string
	pgDSN    string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 20000, "webhooks to post per store (closed loop)")
	flag.IntVar(&o.clients, "c", 32, "loadgen clients")
	flag.DurationVar(&o.duration, "duration", 0, "bound each run in time instead (with -n 0)")
	flag.DurationVar(&o.soak, "soak", 0, "soak for this long at -rate, sampling RSS and the p99 per minute")
	flag.Float64Var(&o.rate, "rate", 0, "webhooks per second of the soak (or of a fixed-rate run)")
	flag.IntVar(&o.users, "users", 0, "loadgen's -users: a bounded population (body i names the users of body i % users), so the active set stops growing (0: new users in every body)")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "RSS sampling interval of the soak")
	flag.DurationVar(&o.warmup, "warmup", time.Minute, "the soak's RSS samples before this are its warm-up, left out of the spread (a bounded -users population can take minutes to fill)")
	flag.StringVar(&o.stores, "stores", "sqlite,postgres", "stores to run: sqlite, postgres (when CALLREADY_TEST_POSTGRES is set)")
	flag.StringVar(&o.server, "server", "../examples/server", "the server's package directory")
	flag.StringVar(&o.fixtures, "fixtures", "../webhook/testdata/fixtures", "loadgen's fixture directory")
	flag.StringVar(&o.work, "work", "", "directory for binaries, databases and logs (default: a temporary one, removed)")
	flag.BoolVar(&o.keep, "keep", false, "keep -work's temporary directory")
	flag.StringVar(&o.profile, "cpuprofile", "", "write the server's CPU profile of each store's run to this directory (server-<store>.pprof)")
	flag.Parse()
	o.pgDSN = os.Getenv("CALLREADY_TEST_POSTGRES")
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "serverbench:", err)
		os.Exit(1)
	}
}

// report is loadgen's JSON output (see bench/cmd/loadgen).
type report struct {
	Final     bool        `json:"final"`
	Elapsed   float64     `json:"elapsed_s"`
	Posted    int         `json:"posted"`
	OK        int         `json:"ok"`
	Non200    int         `json:"non_200"`
	Errors    int         `json:"errors"`
	Events    int         `json:"events_ok"`
	PerSecond float64     `json:"webhooks_per_s"`
	P50       float64     `json:"p50_ms"`
	P99       float64     `json:"p99_ms"`
	Max       float64     `json:"max_ms"`
	Statuses  map[int]int `json:"statuses"`
	FirstErr  string      `json:"first_error"`
}

// result is one store's run.
type result struct {
	store     string
	final     report
	intervals []report
	rss       []rssSample
	ledger    int
	messages  int
	cpu       cpuUse
}

// cpuUse is the CPU time the run's processes took, from the start of the
// load to the server's exit: what bounds a closed loop on a small machine.
type cpuUse struct {
	wall            time.Duration
	server, loadgen time.Duration
	database        time.Duration // the machine's postgres processes; 0 for SQLite (inside the server)
	steal           float64       // share of the machine's CPU time stolen meanwhile; -1 unknown
}

type rssSample struct {
	at    time.Duration
	kib   int64
	steal float64 // share of the machine's CPU time stolen since the previous sample; -1 unknown
}

func run(ctx context.Context, o options, out io.Writer) error {
	work := o.work
	if work == "" {
		d, err := os.MkdirTemp("", "serverbench-")
		if err != nil {
			return err
		}
		work = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	fixtures, err := filepath.Abs(o.fixtures)
	if err != nil {
		return err
	}
	serverBin, loadgenBin := filepath.Join(work, "server"), filepath.Join(work, "loadgen")
	for _, b := range [][2]string{{serverBin, o.server}, {loadgenBin, "./cmd/loadgen"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b[0], b[1])
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", b[1], err)
		}
	}
	var results []result
	for _, st := range strings.Split(o.stores, ",") {
		var dsn string
		var cleanup func()
		switch st {
		case "sqlite":
			dsn = filepath.Join(work, "bench.db")
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(dsn + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			cleanup = func() {}
		case "postgres":
			if o.pgDSN == "" {
				fmt.Fprintln(os.Stderr, "serverbench: CALLREADY_TEST_POSTGRES is not set: PostgreSQL skipped")
				continue
			}
			if dsn, cleanup, err = freshPostgres(ctx, o.pgDSN); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown store %q", st)
		}
		r, err := runOne(ctx, o, st, dsn, work, serverBin, loadgenBin, fixtures)
		cleanup()
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		results = append(results, r)
	}
	printResults(out, o, results)
	for _, r := range results {
		if lost := r.final.Events - r.ledger; lost > 0 {
			return fmt.Errorf("%s: %d events acknowledged with 200 are not in the ledger", r.store, lost)
		}
	}
	return nil
}

// freshPostgres creates a database of its own on the server of dsn and
// returns its DSN and a function that drops it.
func freshPostgres(ctx context.Context, dsn string) (string, func(), error) {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "serverbench_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("creating a database: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}, nil
}

func runOne(ctx context.Context, o options, store, dsn, work, serverBin, loadgenBin, fixtures string) (result, error) {
	res := result{store: store}
	addr, err := freePort()
	if err != nil {
		return res, err
	}
	secret := "serverbench-secret"
	logf, err := os.Create(filepath.Join(work, "server-"+store+".log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	srvArgs := []string{"-addr", addr, "-db", dsn}
	if o.profile != "" {
		srvArgs = append(srvArgs, "-cpuprofile", filepath.Join(o.profile, "server-"+store+".pprof"))
	}
	srv := exec.Command(serverBin, srvArgs...)
	srv.Env = append(os.Environ(),
		"CALLREADY_APP_SECRET="+secret, "CALLREADY_VERIFY_TOKEN=serverbench-verify",
		"CALLREADY_API_TOKEN=serverbench-api-token-0123456789")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(60 * time.Second):
			_ = srv.Process.Kill()
			return errors.New("the server did not stop within 60 s")
		}
	}
	defer stop()
	if err := waitHealthy(ctx, "http://"+addr+"/healthz", exited); err != nil {
		return res, fmt.Errorf("%w (log: %s)", err, logf.Name())
	}

	args := []string{"-url", "http://" + addr + "/webhook", "-secret", secret, "-c", strconv.Itoa(o.clients),
		"-fixtures", fixtures, "-json"}
	if o.users > 0 {
		args = append(args, "-users", strconv.Itoa(o.users))
	}
	switch {
	case o.soak > 0:
		if o.rate <= 0 {
			return res, errors.New("-soak needs -rate")
		}
		args = append(args, "-n", "0", "-duration", o.soak.String(), "-interval", "1m", "-rate", fmt.Sprint(o.rate))
	default:
		args = append(args, "-n", strconv.Itoa(o.n))
		if o.duration > 0 {
			args = append(args, "-duration", o.duration.String())
		}
		if o.rate > 0 {
			args = append(args, "-rate", fmt.Sprint(o.rate))
		}
	}
	lg := exec.CommandContext(ctx, loadgenBin, args...)
	lg.Stderr = os.Stderr
	stdout, err := lg.StdoutPipe()
	if err != nil {
		return res, err
	}
	dbBefore := postgresCPU(store)
	stealBefore, totalBefore, statErr := cpuTimes()
	start := time.Now()
	if err := lg.Start(); err != nil {
		return res, err
	}
	sampling := make(chan struct{})
	sampled := make(chan []rssSample, 1)
	go func() {
		var s []rssSample
		if o.soak > 0 {
			prevSteal, prevTotal, statErr := cpuTimes()
			t := time.NewTicker(o.sample)
			defer t.Stop()
			for {
				select {
				case <-sampling:
					sampled <- s
					return
				case <-t.C:
					if kib, err := vmRSS(srv.Process.Pid); err == nil {
						x := rssSample{time.Since(start), kib, -1}
						steal, total, err := cpuTimes()
						if err == nil && statErr == nil && total > prevTotal {
							x.steal = float64(steal-prevSteal) / float64(total-prevTotal)
						}
						prevSteal, prevTotal, statErr = steal, total, err
						s = append(s, x)
					}
				}
			}
		}
		<-sampling
		sampled <- s
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var r report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return res, fmt.Errorf("loadgen printed %q: %w", sc.Text(), err)
		}
		if r.Final {
			res.final = r
		} else {
			res.intervals = append(res.intervals, r)
		}
	}
	lgErr := lg.Wait()
	close(sampling)
	res.rss = <-sampled
	if lgErr != nil {
		return res, fmt.Errorf("loadgen: %w", lgErr)
	}
	if err := stop(); err != nil {
		return res, fmt.Errorf("stopping the server: %w (log: %s)", err, logf.Name())
	}
	res.cpu = cpuUse{
		wall:     time.Since(start),
		server:   srv.ProcessState.UserTime() + srv.ProcessState.SystemTime(),
		loadgen:  lg.ProcessState.UserTime() + lg.ProcessState.SystemTime(),
		database: postgresCPU(store) - dbBefore,
		steal:    -1,
	}
	if steal, total, err := cpuTimes(); err == nil && statErr == nil && total > totalBefore {
		res.cpu.steal = float64(steal-stealBefore) / float64(total-totalBefore)
	}
	res.ledger, res.messages, err = count(ctx, store, dsn)
	return res, err
}

// postgresCPU is the CPU time of this machine's postgres processes,
// their reaped children included (a backend's time moves to the
// postmaster when it exits); 0 for another store, or when none is found.
func postgresCPU(store string) time.Duration {
	if store != "postgres" {
		return 0
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		ticks += postgresTicks(string(b))
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks
}

// postgresTicks reads utime+stime+cutime+cstime from a /proc/PID/stat
// line when its command is postgres, else 0.
func postgresTicks(stat string) int64 {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open || stat[open+1:end] != "postgres" {
		return 0
	}
	f := strings.Fields(stat[end+1:])
	if len(f) < 15 { // state … cstime: fields 3–17 of proc(5)
		return 0
	}
	var n int64
	for _, v := range f[11:15] {
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		n += t
	}
	return n
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(ctx context.Context, u string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the server exited at start: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the server was not healthy within 60 s")
}

// vmRSS reads a process's resident set size in KiB.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTimes reads the machine's stolen and total CPU time (in clock ticks)
// from the first line of /proc/stat: a virtual machine's hypervisor that
// runs other guests on its cores shows as steal.
func cpuTimes() (steal, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return steal, total, nil
}

// count reads how many ledger events and chat lines the database holds.
func count(ctx context.Context, store, dsn string) (ledger, messages int, err error) {
	driver, src := "pgx", dsn
	if store == "sqlite" {
		driver, src = "sqlite", "file:"+dsn
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM callready_ledger").Scan(&ledger); err != nil {
		return 0, 0, fmt.Errorf("counting the ledger: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM server_messages").Scan(&messages); err != nil {
		return 0, 0, fmt.Errorf("counting the messages: %w", err)
	}
	return ledger, messages, nil
}

func printResults(w io.Writer, o options, results []result) {
	mode := fmt.Sprintf("%d webhooks, closed loop", o.n)
	switch {
	case o.soak > 0:
		mode = fmt.Sprintf("soak %s at %.0f/s", o.soak, o.rate)
		if o.users > 0 {
			mode += fmt.Sprintf(", %d bodies' users in turn", o.users)
		}
	case o.rate > 0:
		mode = fmt.Sprintf("%.0f/s fixed rate", o.rate)
	}
	fmt.Fprintf(w, "Reference server ingest (examples/server, loadgen as a separate process, %d clients, %s):\n\n", o.clients, mode)
	fmt.Fprintln(w, "| store | posted | webhooks/s | p50 ms | p99 ms | max ms | non-200 | errors | events acked | ledger rows | chat lines |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		f := r.final
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %d | %d | %d | %d | %d |\n",
			r.store, f.Posted, f.PerSecond, f.P50, f.P99, f.Max, f.Non200, f.Errors, f.Events, r.ledger, r.messages)
	}
	fmt.Fprintf(w, "\nCPU per webhook acknowledged, from the load's start to the server's exit (at 5,000/s, 2 cores give %d µs):\n\n", 2*1_000_000/5000)
	fmt.Fprintln(w, "| store | server µs | loadgen µs | database µs | total µs | cores busy | CPU stolen |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range results {
		c, n := r.cpu, r.final.OK
		if n == 0 || c.wall <= 0 {
			continue
		}
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
		db := "–"
		if c.database > 0 {
			db = fmt.Sprintf("%.0f", per(c.database))
		}
		stolen := "?"
		if c.steal >= 0 {
			stolen = fmt.Sprintf("%.0f%%", 100*c.steal)
		}
		total := c.server + c.loadgen + c.database
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %.0f | %.2f | %s |\n", r.store, per(c.server), per(c.loadgen), db, per(total), total.Seconds()/c.wall.Seconds(), stolen)
	}
	for _, r := range results {
		if len(r.intervals) > 0 {
			fmt.Fprintf(w, "\n%s, per minute:\n\n| minute | webhooks/s | p50 ms | p99 ms | max ms | non-200 |\n|---|---|---|---|---|---|\n", r.store)
			for i, iv := range r.intervals {
				fmt.Fprintf(w, "| %d | %.0f | %.1f | %.1f | %.1f | %d |\n", i+1, iv.PerSecond, iv.P50, iv.P99, iv.Max, iv.Non200)
			}
		}
		if len(r.rss) > 0 {
			fmt.Fprintf(w, "\n%s, server RSS, and the machine's CPU time its hypervisor gave to other guests since the previous sample (/proc/stat steal: while it is high, the server has less CPU than the rate was sized for):\n\n| at | RSS MiB | CPU stolen |\n|---|---|---|\n", r.store)
			for _, s := range r.rss {
				stolen := "?"
				if s.steal >= 0 {
					stolen = fmt.Sprintf("%.0f%%", 100*s.steal)
				}
				fmt.Fprintf(w, "| %s | %.1f | %s |\n", s.at.Round(time.Second), float64(s.kib)/1024, stolen)
			}
			if lo, hi, ok := rssSpread(r.rss, o.warmup); ok {
				fmt.Fprintf(w, "\nAfter the warm-up (%s): RSS %.1f–%.1f MiB, spread %.1f%%.\n", o.warmup, lo/1024, hi/1024, 100*(hi-lo)/lo)
			}
		}
	}
}

// rssSpread is the lowest and highest RSS from warmup on.
func rssSpread(s []rssSample, warmup time.Duration) (lo, hi float64, ok bool) {
	for _, x := range s {
		if x.at < warmup {
			continue
		}
		v := float64(x.kib)
		if !ok || v < lo {
			lo = v
		}
		if !ok || v > hi {
			hi = v
		}
		ok = true
	}
	return lo, hi, ok
}
