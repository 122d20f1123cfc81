package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/operator"
)

func (a *app) guardCmd() *cobra.Command {
	var reconcile string
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Enforce every service's connection quota on a server (runs until stopped)",
		Long: `guard connects to the server as the operator's system user and enforces the connection
quota each service's user JWT states (` + "`service add --max-connections`" + `; NATS itself limits
connections per account only, so one service could otherwise take them all): it follows the
servers' connect and disconnect events and closes every connection of a service beyond its
quota, newest first, as soon as the event arrives, and compares its view with the servers'
connection lists every --reconcile. Run one beside every deployment (` + "`sealbus dev`" + ` runs one
itself); while none runs, quotas are not enforced. It prints the connections it closed.`,
		Example: `  sealbus guard --server tls://nats.example:4222 --ca ca.pem
  sealbus guard --reconcile 30s`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			every := operator.DefaultGuardReconcile
			if reconcile != "" {
				var err error
				if every, err = parseDuration(reconcile); err != nil {
					return usageErr("--reconcile: %v", err)
				}
			}
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			sys, err := operator.ConnectSystem(ctx, s.prov.Target, s.op)
			if err != nil {
				cancel()
				return err
			}
			logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			g, err := operator.StartConnectionGuard(ctx, sys, operator.WithGuardLogger(logger), operator.WithGuardReconcile(every))
			cancel()
			if err != nil {
				sys.Close()
				return err
			}
			defer g.Close()
			if err := a.print(map[string]any{"guarding": s.prov.Target.URLs, "reconcile_ns": every}, func(w io.Writer) {
				fmt.Fprintf(w, "sealbus guard: enforcing connection quotas on %v (reconcile every %v); Ctrl-C stops\n", s.prov.Target.URLs, every)
			}); err != nil {
				return err
			}
			<-a.ctx.Done()
			st := g.Stats()
			fmt.Fprintf(a.stderr, "sealbus: guard stopped after closing %d connections (%d kicks unconfirmed)\n", st.Kicked, st.KickErrors)
			return nil
		},
	}
	cmd.Flags().StringVar(&reconcile, "reconcile", "", "how often to read the servers' connection lists (default "+operator.DefaultGuardReconcile.String()+")")
	a.serverFlags(cmd)
	return cmd
}
