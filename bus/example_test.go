package bus_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/sealbus/sealbus/bus"
)

// Connect a service with its creds file, the dev server's CA and the operator it trusts.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx,
		bus.WithURL("tls://127.0.0.1:4222"),
		bus.WithRootCA("/path/to/ca.crt"),
		bus.WithCredsFile("/path/to/checkout.creds"),
		bus.WithTrustedOperator("O...operator public key..."),
		bus.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Drain()
	fmt.Println("connected as", c.Name(), "in", c.Account())
}

// Publish bytes, or a Go value as JSON; both wait for JetStream's acknowledgement.
func ExampleClient_Publish() {
	var c *bus.Client // from bus.Connect
	ctx := context.Background()
	ack, err := c.Publish(ctx, "orders.eu.42", []byte("hello"), bus.WithTTL(time.Hour))
	if err != nil {
		log.Fatal(err) // errors.Is(err, bus.ErrForbidden), bus.ErrNoAudience, ...
	}
	fmt.Println("stored as", ack.Stream, ack.Sequence, "id", ack.ID)

	type order struct {
		ID    string `json:"id"`
		Total int    `json:"total"`
	}
	if _, err := bus.PublishJSON(ctx, c, "orders.eu.43", order{ID: "o-43", Total: 12}); err != nil {
		log.Fatal(err)
	}
}

// Publish many messages without waiting for each acknowledgement; concurrent publishes are
// signed in batches.
func ExampleClient_PublishAsync() {
	var c *bus.Client // from bus.Connect
	var futures []bus.PubAckFuture
	for i := range 1000 {
		f, err := c.PublishAsync("orders.us.bulk", []byte(fmt.Sprint(i)))
		if err != nil {
			log.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		if _, err := f.Wait(context.Background()); err != nil {
			log.Fatal(err)
		}
	}
}
