package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sealbus/sealbus/operator"
	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	return group("audit", "Read an account's audit stream",
		"  sealbus audit tail shop --follow",
		a.auditTailCmd())
}

func (a *app) auditTailCmd() *cobra.Command {
	var last int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail ACCOUNT",
		Short: "Print the latest audit events, and with --follow new ones as they come",
		Long: `tail prints the account's latest audit events (rejected envelopes, dead letters, directory
problems, admin actions), oldest first; --follow keeps printing new events until interrupted.
With --json each event is one CloudEvents JSON object per line.`,
		Example: `  sealbus audit tail shop --last 20
  sealbus audit tail shop --follow --json | jq .type`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.context()
			nc, done, err := a.openAdmin(ctx, args[0])
			cancel()
			if err != nil {
				return err
			}
			defer done()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			log := operator.NewAuditLog(js)
			tctx, tcancel := a.context()
			recs, lastSeq, err := log.Tail(tctx, last)
			tcancel()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			emit := func(r operator.AuditRecord) error {
				if a.json {
					if r.Event != nil {
						return enc.Encode(r.Event)
					}
					return enc.Encode(map[string]any{"seq": r.Sequence, "subject": r.Subject, "error": fmt.Sprint(r.Err)})
				}
				if r.Event == nil {
					_, err := fmt.Fprintf(a.stdout, "%6d  %s  undecodable event: %v\n", r.Sequence, r.Stored.Format(time.RFC3339), r.Err)
					return err
				}
				e := r.Event
				_, err := fmt.Fprintf(a.stdout, "%6d  %s  %-32s %s %s %s\n", r.Sequence, e.Time.Format(time.RFC3339), e.Type, e.Source, e.Data.Reason, e.Subject)
				return err
			}
			for _, r := range recs {
				if err := emit(r); err != nil {
					return err
				}
			}
			if !follow {
				if len(recs) == 0 && !a.json {
					fmt.Fprintln(a.stdout, "no audit events")
				}
				return nil
			}
			err = log.Follow(a.ctx, lastSeq, emit)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVar(&last, "last", 20, "how many of the latest events (0 = all)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new events until interrupted")
	a.serverFlags(cmd)
	return cmd
}
