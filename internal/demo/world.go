package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/sandbox"
	"github.com/sealbus/sealbus/operator"
)

// Names of the demo world. Account Shop holds the order flow; account Partner is another
// tenant.
const (
	Shop    = "shop"
	Partner = "partner"

	OrdersStream  = "ORDERS"
	PartnerStream = "PARTNER"

	Checkout = "checkout" // publishes orders.> (and drafts.>, which nobody may read)
	Billing  = "billing"  // reads orders.> (durable ORDERS:billing)
	Shipping = "shipping" // reads orders.eu.> (durable ORDERS:shipping)
	Support  = "support"  // reads tickets.> only: not in the orders audience
	Legacy   = "legacy"   // publishes orders.legacy.>; revoked during the demo
	Intern   = "intern"   // publishes tickets.> only
	Reader   = "reader"   // partner account: reads partner.> (durable PARTNER:reader)
)

// Service describes one service of the world.
type Service struct {
	Account string
	Spec    accounts.ServiceSpec
}

// Services is the world's service list.
func Services() []Service {
	c := func(stream, durable string) []accounts.ConsumerRef {
		return []accounts.ConsumerRef{{Stream: stream, Durable: durable}}
	}
	return []Service{
		{Shop, accounts.ServiceSpec{Name: Checkout, Publish: []string{"orders.>", "drafts.>"}}}, // nobody reads drafts.>
		{Shop, accounts.ServiceSpec{Name: Billing, Subscribe: []string{"orders.>"}, Consumers: c(OrdersStream, Billing)}},
		{Shop, accounts.ServiceSpec{Name: Shipping, Subscribe: []string{"orders.eu.>"}, Consumers: c(OrdersStream, Shipping)}},
		{Shop, accounts.ServiceSpec{Name: Support, Subscribe: []string{"tickets.>"}}},
		{Shop, accounts.ServiceSpec{Name: Legacy, Publish: []string{"orders.legacy.>"}}},
		{Shop, accounts.ServiceSpec{Name: Intern, Publish: []string{"tickets.>"}}},
		{Partner, accounts.ServiceSpec{Name: Reader, Subscribe: []string{"partner.>"}, Consumers: c(PartnerStream, Reader)}},
	}
}

// World is a running sandbox holding the demo's operator, accounts, streams and services.
type World struct {
	SB       *sandbox.Sandbox
	Accounts map[string]*accounts.Account
	log      *slog.Logger
}

// NewWorld starts a sandbox in a temporary home and provisions the world. Close removes it.
func NewWorld(ctx context.Context, log *slog.Logger) (w *World, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo: start sandbox: %w", err)
	}
	w = &World{SB: sb, Accounts: map[string]*accounts.Account{}, log: log}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	for _, name := range []string{Shop, Partner} {
		a, err := sb.AddAccount(ctx, name, accounts.DefaultLimits())
		if err != nil {
			return nil, fmt.Errorf("demo: account %s: %w", name, err)
		}
		w.Accounts[name] = a
	}
	if err := sb.AddStream(ctx, Shop, operator.StreamSpec{Name: OrdersStream, Subjects: []string{"orders.>", "tickets.>"}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("demo: stream: %w", err)
	}
	if err := sb.AddStream(ctx, Partner, operator.StreamSpec{Name: PartnerStream, Subjects: []string{"partner.>"}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("demo: stream: %w", err)
	}
	for _, s := range Services() {
		if _, err := sb.AddService(ctx, s.Account, s.Spec); err != nil {
			return nil, fmt.Errorf("demo: service %s: %w", s.Spec.Name, err)
		}
	}
	// Durables wait 30s for an ack before redelivering (a consumer that died); handler
	// failures are retried sooner by the SDK's Retry middleware (NakWithDelay). A BackOff list
	// on the consumer would make its first entry the AckWait, and a short one redelivers
	// messages that are merely waiting in a busy client's buffer.
	for _, d := range []struct{ account, stream, durable, filter string }{
		{Shop, OrdersStream, Billing, "orders.>"},
		{Shop, OrdersStream, Shipping, "orders.eu.>"},
		{Partner, PartnerStream, Reader, "partner.>"},
	} {
		nc, err := sb.AdminConn(ctx, d.account)
		if err != nil {
			return nil, fmt.Errorf("demo: admin: %w", err)
		}
		err = operator.AddConsumer(ctx, nc, operator.ConsumerSpec{
			Stream: d.stream, Durable: d.durable, FilterSubjects: []string{d.filter},
			MaxDeliver: operator.DefaultMaxDeliver, AckWait: 30 * time.Second,
		})
		nc.Close()
		if err != nil {
			return nil, fmt.Errorf("demo: consumer %s: %w", d.durable, err)
		}
	}
	return w, nil
}

// CredsPath returns the service's credentials file.
func (w *World) CredsPath(account, service string) string { return w.SB.CredsPath(account, service) }

// Options returns the bus options to connect as a service of the world.
func (w *World) Options(account, service string) []bus.Option {
	return w.optionsAt(w.SB.URL(), account, service)
}

// ConnectVia connects as a service of the world through url (e.g. a fault proxy in front of
// the world's server) instead of the server's own URL, with extra options appended.
func (w *World) ConnectVia(ctx context.Context, url, account, service string, extra ...bus.Option) (*bus.Client, error) {
	return bus.Connect(ctx, append(w.optionsAt(url, account, service), extra...)...)
}

func (w *World) optionsAt(url, account, service string) []bus.Option {
	return []bus.Option{
		bus.WithURL(url),
		bus.WithRootCA(w.SB.CAFile()),
		bus.WithCredsFile(w.CredsPath(account, service)),
		bus.WithTrustedOperator(w.SB.OperatorKey()),
		bus.WithName(service),
		bus.WithLogger(w.log.With("service", service)),
	}
}

// Connect connects as a service of the world, with extra options appended.
func (w *World) Connect(ctx context.Context, account, service string, extra ...bus.Option) (*bus.Client, error) {
	return bus.Connect(ctx, append(w.Options(account, service), extra...)...)
}

// InsiderConn connects as a service of the world with plain nats.go and its creds file, the
// way an insider holding the service's creds and the stock nats CLI connects: the server
// enforces the service's permissions, nothing is sealed. Attack tests use it to publish
// whatever the service's permissions allow. The caller closes it.
func (w *World) InsiderConn(ctx context.Context, account, service string) (*nats.Conn, error) {
	creds, err := accounts.ReadCredsFile(w.CredsPath(account, service))
	if err != nil {
		return nil, err
	}
	clear(creds.UserSeed)
	clear(creds.CurveSeed)
	uc, err := jwt.DecodeUserClaims(creds.UserJWT)
	if err != nil {
		return nil, fmt.Errorf("demo: creds of %s: %w", service, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nats.Connect(w.SB.URL(),
		nats.UserCredentials(w.CredsPath(account, service)),
		nats.RootCAs(w.SB.CAFile()),
		nats.CustomInboxPrefix(accounts.InboxPrefix(uc.Subject)),
		nats.Name(service+"-insider"))
}

// Admin opens an admin connection to an account (the operator's, or a broker-level attacker's
// view: full access to streams, no service keys). The caller closes it.
func (w *World) Admin(ctx context.Context, account string) (*nats.Conn, error) {
	return w.SB.AdminConn(ctx, account)
}

// Close shuts the sandbox down and removes its home.
func (w *World) Close() error {
	if w == nil || w.SB == nil {
		return nil
	}
	err := w.SB.Close()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
