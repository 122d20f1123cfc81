package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) serviceCmd() *cobra.Command {
	return group("service", "Manage services (NATS users with identity cards)",
		`  sealbus service add shop billing --sub orders.created --consumer ORDERS:billing --push
  sealbus service show shop billing
  sealbus service rotate shop billing --grace 24h --push
  sealbus service revoke shop billing --push
  sealbus service edit shop billing --add-sub orders.paid --push
  sealbus service remove shop billing --push
  sealbus service context shop billing`,
		a.serviceAddCmd(), a.serviceListCmd(), a.serviceShowCmd(), a.serviceCredsCmd(),
		a.serviceRotateCmd(), a.serviceRevokeCmd(), a.serviceEditCmd(), a.serviceRemoveCmd(), a.serviceContextCmd())
}

// parseConsumers reads STREAM:DURABLE values and STREAM:DURABLE=subj,subj filters.
func parseConsumers(refs, filters []string) ([]accounts.ConsumerRef, map[accounts.ConsumerRef][]string, error) {
	var out []accounts.ConsumerRef
	for _, r := range refs {
		st, dur, ok := strings.Cut(r, ":")
		if !ok || st == "" || dur == "" {
			return nil, nil, usageErr("--consumer %q: want STREAM:DURABLE", r)
		}
		out = append(out, accounts.ConsumerRef{Stream: st, Durable: dur})
	}
	fm := map[accounts.ConsumerRef][]string{}
	for _, f := range filters {
		ref, subj, ok := strings.Cut(f, "=")
		st, dur, ok2 := strings.Cut(ref, ":")
		if !ok || !ok2 || subj == "" {
			return nil, nil, usageErr("--filter %q: want STREAM:DURABLE=subject[,subject]", f)
		}
		key := accounts.ConsumerRef{Stream: st, Durable: dur}
		found := false
		for _, r := range out {
			found = found || r == key
		}
		if !found {
			return nil, nil, usageErr("--filter %q names a consumer not given with --consumer", f)
		}
		fm[key] = strings.Split(subj, ",")
	}
	return out, fm, nil
}

type serviceJSON struct {
	Account     string                    `json:"account"`
	Name        string                    `json:"name"`
	UserKey     string                    `json:"user_key"`
	CurveKey    string                    `json:"curve_key"`
	Publish     []string                  `json:"publish"`
	Subscribe   []string                  `json:"subscribe"`
	Consumers   []string                  `json:"consumers"`
	IssuedAt    time.Time                 `json:"issued_at"`
	Expires     time.Time                 `json:"expires"`
	Revoked     bool                      `json:"revoked"`
	Previous    []previousJSON            `json:"previous_curve_keys,omitempty"`
	CredsPath   string                    `json:"creds_path"`
	Permissions *jwt.Permissions          `json:"permissions,omitempty"`
	Limits      accounts.ServiceLimits    `json:"limits"` // per-service limits in the user JWT
	ConsumerOps []operator.ConsumerResult `json:"consumer_results,omitempty"`
	Removed     []operator.ConsumerResult `json:"removed_consumers,omitempty"`
	Peers       []operator.PeerCopy       `json:"peers,omitempty"` // directories updated with --push
}

func serviceView(s *session, account string, svc *accounts.Service, acct *accounts.Account) serviceJSON {
	v := serviceJSON{
		Account:   account,
		Name:      svc.Spec.Name,
		UserKey:   svc.UserPublicKey(),
		CurveKey:  svc.CurvePublicKey(),
		Publish:   nonNil(svc.Spec.Publish),
		Subscribe: nonNil(svc.Spec.Subscribe),
		Consumers: []string{},
		CredsPath: s.prov.CredsPath(account, svc.Spec.Name),
		Limits:    svc.Spec.Limits.Resolved(),
	}
	for _, c := range svc.Spec.Consumers {
		v.Consumers = append(v.Consumers, c.Stream+":"+c.Durable)
	}
	if card, err := accounts.DecodeCard(svc.Card); err == nil {
		v.IssuedAt, v.Expires = card.IssuedAt, card.Expires
		for _, p := range card.PreviousCurveKeys {
			v.Previous = append(v.Previous, previousJSON{CurveKey: p.CurveKey, Until: p.Until})
		}
		if acct != nil {
			v.Revoked = accounts.IsRevoked(acct.Claims, v.UserKey, card.IssuedAt)
		}
	}
	return v
}

// previousJSON is a curve key replaced by a rotation, usable until Until.
type previousJSON struct {
	CurveKey string    `json:"curve_key"`
	Until    time.Time `json:"until"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *app) serviceAddCmd() *cobra.Command {
	var pub, sub, cons, filters []string
	var validity string
	var push bool
	var lf serviceLimitFlags
	cmd := &cobra.Command{
		Use:   "add ACCOUNT NAME",
		Short: "Create a service: keys, least-privilege user JWT, identity card, creds file",
		Long: `add creates a service of ACCOUNT: a user key (signs envelopes, authenticates to NATS), a
curve key (receives content keys), a user JWT whose permissions are computed from --pub, --sub
and --consumer (docs/PERMISSIONS.md), an identity card, and a creds file (0600).

Services cannot create streams or consumers: the durables named with --consumer STREAM:DURABLE
are created by the operator, with --push now or by ` + "`sealbus push`" + ` later. Their filter is the
service's --sub subjects that fall in the stream, unless --filter STREAM:DURABLE=subjects is given.

Everything is checked before anything is saved: the subjects, that each filter is covered by
--sub, that no other service owns the durable and, with --push, that each stream exists and
holds the filter's subjects. A failed check or push leaves the keystore as it was.`,
		Example: `  sealbus service add shop checkout --pub orders.created
  sealbus service add shop billing --sub 'orders.>' --consumer ORDERS:billing --push
  sealbus service add shop audit --sub 'orders.>' --consumer ORDERS:audit --filter ORDERS:audit=orders.paid --validity 30d`,
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, fm, err := parseConsumers(cons, filters)
			if err != nil {
				return err
			}
			spec := accounts.ServiceSpec{Name: args[1], Publish: splitAll(pub), Subscribe: splitAll(sub), Consumers: refs}
			if spec.Limits, err = lf.resolve(); err != nil {
				return err
			}
			if validity != "" {
				if spec.Validity, err = parseDuration(validity); err != nil {
					return usageErr("--validity: %v", err)
				}
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			defer cancel()
			outcome, err := s.prov.AddService(ctx, args[0], spec, operator.ServiceChange{Filters: fm, Push: push})
			if err != nil && (outcome == nil || !outcome.Partial) {
				return err // nothing was saved
			}
			if err != nil {
				return withHint(fmt.Errorf("service %s saved and published, but: %w", spec.Name, err), "run `sealbus push "+args[0]+"`")
			}
			a.noteSkippedPeers(outcome.Peers)
			svc, path, results, peers := outcome.Service, outcome.CredsPath, outcome.Consumers, outcome.Peers
			v := serviceView(s, args[0], svc, nil)
			v.ConsumerOps = results
			v.Peers = peers
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service %s/%s created\n", args[0], svc.Spec.Name)
				fmt.Fprintf(w, "  user key   %s\n  curve key  %s\n  creds      %s\n", v.UserKey, v.CurveKey, path)
				for _, r := range results {
					fmt.Fprintf(w, "  consumer   %s:%s %s (filter %s)\n", r.Stream, r.Durable, r.Status, strings.Join(r.Filter, ","))
				}
				printPeers(w, peers)
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s` publishes the card and creates the consumers\n", args[0])
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&pub, "pub", nil, "subjects the service may publish (repeatable)")
	f.StringSliceVar(&sub, "sub", nil, "subjects the service may read (repeatable)")
	f.StringArrayVar(&cons, "consumer", nil, "durable pull consumer STREAM:DURABLE the service uses (repeatable)")
	f.StringArrayVar(&filters, "filter", nil, "explicit consumer filter STREAM:DURABLE=subject[,subject]")
	f.StringVar(&validity, "validity", "", "card and user JWT lifetime (default 90d)")
	f.BoolVar(&push, "push", false, "publish the card and create the consumers on the server now")
	addServiceLimitFlags(f, &lf)
	a.serverFlags(cmd)
	return cmd
}

func splitAll(v []string) []string {
	var out []string
	for _, s := range v {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (a *app) serviceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "list ACCOUNT",
		Short:             "List an account's services (no passphrase needed)",
		Example:           "  sealbus service list shop --json",
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
			names, err := s.ks.ListServices(args[0])
			if err != nil {
				return err
			}
			rows := []serviceJSON{}
			for _, n := range names {
				svc, err := s.ks.LoadService(args[0], n)
				if err != nil {
					return err
				}
				rows = append(rows, serviceView(s, args[0], svc, acct))
			}
			return a.print(rows, func(w io.Writer) {
				if len(rows) == 0 {
					fmt.Fprintf(w, "no services in %s\n", args[0])
				}
				for _, r := range rows {
					state := "active"
					if r.Revoked {
						state = "REVOKED"
					}
					fmt.Fprintf(w, "%-20s %s  %s  expires %s\n", r.Name, r.UserKey, state, r.Expires.Format("2006-01-02"))
				}
			})
		},
	}
}

func (a *app) serviceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "show ACCOUNT NAME",
		Short:             "Show a service: keys, permissions, card validity, revocation (no passphrase needed)",
		Example:           "  sealbus service show shop billing\n  sealbus service show shop billing --json",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
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
			svc, err := s.ks.LoadService(args[0], args[1])
			if err != nil {
				return err
			}
			v := serviceView(s, args[0], svc, acct)
			if uc, err := jwt.DecodeUserClaims(svc.UserJWT); err == nil {
				v.Permissions = &uc.Permissions
			}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service     %s/%s\n", v.Account, v.Name)
				fmt.Fprintf(w, "user key    %s\ncurve key   %s\n", v.UserKey, v.CurveKey)
				fmt.Fprintf(w, "publish     %s\nsubscribe   %s\nconsumers   %s\n", strings.Join(v.Publish, " "), strings.Join(v.Subscribe, " "), strings.Join(v.Consumers, " "))
				fmt.Fprintf(w, "valid       %s .. %s\n", v.IssuedAt.Format(time.RFC3339), v.Expires.Format(time.RFC3339))
				fmt.Fprintf(w, "revoked     %v\n", v.Revoked)
				for _, p := range v.Previous {
					fmt.Fprintf(w, "previous    %s until %s\n", p.CurveKey, p.Until.Format(time.RFC3339))
				}
				if v.Permissions != nil {
					fmt.Fprintf(w, "nats pub    %s\n", strings.Join(v.Permissions.Pub.Allow, " "))
					fmt.Fprintf(w, "nats deny   %s\n", strings.Join(v.Permissions.Pub.Deny, " "))
					fmt.Fprintf(w, "nats sub    %s\n", strings.Join(v.Permissions.Sub.Allow, " "))
				}
				fmt.Fprintf(w, "creds       %s\n", v.CredsPath)
			})
		},
	}
}

func (a *app) serviceCredsCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "creds ACCOUNT NAME",
		Short: "Write the service's creds file (0600) and print its path",
		Long: `creds writes the service's credentials (user JWT, user seed, curve seed) to its place in the
keystore, or to --out, with mode 0600, and prints the path. Seeds are never printed.`,
		Example:           "  sealbus service creds shop billing\n  sealbus service creds shop billing --out ./billing.creds",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			svc, err := s.ks.LoadService(args[0], args[1])
			if err != nil {
				return err
			}
			path := out
			if path == "" {
				if path, err = s.prov.WriteCreds(args[0], svc); err != nil {
					return err
				}
			} else if err := operator.WriteCredsFile(path, svc); err != nil {
				return err
			}
			return a.print(map[string]string{"creds_path": path, "user_key": svc.UserPublicKey()}, func(w io.Writer) {
				fmt.Fprintln(w, path)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the creds file here instead of the keystore")
	return cmd
}

func (a *app) serviceRotateCmd() *cobra.Command {
	var grace string
	var push bool
	cmd := &cobra.Command{
		Use:   "rotate ACCOUNT NAME",
		Short: "Give a service new keys; the old user key is revoked, the old curve key kept for --grace",
		Long: `rotate makes new user and curve keys, a new user JWT and card (listing the old curve key as
usable for decryption until now + --grace) and revokes the old user key in the account JWT. The
old creds are kept next to the new ones as NAME.previous.creds (for bus.WithPreviousCreds).`,
		Example:           "  sealbus service rotate shop billing --grace 24h --push",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := parseDuration(grace)
			if err != nil {
				return usageErr("--grace: %v", err)
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			svc, acct, path, err := s.prov.RotateService(args[0], args[1], g)
			if err != nil {
				return err
			}
			var peers []operator.PeerCopy
			if push {
				ctx, cancel := a.context()
				defer cancel()
				peers, err = s.prov.ApplyRotation(ctx, acct, svc)
				a.noteSkippedPeers(peers)
				if err != nil {
					return withHint(err, "run `sealbus push "+args[0]+"`")
				}
			}
			v := serviceView(s, args[0], svc, acct)
			v.Peers = peers
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service %s/%s rotated\n  new user key %s\n  new creds    %s\n  old creds    %s\n", args[0], args[1], v.UserKey, path, s.prov.PreviousCredsPath(args[0], args[1]))
				printPeers(w, peers)
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s` (until then the server still accepts the old key)\n", args[0])
				}
			})
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "24h", "how long the old curve key still opens envelopes")
	cmd.Flags().BoolVar(&push, "push", false, "publish the new card and push the account now")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) serviceRevokeCmd() *cobra.Command {
	var push bool
	cmd := &cobra.Command{
		Use:   "revoke ACCOUNT NAME",
		Short: "Revoke a service's key and card in the account JWT",
		Long: `revoke adds the service's user key to the account's revocations and reissues the account
JWT. Once pushed, the server disconnects the service and refuses it, and every SDK client stops
accepting its envelopes and encrypting to it; with --push the new account JWT also goes into the
directories of accounts that share a stream with ACCOUNT. This is how a service is taken out of
use: deleting its card from the directory does nothing (clients keep the last verified card).`,
		Example:           "  sealbus service revoke shop billing --push\n  sealbus service revoke shop billing && sealbus push shop",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			acct, err := s.prov.RevokeService(args[0], args[1], time.Now())
			if err != nil {
				return err
			}
			var peers []operator.PeerCopy
			if push {
				ctx, cancel := a.context()
				defer cancel()
				peers, err = s.prov.ApplyRevocation(ctx, acct)
				a.noteSkippedPeers(peers)
				if err != nil {
					return withHint(err, "run `sealbus push "+args[0]+"` now")
				}
			}
			svc, err := s.ks.LoadService(args[0], args[1])
			if err != nil {
				return err
			}
			v := serviceView(s, args[0], svc, acct)
			v.Peers = peers
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service %s/%s revoked (user key %s)\n", args[0], args[1], v.UserKey)
				printPeers(w, peers)
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s` — until then servers still accept the key\n", args[0])
				}
			})
		},
	}
	cmd.Flags().BoolVar(&push, "push", false, "push the account now")
	a.serverFlags(cmd)
	return cmd
}
