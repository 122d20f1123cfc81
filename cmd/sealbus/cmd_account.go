package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) accountCmd() *cobra.Command {
	return group("account", "Manage accounts (tenants)",
		`  sealbus account add shop --disk-storage 2GiB
  sealbus account list
  sealbus account show shop --json
  sealbus account edit shop --connections 50 --push
  sealbus account remove shop --push`,
		a.accountAddCmd(), a.accountListCmd(), a.accountShowCmd(), a.accountEditCmd(), a.accountRemoveCmd())
}

// limitFlags binds the account limit flags.
type limitFlags struct {
	l                     accounts.Limits
	mem, disk, maxPayload string
}

// addLimitFlags binds the limit flags with def as defaults; with def nil (edit) no default is
// shown and only the flags given apply.
func addLimitFlags(f *pflag.FlagSet, lf *limitFlags, defp *accounts.Limits) {
	var def accounts.Limits
	size := func(int64) string { return "" }
	if defp != nil {
		def, size = *defp, formatBytes
	}
	lf.l = def
	f.Int64Var(&lf.l.Connections, "connections", def.Connections, "max connections (0 = unlimited; negative refused)")
	f.Int64Var(&lf.l.Subscriptions, "subscriptions", def.Subscriptions, "max subscriptions (0 = unlimited)")
	f.StringVar(&lf.maxPayload, "max-payload", size(def.MaxPayload), "max message payload (bytes, KiB, MiB; 0 = server's)")
	f.Int64Var(&lf.l.Data, "data", def.Data, "max data rate in bytes/s (0 = unlimited)")
	f.StringVar(&lf.mem, "mem-storage", size(def.MemoryStorage), "JetStream memory storage (0 = none, -1 = unlimited)")
	f.StringVar(&lf.disk, "disk-storage", size(def.DiskStorage), "JetStream disk storage (0 = none, -1 = unlimited)")
	f.Int64Var(&lf.l.Streams, "streams", def.Streams, "max streams (0 = unlimited)")
	f.Int64Var(&lf.l.Consumers, "consumers", def.Consumers, "max consumers (0 = unlimited)")
	f.Int64Var(&lf.l.MaxAckPending, "max-ack-pending", def.MaxAckPending, "max pending acks per consumer (0 = server default)")
}

func (lf *limitFlags) resolve() (accounts.Limits, error) {
	var err error
	if lf.l.MaxPayload, err = parseBytes(lf.maxPayload); err != nil {
		return lf.l, usageErr("--max-payload: %v", err)
	}
	if lf.l.MemoryStorage, err = parseBytes(lf.mem); err != nil {
		return lf.l, usageErr("--mem-storage: %v", err)
	}
	if lf.l.DiskStorage, err = parseBytes(lf.disk); err != nil {
		return lf.l, usageErr("--disk-storage: %v", err)
	}
	return lf.l, nil
}

func (a *app) accountAddCmd() *cobra.Command {
	var lf limitFlags
	var push bool
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an account signed by the operator",
		Long: `add creates an account (a tenant and an isolation boundary) with an identity key, one
signing key and the given limits, signed by the operator. With --push it is pushed to the
server at once and its directory, dead-letter and audit streams are created; otherwise run
` + "`sealbus push`" + ` later.`,
		Example: `  sealbus account add shop
  sealbus account add bank --disk-storage 4GiB --streams 8 --push`,
		Args: exact(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lim, err := lf.resolve()
			if err != nil {
				return err
			}
			if err := lim.Validate(); err != nil {
				return err
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			acct, err := s.prov.CreateAccount(args[0], lim)
			if err != nil {
				return err
			}
			if push {
				ctx, cancel := a.context()
				defer cancel()
				if err := s.prov.SetupAccount(ctx, acct); err != nil {
					return withHint(fmt.Errorf("account %s saved but not pushed: %w", acct.Name, err), "retry with `sealbus push "+acct.Name+"`")
				}
			}
			return a.print(accountView(acct, nil), func(w io.Writer) {
				fmt.Fprintf(w, "account %s created: %s\n", acct.Name, acct.PublicKey())
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s` to a running server\n", acct.Name)
				}
			})
		},
	}
	def := accounts.DefaultLimits()
	addLimitFlags(cmd.Flags(), &lf, &def)
	cmd.Flags().BoolVar(&push, "push", false, "push to the server and set up the account's streams now")
	a.serverFlags(cmd)
	return cmd
}

// limitsJSON is the --json shape of accounts.Limits.
type limitsJSON struct {
	Connections   int64 `json:"connections"`
	Subscriptions int64 `json:"subscriptions"`
	MaxPayload    int64 `json:"max_payload"`
	Data          int64 `json:"data"`
	MemoryStorage int64 `json:"mem_storage"`
	DiskStorage   int64 `json:"disk_storage"`
	Streams       int64 `json:"streams"`
	Consumers     int64 `json:"consumers"`
	MaxAckPending int64 `json:"max_ack_pending"`
}

// accountJSON is the --json shape of an account.
type accountJSON struct {
	Name        string              `json:"name"`
	PublicKey   string              `json:"public_key"`
	SigningKeys []string            `json:"signing_keys"`
	Limits      limitsJSON          `json:"limits"`
	Exports     []exportJSON        `json:"exports"`
	Imports     []importJSON        `json:"imports"`
	Revocations map[string]int64    `json:"revocations"`
	Services    []string            `json:"services,omitempty"`
	IssuedAt    time.Time           `json:"issued_at"`
	JWT         string              `json:"jwt,omitempty"`
	Peers       []operator.PeerCopy `json:"peers,omitempty"` // directories updated (edit --push)
}

type exportJSON struct {
	Name     string              `json:"name,omitempty"`
	Subject  string              `json:"subject"`
	Type     string              `json:"type"`
	TokenReq bool                `json:"token_required"`
	Peers    []operator.PeerCopy `json:"peers,omitempty"` // directories updated (export --push)
}

type importJSON struct {
	Name         string              `json:"name,omitempty"`
	Subject      string              `json:"subject"`
	Account      string              `json:"account"`
	LocalSubject string              `json:"local_subject,omitempty"`
	Type         string              `json:"type"`
	Peers        []operator.PeerCopy `json:"peers,omitempty"` // directories updated (import --push)
}

func accountView(acct *accounts.Account, services []string) accountJSON {
	v := accountJSON{
		Name:        acct.Name,
		PublicKey:   acct.PublicKey(),
		Limits:      limitsJSON(acct.Limits()),
		Revocations: map[string]int64{},
		Services:    services,
		IssuedAt:    time.Unix(acct.Claims.IssuedAt, 0).UTC(),
		SigningKeys: []string{},
		Exports:     []exportJSON{},
		Imports:     []importJSON{},
	}
	for k := range acct.Claims.SigningKeys {
		v.SigningKeys = append(v.SigningKeys, k)
	}
	sort.Strings(v.SigningKeys)
	for _, e := range acct.Claims.Exports {
		if accounts.IsViewSourceExport(e) {
			continue // the tenant's link to the operator account, like the imports below
		}
		v.Exports = append(v.Exports, exportJSON{Name: e.Name, Subject: string(e.Subject), Type: e.Type.String(), TokenReq: e.TokenReq})
	}
	for _, i := range acct.Claims.Imports {
		if accounts.IsOperatorViewImport(i) {
			continue // the tenant's link to the operator account's directory, not a flow
		}
		v.Imports = append(v.Imports, importJSON{Name: i.Name, Subject: string(i.Subject), Account: i.Account, LocalSubject: string(i.LocalSubject), Type: i.Type.String()})
	}
	for k, t := range acct.Claims.Revocations {
		v.Revocations[k] = t
	}
	return v
}

func (a *app) accountListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List accounts (no passphrase needed)",
		Example: "  sealbus account list\n  sealbus account list --json",
		Args:    exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openReadOnly()
			if err != nil {
				return err
			}
			defer s.Close()
			names, err := s.ks.ListAccounts()
			if err != nil {
				return err
			}
			type row struct {
				Name      string `json:"name"`
				PublicKey string `json:"public_key"`
				Services  int    `json:"services"`
			}
			rows := []row{}
			for _, n := range names {
				if accounts.ReservedAccountName(n) {
					continue // the operator account holds no services: `sealbus account show SEALBUS`
				}
				acct, err := s.ks.LoadAccount(n)
				if err != nil {
					return err
				}
				svcs, err := s.ks.ListServices(n)
				if err != nil {
					return err
				}
				rows = append(rows, row{n, acct.PublicKey(), len(svcs)})
			}
			return a.print(rows, func(w io.Writer) {
				if len(rows) == 0 {
					fmt.Fprintln(w, "no accounts; create one with `sealbus account add NAME`")
				}
				for _, r := range rows {
					fmt.Fprintf(w, "%-20s %s  %d service(s)\n", r.Name, r.PublicKey, r.Services)
				}
			})
		},
	}
}

func (a *app) accountShowCmd() *cobra.Command {
	var showJWT bool
	cmd := &cobra.Command{
		Use:               "show NAME",
		Short:             "Show an account: keys, limits, exports, imports, revocations (no passphrase needed)",
		Example:           "  sealbus account show shop\n  sealbus account show shop --jwt --json",
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openReadOnly()
			if err != nil {
				return err
			}
			defer s.Close()
			acct, err := s.ks.LoadAccount(args[0])
			if err != nil {
				return err
			}
			svcs, err := s.ks.ListServices(args[0])
			if err != nil {
				return err
			}
			v := accountView(acct, svcs)
			if showJWT {
				v.JWT = acct.JWT
			}
			return a.print(v, func(w io.Writer) { printAccount(w, v) })
		},
	}
	cmd.Flags().BoolVar(&showJWT, "jwt", false, "include the account JWT (public)")
	return cmd
}

func printAccount(w io.Writer, v accountJSON) {
	fmt.Fprintf(w, "account      %s\n", v.Name)
	fmt.Fprintf(w, "public key   %s\n", v.PublicKey)
	fmt.Fprintf(w, "issued       %s\n", v.IssuedAt.Format(time.RFC3339))
	for _, k := range v.SigningKeys {
		fmt.Fprintf(w, "signing key  %s\n", k)
	}
	l := v.Limits
	fmt.Fprintf(w, "limits       connections=%d subscriptions=%d max-payload=%s data=%d/s\n", l.Connections, l.Subscriptions, formatBytes(l.MaxPayload), l.Data)
	fmt.Fprintf(w, "jetstream    mem=%s disk=%s streams=%d consumers=%d max-ack-pending=%d\n", formatBytes(l.MemoryStorage), formatBytes(l.DiskStorage), l.Streams, l.Consumers, l.MaxAckPending)
	for _, e := range v.Exports {
		fmt.Fprintf(w, "export       %s %s (token required: %v)\n", e.Type, e.Subject, e.TokenReq)
	}
	for _, i := range v.Imports {
		fmt.Fprintf(w, "import       %s %s from %s as %s\n", i.Type, i.Subject, i.Account, firstNonEmpty(i.LocalSubject, i.Subject))
	}
	for _, k := range slices.Sorted(maps.Keys(v.Revocations)) {
		fmt.Fprintf(w, "revoked      %s at %s\n", k, time.Unix(v.Revocations[k], 0).UTC().Format(time.RFC3339))
	}
	for _, s := range v.Services {
		fmt.Fprintf(w, "service      %s\n", s)
	}
	if v.JWT != "" {
		fmt.Fprintf(w, "jwt          %s\n", v.JWT)
	}
}

func (a *app) accountEditCmd() *cobra.Command {
	var lf limitFlags
	var addKey bool
	var removeKeys []string
	var push bool
	cmd := &cobra.Command{
		Use:   "edit NAME",
		Short: "Change an account's limits or signing keys and reissue its JWT",
		Long: `edit changes the limits given as flags (others stay), adds a signing key or removes
signing keys, then reissues the account JWT with the operator key. Cards and user JWTs signed
by a removed key stop verifying: rotate those services afterwards.`,
		Example: `  sealbus account edit shop --connections 50 --disk-storage 2GiB --push
  sealbus account edit shop --add-signing-key
  sealbus account edit shop --remove-signing-key ABC...`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			// The limit flags are checked before the keystore is opened.
			var probe accounts.Limits
			var ferr error
			cmd.Flags().Visit(func(fl *pflag.Flag) {
				if ferr == nil {
					ferr = applyLimitFlag(&probe, fl)
				}
			})
			if ferr == nil {
				ferr = probe.Validate()
			}
			if ferr != nil {
				return ferr
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			var added string
			acct, err := s.prov.EditAccount(args[0], func(acct *accounts.Account) error {
				// Only the flags given change; the other limits stay as they are.
				lim := acct.Limits()
				var ferr error
				cmd.Flags().Visit(func(fl *pflag.Flag) {
					if ferr == nil {
						ferr = applyLimitFlag(&lim, fl)
					}
				})
				if ferr != nil {
					return ferr
				}
				if err := acct.SetLimits(lim); err != nil {
					return err
				}
				if addKey {
					kp, err := acct.AddSigningKey()
					if err != nil {
						return err
					}
					added, _ = kp.PublicKey()
				}
				for _, k := range removeKeys {
					if err := acct.RemoveSigningKey(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			var peers []operator.PeerCopy
			if push {
				ctx, cancel := a.context()
				defer cancel()
				if err := s.prov.PushAccount(ctx, acct); err != nil {
					return withHint(fmt.Errorf("account %s saved but not pushed: %w", acct.Name, err), "retry with `sealbus push "+acct.Name+"`")
				}
				if peers, err = a.syncPeers(ctx, s, acct.Name); err != nil {
					return withHint(fmt.Errorf("account %s pushed but peer directories not updated: %w", acct.Name, err), "run `sealbus push`")
				}
			}
			v := accountView(acct, nil)
			v.Peers = peers
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "account %s reissued\n", acct.Name)
				printPeers(w, peers)
				if added != "" {
					fmt.Fprintf(w, "added signing key %s\n", added)
				}
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s`\n", acct.Name)
				}
			})
		},
	}
	addLimitFlags(cmd.Flags(), &lf, nil)
	cmd.Flags().BoolVar(&addKey, "add-signing-key", false, "add a signing key")
	cmd.Flags().StringSliceVar(&removeKeys, "remove-signing-key", nil, "remove a signing key (public key)")
	cmd.Flags().BoolVar(&push, "push", false, "push the reissued JWT to the server now")
	a.serverFlags(cmd)
	return cmd
}

// applyLimitFlag applies one changed limit flag to l.
func applyLimitFlag(l *accounts.Limits, fl *pflag.Flag) error {
	v := fl.Value.String()
	var n int64
	var err error
	switch fl.Name {
	case "max-payload", "mem-storage", "disk-storage":
		n, err = parseBytes(v)
	case "connections", "subscriptions", "data", "streams", "consumers", "max-ack-pending":
		_, err = fmt.Sscan(v, &n)
	default:
		return nil
	}
	if err != nil {
		return usageErr("--%s: %v", fl.Name, err)
	}
	switch fl.Name {
	case "max-payload":
		l.MaxPayload = n
	case "mem-storage":
		l.MemoryStorage = n
	case "disk-storage":
		l.DiskStorage = n
	case "connections":
		l.Connections = n
	case "subscriptions":
		l.Subscriptions = n
	case "data":
		l.Data = n
	case "streams":
		l.Streams = n
	case "consumers":
		l.Consumers = n
	case "max-ack-pending":
		l.MaxAckPending = n
	}
	return nil
}

func (a *app) accountRemoveCmd() *cobra.Command {
	var force, push bool
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an account from the keystore (and disable it on the server with --push)",
		Long: `remove deletes the account, its keys, services and creds files from the keystore. It is
refused while the account has services or another account imports from it, unless --force.
With --push the account is first disabled on the server: every user key is revoked and no
connection allowed (servers keep account JWTs; this is how one stops working). Without --push
the server still accepts the account's creds: push before removing, or remove with --push.`,
		Example: `  sealbus account remove shop --push
  sealbus account remove shop --force --push`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			defer cancel()
			acct, err := s.prov.RemoveAccount(ctx, args[0], force, push)
			if err != nil {
				return err
			}
			return a.print(map[string]any{"account": args[0], "public_key": acct.PublicKey(), "removed": true, "disabled_on_server": push}, func(w io.Writer) {
				fmt.Fprintf(w, "account %s (%s) removed from the keystore\n", args[0], acct.PublicKey())
				if push {
					fmt.Fprintln(w, "  disabled on the server: every user key revoked, no connections")
				} else {
					fmt.Fprintln(w, "  note: not pushed; servers still accept the account's creds")
				}
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even with services or importers")
	cmd.Flags().BoolVar(&push, "push", false, "disable the account on the server first")
	a.serverFlags(cmd)
	return cmd
}
