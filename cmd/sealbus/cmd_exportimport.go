package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

// sharedSubject reads the --type and --subject of export and import: the export type
// (stream or service) and a subject that may be shared between accounts.
func sharedSubject(typ, subject string) (jwt.ExportType, error) {
	var et jwt.ExportType
	switch typ {
	case "stream":
		et = jwt.Stream
	case "service":
		et = jwt.Service
	default:
		return jwt.Unknown, usageErr("type must be stream or service, not %q", typ)
	}
	if subject == "" || strings.HasPrefix(subject, "$") || strings.HasPrefix(subject, "_") {
		return jwt.Unknown, usageErr("subject %q cannot be shared between accounts", subject)
	}
	return et, nil
}

func (a *app) exportCmd() *cobra.Command {
	var subject, typ, name string
	var private, push bool
	cmd := &cobra.Command{
		Use:   "export ACCOUNT",
		Short: "Export a stream or service subject from an account",
		Long: `export adds a stream export (other accounts may subscribe to the subject) or a service
export (other accounts may send requests to it) to ACCOUNT's JWT and reissues it. With --private
importers need an activation token, which ` + "`sealbus import`" + ` mints from this keystore.`,
		Example: `  sealbus export shop --subject 'orders.public.>' --type stream
  sealbus export bank --subject payments.quote --type service --private --push`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			et, err := sharedSubject(typ, subject)
			if err != nil {
				return err
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			acct, err := s.prov.EditAccount(args[0], func(acct *accounts.Account) error {
				for _, e := range acct.Claims.Exports {
					if string(e.Subject) == subject {
						return fmt.Errorf("%w: %s already exports %s", accounts.ErrExists, acct.Name, subject)
					}
				}
				acct.Claims.Exports.Add(&jwt.Export{Name: firstNonEmpty(name, subject), Subject: jwt.Subject(subject), Type: et, TokenReq: private})
				return nil
			})
			if err != nil {
				return err
			}
			peers, err := a.pushWithPeers(push, s, acct)
			if err != nil {
				return err
			}
			v := exportJSON{Name: firstNonEmpty(name, subject), Subject: subject, Type: et.String(), TokenReq: private, Peers: peers}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "%s exports %s %s (token required: %v)\n", acct.Name, et, subject, private)
				printPeers(w, peers)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&subject, "subject", "", "subject to export (required)")
	f.StringVar(&typ, "type", "stream", "stream or service")
	f.StringVar(&name, "name", "", "export name (default the subject)")
	f.BoolVar(&private, "private", false, "require an activation token to import")
	f.BoolVar(&push, "push", false, "push the reissued account now")
	_ = cmd.MarkFlagRequired("subject")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) importCmd() *cobra.Command {
	var from, subject, local, typ, name string
	var push bool
	cmd := &cobra.Command{
		Use:   "import ACCOUNT",
		Short: "Import another account's exported stream or service into ACCOUNT",
		Long: `import adds to ACCOUNT's JWT an import of a subject exported by --from, optionally under a
local subject, and reissues it. A private export's activation token is minted with the
exporting account's signing key from this keystore. With --push the JWT goes to the server and
the two directories are linked: ACCOUNT's holds the exporting account's JWT and cards (to verify
its senders), the exporter's holds ACCOUNT's (to encrypt to ACCOUNT's readers).`,
		Example: `  sealbus import bank --from shop --subject 'orders.public.>' --local-subject 'shop.orders.>'
  sealbus import shop --from bank --subject payments.quote --type service --push`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			et, err := sharedSubject(typ, subject)
			if err != nil {
				return err
			}
			if from == args[0] {
				return usageErr("an account cannot import from itself")
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			src, err := s.ks.LoadAccount(from)
			if err != nil {
				return err
			}
			var exp *jwt.Export
			for _, e := range src.Claims.Exports {
				if e.Type == et && accounts.SubjectSubset(subject, string(e.Subject)) {
					exp = e
					break
				}
			}
			if exp == nil {
				return &cliError{code: exitNotFound, err: fmt.Errorf("%s has no %s export covering %s", from, et, subject),
					hint: fmt.Sprintf("run `sealbus export %s --subject %s --type %s` first", from, subject, et)}
			}
			acct, err := s.prov.EditAccount(args[0], func(acct *accounts.Account) error {
				imp := &jwt.Import{Name: firstNonEmpty(name, subject), Subject: jwt.Subject(subject), Account: src.PublicKey(), Type: et}
				if local != "" {
					imp.LocalSubject = jwt.RenamingSubject(local)
				}
				if exp.TokenReq {
					tok, err := src.Activation(acct.PublicKey(), subject, et)
					if err != nil {
						return err
					}
					imp.Token = tok
				}
				acct.Claims.Imports.Add(imp)
				return nil
			})
			if err != nil {
				return err
			}
			peers, err := a.pushWithPeers(push, s, acct)
			if err != nil {
				return err
			}
			v := importJSON{Name: firstNonEmpty(name, subject), Subject: subject, Account: src.PublicKey(), LocalSubject: local, Type: et.String(), Peers: peers}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "%s imports %s %s from %s", acct.Name, et, subject, from)
				if local != "" {
					fmt.Fprintf(w, " as %s", local)
				}
				fmt.Fprintln(w)
				printPeers(w, peers)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "exporting account (required)")
	f.StringVar(&subject, "subject", "", "exported subject to import (required)")
	f.StringVar(&local, "local-subject", "", "subject the import appears under in ACCOUNT")
	f.StringVar(&typ, "type", "stream", "stream or service")
	f.StringVar(&name, "name", "", "import name (default the subject)")
	f.BoolVar(&push, "push", false, "push the reissued account now")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("subject")
	a.serverFlags(cmd)
	return cmd
}

// pushWithPeers pushes the reissued account when push is set (pushIf), then updates the
// directories of the account and of every account it shares a stream with (syncPeers).
func (a *app) pushWithPeers(push bool, s *session, acct *accounts.Account) ([]operator.PeerCopy, error) {
	if err := a.pushIf(push, s, acct); err != nil || !push {
		return nil, err
	}
	ctx, cancel := a.context()
	defer cancel()
	peers, err := a.syncPeers(ctx, s, acct.Name)
	if err != nil {
		return peers, withHint(fmt.Errorf("account %s pushed but peer directories not updated: %w", acct.Name, err), "run `sealbus push`")
	}
	return peers, nil
}

func (a *app) pushIf(push bool, s *session, acct *accounts.Account) error {
	if !push {
		fmt.Fprintf(a.stderr, "sealbus: note: run `sealbus push %s` to apply this on the server\n", acct.Name)
		return nil
	}
	ctx, cancel := a.context()
	defer cancel()
	if err := s.prov.PushAccount(ctx, acct); err != nil {
		return withHint(fmt.Errorf("account %s saved but not pushed: %w", acct.Name, err), "run `sealbus push "+acct.Name+"`")
	}
	return nil
}
