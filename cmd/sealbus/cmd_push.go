package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/operator"
)

func (a *app) pushCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push [ACCOUNT...]",
		Short: "Push account JWTs to a server and update each account's directory",
		Long: `push sends the account JWTs (all accounts, or those named) to the server's resolver over
the system account ($SYS.REQ.CLAIMS.UPDATE, reply checked), sets up each account's directory,
dead-letter and audit streams (idempotent), writes the account JWT and every service's card into
the directory, and creates declared durables whose stream exists. For cross-account flows, each
pushed account and every account it shares a stream with (export/import) get the other's
account JWT and cards in their directories.

One bad entry never stops the rest: an account or service that cannot be applied is reported on
standard error (and in --json under problems), everything else is pushed, and the exit status
is 1.`,
		Example: `  sealbus push
  sealbus push shop --server tls://nats.example:4222 --ca ca.pem
  sealbus push --json`,
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) (rerr error) {
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			names := args
			if len(names) == 0 {
				if names, err = s.ks.ListAccounts(); err != nil {
					return err
				}
			}
			ctx, cancel := a.context()
			defer cancel()
			results := []pushJSON{}
			problems := 0
			var pushed []string
			for _, n := range names {
				r, err := s.prov.Sync(ctx, n)
				if err != nil {
					// The account itself could not be pushed: report it and go on with the others.
					problems++
					fmt.Fprintf(a.stderr, "sealbus: error: pushing %s: %s\n", n, operator.Escape(err.Error()))
					results = append(results, pushJSON{SyncResult: &operator.SyncResult{Account: n, Problems: []operator.SyncProblem{{Error: err.Error()}}}, Peers: []operator.PeerCopy{}})
					continue
				}
				for _, p := range r.Problems {
					problems++
					fmt.Fprintf(a.stderr, "sealbus: error: %s/%s not applied: %s\n", n, p.Service, operator.Escape(p.Error))
				}
				pushed = append(pushed, n)
				results = append(results, pushJSON{SyncResult: r, Peers: []operator.PeerCopy{}})
			}
			peers, err := a.syncPeers(ctx, s, pushed...)
			if err != nil {
				problems++
				fmt.Fprintf(a.stderr, "sealbus: error: peer directories: %s\n", operator.Escape(err.Error()))
			}
			for _, p := range peers {
				for i := range results {
					if results[i].Account == p.Into {
						results[i].Peers = append(results[i].Peers, p)
					}
				}
			}
			defer func() {
				if problems > 0 && rerr == nil {
					rerr = &cliError{code: exitError, err: fmt.Errorf("push: %d problem(s), everything else was pushed", problems),
						hint: "fix each entry named above (`sealbus service edit`, `service remove`, `stream add`), then push again"}
				}
			}()
			return a.print(results, func(w io.Writer) {
				if len(results) == 0 {
					fmt.Fprintln(w, "no accounts to push")
				}
				for _, r := range results {
					fmt.Fprintf(w, "pushed %s (%s): %d card(s)\n", r.Account, r.PublicKey, len(r.Cards))
					for _, c := range r.Consumers {
						fmt.Fprintf(w, "  consumer %s:%s %s %s\n", c.Stream, c.Durable, c.Status, strings.Join(c.Filter, ","))
					}
					printPeers(w, r.Peers)
				}
				// Directories of accounts not named that were updated as peers.
				var others []operator.PeerCopy
				for _, p := range peers {
					if !slices.ContainsFunc(results, func(r pushJSON) bool { return r.Account == p.Into }) {
						others = append(others, p)
					}
				}
				printPeers(w, others)
			})
		},
	}
	a.serverFlags(cmd)
	return cmd
}

// pushJSON is what push reports for one account: the sync result and the peer accounts copied
// into its directory.
type pushJSON struct {
	*operator.SyncResult
	Peers []operator.PeerCopy `json:"peers"`
}
