package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) initCmd() *cobra.Command {
	var name string
	var unencrypted bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the keystore and the operator (with its system and operator accounts)",
		Long: `init creates the keystore at --home and a new operator: the root of trust that signs
every account, with its system account and the operator account (` + accounts.OperatorAccountName + `), which
holds every tenant's directory. Private keys are encrypted with a passphrase (SEALBUS_PASSPHRASE, or typed twice
without echo) of at least ` + fmt.Sprint(accounts.MinPassphraseLength) + ` characters, unless --unencrypted is given, which is for
local development only. ` + "`sealbus passphrase change`" + ` changes it later.`,
		Example: `  SEALBUS_PASSPHRASE=... sealbus init --name acme
  sealbus --home ./dev-home init --unencrypted`,
		Args: exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.home == "" {
				return usageErr("no sealbus home: set --home or SEALBUS_HOME")
			}
			exists, _, err := keystoreMode(a.home)
			if err != nil {
				return err
			}
			var ks *accounts.Keystore
			if unencrypted {
				fmt.Fprintln(a.stderr, "sealbus: WARNING: creating an UNENCRYPTED keystore: private keys will be stored in the clear.")
				fmt.Fprintln(a.stderr, "sealbus: WARNING: use this for local development only, never for real identities.")
				ks, err = accounts.OpenKeystore(a.home, nil, accounts.WithUnencrypted())
			} else {
				pass, perr := a.passphrase(!exists)
				if perr != nil {
					return perr
				}
				if !exists {
					if err := accounts.CheckPassphrase(pass); err != nil {
						wipe(pass)
						return err
					}
				}
				ks, err = accounts.OpenKeystore(a.home, pass)
				wipe(pass)
			}
			if err != nil {
				return err
			}
			defer ks.Close()
			if op, err := ks.LoadOperator(); err == nil {
				return &cliError{code: exitError, err: fmt.Errorf("%w: operator %q already exists in %s", accounts.ErrExists, op.Name, a.home),
					hint: "use another --home for another operator"}
			} else if !errors.Is(err, accounts.ErrNotFound) {
				return err
			}
			op, err := accounts.NewOperator(name)
			if err != nil {
				return err
			}
			if err := ks.SaveOperator(op); err != nil {
				return err
			}
			opAcct, err := (&operator.Provisioner{Keystore: ks, Operator: op}).CreateOperatorAccount()
			if err != nil {
				return err
			}
			out := map[string]any{
				"home": a.home, "operator": op.Name, "public_key": op.PublicKey(),
				"system_account": op.System.PublicKey(), "operator_account": opAcct.PublicKey(), "encrypted": ks.Encrypted(),
			}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "operator %s created in %s\n", op.Name, a.home)
				fmt.Fprintf(w, "  public key (trust anchor): %s\n", op.PublicKey())
				fmt.Fprintf(w, "  system account:            %s\n", op.System.PublicKey())
				fmt.Fprintf(w, "  operator account:          %s (%s: every tenant's directory)\n", opAcct.PublicKey(), opAcct.Name)
				fmt.Fprintf(w, "  keystore encrypted:        %v\n", ks.Encrypted())
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "sealbus", "operator name")
	cmd.Flags().BoolVar(&unencrypted, "unencrypted", false, "store private keys unencrypted (development only)")
	return cmd
}
