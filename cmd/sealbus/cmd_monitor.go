package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbusprom"
)

// defaultMetricsAddr is where `sealbus monitor` serves /metrics and /healthz.
const defaultMetricsAddr = "127.0.0.1:9464"

func (a *app) monitorCmd() *cobra.Command {
	var (
		configFile, metricsAddr, stateFile string
		setup, live                        bool
		runFor                             time.Duration
	)
	cfg := operator.DefaultMonitorConfig()
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Watch the deployment for attacks and trouble, and serve Prometheus metrics",
		Long: `monitor watches the servers as the operator and prints one line per incident when it opens, at
most every --repeat while it grows, and when it resolves, with its count: brute force, revoked
or expired keys that keep connecting, rejection spikes, publish-rate spikes, consumer lag,
growing redeliveries and dead letters, records of the operator-wide audit view that do not
verify (docs/MONITORING.md lists every alert and threshold). With --json each report is one
JSON object per line. Every report is also recorded as a signed audit event of the operator
account (SEALBUS), part of the operator-wide view (` + "`sealbus audit tail --all`" + `), and counted in
the metrics served on --metrics (/metrics for Prometheus, /healthz for a liveness probe;
127.0.0.1 unless an address says otherwise).

The servers record their authentication and connection events in the operator account (set up
by init, push and dev; --setup brings every account up to date, for accounts set up by an
earlier version and to renew the activation tokens of the view), and the monitor reads them
from there, so events made while it is stopped are not lost; it keeps its state there too, so a
restarted monitor neither loses nor repeats an incident. With --live it reads the events live
instead, keeps its state only with --state, and has no audit view.

Thresholds come from --config (a JSON file, fields as in docs/MONITORING.md), then the flags.`,
		Example: `  sealbus monitor --setup
  sealbus monitor --json --metrics 127.0.0.1:9464 | jq .kind
  sealbus monitor --config monitor.json --brute-force-failures 5`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			mc, err := monitorConfig(cmd.Flags(), configFile, cfg)
			if err != nil {
				return err
			}
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			if setup && live {
				return usageErr("--setup and --live exclude each other")
			}
			var opsAcct *accounts.Account
			if !live {
				if opsAcct, err = s.prov.OperatorAccount(); err != nil {
					return err
				}
			}
			if setup {
				ctx, cancel := a.context()
				res, err := s.prov.SetupMonitoring(ctx)
				cancel()
				if err != nil {
					return err
				}
				if !a.json {
					fmt.Fprintf(a.stderr, "sealbus: monitoring set up in the operator account: view of %s; pushed %s\n",
						operator.Escape(strings.Join(res.Accounts, ", ")), operator.Escape(strings.Join(res.Pushed, ", ")))
				}
			}
			ctx, cancel := a.context()
			sys, opsNC, err := operator.ConnectMonitor(ctx, s.prov.Target, s.op, opsAcct)
			cancel()
			if err != nil {
				return err
			}
			defer sys.Close()
			if opsNC != nil {
				defer opsNC.Close()
			}
			var out sync.Mutex
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			opts := []operator.MonitorOption{
				operator.WithMonitorConfig(mc),
				operator.WithMonitorLogger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
				operator.WithAlertHandler(func(al operator.Alert) {
					out.Lock()
					defer out.Unlock()
					if a.json {
						_ = enc.Encode(al)
						return
					}
					fmt.Fprintln(a.stdout, al.Format(operator.Escape))
				}),
			}
			if opsNC != nil {
				opts = append(opts, operator.WithOperatorAccount(opsNC, opsAcct))
			}
			switch {
			case stateFile != "":
				opts = append(opts, operator.WithStateStore(operator.FileStateStore(stateFile)))
			case opsNC != nil:
				js, err := jetstream.New(opsNC)
				if err != nil {
					return err
				}
				ctx, cancel := a.context()
				store, err := operator.MonitorStateStore(ctx, js)
				cancel()
				if err != nil {
					return withHint(err, "run `sealbus monitor --setup` once, or use --live")
				}
				opts = append(opts, operator.WithStateStore(store))
			}
			m, err := operator.NewMonitor(sys, opts...)
			if err != nil {
				return err
			}
			runCtx, stop := context.WithCancel(a.ctx)
			defer stop()
			if runFor > 0 {
				runCtx, stop = context.WithTimeout(a.ctx, runFor)
				defer stop()
			}
			if metricsAddr != "" {
				reg := prometheus.NewRegistry()
				reg.MustRegister(sealbusprom.NewMonitorCollector(m))
				addr, err := serveMetrics(runCtx, metricsAddr, reg, monitorHealth(m, mc, sys, opsNC))
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "sealbus: metrics on http://%s/metrics\n", addr)
			}
			if err := m.Run(runCtx); err != nil {
				return err
			}
			if !a.json {
				for _, in := range m.Incidents() {
					fmt.Fprintf(a.stdout, "still open: %s\n", in.Format(operator.Escape))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "JSON file of thresholds (docs/MONITORING.md)")
	f.StringVar(&metricsAddr, "metrics", defaultMetricsAddr, "address for /metrics and /healthz (host defaults to 127.0.0.1; \"\" = none)")
	f.BoolVar(&setup, "setup", false, "bring the monitoring of every account up to date first (pushes the JWTs it changes; idempotent)")
	f.BoolVar(&live, "live", false, "read the servers' events live, without the operator account (no audit view, state only with --state)")
	f.StringVar(&stateFile, "state", "", "keep the monitor's state in this file instead of the operator account")
	f.DurationVar(&runFor, "for", 0, "stop after this long (0 = until interrupted)")
	thresholdFlags(f, &cfg)
	a.serverFlags(cmd)
	return cmd
}

// thresholdFlags binds the monitor's thresholds to flags, with their defaults.
func thresholdFlags(f *pflag.FlagSet, c *operator.MonitorConfig) {
	dur := func(p *operator.Duration, name, usage string) {
		f.DurationVar((*time.Duration)(p), name, p.D(), usage)
	}
	f.IntVar(&c.BruteForce.Failures, "brute-force-failures", c.BruteForce.Failures, "brute force: authentication failures of one key or address...")
	dur(&c.BruteForce.Window, "brute-force-window", "...within this window")
	f.IntVar(&c.StaleKey.Attempts, "stale-key-attempts", c.StaleKey.Attempts, "revoked or expired key: connection attempts...")
	dur(&c.StaleKey.Window, "stale-key-window", "...within this window")
	dur(&c.Rejections.Interval, "rejections-interval", "rejection spike: counting interval")
	f.Float64Var(&c.Rejections.MinCount, "rejections-min", c.Rejections.MinCount, "rejection spike: at least this many per interval...")
	f.Float64Var(&c.Rejections.Factor, "rejections-factor", c.Rejections.Factor, "...and more than this many times the baseline")
	f.Float64Var(&c.PublishRate.MinCount, "publish-rate-min", c.PublishRate.MinCount, "publish-rate spike: at least this many messages/s...")
	f.Float64Var(&c.PublishRate.Factor, "publish-rate-factor", c.PublishRate.Factor, "...and more than this many times the baseline")
	f.Uint64Var(&c.ConsumerLag.Pending, "lag-pending", c.ConsumerLag.Pending, "consumer lag: messages pending...")
	dur(&c.ConsumerLag.For, "lag-for", "...for this long")
	f.Uint64Var(&c.Redelivery.Growth, "redelivery-growth", c.Redelivery.Growth, "redelivered messages growing by this much...")
	dur(&c.Redelivery.Window, "redelivery-window", "...within this window")
	f.Uint64Var(&c.DeadLetters.Growth, "dead-letter-growth", c.DeadLetters.Growth, "new dead letters of an account...")
	dur(&c.DeadLetters.Window, "dead-letter-window", "...within this window")
	dur(&c.Poll, "poll", "how often the servers' state is read")
	dur(&c.Quiet, "quiet", "an incident resolves after this long without new evidence")
	dur(&c.Repeat, "repeat", "an open incident that grew is reported again after this long")
	dur(&c.Backfill, "backfill", "a monitor without saved state starts reading recorded events this far back")
}

// monitorConfig is the file's configuration (or the defaults) with the flags that were set
// on top.
func monitorConfig(f *pflag.FlagSet, file string, flags operator.MonitorConfig) (operator.MonitorConfig, error) {
	cfg := operator.DefaultMonitorConfig()
	if file != "" {
		var err error
		if cfg, err = operator.LoadMonitorConfig(file); err != nil {
			return cfg, &cliError{code: exitUsage, err: err}
		}
	}
	set := func(name string, apply func()) {
		if f.Changed(name) {
			apply()
		}
	}
	set("brute-force-failures", func() { cfg.BruteForce.Failures = flags.BruteForce.Failures })
	set("brute-force-window", func() { cfg.BruteForce.Window = flags.BruteForce.Window })
	set("stale-key-attempts", func() { cfg.StaleKey.Attempts = flags.StaleKey.Attempts })
	set("stale-key-window", func() { cfg.StaleKey.Window = flags.StaleKey.Window })
	set("rejections-interval", func() { cfg.Rejections.Interval = flags.Rejections.Interval })
	set("rejections-min", func() { cfg.Rejections.MinCount = flags.Rejections.MinCount })
	set("rejections-factor", func() { cfg.Rejections.Factor = flags.Rejections.Factor })
	set("publish-rate-min", func() { cfg.PublishRate.MinCount = flags.PublishRate.MinCount })
	set("publish-rate-factor", func() { cfg.PublishRate.Factor = flags.PublishRate.Factor })
	set("lag-pending", func() { cfg.ConsumerLag.Pending = flags.ConsumerLag.Pending })
	set("lag-for", func() { cfg.ConsumerLag.For = flags.ConsumerLag.For })
	set("redelivery-growth", func() { cfg.Redelivery.Growth = flags.Redelivery.Growth })
	set("redelivery-window", func() { cfg.Redelivery.Window = flags.Redelivery.Window })
	set("dead-letter-growth", func() { cfg.DeadLetters.Growth = flags.DeadLetters.Growth })
	set("dead-letter-window", func() { cfg.DeadLetters.Window = flags.DeadLetters.Window })
	set("poll", func() { cfg.Poll = flags.Poll })
	set("quiet", func() { cfg.Quiet = flags.Quiet })
	set("repeat", func() { cfg.Repeat = flags.Repeat })
	set("backfill", func() { cfg.Backfill = flags.Backfill })
	if err := cfg.Validate(); err != nil {
		return cfg, &cliError{code: exitUsage, err: err}
	}
	return cfg, nil
}

// monitorHealth is healthy while the monitor's connections are up and its last poll is recent.
func monitorHealth(m *operator.Monitor, cfg operator.MonitorConfig, conns ...*nats.Conn) func() error {
	started := time.Now()
	return func() error {
		for _, nc := range conns {
			if nc != nil && !nc.IsConnected() {
				return errors.New("not connected to the servers")
			}
		}
		last := m.Stats().LastPoll
		limit := 3*cfg.Poll.D() + 5*time.Second
		if last.IsZero() && time.Since(started) > limit || !last.IsZero() && time.Since(last) > limit {
			return fmt.Errorf("no reading of the servers since %s", last.Format(time.RFC3339))
		}
		return nil
	}
}

// serveMetrics serves reg on /metrics and health on /healthz at addr (127.0.0.1 when addr
// names no host) until ctx ends, and returns the address it listens on.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, health func() error) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if host, port, err = net.SplitHostPort(":" + addr); err != nil {
			return "", usageErr("metrics address %q: want host:port or :port", addr)
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := health(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}

// devMetrics runs a monitor of the dev server in this process (system events read live) and
// serves its metrics at addr until the command ends; its alerts go to the log.
func (a *app) devMetrics(s *session, log *slog.Logger, addr string) (string, error) {
	ctx, cancel := a.context()
	sys, _, err := operator.ConnectMonitor(ctx, s.prov.Target, s.op, nil)
	cancel()
	if err != nil {
		return "", err
	}
	cfg := operator.DefaultMonitorConfig()
	m, err := operator.NewMonitor(sys, operator.WithMonitorLogger(log),
		operator.WithAlertHandler(func(al operator.Alert) { log.Warn("sealbus: " + al.Format(operator.Escape)) }))
	if err != nil {
		sys.Close()
		return "", err
	}
	go func() {
		defer sys.Close()
		_ = m.Run(a.ctx)
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(sealbusprom.NewMonitorCollector(m))
	return serveMetrics(a.ctx, addr, reg, monitorHealth(m, cfg, sys))
}
