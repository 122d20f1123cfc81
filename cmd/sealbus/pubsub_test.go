package main

import (
	"bufio"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestSDKCommands drives pub, sub, dlq and audit against `sealbus dev`: a sealed message is
// published and consumed; a forged message injected by an admin is dead-lettered with its
// reason and an audit event; dlq show/replay work on it.
func TestSDKCommands(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	di := startDev(t, home)
	t.Setenv("SEALBUS_URL", di.URL)
	t.Setenv("SEALBUS_CA", di.CAFile)
	ok(t, home, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	ok(t, home, "service", "add", "shop", "checkout", "--pub", "orders.created", "--push")
	ok(t, home, "service", "add", "shop", "billing", "--sub", "orders.created", "--consumer", "ORDERS:billing", "--push")

	// A forged (unsealed) message goes into the stream before the valid one.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := (&app{home: home, ctx: ctx}).open(true)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := s.prov.Admin(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(ctx, "orders.created", []byte("\x01\x01not an envelope")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	s.Close()

	var acks []map[string]any
	okJSON(t, home, &acks, "pub", "--as", "shop/checkout", "orders.created", "hello billing", "--content-type", "text/plain")
	if len(acks) != 1 || acks[0]["stream"] != "ORDERS" {
		t.Fatalf("pub --json: %v", acks)
	}
	wantCode(t, sb(t, home, "pub", "--as", "shop/checkout", "orders.cancelled", "x"), exitRefused, "not allowed")
	wantCode(t, sb(t, home, "pub", "orders.created", "x"), exitUsage, "--as")

	out := ok(t, home, "sub", "--as", "shop/billing", "ORDERS", "billing", "--count", "1", "--timeout", "30s", "--json")
	var msg map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &msg); err != nil {
		t.Fatalf("sub --json: %v: %s", err, out)
	}
	if msg["payload"] != "hello billing" || msg["sender"] != "checkout" || msg["subject"] != "orders.created" {
		t.Fatalf("sub: %v", msg)
	}

	var dls []deadLetterJSON
	okJSON(t, home, &dls, "dlq", "list", "shop")
	if len(dls) != 1 || dls[0].Reason == "" || dls[0].SourceStream != "ORDERS" || dls[0].SourceSequence != 1 ||
		dls[0].Verification.State != "verified" || dls[0].Verification.Writer != "billing" {
		t.Fatalf("dlq list: %+v", dls)
	}
	var shown map[string]any
	okJSON(t, home, &shown, "dlq", "show", "shop", strconv.FormatUint(dls[0].Sequence, 10))
	if shown["envelope_error"] == nil {
		t.Fatalf("dlq show of a forged message: %v", shown)
	}
	wantCode(t, sb(t, home, "dlq", "show", "shop", "999"), exitNotFound, "")
	// Its envelope is junk nobody signed: replaying it is refused (and audited).
	wantCode(t, sb(t, home, "dlq", "replay", "shop", strconv.FormatUint(dls[0].Sequence, 10)), exitRefused, "envelope_unverified")

	out = ok(t, home, "audit", "tail", "shop", "--json")
	found, refused := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("audit tail --json line %q: %v", sc.Text(), err)
		}
		if ev["specversion"] != "1.0" {
			t.Fatalf("not a CloudEvent: %v", ev)
		}
		if v, _ := ev["verification"].(map[string]any); v == nil || v["state"] != "verified" {
			t.Fatalf("an unverified record where nobody forged any: %v", ev)
		}
		if d, _ := ev["data"].(map[string]any); d != nil && d["reason"] == dls[0].Reason {
			found = true
		}
		refused = refused || ev["type"] == "sealbus.admin.dlq.replay_refused"
	}
	if !found || !refused {
		t.Fatalf("no audit event for the dead letter (%v) or the refused replay (%v): %s", found, refused, out)
	}

	// Streams and consumers are the operator's: a service's consumer is usable by the CLI's
	// sub only through its own identity.
	wantCode(t, sb(t, home, "sub", "--as", "shop/checkout", "ORDERS", "billing", "--timeout", "5s"), exitRefused, "may use no durable")
}

func TestDemoCommand(t *testing.T) {
	cleanEnv(t)
	out := ok(t, t.TempDir(), "demo")
	if !strings.Contains(out, "every attack failed") {
		t.Fatalf("demo output: %s", out)
	}
}
