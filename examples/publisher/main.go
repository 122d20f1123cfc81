// Command publisher is an example sealbus service that publishes sealed orders.
//
// It uses only the public SDK (package bus). Configure it with flags or environment variables
// (flags win):
//
//	SEALBUS_URL       server URL                       (-url, default tls://127.0.0.1:4222)
//	SEALBUS_CA        CA certificate file              (-ca)
//	SEALBUS_CREDS     the service's creds file          (-creds)
//	SEALBUS_OPERATOR  trusted operator public key       (-operator)
//	SUBJECT           subject to publish on             (-subject, default orders.eu.new)
//	COUNT             how many messages                 (-count, default 10)
//
// Against `sealbus dev` (it prints the URL, the CA file, the operator key and the creds files):
//
//	sealbus service add shop checkout --pub 'orders.>' --push
//	SEALBUS_CA=<ca file> SEALBUS_OPERATOR=<operator> \
//	    SEALBUS_CREDS=<home>/accounts/shop/services/checkout.creds go run ./examples/publisher
//
// It prints one line per stored message: "published <id> on <subject> seq <n>".
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
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	count, _ := strconv.Atoi(env("COUNT", "10"))
	url := flag.String("url", env("SEALBUS_URL", "tls://127.0.0.1:4222"), "server URL")
	ca := flag.String("ca", env("SEALBUS_CA", ""), "CA certificate file")
	creds := flag.String("creds", env("SEALBUS_CREDS", ""), "service creds file")
	operator := flag.String("operator", env("SEALBUS_OPERATOR", ""), "trusted operator public key")
	subject := flag.String("subject", env("SUBJECT", "orders.eu.new"), "subject")
	flag.IntVar(&count, "count", count, "messages to publish")
	flag.Parse()
	if err := run(os.Stdout, *url, *ca, *creds, *operator, *subject, count); err != nil {
		fmt.Fprintln(os.Stderr, "publisher: error:", err)
		os.Exit(1)
	}
}

type order struct {
	Number int       `json:"number"`
	Total  int       `json:"total_cents"`
	At     time.Time `json:"at"`
}

func run(w io.Writer, url, ca, creds, operator, subject string, count int) error {
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
	for i := 1; i <= count; i++ {
		ack, err := bus.PublishJSON(ctx, c, subject, order{Number: i, Total: 1000 + i, At: time.Now().UTC()})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "published %s on %s seq %d\n", ack.ID, subject, ack.Sequence)
	}
	return nil
}
