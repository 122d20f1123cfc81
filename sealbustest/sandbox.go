package sealbustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/devserver"
	"github.com/sealbus/sealbus/operator"
)

// DefaultOperatorName names the operator a new sandbox home creates.
const DefaultOperatorName = "sandbox"

// SandboxOptions configure [StartSandbox].
type SandboxOptions struct {
	// Home is the sealbus home to use (created if missing, reused if it exists). Empty means a
	// new temporary directory, removed by Close.
	Home string
	// MTLS makes the server require client certificates ([Sandbox.ClientCert]).
	MTLS bool
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// Passphrase encrypts the keystore. Empty means an unencrypted keystore, for development
	// only.
	Passphrase []byte
	// Port for the server on 127.0.0.1; 0 picks a free port.
	Port int
	// OperatorName for a new home (default DefaultOperatorName).
	OperatorName string
}

// Sandbox is a running embedded dev server with its keystore: the in-process [Harness].
type Sandbox struct {
	home    string
	temp    bool
	ks      *accounts.Keystore
	op      *accounts.Operator
	srv     *devserver.Server
	prov    *operator.Provisioner
	guard   *operator.ConnectionGuard
	certDir string
}

// StartSandbox opens (or creates) the keystore, the operator and the operator account in
// opts.Home, starts the embedded dev server with every stored account preloaded, connects the
// system account, sets up the operator account (the directory of every tenant) and starts the
// connection guard that enforces each service's connection quota ([Sandbox.Guard]).
func StartSandbox(ctx context.Context, opts SandboxOptions) (sb *Sandbox, err error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrInvalidOption, opts.Port)
	}
	s := &Sandbox{home: opts.Home}
	if s.home == "" {
		if s.home, err = os.MkdirTemp("", "sealbus-sandbox-*"); err != nil {
			return nil, fmt.Errorf("sealbustest: %w", err)
		}
		s.temp = true
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var ksOpts []accounts.KeystoreOption
	if len(opts.Passphrase) == 0 {
		ksOpts = append(ksOpts, accounts.WithUnencrypted())
	}
	if s.ks, err = accounts.OpenKeystore(s.home, opts.Passphrase, ksOpts...); err != nil {
		return nil, err
	}
	s.op, err = s.ks.LoadOperator()
	if errors.Is(err, accounts.ErrNotFound) {
		name := opts.OperatorName
		if name == "" {
			name = DefaultOperatorName
		}
		if s.op, err = accounts.NewOperator(name); err != nil {
			return nil, err
		}
		err = s.ks.SaveOperator(s.op)
	}
	if err != nil {
		return nil, err
	}
	// The operator account (the directory of every tenant), made once per home through the
	// same Provisioner the CLI and the container helpers use.
	s.prov = &operator.Provisioner{Keystore: s.ks, Operator: s.op}
	if _, err := s.prov.OperatorAccount(); err != nil {
		return nil, err
	}
	var accts []string
	names, err := s.ks.ListAccounts()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		a, err := s.ks.LoadAccount(n)
		if err != nil {
			return nil, err
		}
		accts = append(accts, a.JWT)
	}
	s.srv, err = devserver.Start(ctx, devserver.Config{
		StateDir:         filepath.Join(s.home, "dev"),
		OperatorJWT:      s.op.JWT,
		SystemAccountJWT: s.op.System.JWT,
		AccountJWTs:      accts,
		Port:             opts.Port,
		MTLS:             opts.MTLS,
		Logger:           opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	target := operator.Target{URLs: []string{s.srv.URL()}, RootCA: s.srv.CAFile()}
	if opts.MTLS {
		if target.ClientCert, target.ClientKey, err = s.srv.ClientCert(operator.AdminUserName); err != nil {
			return nil, err
		}
	}
	s.prov.Target = target
	if _, err := s.prov.System(ctx); err != nil {
		return nil, err
	}
	if err := s.prov.SetupOperatorAccount(ctx); err != nil {
		return nil, err
	}
	sys, err := operator.ConnectSystem(ctx, target, s.op)
	if err != nil {
		return nil, err
	}
	var gopts []operator.GuardOption
	if opts.Logger != nil {
		gopts = append(gopts, operator.WithGuardLogger(opts.Logger))
	}
	if s.guard, err = operator.StartConnectionGuard(ctx, sys, gopts...); err != nil {
		sys.Close()
		return nil, err
	}
	return s, nil
}

// Guard returns the sandbox's connection guard, which enforces each service's connection
// quota (accounts.ServiceLimits) on the embedded server.
func (s *Sandbox) Guard() *operator.ConnectionGuard { return s.guard }

// URL is the server's client URL (tls://127.0.0.1:port).
func (s *Sandbox) URL() string { return s.srv.URL() }

// URLs is the server's client URL, as a list ([Harness]).
func (s *Sandbox) URLs() []string { return []string{s.srv.URL()} }

// MTLS reports whether the server requires client certificates.
func (s *Sandbox) MTLS() bool { return s.srv.MTLS() }

// CAFile is the CA certificate clients must trust.
func (s *Sandbox) CAFile() string { return s.srv.CAFile() }

// OperatorKey is the operator's public key ("O..."), the trust anchor for
// bus.WithTrustedOperator.
func (s *Sandbox) OperatorKey() string { return s.op.PublicKey() }

// Operator returns the operator (with its seed).
func (s *Sandbox) Operator() *accounts.Operator { return s.op }

// Keystore returns the sandbox's keystore.
func (s *Sandbox) Keystore() *accounts.Keystore { return s.ks }

// Home is the sandbox's sealbus home.
func (s *Sandbox) Home() string { return s.home }

// Target describes the server for package operator (with the admin client certificate under
// mTLS).
func (s *Sandbox) Target() operator.Target { return s.prov.Target }

// Provisioner returns the provisioner the sandbox uses (the one the CLI uses too).
func (s *Sandbox) Provisioner() *operator.Provisioner { return s.prov }

// ClientCert issues a client certificate for name when the sandbox runs with mTLS and returns
// its paths; without mTLS it fails with ErrInvalidOption.
func (s *Sandbox) ClientCert(name string) (certPath, keyPath string, err error) {
	if !s.srv.MTLS() {
		return "", "", fmt.Errorf("%w: the sandbox does not require client certificates (SandboxOptions.MTLS)", ErrInvalidOption)
	}
	return s.srv.ClientCert(name)
}

// AddAccount creates an account, saves it, pushes it to the server and sets up its directory,
// dead-letter and audit streams.
func (s *Sandbox) AddAccount(ctx context.Context, name string, lim accounts.Limits) (*accounts.Account, error) {
	acct, err := s.prov.CreateAccount(name, lim)
	if err != nil {
		return nil, err
	}
	if err := s.prov.SetupAccount(ctx, acct); err != nil {
		return nil, err
	}
	return acct, nil
}

// AddStream creates an application stream in account (audited, see operator.Provisioner.AddStream).
func (s *Sandbox) AddStream(ctx context.Context, account string, spec operator.StreamSpec) error {
	return s.prov.AddStream(ctx, account, spec)
}

// AddService creates a service, saves it, writes its credentials file (0600) and returns its
// path; publishes its card and creates each declared durable (filter: the service's subscribe
// subjects that fall in the stream; MaxDeliver operator.DefaultMaxDeliver,
// AckWait operator.DefaultAckWait; retry delays are chosen by the SDK). The streams must exist.
func (s *Sandbox) AddService(ctx context.Context, account string, spec accounts.ServiceSpec) (string, error) {
	svc, path, err := s.prov.CreateService(account, spec)
	if err != nil {
		return "", err
	}
	if _, err := s.prov.PublishService(ctx, account, svc, nil, false); err != nil {
		return "", err
	}
	return path, nil
}

// Service loads a service from the keystore.
func (s *Sandbox) Service(account, name string) (*accounts.Service, error) {
	return s.ks.LoadService(account, name)
}

// CredsPath is where the service's credentials file is.
func (s *Sandbox) CredsPath(account, name string) string { return s.prov.CredsPath(account, name) }

// PreviousCredsPath is where the credentials of a service before its last rotation are.
func (s *Sandbox) PreviousCredsPath(account, name string) string {
	return s.prov.PreviousCredsPath(account, name)
}

// RevokeService revokes the service's user key (and card) in the account JWT, saves it, pushes
// it to the server (which disconnects the service and refuses it from then on) and writes it
// into the account's directory and the directories of the accounts it shares a stream with.
func (s *Sandbox) RevokeService(ctx context.Context, account, name string) error {
	acct, err := s.prov.RevokeService(account, name, time.Now())
	if err != nil {
		return err
	}
	_, err = s.prov.ApplyRevocation(ctx, acct)
	return err
}

// RotateService gives the service new keys (the old curve key stays usable for decryption
// for grace), publishes the new card, revokes the old user key, pushes the account and updates
// the directories of the accounts it shares a stream with. It
// returns the new credentials path; the old credentials are at [Sandbox.PreviousCredsPath].
func (s *Sandbox) RotateService(ctx context.Context, account, name string, grace time.Duration) (string, error) {
	svc, acct, path, err := s.prov.RotateService(account, name, grace)
	if err != nil {
		return "", err
	}
	if _, err := s.prov.ApplyRotation(ctx, acct, svc); err != nil {
		return "", err
	}
	return path, nil
}

// AdminConn opens an admin connection to account (full rights inside it, short-lived JWT); the
// caller closes it.
func (s *Sandbox) AdminConn(ctx context.Context, account string) (*nats.Conn, error) {
	return s.prov.Admin(ctx, account)
}

// SystemConn opens a connection as the operator's system account user (for $SYS requests and
// events). The caller closes it.
func (s *Sandbox) SystemConn(ctx context.Context) (*nats.Conn, error) {
	return operator.ConnectSystem(ctx, s.prov.Target, s.op)
}

// AddConsumer creates (or updates) a durable pull consumer in account. Create a service's
// durable this way before [Sandbox.AddService] to give it settings other than the defaults.
func (s *Sandbox) AddConsumer(ctx context.Context, account string, spec operator.ConsumerSpec) error {
	nc, err := s.prov.Admin(ctx, account)
	if err != nil {
		return err
	}
	defer nc.Close()
	return operator.AddConsumer(ctx, nc, spec)
}

// Close shuts the server down and closes the keystore. It removes the home only when Start
// created it. Safe to call more than once.
func (s *Sandbox) Close() error {
	if s.guard != nil {
		s.guard.Close()
		s.guard = nil
	}
	if s.prov != nil {
		s.prov.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
	}
	if s.ks != nil {
		s.ks.Close()
	}
	if s.temp && s.home != "" {
		if err := os.RemoveAll(s.home); err != nil {
			return fmt.Errorf("sealbustest: %w", err)
		}
		s.home = ""
	}
	return nil
}
