// Command consumer is an example sealbus service that consumes sealed messages from a durable
// pull consumer and prints what it verified.
//
// It uses only the public SDK (packages bus and consumers). Configure it with flags or
// environment variables (flags win):
//
//	SEALBUS_URL       server URLs, comma-separated       (-url, default tls://127.0.0.1:4222)
//	SEALBUS_CA        CA certificate file               (-ca)
//	SEALBUS_CREDS     the service's creds file           (-creds)
//	SEALBUS_OPERATOR  trusted operator public key        (-operator)
//	SEALBUS_STREAM    stream                             (-stream, default ORDERS)
//	SEALBUS_DURABLE   durable consumer (operator-made)   (-durable, default billing)
//	SEALBUS_WORKERS   concurrent handler calls           (-workers, default 1)
//	SEALBUS_MAX_IN_FLIGHT  messages pulled and not settled (-max-in-flight, default 64)
//	COUNT             exit after this many messages; 0 runs until SIGINT/SIGTERM (-count)
//
// Several copies of it may consume the same durable: each message is handled by exactly one of
// them (the replay guard of package consumers).
//
// Against `sealbus dev` (it prints the URL, the CA file, the operator key and the creds files):
//
//	sealbus stream add shop ORDERS --subjects 'orders.>'
//	sealbus service add shop billing --sub 'orders.>' --consumer ORDERS:billing --push
//	SEALBUS_CA=<ca file> SEALBUS_OPERATOR=<operator> \
//	    SEALBUS_CREDS=<home>/accounts/shop/services/billing.creds go run ./examples/consumer
//
// It prints one line per verified message: "verified <id> from <sender> on <subject>", and
// when it ends, one line of counts on standard error: "consumer: handled <n> deduplicated <n>
// dead-lettered <n> acks-unconfirmed <n> reconnects <n>".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
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

// settings are the consumer's knobs besides its identity.
type settings struct {
	stream, durable      string
	count                int
	workers, maxInFlight int
}

func main() {
	count, _ := strconv.Atoi(env("COUNT", "0"))
	workers, _ := strconv.Atoi(env("SEALBUS_WORKERS", "1"))
	maxInFlight, _ := strconv.Atoi(env("SEALBUS_MAX_IN_FLIGHT", "64"))
	url := flag.String("url", env("SEALBUS_URL", "tls://127.0.0.1:4222"), "server URLs, comma-separated")
	ca := flag.String("ca", env("SEALBUS_CA", ""), "CA certificate file")
	creds := flag.String("creds", env("SEALBUS_CREDS", ""), "service creds file")
	operator := flag.String("operator", env("SEALBUS_OPERATOR", ""), "trusted operator public key")
	stream := flag.String("stream", env("SEALBUS_STREAM", "ORDERS"), "stream")
	durable := flag.String("durable", env("SEALBUS_DURABLE", "billing"), "durable consumer")
	flag.IntVar(&count, "count", count, "exit after this many messages (0: run until interrupted)")
	flag.IntVar(&workers, "workers", workers, "concurrent handler calls")
	flag.IntVar(&maxInFlight, "max-in-flight", maxInFlight, "messages pulled and not yet settled")
	flag.Parse()
	st := settings{stream: *stream, durable: *durable, count: count, workers: workers, maxInFlight: maxInFlight}
	if err := run(os.Stdout, os.Stderr, *url, *ca, *creds, *operator, st); err != nil {
		fmt.Fprintln(os.Stderr, "consumer: error:", err)
		os.Exit(1)
	}
}

func run(w, summary io.Writer, url, ca, creds, operator string, st settings) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := []bus.Option{bus.WithURL(strings.Split(url, ",")...), bus.WithCredsFile(creds), bus.WithTrustedOperator(operator)}
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
	var mu sync.Mutex // one line at a time from concurrent workers
	cs, err := consumers.Consume(ctx, c, st.stream, st.durable, func(_ context.Context, m *consumers.Message) error {
		mu.Lock()
		fmt.Fprintf(w, "verified %s from %s on %s\n", m.ID, m.Sender, m.Subject)
		mu.Unlock()
		if n := seen.Add(1); st.count > 0 && n >= int64(st.count) {
			cancel()
		}
		return nil
	}, consumers.WithWorkers(max(st.workers, 1)), consumers.WithMaxInFlight(max(st.maxInFlight, st.workers, 1)))
	if err != nil {
		return err
	}
	<-cs.Done()
	m := c.Metrics()
	dead := uint64(0)
	for _, n := range m.DeadLettered {
		dead += n
	}
	fmt.Fprintf(summary, "consumer: handled %d deduplicated %d dead-lettered %d acks-unconfirmed %d reconnects %d\n",
		m.Delivered, m.Deduplicated, dead, m.AckUnconfirmed, c.Connection().Reconnects)
	return cs.Err()
}
