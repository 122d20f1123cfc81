package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/credsfile"
)

func TestInspect(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	var svc serviceJSON
	okJSON(t, home, &svc, "service", "add", "shop", "billing", "--pub", "orders.created", "--sub", "orders.>")
	creds, err := credsfile.ReadFile(svc.CredsPath)
	if err != nil {
		t.Fatal(err)
	}

	// A creds file: public parts only, never a seed.
	out := ok(t, home, "inspect", svc.CredsPath)
	var ci map[string]any
	okJSON(t, home, &ci, "inspect", svc.CredsPath)
	for _, o := range []string{out, ci["user_key"].(string)} {
		if strings.Contains(o, string(creds.UserSeed)) || strings.Contains(o, string(creds.CurveSeed)) || strings.Contains(o, "SU") && strings.Contains(o, "SEED") {
			t.Fatal("inspect printed a seed")
		}
	}
	if ci["kind"] != "creds" || ci["user_key"] != svc.UserKey || ci["curve_key"] != svc.CurveKey {
		t.Fatalf("inspect creds --json: %v", ci)
	}
	full := out + mustJSON(t, home, "inspect", svc.CredsPath)
	if strings.Contains(full, string(creds.UserSeed)) || strings.Contains(full, string(creds.CurveSeed)) {
		t.Fatal("inspect printed a seed")
	}

	// A card, verified through the whole chain; tampered, it is refused with exit 4.
	ks, err := accounts.OpenKeystore(home, nil, accounts.WithUnencrypted())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ks.LoadService("shop", "billing")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := ks.LoadAccount("shop")
	if err != nil {
		t.Fatal(err)
	}
	ks.Close()
	var card map[string]any
	okJSON(t, home, &card, "inspect", "--verify", s.Card)
	if card["kind"] != "card" || card["verified"] != true {
		t.Fatalf("inspect card: %v", card)
	}
	parts := strings.Split(s.Card, ".")
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	wantCode(t, sb(t, home, "inspect", "--verify", tampered), exitRefused, "")

	// A card of another operator does not verify here.
	other := t.TempDir()
	ok(t, other, "init", "--unencrypted")
	ok(t, other, "account", "add", "shop")
	ok(t, other, "account", "show", "shop")
	var foreignAcct accountJSON
	okJSON(t, other, &foreignAcct, "account", "show", "shop", "--jwt")
	wantCode(t, sb(t, home, "inspect", "--verify", foreignAcct.JWT), exitRefused, "")

	// Account JWT of this home verifies; its claims are shown.
	var aj map[string]any
	okJSON(t, home, &aj, "inspect", "--verify", acct.JWT)
	if aj["kind"] != "account" || aj["verified"] != true {
		t.Fatalf("inspect account: %v", aj)
	}

	// An envelope: header fields, without decrypting.
	id, err := envelope.NewIdentity(creds.UserSeed, creds.CurveSeed)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := envelope.NewSealer(id)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealer.Seal(envelope.Header{Account: acct.PublicKey(), Subject: "orders.created", ContentType: "text/plain"}, []byte("secret order"), []envelope.Recipient{id.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(t.TempDir(), "env.bin")
	if err := os.WriteFile(envPath, sealed.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	var ej map[string]any
	okJSON(t, home, &ej, "inspect", envPath)
	if ej["kind"] != "envelope" || ej["subject"] != "orders.created" || ej["sender"] != svc.UserKey || ej["account"] != acct.PublicKey() {
		t.Fatalf("inspect envelope: %v", ej)
	}
	if strings.Contains(ok(t, home, "inspect", envPath), "secret order") {
		t.Fatal("inspect printed the plaintext")
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("\x09garbage"), 0o600)
	wantCode(t, sb(t, home, "inspect", garbage), exitRefused, "")
	wantCode(t, sb(t, home, "inspect", filepath.Join(t.TempDir(), "missing")), exitNotFound, "")
}

func mustJSON(t *testing.T, home string, args ...string) string {
	t.Helper()
	return ok(t, home, append(args, "--json")...)
}

// TestExportImport shares a stream subject from shop to bank through account JWT exports and
// imports (public and private with an activation token) and checks the server routes it.
func TestExportImport(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	ok(t, home, "account", "add", "bank")
	var pubSvc, subSvc serviceJSON
	okJSON(t, home, &pubSvc, "service", "add", "shop", "notifier", "--pub", "orders.public.created", "--pub", "orders.private.created")
	okJSON(t, home, &subSvc, "service", "add", "bank", "watcher", "--sub", "shop.orders.>", "--sub", "private.orders.>")

	wantCode(t, sb(t, home, "import", "bank", "--from", "shop", "--subject", "orders.public.>"), exitNotFound, "no stream export")
	ok(t, home, "export", "shop", "--subject", "orders.public.>")
	ok(t, home, "export", "shop", "--subject", "orders.private.>", "--private")
	ok(t, home, "import", "bank", "--from", "shop", "--subject", "orders.public.>", "--local-subject", "shop.orders.>")
	ok(t, home, "import", "bank", "--from", "shop", "--subject", "orders.private.>", "--local-subject", "private.orders.>")
	var shop, bank accountJSON
	okJSON(t, home, &shop, "account", "show", "shop")
	okJSON(t, home, &bank, "account", "show", "bank")
	if len(shop.Exports) != 2 || len(bank.Imports) != 2 {
		t.Fatalf("exports %v imports %v", shop.Exports, bank.Imports)
	}

	di := startDev(t, home)
	pub, err := connectCreds(t, di, pubSvc.CredsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := connectCreds(t, di, subSvc.CredsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, c := range []struct{ from, to string }{
		{"orders.public.created", "shop.orders.created"},
		{"orders.private.created", "private.orders.created"},
	} {
		s, err := sub.SubscribeSync(c.to)
		if err != nil {
			t.Fatal(err)
		}
		sub.Flush()
		if err := pub.Publish(c.from, []byte("shared")); err != nil {
			t.Fatal(err)
		}
		pub.Flush()
		m, err := s.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("import %s → %s: %v", c.from, c.to, err)
		}
		if string(m.Data) != "shared" {
			t.Fatalf("got %q", m.Data)
		}
	}
}
