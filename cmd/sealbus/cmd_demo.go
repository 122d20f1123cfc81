package main

import (
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/cmd/sealbus/internal/demo"
)

func (a *app) demoCmd() *cobra.Command {
	var messages int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the end-to-end demo on a temporary embedded server",
		Long: `demo starts a dev server in a temporary home, creates an operator, two accounts, services and
streams, sends sealed messages between services, then plays an attacker (tampering, replay,
moved envelope, revoked sender, publishing outside permissions, cross-account read) whose every
attempt must fail with its reason. It exits 0 only if every attack failed and every valid
message was delivered.`,
		Example: "  sealbus demo",
		Args:    exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := demo.Run(a.ctx, a.stdout, demo.Options{Messages: messages}); err != nil {
				return &cliError{code: exitError, err: err}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&messages, "messages", 0, "valid messages sent before and after the attacks (default 6)")
	return cmd
}
