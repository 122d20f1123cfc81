package sealbustest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// A test starts a sandbox, provisions a tenant the way the operator would, and runs a service
// pair on it with the SDK. The same code runs on containers: natstest.StartServer returns a
// sealbustest.Harness too.
func ExampleStartSandbox() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()

	must(sb.AddAccount(ctx, "shop", accounts.DefaultLimits()))
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		log.Fatal(err)
	}
	must(sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "checkout", Publish: []string{"orders.>"}}))
	must(sb.AddService(ctx, "shop", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	}))

	checkout := must(sealbustest.Connect(ctx, sb, "shop", "checkout"))
	defer checkout.Close()
	billing := must(sealbustest.Connect(ctx, sb, "shop", "billing"))
	defer billing.Close()
	got := make(chan string, 1)
	cs := must(consumers.Consume(ctx, billing, "ORDERS", "billing", func(_ context.Context, m *consumers.Message) error {
		got <- fmt.Sprintf("%s sent %s on %s", m.Sender, m.Payload, m.Subject)
		return nil
	}))
	defer cs.Stop()
	must(checkout.Publish(ctx, "orders.eu.1", []byte(`{"total":42}`)))
	fmt.Println(<-got)
	// Output: checkout sent {"total":42} on orders.eu.1
}

// An attack test: an insider holding a service's creds uses plain nats.go (the stock nats
// CLI would do the same) to store junk on a subject it may publish to. The consumer
// dead-letters it with its reason (the first byte is not envelope version 1), and the valid
// message behind it is handled.
func ExampleInsiderConn() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := must(sealbustest.NewWorld(ctx, nil))
	defer w.Close()

	billing := must(w.Connect(ctx, sealbustest.Shop, sealbustest.Billing))
	defer billing.Close()
	got := make(chan string, 1)
	cs := must(consumers.Consume(ctx, billing, sealbustest.OrdersStream, sealbustest.Billing, func(_ context.Context, m *consumers.Message) error {
		got <- string(m.Payload)
		return nil
	}))
	defer cs.Stop()

	insider := must(w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout))
	defer insider.Close()
	js := must(jetstream.New(insider))
	must(js.Publish(ctx, "orders.eu.1", []byte("not an envelope")))

	checkout := must(w.Connect(ctx, sealbustest.Shop, sealbustest.Checkout))
	defer checkout.Close()
	must(checkout.Publish(ctx, "orders.eu.2", []byte(`{"total":7}`)))
	fmt.Println("handled:", <-got)

	for billing.Metrics().DeadLettered["unknown_version"] == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("dead-lettered as unknown_version:", billing.Metrics().DeadLettered["unknown_version"])
	// Output:
	// handled: {"total":7}
	// dead-lettered as unknown_version: 1
}

func must[T any](v T, err error) T {
	if err != nil {
		if errors.Is(err, bus.ErrInvalidOption) {
			log.Fatalf("bad options: %v", err)
		}
		log.Fatal(err)
	}
	return v
}
