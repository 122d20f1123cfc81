package main

import "github.com/spf13/cobra"

// addSDKCommands adds the commands built on the SDK (pub, sub, dlq, audit, demo).
func (a *app) addSDKCommands(root *cobra.Command) {}
