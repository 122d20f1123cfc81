package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sealbus/sealbus/operator"
)

// printPeers writes one line per directory updated or skipped.
func printPeers(w io.Writer, copies []operator.PeerCopy) {
	for _, c := range copies {
		if c.Skipped != "" {
			fmt.Fprintf(w, "  peer %s -> directory of %s: skipped (%s)\n", c.From, c.Into, c.Skipped)
			continue
		}
		fmt.Fprintf(w, "  peer %s -> directory of %s: account JWT and %d card(s)\n", c.From, c.Into, c.Cards)
	}
}

// syncPeers links the directories of every cross-account flow of the named accounts
// (operator.Provisioner.SyncPeers) and notes on stderr each directory it could not update.
func (a *app) syncPeers(ctx context.Context, s *session, names ...string) ([]operator.PeerCopy, error) {
	out, err := s.prov.SyncPeers(ctx, names...)
	a.noteSkippedPeers(out)
	return out, err
}

// noteSkippedPeers notes on stderr each directory a peer sync could not update.
func (a *app) noteSkippedPeers(copies []operator.PeerCopy) {
	for _, c := range copies {
		if c.Skipped != "" {
			fmt.Fprintf(a.stderr, "sealbus: note: %s's directory not updated with peer %s (%s); run `sealbus push %s`\n", c.Into, c.From, operator.Escape(c.Skipped), c.Into)
		}
	}
}
