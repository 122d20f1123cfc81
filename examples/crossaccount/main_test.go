package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestCrossAccountFlow sets up what the operator does with the CLI (export, import, stream,
// service, peers) and runs the example.
func TestCrossAccountFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sb, prov := w.Harness, w.Harness.Provisioner()
	shop, err := prov.EditAccount(sealbustest.Shop, func(a *accounts.Account) error {
		a.Claims.Exports.Add(&jwt.Export{Name: "public orders", Subject: "orders.public.>", Type: jwt.Stream})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := prov.PushAccount(ctx, shop); err != nil {
		t.Fatal(err)
	}
	bank, err := prov.EditAccount(sealbustest.Partner, func(a *accounts.Account) error {
		a.Claims.Imports.Add(&jwt.Import{Name: "shop orders", Subject: "orders.public.>", Account: shop.PublicKey(), LocalSubject: "shop.orders.>", Type: jwt.Stream})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := prov.PushAccount(ctx, bank); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddStream(ctx, sealbustest.Partner, operator.StreamSpec{Name: "SHOPFEED", Subjects: []string{"shop.orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.AddService(ctx, sealbustest.Partner, accounts.ServiceSpec{Name: "ledger", Subscribe: []string{"shop.orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "SHOPFEED", Durable: "ledger"}}}); err != nil {
		t.Fatal(err)
	}
	// Peers: each directory gets the other account's JWT and cards (what `sealbus import
	// --push` does).
	peers, err := prov.SyncPeers(ctx, sealbustest.Partner)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].Skipped != "" || peers[1].Skipped != "" {
		t.Fatalf("peer copies: %+v", peers)
	}

	var out bytes.Buffer
	err = run(&out, config{
		URL: sb.URLs()[0], CA: sb.CAFile(), Operator: sb.OperatorKey(),
		PublisherCreds: w.CredsPath(sealbustest.Shop, sealbustest.Checkout), ConsumerCreds: w.CredsPath(sealbustest.Partner, "ledger"),
		Stream: "SHOPFEED", Durable: "ledger", Count: 3, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "verified ") || !strings.Contains(l, " from checkout on orders.public.eu.") {
			t.Fatalf("line %q", l)
		}
	}
}
