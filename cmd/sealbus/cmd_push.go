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
account JWT and cards in their directories.`,
		Example: `  sealbus push
  sealbus push shop --server tls://nats.example:4222 --ca ca.pem
  sealbus push --json`,
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			for _, n := range names {
				r, err := s.prov.Sync(ctx, n)
				if err != nil {
					return fmt.Errorf("pushing %s: %w", n, err)
				}
				results = append(results, pushJSON{SyncResult: r, Peers: []operator.PeerCopy{}})
			}
			peers, err := a.syncPeers(ctx, s, names...)
			if err != nil {
				return withHint(err, "run `sealbus push` again")
			}
			for _, p := range peers {
				for i := range results {
					if results[i].Account == p.Into {
						results[i].Peers = append(results[i].Peers, p)
					}
				}
			}
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
