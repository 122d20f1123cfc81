package sealbustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
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

// World is the demo's operator, accounts, streams and services, provisioned on a harness.
type World struct {
	// Harness is the server the world is provisioned on.
	Harness Harness
	// Accounts are the world's accounts by name (Shop, Partner).
	Accounts map[string]*accounts.Account

	log *slog.Logger
	own *Sandbox // the sandbox NewWorld started, closed by Close
}

// NewWorld starts a sandbox in a temporary home and provisions the world on it
// ([ProvisionWorld]). log receives the SDK's logs of the world's clients (nil discards them).
// Close shuts the sandbox down and removes its home.
func NewWorld(ctx context.Context, log *slog.Logger) (*World, error) {
	sb, err := StartSandbox(ctx, SandboxOptions{})
	if err != nil {
		return nil, fmt.Errorf("sealbustest: start sandbox: %w", err)
	}
	w, err := ProvisionWorld(ctx, sb, log)
	if err != nil {
		sb.Close()
		return nil, err
	}
	w.own = sb
	return w, nil
}

// ProvisionWorld provisions the demo world on h: accounts Shop and Partner (default limits),
// stream ORDERS (orders.>, tickets.>) in Shop and PARTNER (partner.>) in Partner, the
// services of [Services] with their creds files, and the durables ORDERS:billing (orders.>),
// ORDERS:shipping (orders.eu.>) and PARTNER:reader (partner.>), each with MaxDeliver
// operator.DefaultMaxDeliver and a 30s AckWait.
func ProvisionWorld(ctx context.Context, h Harness, log *slog.Logger) (*World, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &World{Harness: h, Accounts: map[string]*accounts.Account{}, log: log}
	for _, name := range []string{Shop, Partner} {
		a, err := h.AddAccount(ctx, name, accounts.DefaultLimits())
		if err != nil {
			return nil, fmt.Errorf("sealbustest: account %s: %w", name, err)
		}
		w.Accounts[name] = a
	}
	if err := h.AddStream(ctx, Shop, operator.StreamSpec{Name: OrdersStream, Subjects: []string{"orders.>", "tickets.>"}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("sealbustest: stream: %w", err)
	}
	if err := h.AddStream(ctx, Partner, operator.StreamSpec{Name: PartnerStream, Subjects: []string{"partner.>"}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("sealbustest: stream: %w", err)
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
		if err := h.AddConsumer(ctx, d.account, operator.ConsumerSpec{
			Stream: d.stream, Durable: d.durable, FilterSubjects: []string{d.filter},
			MaxDeliver: operator.DefaultMaxDeliver, AckWait: 30 * time.Second,
		}); err != nil {
			return nil, fmt.Errorf("sealbustest: consumer %s: %w", d.durable, err)
		}
	}
	for _, s := range Services() {
		if _, err := h.AddService(ctx, s.Account, s.Spec); err != nil {
			return nil, fmt.Errorf("sealbustest: service %s: %w", s.Spec.Name, err)
		}
	}
	return w, nil
}

// CredsPath returns the service's credentials file.
func (w *World) CredsPath(account, service string) string {
	return w.Harness.CredsPath(account, service)
}

// Options returns the SDK options that connect as a service of the world ([ClientOptions],
// with the world's logger).
func (w *World) Options(account, service string) ([]bus.Option, error) {
	return w.optionsAt(w.Harness.URLs(), account, service)
}

func (w *World) optionsAt(urls []string, account, service string) ([]bus.Option, error) {
	opts, err := clientOptions(w.Harness, urls, account, service)
	if err != nil {
		return nil, err
	}
	return append(opts, bus.WithLogger(w.log.With("service", service))), nil
}

// Connect connects as a service of the world, with extra options appended.
func (w *World) Connect(ctx context.Context, account, service string, extra ...bus.Option) (*bus.Client, error) {
	opts, err := w.Options(account, service)
	if err != nil {
		return nil, err
	}
	return bus.Connect(ctx, append(opts, extra...)...)
}

// ConnectVia connects as a service of the world through url (e.g. a fault proxy in front of
// the world's server) instead of the server's own URLs, with extra options appended.
func (w *World) ConnectVia(ctx context.Context, url, account, service string, extra ...bus.Option) (*bus.Client, error) {
	opts, err := w.optionsAt([]string{url}, account, service)
	if err != nil {
		return nil, err
	}
	return bus.Connect(ctx, append(opts, extra...)...)
}

// InsiderConn connects as a service of the world with plain nats.go ([InsiderConn]). The
// caller closes it.
func (w *World) InsiderConn(ctx context.Context, account, service string) (*nats.Conn, error) {
	return InsiderConn(ctx, w.Harness, account, service)
}

// Admin opens an admin connection to an account (the operator's, or a broker-level attacker's
// view: full access to streams, no service keys). The caller closes it.
func (w *World) Admin(ctx context.Context, account string) (*nats.Conn, error) {
	return w.Harness.AdminConn(ctx, account)
}

// Close shuts down the sandbox NewWorld started and removes its home; a world provisioned on
// another harness leaves it running.
func (w *World) Close() error {
	if w == nil || w.own == nil {
		return nil
	}
	err := w.own.Close()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
