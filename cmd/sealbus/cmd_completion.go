package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
)

func (a *app) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `completion prints a completion script for your shell. Accounts, services, streams and durables
complete from the keystore without the passphrase (streams: those the account's services
declare durables on).`,
		Example: `  source <(sealbus completion bash)
  sealbus completion zsh > "${fpath[1]}/_sealbus"
  sealbus completion fish > ~/.config/fish/completions/sealbus.fish`,
		Args:      exact(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
			return usageErr("unknown shell %q (bash, zsh, fish, powershell)", args[0])
		},
	}
}

// completionStore opens the keystore read-only for completion; nil when there is none.
func (a *app) completionStore() *accounts.Keystore {
	ks, err := accounts.OpenKeystoreReadOnly(a.home)
	if err != nil {
		return nil
	}
	return ks
}

func (a *app) completeAccounts() []string {
	ks := a.completionStore()
	if ks == nil {
		return nil
	}
	defer ks.Close()
	names, _ := ks.ListAccounts()
	return names
}

// serviceSpecs returns the specs of an account's services, by name.
func (a *app) serviceSpecs(account string) map[string]accounts.ServiceSpec {
	ks := a.completionStore()
	if ks == nil {
		return nil
	}
	defer ks.Close()
	names, _ := ks.ListServices(account)
	out := map[string]accounts.ServiceSpec{}
	for _, n := range names {
		if svc, err := ks.LoadService(account, n); err == nil {
			out[n] = svc.Spec
		}
	}
	return out
}

// accountThenService completes ACCOUNT, then one of its services.
func (a *app) accountThenService(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return a.completeAccounts(), cobra.ShellCompDirectiveNoFileComp
	case 1:
		var out []string
		for n := range a.serviceSpecs(args[0]) {
			out = append(out, n)
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// accountThenStream completes ACCOUNT, then the streams its services declare durables on.
func (a *app) accountThenStream(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return a.completeAccounts(), cobra.ShellCompDirectiveNoFileComp
	case 1:
		return a.declared(args[0], func(c accounts.ConsumerRef) string { return c.Stream }), cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// declared maps every declared durable of the account's services through f, deduplicated.
func (a *app) declared(account string, f func(accounts.ConsumerRef) string) []string {
	var out []string
	for _, spec := range a.serviceSpecs(account) {
		for _, c := range spec.Consumers {
			if v := f(c); !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// subArgs completes `sub STREAM DURABLE` for the service of --as: its streams, then its
// durables on that stream.
func (a *app) subArgs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	as, _ := cmd.Flags().GetString("as")
	acct, svc, ok := strings.Cut(as, "/")
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	spec, ok := a.serviceSpecs(acct)[svc]
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, c := range spec.Consumers {
		switch {
		case len(args) == 0 && !slices.Contains(out, c.Stream):
			out = append(out, c.Stream)
		case len(args) == 1 && c.Stream == args[0]:
			out = append(out, c.Durable)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// asValues completes --as ACCOUNT/SERVICE.
func (a *app) asValues(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, acct := range a.completeAccounts() {
		for n := range a.serviceSpecs(acct) {
			out = append(out, acct+"/"+n)
		}
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}
