package consumers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/sealbustest"
)

type order struct {
	Number int `json:"number"`
}

// TestConsumeJSON decodes payloads into the handler's type; a payload that does not decode is
// dead-lettered at once (undecodable), not retried, and does not block the next message.
func TestConsumeJSON(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := checkout.Publish(ctx, "orders.eu.1", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.PublishJSON(ctx, checkout, "orders.eu.2", order{Number: 2}); err != nil {
		t.Fatal(err)
	}
	got := make(chan order, 4)
	cs, err := consumers.ConsumeJSON(ctx, billing, sealbustest.OrdersStream, sealbustest.Billing,
		func(_ context.Context, m *consumers.Message, o order) error {
			got <- o
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-got:
		if o.Number != 2 {
			t.Fatalf("decoded %+v", o)
		}
	case <-ctx.Done():
		t.Fatal("the JSON message was not handled")
	}
	if err := cs.Drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if n := billing.Metrics().DeadLettered[consumers.ReasonUndecodable]; n != 1 {
		t.Fatalf("undecodable dead letters: %d (%v)", n, billing.Metrics().DeadLettered)
	}
	if len(got) != 0 {
		t.Fatalf("handler called for the undecodable payload")
	}
}

// TestConsumeRefusedPromptly: a durable the service may not use (another service's, a typo)
// is refused by the server; Consume returns that cause well within 2 s, not at its deadline.
func TestConsumeRefusedPromptly(t *testing.T) {
	w := newWorld(t)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	for _, durable := range []string{sealbustest.Shipping, "billin"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := consumers.Consume(ctx, billing, sealbustest.OrdersStream, durable, func(context.Context, *consumers.Message) error { return nil })
		cancel()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("durable %s: refused after %v", durable, took)
		}
		if !errors.Is(err, consumers.ErrNoConsumer) || !errors.Is(err, consumers.ErrPermission) || !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("durable %s: %v", durable, err)
		}
		if err != nil && !strings.Contains(err.Error(), "$JS.API.CONSUMER.INFO.ORDERS."+durable) {
			t.Errorf("durable %s: the server's reason is missing: %v", durable, err)
		}
	}
}
