package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) serviceEditCmd() *cobra.Command {
	var pub, sub, cons, filters, addPub, rmPub, addSub, rmSub, addCons, rmCons []string
	var validity, grace string
	var push bool
	cmd := &cobra.Command{
		Use:   "edit ACCOUNT NAME",
		Short: "Change a service's permissions, validity or consumers (new keys; old ones revoked)",
		Long: `edit changes what a service may do. --pub, --sub and --consumer replace the lists; --add-* and
--remove-* change one entry. The new spec is checked like ` + "`service add`" + ` before anything is saved.
The service then gets new keys, a new user JWT and card (the old user key is revoked, so the
old permissions stop working once pushed; the old curve key opens envelopes for --grace); the
old creds are kept as NAME.previous.creds. With --push the account is pushed, the card
published, new durables created and dropped durables deleted; a failed first push leaves the
keystore as it was. Deploy the new creds file to the service.`,
		Example: `  sealbus service edit shop billing --add-sub orders.refunded --push
  sealbus service edit shop billing --remove-consumer ORDERS:billing --add-consumer REFUNDS:billing --push
  sealbus service edit shop checkout --pub 'orders.>' --validity 30d`,
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := parseDuration(grace)
			if err != nil || g < 0 {
				return usageErr("--grace: %v", firstErr(err, "negative"))
			}
			replace, _, err := parseConsumers(cons, nil)
			if err != nil {
				return err
			}
			added, _, err := parseConsumers(addCons, nil)
			if err != nil {
				return err
			}
			removed, _, err := parseConsumers(rmCons, nil)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			edit := func(spec *accounts.ServiceSpec) error {
				if f.Changed("pub") {
					spec.Publish = splitAll(pub)
				}
				if f.Changed("sub") {
					spec.Subscribe = splitAll(sub)
				}
				if f.Changed("consumer") {
					spec.Consumers = replace
				}
				spec.Publish = edited(spec.Publish, splitAll(addPub), splitAll(rmPub))
				spec.Subscribe = edited(spec.Subscribe, splitAll(addSub), splitAll(rmSub))
				for _, r := range removed {
					if !slices.Contains(spec.Consumers, r) {
						return usageErr("--remove-consumer %s:%s: the service has no such durable", r.Stream, r.Durable)
					}
					spec.Consumers = slices.DeleteFunc(spec.Consumers, func(c accounts.ConsumerRef) bool { return c == r })
				}
				for _, r := range added {
					if !slices.Contains(spec.Consumers, r) {
						spec.Consumers = append(spec.Consumers, r)
					}
				}
				if validity != "" {
					d, err := parseDuration(validity)
					if err != nil {
						return usageErr("--validity: %v", err)
					}
					spec.Validity = d
				}
				return nil
			}
			if validity != "" {
				if _, err := parseDuration(validity); err != nil {
					return usageErr("--validity: %v", err)
				}
			}
			_, fm, err := parseConsumers(append(append(slices.Clone(cons), addCons...), consumersOf(filters)...), filters)
			if err != nil {
				return err
			}
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			defer cancel()
			out, err := s.prov.EditService(ctx, args[0], args[1], edit, operator.ServiceChange{Filters: fm, Push: push, Grace: g})
			if err != nil && (out == nil || !out.Partial) {
				return err
			}
			if err != nil {
				return withHint(fmt.Errorf("service %s changed and its account pushed, but: %w", args[1], err), "run `sealbus push "+args[0]+"`")
			}
			a.noteSkippedPeers(out.Peers)
			v := serviceView(s, args[0], out.Service, out.Account)
			v.ConsumerOps, v.Removed, v.Peers = out.Consumers, out.Removed, out.Peers
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service %s/%s changed: new user key %s\n", args[0], args[1], v.UserKey)
				fmt.Fprintf(w, "  publish    %s\n  subscribe  %s\n  consumers  %s\n", strings.Join(v.Publish, " "), strings.Join(v.Subscribe, " "), strings.Join(v.Consumers, " "))
				fmt.Fprintf(w, "  new creds  %s (deploy it; the old ones stop working once pushed)\n", out.CredsPath)
				for _, r := range append(out.Consumers, out.Removed...) {
					fmt.Fprintf(w, "  consumer   %s:%s %s\n", r.Stream, r.Durable, r.Status)
				}
				printPeers(w, out.Peers)
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s`\n", args[0])
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&pub, "pub", nil, "replace the publish subjects")
	fl.StringSliceVar(&sub, "sub", nil, "replace the subscribe subjects")
	fl.StringArrayVar(&cons, "consumer", nil, "replace the durables (STREAM:DURABLE, repeatable)")
	fl.StringSliceVar(&addPub, "add-pub", nil, "add a publish subject")
	fl.StringSliceVar(&rmPub, "remove-pub", nil, "remove a publish subject")
	fl.StringSliceVar(&addSub, "add-sub", nil, "add a subscribe subject")
	fl.StringSliceVar(&rmSub, "remove-sub", nil, "remove a subscribe subject")
	fl.StringArrayVar(&addCons, "add-consumer", nil, "add a durable STREAM:DURABLE")
	fl.StringArrayVar(&rmCons, "remove-consumer", nil, "remove a durable STREAM:DURABLE")
	fl.StringArrayVar(&filters, "filter", nil, "explicit filter of a new durable STREAM:DURABLE=subject[,subject]")
	fl.StringVar(&validity, "validity", "", "new card and user JWT lifetime (e.g. 30d)")
	fl.StringVar(&grace, "grace", "24h", "how long the old curve key still opens envelopes")
	fl.BoolVar(&push, "push", false, "apply on the server now")
	a.serverFlags(cmd)
	return cmd
}

// consumersOf returns the STREAM:DURABLE part of --filter values (so parseConsumers accepts
// filters of durables that already exist).
func consumersOf(filters []string) []string {
	var out []string
	for _, f := range filters {
		if ref, _, ok := strings.Cut(f, "="); ok {
			out = append(out, ref)
		}
	}
	return out
}

// edited returns list with add appended (once) and remove taken out.
func edited(list, add, remove []string) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(remove, s) })
	for _, s := range add {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func firstErr(err error, otherwise string) any {
	if err != nil {
		return err
	}
	return otherwise
}

func (a *app) serviceRemoveCmd() *cobra.Command {
	var push bool
	cmd := &cobra.Command{
		Use:   "remove ACCOUNT NAME",
		Short: "Remove a service: revoke its key, delete its keystore entry and creds",
		Long: `remove takes a service out of the deployment: its user key is revoked in the account JWT (so its
creds stop working everywhere once pushed), and its keystore entry and creds files are deleted.
With --push the account is pushed, the card deleted from the directory and the service's
durables deleted; if the push fails the keystore is left as it was.`,
		Example:           "  sealbus service remove shop billing --push",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(push)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			defer cancel()
			out, err := s.prov.RemoveService(ctx, args[0], args[1], push)
			if err != nil && (out == nil || !out.Partial) {
				return err
			}
			if err != nil {
				return withHint(fmt.Errorf("service %s revoked, removed and pushed, but: %w", args[1], err), "run `sealbus push "+args[0]+"`")
			}
			a.noteSkippedPeers(out.Peers)
			v := map[string]any{"account": args[0], "service": args[1], "user_key": out.Service.UserPublicKey(), "revoked": true, "removed_consumers": out.Removed, "peers": out.Peers}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "service %s/%s removed (user key %s revoked)\n", args[0], args[1], out.Service.UserPublicKey())
				for _, r := range out.Removed {
					fmt.Fprintf(w, "  consumer %s:%s deleted\n", r.Stream, r.Durable)
				}
				printPeers(w, out.Peers)
				if !push {
					fmt.Fprintf(w, "next: `sealbus push %s` — until then servers still accept its creds\n", args[0])
				}
			})
		},
	}
	cmd.Flags().BoolVar(&push, "push", false, "push the revocation and delete the card and durables now")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) serviceContextCmd() *cobra.Command {
	var name, dir string
	cmd := &cobra.Command{
		Use:   "context ACCOUNT NAME",
		Short: "Write a nats CLI context for the service (creds, CA, server, inbox prefix)",
		Long: `context writes a context of the stock nats CLI (natscli) for the service: its creds file (written
0600 if missing), the server URL and CA (--server/--ca, else the running ` + "`sealbus dev`" + `), the client
certificate with mTLS, and the inbox prefix its permissions allow (_INBOX_<user key>), so every
nats command the service may run works, request/reply ones included. Use it with
` + "`nats --context NAME ...`" + ` or ` + "`nats context select NAME`" + `. The default name is ACCOUNT-NAME.`,
		Example: `  sealbus service context shop billing && nats --context shop-billing consumer info ORDERS billing
  sealbus service context shop billing --context billing --server nats.example:4222 --ca ca.pem`,
		Args:              exact(2),
		ValidArgsFunction: a.accountThenService,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.target()
			if err != nil {
				return err
			}
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer s.Close()
			svc, err := s.ks.LoadService(args[0], args[1])
			if err != nil {
				return err
			}
			creds, err := s.prov.WriteCreds(args[0], svc)
			if err != nil {
				return err
			}
			c := operator.ServiceContext(t, args[0], svc, creds)
			ctxName := firstNonEmpty(name, args[0]+"-"+args[1])
			path, err := a.writeContext(dir, ctxName, c)
			if err != nil {
				return err
			}
			v := map[string]any{"context": ctxName, "path": path, "url": c.URL, "creds": c.Creds, "ca": c.CA, "inbox_prefix": c.InboxPrefix}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "nats context %s written to %s\n", ctxName, path)
				fmt.Fprintf(w, "  server %s, creds %s, inbox prefix %s\n", c.URL, c.Creds, c.InboxPrefix)
				fmt.Fprintf(w, "try: nats --context %s account info\n", ctxName)
			})
		},
	}
	cmd.Flags().StringVar(&name, "context", "", "context name (default ACCOUNT-NAME)")
	cmd.Flags().StringVar(&dir, "context-dir", "", "directory of nats contexts (default $XDG_CONFIG_HOME/nats/context)")
	a.serverFlags(cmd)
	return cmd
}
