package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/operator"
)

func (a *app) streamGuardSizeCmd() *cobra.Command {
	var maxBytes string
	cmd := &cobra.Command{
		Use:   "guard-size ACCOUNT STREAM DURABLE",
		Short: "Show or set the size of a durable's replay guard store",
		Long: `guard-size shows the replay guard store of a durable (the stream where the processes
consuming it claim each message id before calling their handler) and, with --max-bytes, sets
its size limit. The store holds about ` + fmt.Sprint(operator.GuardEntryBytes) + ` bytes per message the durable handles,
for its horizon; when it is full the durable's deliveries are returned to the server unhandled
(counted by sealbus_consumer_guard_unavailable_total) until entries expire, so size it for the
durable's peak sustained rate: the output says about how many messages per second the size
allows. The default is 64 MiB, or 1/32 of the account's storage limit when that is less (about
700 or fewer messages per second). The server refuses a size the account's storage limit
cannot reserve. Later provisioning keeps the size set here.`,
		Example: `  sealbus stream guard-size shop ORDERS billing
  sealbus stream guard-size shop ORDERS billing --max-bytes 1GiB`,
		Args:              exact(3),
		ValidArgsFunction: a.accountThenStream,
		RunE: func(cmd *cobra.Command, args []string) error {
			var mb int64
			set := cmd.Flags().Changed("max-bytes")
			if set {
				var err error
				if mb, err = parseBytes(maxBytes); err != nil || mb < operator.MinGuardBytes {
					return usageErr("--max-bytes: %v", firstErr(err, "at least "+formatBytes(operator.MinGuardBytes)))
				}
			}
			ctx, cancel := a.context()
			defer cancel()
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			var g operator.GuardSize
			if set {
				g, err = s.prov.SetGuardSize(ctx, args[0], args[1], args[2], mb)
			} else {
				g, err = s.prov.GuardSize(ctx, args[0], args[1], args[2])
			}
			if err != nil {
				return err
			}
			return a.print(g, func(w io.Writer) {
				fmt.Fprintf(w, "replay guard of %s:%s in %s (stream %s): %s of %s used, horizon %v: about %d msgs/s sustained\n",
					g.Stream, g.Durable, args[0], g.Store, formatBytes(int64(g.Bytes)), formatBytes(g.MaxBytes), g.Horizon, g.Rate)
			})
		},
	}
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "", "set the store's size limit (e.g. 512MiB; at least "+formatBytes(operator.MinGuardBytes)+")")
	a.serverFlags(cmd)
	return cmd
}
