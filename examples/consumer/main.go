// Command consumer is an example sealbus service that consumes sealed messages from a durable
// pull consumer and prints what it verified.
//
// It uses only the public SDK (packages bus and consumers). Configure it with flags or
// environment variables (flags win):
//
//	SEALBUS_URL       server URL                        (-url, default tls://127.0.0.1:4222)
//	SEALBUS_CA        CA certificate file               (-ca)
//	SEALBUS_CREDS     the service's creds file           (-creds)
//	SEALBUS_OPERATOR  trusted operator public key        (-operator)
//	SEALBUS_STREAM    stream                             (-stream, default ORDERS)
//	SEALBUS_DURABLE   durable consumer (operator-made)   (-durable, default billing)
//	COUNT             exit after this many messages; 0 runs until SIGINT/SIGTERM (-count)
//
// Against `sealbus dev` (it prints the URL, the CA file, the operator key and the creds files):
//
//	sealbus stream add shop ORDERS --subjects 'orders.>'
//	sealbus service add shop billing --sub 'orders.>' --consumer ORDERS:billing --push
//	SEALBUS_CA=<ca file> SEALBUS_OPERATOR=<operator> \
//	    SEALBUS_CREDS=<home>/accounts/shop/services/billing.creds go run ./examples/consumer
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
	"sync/atomic"
	"syscall"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	count, _ := strconv.Atoi(env("COUNT", "0"))
	url := flag.String("url", env("SEALBUS_URL", "tls://127.0.0.1:4222"), "server URL")
	ca := flag.String("ca", env("SEALBUS_CA", ""), "CA certificate file")
	creds := flag.String("creds", env("SEALBUS_CREDS", ""), "service creds file")
	operator := flag.String("operator", env("SEALBUS_OPERATOR", ""), "trusted operator public key")
	stream := flag.String("stream", env("SEALBUS_STREAM", "ORDERS"), "stream")
	durable := flag.String("durable", env("SEALBUS_DURABLE", "billing"), "durable consumer")
	flag.IntVar(&count, "count", count, "exit after this many messages (0: run until interrupted)")
	flag.Parse()
	if err := run(os.Stdout, *url, *ca, *creds, *operator, *stream, *durable, count); err != nil {
		fmt.Fprintln(os.Stderr, "consumer: error:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, url, ca, creds, operator, stream, durable string, count int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := []bus.Option{bus.WithURL(url), bus.WithCredsFile(creds), bus.WithTrustedOperator(operator)}
	if ca != "" {
		opts = append(opts, bus.WithRootCA(ca))
	}
	c, err := bus.Connect(ctx, opts...)
	if err != nil {
		return err
	}
	defer c.Drain()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen atomic.Int64
	cs, err := consumers.Consume(ctx, c, stream, durable, func(_ context.Context, m *consumers.Message) error {
		fmt.Fprintf(w, "verified %s from %s on %s\n", m.ID, m.Sender, m.Subject)
		if n := seen.Add(1); count > 0 && n >= int64(count) {
			cancel()
		}
		return nil
	})
	if err != nil {
		return err
	}
	<-cs.Done()
	return cs.Err()
}
