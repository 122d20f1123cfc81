package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
)

// TestCLIServiceLimitsAndStreamDiscard: `service add` writes the per-service limit flags into
// the user JWT (defaults otherwise), refuses bad ones, and `stream add` makes discard-new
// streams by default, with the per-subject cap and the eviction opt-in as flags; `sealbus dev`
// runs a connection guard that holds a service to its quota; `init` makes the operator account.
func TestCLIServiceLimitsAndStreamDiscard(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	var initOut map[string]any
	okJSON(t, home, &initOut, "init", "--unencrypted")
	if k, _ := initOut["operator_account"].(string); len(k) != 56 || k[0] != 'A' {
		t.Fatalf("init: no operator account: %v", initOut)
	}
	ok(t, home, "account", "add", "shop")
	var small, dflt serviceJSON
	okJSON(t, home, &small, "service", "add", "shop", "small", "--pub", "small.x", "--max-connections", "2", "--max-subscriptions", "20", "--max-payload", "4KiB")
	okJSON(t, home, &dflt, "service", "add", "shop", "dflt", "--pub", "dflt.x")
	if small.Limits != (accounts.ServiceLimits{Connections: 2, Subscriptions: 20, MaxPayload: 4096}) || dflt.Limits != accounts.DefaultServiceLimits() {
		t.Fatalf("limits %+v and %+v", small.Limits, dflt.Limits)
	}
	c, err := accounts.ReadCredsFile(small.CredsPath)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(c.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := accounts.ServiceLimitsOf(uc); !ok || l != small.Limits {
		t.Fatalf("user JWT limits %+v %v", l, ok)
	}
	wantCode(t, sb(t, home, "service", "add", "shop", "bad", "--pub", "bad.x", "--max-payload", "100"), exitUsage, "1024")
	wantCode(t, sb(t, home, "service", "add", "shop", "bad", "--pub", "bad.x", "--max-connections", "-1"), exitUsage, "negative")

	di := startDev(t, home)
	var def, evict, capped streamJSON
	okJSON(t, home, &def, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	// A default size cap: at most a quarter of the account's storage, at most half of what
	// its other streams (the evidence streams, the directory view) leave.
	if def.Discard != "new" || def.MaxBytes <= 0 || def.MaxBytes > accounts.DefaultLimits().DiskStorage/4 || def.MaxMsgsPerSubject != 0 {
		t.Fatalf("default stream: %+v", def)
	}
	r := sb(t, home, "stream", "add", "shop", "LOGS", "--subjects", "logs.>", "--discard", "old", "--json")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING") {
		t.Fatalf("--discard old: exit %d, stderr %q", r.code, r.stderr)
	}
	var list []streamJSON
	okJSON(t, home, &list, "stream", "list", "shop")
	for _, s := range list {
		if s.Name == "LOGS" {
			evict = s
		}
	}
	if evict.Discard != "old" {
		t.Fatalf("--discard old stream: %+v", evict)
	}
	okJSON(t, home, &capped, "stream", "add", "shop", "METRICS", "--subjects", "metrics.>", "--max-msgs-per-subject", "5", "--max-bytes", "1MiB")
	if capped.Discard != "new" || capped.MaxMsgsPerSubject != 5 || capped.MaxBytes != 1<<20 {
		t.Fatalf("capped stream: %+v", capped)
	}
	wantCode(t, sb(t, home, "stream", "add", "shop", "X", "--subjects", "x.>", "--discard", "sometimes"), exitUsage, "--discard")
	wantCode(t, sb(t, home, "stream", "add", "shop", "X", "--subjects", "x.>", "--discard", "old", "--max-msgs-per-subject", "3"), exitUsage, "per-subject")

	// The dev server's guard keeps `small` to 2 connections.
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := 0
	for range 4 {
		nc, err := connectCreds(t, di, small.CredsPath)
		if err == nil {
			conns = append(conns, nc)
			open++
		}
	}
	if open < 2 {
		t.Fatalf("only %d connections of small opened", open)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := 0
		for _, c := range conns {
			if !c.IsClosed() {
				alive++
			}
		}
		if alive <= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("small holds %d connections, quota 2", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
