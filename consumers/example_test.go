package consumers_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
)

// Consume the durable an operator created for the service (`sealbus service add shop billing
// --sub 'orders.>' --consumer ORDERS:billing`). The handler sees verified plaintext only.
func ExampleConsume() {
	var c *bus.Client // from bus.Connect
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cs, err := consumers.Consume(ctx, c, "ORDERS", "billing",
		func(ctx context.Context, m *consumers.Message) error {
			fmt.Printf("verified %s from %s on %s: %s\n", m.ID, m.Sender, m.Subject, m.Payload)
			return nil // acknowledged; an error retries with backoff, then dead-letters
		},
		consumers.WithWorkers(4))
	if err != nil {
		log.Fatal(err)
	}
	<-cs.Done() // ends when ctx ends (SIGINT/SIGTERM): handlers finish, acks are flushed
	if err := cs.Err(); err != nil {
		log.Fatal(err)
	}
}
