package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/devserver"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) devCmd() *cobra.Command {
	var port int
	var mtls, verbose bool
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the embedded dev server for the keystore's operator",
		Long: `dev runs an embedded nats-server in operator mode for this home's operator: full account
resolver with every account preloaded (and set up: directory, cards, dead-letter and audit
streams, declared durables), the connection guard that enforces each service's connection
quota (see ` + "`sealbus guard`" + `), JetStream with storage encryption, TLS required with a local CA
(mTLS with --mtls), listening on 127.0.0.1 only. It prints the URL, the CA file and where the
creds are, stops cleanly on SIGINT or SIGTERM and keeps its state in HOME/dev for the next start.
While it runs, other sealbus commands for this home find it without --server. Only one dev
server runs per home: a second one is refused with the first one's pid and URL. An account or
service that cannot be set up is reported and the server runs for the others. The set-up includes
the operator's monitoring: the servers' authentication and connection events recorded in the
operator account, and every account's audit and dead-letter records in its operator-wide view
(` + "`sealbus audit tail --all`, `sealbus monitor`" + `). With --metrics it also runs a monitor of the server in
this process (events read live, alerts logged) and serves its Prometheus metrics on /metrics
and a health check on /healthz.`,
		Example: `  sealbus dev
  sealbus dev --port 0 --mtls --json`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if exists, _, err := keystoreMode(a.home); err == nil && !exists {
				return &cliError{code: exitNotFound, err: fmt.Errorf("no keystore at %s", a.home), hint: "run `sealbus init` first (or pass --home)"}
			}
			// One dev server per home: a second one would open the same JetStream store.
			lock, err := operator.LockDevHome(a.home)
			if err != nil {
				return err
			}
			defer lock.Release()
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			names, err := s.ks.ListAccounts()
			if err != nil {
				return err
			}
			var accts []*accounts.Account
			var loaded []string
			for _, n := range names {
				acct, err := s.ks.LoadAccount(n)
				if err != nil {
					fmt.Fprintf(a.stderr, "sealbus: error: account %s not loaded: %s\n", n, operator.Escape(err.Error()))
					continue
				}
				accts = append(accts, acct)
				loaded = append(loaded, n)
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			stateDir := operator.DevDir(a.home)
			srv, err := devserver.Start(a.ctx, devserver.Config{
				StateDir: stateDir, OperatorJWT: s.op.JWT, SystemAccountJWT: s.op.System.JWT, AccountJWTs: jwtsOf(accts),
				Port: port, MTLS: mtls, Logger: logger,
			})
			if err != nil {
				return err
			}
			defer srv.Shutdown()
			info := devInfo{URL: srv.URL(), CAFile: srv.CAFile(), MTLS: mtls, PID: os.Getpid()}
			if mtls {
				if info.ClientCert, info.ClientKey, err = srv.ClientCert(operator.AdminUserName); err != nil {
					return err
				}
			}
			s.prov.Target = operator.Target{URLs: []string{info.URL}, RootCA: info.CAFile, ClientCert: info.ClientCert, ClientKey: info.ClientKey}
			type credsRow struct {
				Account string `json:"account"`
				Service string `json:"service"`
				Path    string `json:"creds_path"`
			}
			var creds []credsRow
			var problems []string
			ctx, cancel := a.context()
			for _, n := range loaded {
				// One bad entry never stops the server: it is reported and the rest set up.
				res, err := s.prov.Sync(ctx, n)
				if err != nil {
					problems = append(problems, fmt.Sprintf("account %s not set up: %v", n, err))
					continue
				}
				for _, p := range res.Problems {
					problems = append(problems, fmt.Sprintf("%s/%s not applied: %s", n, p.Service, p.Error))
				}
				svcs, err := s.ks.ListServices(n)
				if err != nil {
					problems = append(problems, err.Error())
					continue
				}
				for _, sv := range svcs {
					creds = append(creds, credsRow{n, sv, s.prov.CredsPath(n, sv)})
				}
			}
			if _, err := a.syncPeers(ctx, s, loaded...); err != nil {
				problems = append(problems, fmt.Sprintf("linking peer accounts: %v", err))
			}
			// The connection guard: each service's connection quota (NATS limits accounts only).
			sys, err := operator.ConnectSystem(ctx, s.prov.Target, s.op)
			if err != nil {
				cancel()
				return err
			}
			guard, err := operator.StartConnectionGuard(ctx, sys, operator.WithGuardLogger(logger))
			cancel()
			if err != nil {
				sys.Close()
				return err
			}
			defer guard.Close()
			if metricsAddr != "" {
				addr, err := a.devMetrics(s, logger, metricsAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "sealbus: metrics on http://%s/metrics\n", addr)
			}
			for _, p := range problems {
				fmt.Fprintf(a.stderr, "sealbus: error: %s\n", operator.Escape(p))
			}
			if len(problems) > 0 {
				fmt.Fprintln(a.stderr, "sealbus: hint: the server runs; fix the entries above (`sealbus service edit|remove`, `sealbus stream add`) and `sealbus push`")
			}
			if err := lock.Publish(info); err != nil {
				return err
			}
			out := map[string]any{
				"url": info.URL, "ca_file": info.CAFile, "mtls": mtls, "operator": s.op.PublicKey(),
				"state_dir": stateDir, "creds": creds, "client_cert": info.ClientCert, "problems": nonNil(problems),
			}
			if err := a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "sealbus dev server ready\n")
				fmt.Fprintf(w, "  url        %s\n", info.URL)
				fmt.Fprintf(w, "  ca file    %s\n", info.CAFile)
				fmt.Fprintf(w, "  operator   %s (trust anchor for bus.WithTrustedOperator)\n", s.op.PublicKey())
				fmt.Fprintf(w, "  state      %s\n", stateDir)
				if mtls {
					fmt.Fprintf(w, "  mtls       on; client certs: %s\n", filepath.Join(stateDir, "tls", "clients"))
				}
				if len(creds) == 0 {
					fmt.Fprintf(w, "  creds      none yet: `sealbus service add ACCOUNT NAME ... --push`\n")
				}
				for _, c := range creds {
					fmt.Fprintf(w, "  creds      %s/%s: %s\n", c.Account, c.Service, c.Path)
				}
				fmt.Fprintf(w, "press Ctrl-C to stop; state is kept\n")
			}); err != nil {
				return err
			}
			<-a.ctx.Done()
			fmt.Fprintln(a.stderr, "sealbus: stopping the dev server; state kept in", stateDir)
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 4222, "port on 127.0.0.1 (0 = pick a free one)")
	cmd.Flags().BoolVar(&mtls, "mtls", false, "require client certificates")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "log the server at debug level")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve the server's metrics (an in-process monitor's) on /metrics and /healthz at this address, e.g. 127.0.0.1:9464 (host defaults to 127.0.0.1)")
	return cmd
}

// jwtsOf returns the JWTs of accts, in order.
func jwtsOf(accts []*accounts.Account) []string {
	out := make([]string, len(accts))
	for i, a := range accts {
		out[i] = a.JWT
	}
	return out
}
