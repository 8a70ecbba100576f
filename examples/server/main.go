// Command server is callready's reference server: a small CRM backend
// that receives Meta's WhatsApp webhooks and shows agents, per business
// number, the contacts they may call right now (the "Request Accepted"
// inbox), live in the browser. It uses only the library's public API.
//
//	go run ./examples/server          # SQLite file callready.db, token printed
//	go run ./examples/server -demo    # plus simulated webhook traffic
//
// See README.md beside this file for the configuration and the HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr)
	var help helpError
	switch {
	case errors.As(err, &help):
		fmt.Println(help.usage) // asked for: stdout, exit 0
	case err != nil:
		fmt.Fprintln(os.Stderr, "callready: "+err.Error())
		os.Exit(1)
	}
}

// shutdownGrace bounds how long in-flight requests may take to finish.
const shutdownGrace = 20 * time.Second

// run serves until SIGINT or SIGTERM, then shuts down in order: stop
// taking requests and let in-flight webhooks finish (so everything
// acknowledged is recorded), then stop the tracker, then close the
// database.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	if cfg.SendTestWebhook {
		return sendTestWebhook(ctx, cfg, stderr)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	db, postgres, err := openDB(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	webhookLog := log
	if cfg.Demo {
		// One line per simulated delivery would bury everything else.
		webhookLog = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	meta, err := openMeta(cfg)
	if err != nil {
		return err
	}
	defer meta.close()
	srv, err := newServer(ctx, serverOptions{
		DB: db, Postgres: postgres, DSN: cfg.DB, Logger: log, WebhookLogger: webhookLog,
		AppSecret: cfg.AppSecret, VerifyToken: cfg.VerifyToken, APIToken: cfg.APIToken,
		DialURL: cfg.DialURL, MetricsOnOwnAddr: cfg.MetricsAddr != "", Meta: meta.options,
	})
	if err != nil {
		return fmt.Errorf("cannot start on %s: %v", describeDB(cfg.DB), err)
	}
	defer srv.close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(srv.stop) // ends SSE streams so Shutdown can finish
	var ms *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on -metrics-addr %s: %v", cfg.MetricsAddr, err)
		}
		ms = &http.Server{Handler: srv.metrics.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ms.Serve(mln) }()
		fmt.Fprintf(stderr, "callready: metrics on http://%s/metrics (no token)\n", mln.Addr())
		defer ms.Close()
	}
	mirrored := int64(-1)
	if meta.fake != nil {
		// Before the reconciler's first round: Meta's side starts in step.
		if mirrored, err = mirrorDemoList(ctx, srv, meta.fake); err != nil {
			return fmt.Errorf("demo: %v", err)
		}
	}
	srv.start()

	base := "http://" + ln.Addr().String()
	if meta.fake != nil {
		meta.fake.SetWebhookURL(base + "/webhook") // the simulated users' replies
	}
	fmt.Fprintf(stderr, "callready: serving %s on %s\n", describeDB(cfg.DB), base)
	switch {
	case cfg.GeneratedAPIToken:
		fmt.Fprintf(stderr, "callready: API token (generated for this run; keep one with -token-file or CALLREADY_API_TOKEN): %s\n", cfg.APIToken)
	case cfg.TokenFile != "" && getenv("CALLREADY_API_TOKEN") == "":
		fmt.Fprintf(stderr, "callready: API token kept in %s: %s\n", cfg.TokenFile, cfg.APIToken)
	}
	if cfg.DemoDB {
		fmt.Fprintf(stderr, "callready: demo data goes to its own file %s (not %s); -db chooses another\n", defaultDemoDB, defaultDB)
	}
	if cfg.GeneratedAppSecret {
		fmt.Fprintf(stderr, "callready: CALLREADY_APP_SECRET unset: webhooks must be signed with this generated secret: %s\n", cfg.AppSecret)
	}
	if cfg.GeneratedVerifyToken {
		fmt.Fprintf(stderr, "callready: CALLREADY_VERIFY_TOKEN unset: generated verify token: %s\n", cfg.VerifyToken)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	var demoWG sync.WaitGroup
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	if cfg.Demo {
		fmt.Fprintf(stderr, "callready: demo mode: simulated WhatsApp traffic on two channels; open %s\n", base)
		demoWG.Go(func() { runDemo(demoCtx, srv, base, cfg.AppSecret, log) })
		if meta.fake != nil {
			fmt.Fprintf(stderr, "callready: demo mode: Meta's Cloud API is simulated in process at %s\n", meta.fake.URL())
			demoWG.Go(func() { mirrorDemoMeta(demoCtx, srv, meta.fake, mirrored, log) })
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		stopDemo()
		demoWG.Wait()
		return fmt.Errorf("server stopped: %v", err)
	}
	stopDemo()
	demoWG.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown: some requests did not finish in time", "err", err)
	}
	if err := srv.close(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("closing the database: %v", err)
	}
	log.Info("stopped")
	return nil
}

// startCPUProfile profiles the run into path until the returned function
// is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
