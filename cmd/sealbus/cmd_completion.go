package main

import (
	"github.com/spf13/cobra"
)

func (a *app) completionCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `completion prints a completion script for your shell. Account names complete from the
keystore (for an encrypted keystore only when SEALBUS_PASSPHRASE is set).`,
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
