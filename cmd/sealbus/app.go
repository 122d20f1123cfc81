package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
)

// Exit codes (docs/CLI.md).
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
	exitRefused  = 4
)

// cliError carries an exit code and an optional hint.
type cliError struct {
	code int
	err  error
	hint string
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		if ce.hint == "" {
			ce.hint = hint
		}
		return err
	}
	return &cliError{code: classify(err), err: err, hint: hint}
}

// classify maps an error to an exit code.
func classify(err error) int {
	var ce *cliError
	if errors.As(err, &ce) && ce.code != 0 {
		return ce.code
	}
	switch {
	case errors.Is(err, accounts.ErrWrongPassphrase),
		errors.Is(err, accounts.ErrUntrustedOperator),
		errors.Is(err, accounts.ErrUnknownSigner),
		errors.Is(err, accounts.ErrExpired),
		errors.Is(err, accounts.ErrNotYetValid),
		errors.Is(err, accounts.ErrRevoked),
		errors.Is(err, accounts.ErrWrongAccount),
		errors.Is(err, accounts.ErrPermissionMismatch),
		errors.Is(err, accounts.ErrKeyMismatch),
		errors.Is(err, accounts.ErrWrongType),
		errors.Is(err, accounts.ErrTooLarge),
		errors.Is(err, accounts.ErrBadToken),
		errors.Is(err, operator.ErrPushRejected),
		errors.Is(err, bus.ErrNoCard),
		errors.Is(err, bus.ErrRevoked),
		errors.Is(err, bus.ErrForbidden),
		errors.Is(err, bus.ErrServerNonce),
		errors.Is(err, nats.ErrAuthorization),
		errors.Is(err, nats.ErrPermissionViolation),
		errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, consumers.ErrPermission),
		isTLSVerify(err):
		return exitRefused
	case errors.Is(err, accounts.ErrNotFound),
		errors.Is(err, fs.ErrNotExist),
		errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, jetstream.ErrKeyNotFound),
		errors.Is(err, jetstream.ErrBucketNotFound),
		errors.Is(err, jetstream.ErrMsgNotFound),
		errors.Is(err, operator.ErrNotFound),
		errors.Is(err, consumers.ErrNoConsumer),
		errors.Is(err, bus.ErrNoStream):
		return exitNotFound
	case errors.Is(err, accounts.ErrInvalidOption),
		errors.Is(err, accounts.ErrWeakPassphrase),
		errors.Is(err, operator.ErrInvalidSpec),
		errors.Is(err, bus.ErrInvalidSubject),
		errors.Is(err, bus.ErrInvalidOption),
		errors.Is(err, consumers.ErrInvalidOption):
		return exitUsage
	}
	return exitError
}

// isTLSVerify reports a server certificate this client does not trust.
func isTLSVerify(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &cv)
}

// hintFor suggests a next step for well-known errors.
func hintFor(err error) string {
	var ce *cliError
	if errors.As(err, &ce) && ce.hint != "" {
		return ce.hint
	}
	switch {
	case errors.Is(err, accounts.ErrWrongPassphrase):
		return "set SEALBUS_PASSPHRASE to the keystore's passphrase (stores made with --unencrypted take none)"
	case errors.Is(err, accounts.ErrExists):
		return "pick another name, or edit the existing entry"
	case errors.Is(err, nats.ErrNoServers):
		return "start a server with `sealbus dev`, or pass --server and --ca"
	case errors.Is(err, operator.ErrPushRejected):
		return "the server refused the JWT; check that it trusts this operator (`sealbus config server`)"
	case errors.Is(err, operator.ErrNoDevServer):
		return "start `sealbus dev` in another terminal, or pass --server HOST:PORT and --ca FILE"
	case errors.Is(err, operator.ErrDevRunning):
		return "stop the other `sealbus dev` first, or use another --home"
	case errors.Is(err, accounts.ErrWeakPassphrase):
		return fmt.Sprintf("use a passphrase of at least %d characters (a few random words)", accounts.MinPassphraseLength)
	case errors.Is(err, operator.ErrInUse):
		return "remove what uses it first, or pass --force"
	case errors.Is(err, bus.ErrNoStream):
		return "create a stream for the subject: `sealbus stream add ACCOUNT NAME --subjects ...`"
	case isTLSVerify(err):
		return "the server's certificate is not signed by a CA sealbus was told to trust: pass --ca FILE (for a `sealbus dev` of this home, HOME/dev/tls/ca.crt)"
	}
	var nf *accounts.NotFoundError
	if errors.As(err, &nf) {
		if nf.Kind == "service" {
			return fmt.Sprintf("`sealbus service list %s` lists them", nf.Scope)
		}
		return "`sealbus account list` lists them"
	}
	return ""
}

// app holds the global flags and I/O of one invocation.
type app struct {
	ctx         context.Context
	stdout      io.Writer
	stderr      io.Writer
	stdin       io.Reader
	stdinReader *bufio.Reader

	home    string
	json    bool
	server  string
	ca      string
	cert    string
	key     string
	verbose bool
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdout: stdout, stderr: stderr, stdin: os.Stdin}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := classify(err)
	if code == exitError && isCobraUsage(err) {
		code = exitUsage
	}
	fmt.Fprintf(stderr, "sealbus: error: %v\n", err)
	if h := hintFor(err); h != "" {
		fmt.Fprintf(stderr, "sealbus: hint: %s\n", h)
	} else if code == exitUsage {
		fmt.Fprintln(stderr, "sealbus: hint: see `sealbus help` or add --help to the command")
	}
	return code
}

// isCobraUsage recognizes cobra's own argument errors (unknown command, unknown flag), which
// are plain errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.Contains(s, "flag needs an argument") ||
		strings.HasPrefix(s, "invalid argument") || strings.HasPrefix(s, "required flag")
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sealbus",
		Short: "Operate sealbus: identities, accounts, services, servers",
		Long: `sealbus manages the identities of a sealbus deployment the way nsc does for NATS:
an operator signs accounts (tenants); each service is a NATS user with least-privilege
permissions and an identity card the SDK verifies end to end.

Keys live in the keystore under --home (default $SEALBUS_HOME, else $XDG_DATA_HOME/sealbus).`,
		Example: `  sealbus init
  sealbus account add shop
  sealbus dev &
  sealbus push
  sealbus stream add shop ORDERS --subjects 'orders.>'
  sealbus service add shop billing --sub orders.created --consumer ORDERS:billing --push`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for sealbus", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cliError{code: exitUsage, err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.home, "home", defaultHome(), "sealbus home (keystore); env SEALBUS_HOME")
	pf.BoolVar(&a.json, "json", false, "print machine-readable JSON")

	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	for _, c := range a.commands(root) {
		root.AddCommand(c)
	}
	return root
}

// commands is the registry of top-level commands, in the order `sealbus help` lists them. A
// new verb is one more entry here (and its section in docs/CLI.md: TestCLIReferenceMatchesHelp
// walks this tree).
func (a *app) commands(root *cobra.Command) []*cobra.Command {
	return []*cobra.Command{
		a.initCmd(),
		a.operatorCmd(),
		a.passphraseCmd(),
		a.accountCmd(),
		a.serviceCmd(),
		a.streamCmd(),
		a.exportCmd(),
		a.importCmd(),
		a.adminCmd(),
		a.configCmd(),
		a.pushCmd(),
		a.devCmd(),
		a.guardCmd(),
		a.inspectCmd(),
		a.pubCmd(),
		a.subCmd(),
		a.dlqCmd(),
		a.auditCmd(),
		a.monitorCmd(),
		a.demoCmd(),
		a.benchCmd(),
		a.completionCmd(root),
	}
}

func defaultHome() string { return accounts.HomeDir() }

// serverFlags adds the flags that locate a running server.
func (a *app) serverFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.server, "server", "", "server URL(s), comma-separated (env SEALBUS_URL; default: the running 'sealbus dev' of this home)")
	f.StringVar(&a.ca, "ca", "", "CA certificate of the server (env SEALBUS_CA)")
	f.StringVar(&a.cert, "client-cert", "", "client certificate for mTLS (env SEALBUS_CLIENT_CERT)")
	f.StringVar(&a.key, "client-key", "", "client key for mTLS (env SEALBUS_CLIENT_KEY)")
}

// devInfo is what a running `sealbus dev` publishes for the other commands of its home.
type devInfo = operator.DevInfo

// target resolves the server to talk to: flags, then environment, then the running dev server
// of this home (operator.ResolveTarget: bare host:port accepted, the dev CA used for the home's
// own dev server).
func (a *app) target() (operator.Target, error) {
	t := operator.Target{
		RootCA:     firstNonEmpty(a.ca, os.Getenv("SEALBUS_CA")),
		ClientCert: firstNonEmpty(a.cert, os.Getenv("SEALBUS_CLIENT_CERT")),
		ClientKey:  firstNonEmpty(a.key, os.Getenv("SEALBUS_CLIENT_KEY")),
	}
	if u := firstNonEmpty(a.server, os.Getenv("SEALBUS_URL")); u != "" {
		for _, p := range strings.Split(u, ",") {
			if p = strings.TrimSpace(p); p != "" {
				t.URLs = append(t.URLs, p)
			}
		}
	}
	t, err := operator.ResolveTarget(a.home, t)
	if errors.Is(err, operator.ErrNoDevServer) {
		return t, &cliError{code: exitError, err: errors.New("no server given and no `sealbus dev` running for this home"),
			hint: "start `sealbus dev` in another terminal, or pass --server HOST:PORT and --ca FILE"}
	}
	if errors.Is(err, operator.ErrInvalidSpec) || errors.Is(err, operator.ErrNoTLS) {
		return t, &cliError{code: exitUsage, err: err}
	}
	return t, err
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// keystoreMode reads the keystore marker: whether a store exists at home and is encrypted.
func keystoreMode(home string) (exists, encrypted bool, err error) {
	b, err := os.ReadFile(filepath.Join(home, accounts.KeystoreMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	var m struct {
		Encrypted bool `json:"encrypted"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return true, false, fmt.Errorf("reading the keystore marker: %w", err)
	}
	return true, m.Encrypted, nil
}

// openKeystore opens the existing keystore at --home in the mode it was created with.
func (a *app) openKeystore() (*accounts.Keystore, error) {
	if a.home == "" {
		return nil, usageErr("no sealbus home: set --home or SEALBUS_HOME")
	}
	exists, encrypted, err := keystoreMode(a.home)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, &cliError{code: exitNotFound, err: fmt.Errorf("no keystore at %s", a.home), hint: "run `sealbus init` first (or pass --home)"}
	}
	if !encrypted {
		return accounts.OpenKeystore(a.home, nil, accounts.WithUnencrypted())
	}
	pass, err := a.passphrase(false)
	if err != nil {
		return nil, err
	}
	defer wipe(pass)
	return accounts.OpenKeystore(a.home, pass)
}

// passphrase reads SEALBUS_PASSPHRASE, else prompts on the terminal without echo
// (golang.org/x/term), else (standard input is not a terminal: a pipe) reads a line from it.
// With confirm it asks twice.
func (a *app) passphrase(confirm bool) ([]byte, error) {
	return a.readSecret("SEALBUS_PASSPHRASE", "passphrase", confirm)
}

// readSecret reads a secret from the environment variable env, the terminal (no echo) or
// standard input.
func (a *app) readSecret(env, prompt string, confirm bool) ([]byte, error) {
	if p := os.Getenv(env); p != "" {
		return []byte(p), nil
	}
	read, tty := a.lineReader()
	ask := func(p string) {
		if tty { // a pipe gets no prompt: nobody reads it, and it would run into the error line
			fmt.Fprintf(a.stderr, "%s: ", p)
		}
	}
	ask(prompt)
	line, err := read()
	if len(line) == 0 {
		if err != nil {
			return nil, usageErr("no %s: set %s or type one", prompt, env)
		}
		return nil, usageErr("empty %s", prompt)
	}
	if confirm {
		ask(prompt + " again")
		again, _ := read()
		defer wipe(again)
		if string(again) != string(line) {
			wipe(line)
			return nil, usageErr("the two %ss differ", prompt)
		}
	}
	return line, nil
}

// lineReader returns a function reading one secret line: from the terminal without echo when
// standard input is one (tty), else from standard input.
func (a *app) lineReader() (read func() ([]byte, error), tty bool) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return func() ([]byte, error) {
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(a.stderr)
			return b, err
		}, true
	}
	if a.stdinReader == nil {
		a.stdinReader = bufio.NewReader(a.stdin)
	}
	r := a.stdinReader
	return func() ([]byte, error) {
		line, err := r.ReadString('\n')
		return []byte(strings.TrimRight(line, "\r\n")), err
	}, false
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// openReadOnly opens the keystore at --home without the passphrase (accounts.
// OpenKeystoreReadOnly: public records only, verified up to the operator), for commands that
// touch no secret.
func (a *app) openReadOnly() (*session, error) {
	if a.home == "" {
		return nil, usageErr("no sealbus home: set --home or SEALBUS_HOME")
	}
	ks, err := accounts.OpenKeystoreReadOnly(a.home)
	if errors.Is(err, accounts.ErrNotFound) {
		return nil, &cliError{code: exitNotFound, err: fmt.Errorf("no keystore at %s", a.home), hint: "run `sealbus init` first (or pass --home)"}
	}
	if err != nil {
		return nil, err
	}
	op, err := ks.LoadOperator()
	if err != nil {
		ks.Close()
		return nil, err
	}
	return &session{ks: ks, op: op, prov: &operator.Provisioner{Keystore: ks, Operator: op}}, nil
}

// session is an open keystore with its operator and a provisioner.
type session struct {
	ks   *accounts.Keystore
	op   *accounts.Operator
	prov *operator.Provisioner
}

func (s *session) Close() {
	s.prov.Close()
	s.ks.Close()
}

// loadAccounts loads every account of the keystore, in name order.
func (s *session) loadAccounts() ([]*accounts.Account, error) {
	names, err := s.ks.ListAccounts()
	if err != nil {
		return nil, err
	}
	var accts []*accounts.Account
	for _, n := range names {
		acct, err := s.ks.LoadAccount(n)
		if err != nil {
			return nil, err
		}
		accts = append(accts, acct)
	}
	return accts, nil
}

// open opens the keystore and loads the operator; online adds the server target.
func (a *app) open(online bool) (*session, error) {
	ks, err := a.openKeystore()
	if err != nil {
		return nil, err
	}
	op, err := ks.LoadOperator()
	if err != nil {
		ks.Close()
		return nil, withHint(err, "run `sealbus init` first")
	}
	s := &session{ks: ks, op: op, prov: &operator.Provisioner{Keystore: ks, Operator: op}}
	if online {
		t, err := a.target()
		if err != nil {
			ks.Close()
			return nil, err
		}
		s.prov.Target = t
	}
	return s, nil
}

// print writes v as indented JSON with --json, else calls human.
func (a *app) print(v any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	human(a.stdout)
	return nil
}

// exact wraps cobra.ExactArgs so that a wrong count is a usage error.
func exact(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("%s takes %d argument(s), got %d", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageErr("%s takes %d to %d arguments, got %d", cmd.CommandPath(), lo, hi, len(args))
		}
		return nil
	}
}

// group makes a parent command that only holds subcommands.
func group(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %s", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// accountNames completes account names from the keystore (read-only: no passphrase).
func (a *app) accountNames(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeAccounts(), cobra.ShellCompDirectiveNoFileComp
}

// timeout-bounded context for one server call sequence.
func (a *app) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.ctx, operator.DefaultTimeout*3)
}
