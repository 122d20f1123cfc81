package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/sealbustest"
)

func TestConsumerPrintsVerifiedMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pub, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var ids []string
	for i := range 3 {
		ack, err := pub.Publish(ctx, fmt.Sprintf("orders.eu.%d", i), []byte("x"), bus.WithContentType("text/plain"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	var out, summary bytes.Buffer
	st := settings{stream: sealbustest.OrdersStream, durable: sealbustest.Billing, count: 3, workers: 1, maxInFlight: 64}
	if err := run(&out, &summary, w.Harness.URLs()[0], w.Harness.CAFile(), w.CredsPath(sealbustest.Shop, sealbustest.Billing), w.Harness.OperatorKey(), st); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(summary.String(), "consumer: handled 3 deduplicated 0 dead-lettered 0 ") {
		t.Errorf("summary %q", summary.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, id := range ids {
		want := fmt.Sprintf("verified %s from checkout on orders.eu.%d", id, i)
		if lines[i] != want {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}
}
