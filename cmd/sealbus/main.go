// Command sealbus is the operator's tool for sealbus: it creates the operator, accounts
// (tenants) and services, sets limits, rotates and revokes keys, pushes account JWTs to
// servers, runs a local dev server and inspects tokens, credentials and envelopes.
//
// Exit codes: 0 success, 1 error, 2 usage error, 3 not found, 4 verification or
// authorization refused. docs/CLI.md is the command reference.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code. SIGINT and SIGTERM cancel
// the command's context (long-running commands such as `dev` stop cleanly).
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}
