// Command automation provisions a sealbus tenant from Go, the way a platform team automates
// what it would otherwise do with the sealbus CLI (or nsc), then publishes and consumes sealed
// messages. It lives in its own Go module and uses only sealbus's public packages: operator
// (provisioning), sealbustest (a server to provision: the embedded one here, containers in its
// test), bus and consumers (the SDK).
//
//	go run .
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	if err := run(ctx, os.Stdout, sb, 3); err != nil {
		log.Fatal(err)
	}
}

// run provisions account "acme" on h with a stream INVOICES, a publisher and a consumer, then
// sends n invoices and waits until the consumer has handled each once.
func run(ctx context.Context, out io.Writer, h sealbustest.Harness, n int) error {
	if _, err := h.AddAccount(ctx, "acme", accounts.DefaultLimits()); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	if err := h.AddStream(ctx, "acme", operator.StreamSpec{
		Name: "INVOICES", Subjects: []string{"invoices.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if _, err := h.AddService(ctx, "acme", accounts.ServiceSpec{Name: "issuer", Publish: []string{"invoices.>"}}); err != nil {
		return fmt.Errorf("service issuer: %w", err)
	}
	if _, err := h.AddService(ctx, "acme", accounts.ServiceSpec{
		Name: "ledger", Subscribe: []string{"invoices.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "INVOICES", Durable: "ledger"}},
	}); err != nil {
		return fmt.Errorf("service ledger: %w", err)
	}
	fmt.Fprintln(out, "provisioned account acme: stream INVOICES, services issuer and ledger")

	issuer, err := sealbustest.Connect(ctx, h, "acme", "issuer")
	if err != nil {
		return fmt.Errorf("connect issuer: %w", err)
	}
	defer issuer.Close()
	ledger, err := sealbustest.Connect(ctx, h, "acme", "ledger")
	if err != nil {
		return fmt.Errorf("connect ledger: %w", err)
	}
	defer ledger.Close()

	handled := make(chan *consumers.Message, n)
	cs, err := consumers.Consume(ctx, ledger, "INVOICES", "ledger", func(_ context.Context, m *consumers.Message) error {
		handled <- m
		return nil
	})
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer func() { cs.Stop(); <-cs.Done() }()

	for i := 1; i <= n; i++ {
		if _, err := bus.PublishJSON(ctx, issuer, fmt.Sprintf("invoices.eu.%d", i), map[string]int{"invoice": i}); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		select {
		case m := <-handled:
			if seen[m.ID] {
				return fmt.Errorf("message %s handled twice", m.ID)
			}
			seen[m.ID] = true
			fmt.Fprintf(out, "ledger handled %s from %s: %s\n", m.Subject, m.Sender, m.Payload)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d messages handled: %w", len(seen), n, ctx.Err())
		}
	}
	return nil
}
