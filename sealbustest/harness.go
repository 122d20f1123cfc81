package sealbustest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
)

// Harness is a running NATS server or cluster that trusts an operator, with the operator's
// provisioning actions on it. [*Sandbox] (in-process) and the integration module's
// natstest.Deployment (containers) implement it; a test written against a Harness runs on
// either. Every method is safe for concurrent use.
type Harness interface {
	// URLs are the client URLs (tls://127.0.0.1:<port>), one per node.
	URLs() []string
	// CAFile is the PEM file of the CA clients must trust.
	CAFile() string
	// OperatorKey is the operator's public key ("O..."), the SDK's trust anchor.
	OperatorKey() string
	// MTLS reports whether the servers require client certificates ([Harness.ClientCert]).
	MTLS() bool
	// ClientCert issues a client certificate for name (mTLS) and returns the paths of the
	// certificate and its key (0600).
	ClientCert(name string) (certPath, keyPath string, err error)
	// Provisioner is the operator's provisioning against these servers (package operator,
	// the same code the CLI runs).
	Provisioner() *operator.Provisioner

	// AddAccount creates an account, pushes its JWT and sets up its sealbus streams.
	AddAccount(ctx context.Context, name string, lim accounts.Limits) (*accounts.Account, error)
	// AddStream creates or updates an application stream.
	AddStream(ctx context.Context, account string, spec operator.StreamSpec) error
	// AddConsumer creates or updates a durable pull consumer.
	AddConsumer(ctx context.Context, account string, spec operator.ConsumerSpec) error
	// AddService creates a service, writes its creds file (0600), publishes its card and
	// creates its declared durables; it returns the creds file's path.
	AddService(ctx context.Context, account string, spec accounts.ServiceSpec) (credsPath string, err error)
	// RevokeService revokes the service's user key and pushes the account.
	RevokeService(ctx context.Context, account, name string) error
	// RotateService gives the service new keys (the old curve key opens envelopes for grace),
	// publishes its new card, pushes the account and returns the new creds file's path.
	RotateService(ctx context.Context, account, name string, grace time.Duration) (credsPath string, err error)
	// CredsPath and PreviousCredsPath locate a service's creds files (current, before the
	// last rotation).
	CredsPath(account, name string) string
	PreviousCredsPath(account, name string) string

	// AdminConn opens an admin connection to an account (full rights inside it, a
	// short-lived user JWT, no identity card). The caller closes it.
	AdminConn(ctx context.Context, account string) (*nats.Conn, error)
	// SystemConn opens a connection as the operator's system user. The caller closes it.
	SystemConn(ctx context.Context) (*nats.Conn, error)
}

// ClientOptions returns the SDK options that connect as a service of h: its URLs, CA, creds
// file and trusted operator, and a client certificate when h requires mTLS.
func ClientOptions(h Harness, account, service string) ([]bus.Option, error) {
	return clientOptions(h, h.URLs(), account, service)
}

// clientOptions is ClientOptions with other URLs (a fault proxy in front of h).
func clientOptions(h Harness, urls []string, account, service string) ([]bus.Option, error) {
	opts := []bus.Option{
		bus.WithURL(urls...),
		bus.WithRootCA(h.CAFile()),
		bus.WithCredsFile(h.CredsPath(account, service)),
		bus.WithTrustedOperator(h.OperatorKey()),
		bus.WithName(service),
	}
	if h.MTLS() {
		cert, key, err := h.ClientCert(service)
		if err != nil {
			return nil, err
		}
		opts = append(opts, bus.WithClientCert(cert, key))
	}
	return opts, nil
}

// Connect connects as a service of h with the SDK ([ClientOptions] then extra).
func Connect(ctx context.Context, h Harness, account, service string, extra ...bus.Option) (*bus.Client, error) {
	opts, err := ClientOptions(h, account, service)
	if err != nil {
		return nil, err
	}
	return bus.Connect(ctx, append(opts, extra...)...)
}

// InsiderConn connects as a service of h with plain nats.go and its creds file, the way an
// insider holding the service's creds and the stock nats CLI connects: the server enforces
// the service's permissions and nothing is sealed or checked by sealbus. Attack tests use it
// to publish, subscribe and call the JetStream API wherever the service's permissions allow.
// The connection uses the service's private inbox prefix, as its permissions require. The
// caller closes it.
func InsiderConn(ctx context.Context, h Harness, account, service string, extra ...nats.Option) (*nats.Conn, error) {
	path := h.CredsPath(account, service)
	creds, err := accounts.ReadCredsFile(path)
	if err != nil {
		return nil, err
	}
	clear(creds.UserSeed)
	clear(creds.CurveSeed)
	uc, err := jwt.DecodeUserClaims(creds.UserJWT)
	if err != nil {
		return nil, fmt.Errorf("sealbustest: creds of %s: %w", service, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.UserCredentials(path),
		nats.RootCAs(h.CAFile()),
		nats.CustomInboxPrefix(accounts.InboxPrefix(uc.Subject)),
		nats.Name(service + "-insider"),
		nats.MaxReconnects(0),
	}
	if h.MTLS() {
		cert, key, err := h.ClientCert(service)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.ClientCert(cert, key))
	}
	nc, err := nats.Connect(strings.Join(h.URLs(), ","), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("sealbustest: insider connection as %s: %w", service, err)
	}
	return nc, nil
}

var _ Harness = (*Sandbox)(nil)
