package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/sealbustest"
)

func TestPublisherPublishes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out bytes.Buffer
	if err := run(&out, w.Harness.URLs()[0], w.Harness.CAFile(), w.CredsPath(sealbustest.Shop, sealbustest.Checkout), w.Harness.OperatorKey(), "orders.eu.new", 4); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "published ") || !strings.Contains(lines[3], " on orders.eu.new seq 4") {
		t.Fatalf("output:\n%s", out.String())
	}
	// Publishing where the card does not allow it fails before sending.
	if err := run(&out, w.Harness.URLs()[0], w.Harness.CAFile(), w.CredsPath(sealbustest.Shop, sealbustest.Checkout), w.Harness.OperatorKey(), "tickets.1", 1); err == nil {
		t.Fatal("publish outside permissions succeeded")
	}
}
