// Command crossaccount is an example of a sealed flow between two accounts (tenants) through
// a stream export and import: a service of account shop publishes orders on
// orders.public.<region>.<n>; account bank imports orders.public.> as shop.orders.>, stores it
// in its own stream, and its service ledger consumes and verifies them. Sealing crosses the
// tenant boundary end to end: the shop publisher encrypts to the bank services whose cards may
// read the imported subject, and the ledger opens each envelope against its origin (account
// shop, subject orders.public...) and checks that shop exports it and bank imports it.
//
// It uses only the public SDK (packages bus and consumers). Configuration (flags win):
//
//	SEALBUS_URL             server URL                          (-url, default tls://127.0.0.1:4222)
//	SEALBUS_CA              CA certificate file                 (-ca)
//	SEALBUS_OPERATOR        trusted operator public key          (-operator)
//	SEALBUS_PUBLISHER_CREDS creds of the shop publisher          (-publisher-creds)
//	SEALBUS_CREDS           creds of the bank consumer           (-consumer-creds)
//	SEALBUS_STREAM          bank stream holding the import       (-stream, default SHOPFEED)
//	SEALBUS_DURABLE         bank durable consumer                (-durable, default ledger)
//	COUNT                   messages to send and receive         (-count, default 5)
//
// Set-up against `sealbus dev` (the operator's side):
//
//	sealbus account add shop --push && sealbus account add bank --push
//	sealbus stream add shop ORDERS --subjects 'orders.>'
//	sealbus service add shop checkout --pub 'orders.>' --push
//	sealbus export shop --subject 'orders.public.>' --type stream --push
//	sealbus import bank --from shop --subject 'orders.public.>' --local-subject 'shop.orders.>' --push
//	sealbus stream add bank SHOPFEED --subjects 'shop.orders.>'
//	sealbus service add bank ledger --sub 'shop.orders.>' --consumer SHOPFEED:ledger --push
//
// Each account's directory must also hold the other account's JWT and cards
// (operator.Provisioner.SyncPeers, which `sealbus import --push` runs), so that shop can
// encrypt to ledger and ledger can verify checkout.
//
// It prints one line per verified message: "verified <id> from <sender> on <subject>".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// config of one run.
type config struct {
	URL, CA, Operator             string
	PublisherCreds, ConsumerCreds string
	Stream, Durable               string
	Count                         int
	Timeout                       time.Duration
}

func main() {
	var c config
	c.Count, _ = strconv.Atoi(env("COUNT", "5"))
	flag.StringVar(&c.URL, "url", env("SEALBUS_URL", "tls://127.0.0.1:4222"), "server URL")
	flag.StringVar(&c.CA, "ca", env("SEALBUS_CA", ""), "CA certificate file")
	flag.StringVar(&c.Operator, "operator", env("SEALBUS_OPERATOR", ""), "trusted operator public key")
	flag.StringVar(&c.PublisherCreds, "publisher-creds", env("SEALBUS_PUBLISHER_CREDS", ""), "creds of the publishing service (account shop)")
	flag.StringVar(&c.ConsumerCreds, "consumer-creds", env("SEALBUS_CREDS", ""), "creds of the consuming service (account bank)")
	flag.StringVar(&c.Stream, "stream", env("SEALBUS_STREAM", "SHOPFEED"), "stream of the importing account")
	flag.StringVar(&c.Durable, "durable", env("SEALBUS_DURABLE", "ledger"), "durable consumer")
	flag.IntVar(&c.Count, "count", c.Count, "messages")
	flag.DurationVar(&c.Timeout, "timeout", 30*time.Second, "give up after this long")
	flag.Parse()
	if err := run(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "crossaccount: error:", err)
		os.Exit(1)
	}
}

func connect(ctx context.Context, c config, creds string) (*bus.Client, error) {
	opts := []bus.Option{bus.WithURL(c.URL), bus.WithCredsFile(creds), bus.WithTrustedOperator(c.Operator)}
	if c.CA != "" {
		opts = append(opts, bus.WithRootCA(c.CA))
	}
	return bus.Connect(ctx, opts...)
}

func run(w io.Writer, c config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	pub, err := connect(ctx, c, c.PublisherCreds)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	defer pub.Drain()
	sub, err := connect(ctx, c, c.ConsumerCreds)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer sub.Drain()

	got := make(chan *consumers.Message, c.Count)
	cs, err := consumers.Consume(ctx, sub, c.Stream, c.Durable, func(_ context.Context, m *consumers.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		return err
	}
	defer func() { cs.Stop(); <-cs.Done() }()

	for i := 1; i <= c.Count; i++ {
		subject := fmt.Sprintf("orders.public.eu.%d", i)
		if _, err := bus.PublishJSON(ctx, pub, subject, map[string]int{"order": i}); err != nil {
			return err
		}
	}
	for range c.Count {
		select {
		case m := <-got:
			fmt.Fprintf(w, "verified %s from %s on %s\n", m.ID, m.Sender, m.Subject)
		case <-ctx.Done():
			return fmt.Errorf("waiting for messages: %w", ctx.Err())
		}
	}
	return nil
}
