package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/atomicfile"
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
streams, declared durables), JetStream with storage encryption, TLS required with a local CA
(mTLS with --mtls), listening on 127.0.0.1 only. It prints the URL, the CA file and where the
creds are, stops cleanly on SIGINT or SIGTERM and keeps its state in HOME/dev for the next start.
While it runs, other sealbus commands for this home find it without --server.`,
		Example: `  sealbus dev
  sealbus dev --port 0 --mtls --json`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			for _, n := range names {
				acct, err := s.ks.LoadAccount(n)
				if err != nil {
					return err
				}
				accts = append(accts, acct)
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			stateDir := filepath.Join(a.home, "dev")
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
			ctx, cancel := a.context()
			for _, n := range names {
				if _, err := s.prov.Sync(ctx, n); err != nil {
					cancel()
					return fmt.Errorf("setting up account %s: %w", n, err)
				}
				svcs, err := s.ks.ListServices(n)
				if err != nil {
					cancel()
					return err
				}
				for _, sv := range svcs {
					creds = append(creds, credsRow{n, sv, s.prov.CredsPath(n, sv)})
				}
			}
			if _, err := a.syncPeers(ctx, s, names...); err != nil {
				cancel()
				return fmt.Errorf("linking peer accounts: %w", err)
			}
			cancel()
			if metricsAddr != "" {
				addr, err := a.devMetrics(s, logger, metricsAddr)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "sealbus: metrics on http://%s/metrics\n", addr)
			}
			b, _ := json.MarshalIndent(info, "", "  ")
			if err := atomicfile.Write(a.devInfoPath(), b, atomicfile.Private); err != nil {
				return err
			}
			defer os.Remove(a.devInfoPath())
			out := map[string]any{
				"url": info.URL, "ca_file": info.CAFile, "mtls": mtls, "operator": s.op.PublicKey(),
				"state_dir": stateDir, "creds": creds, "client_cert": info.ClientCert,
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
