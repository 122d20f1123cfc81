package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
)

func TestInspect(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	var svc serviceJSON
	okJSON(t, home, &svc, "service", "add", "shop", "billing", "--pub", "orders.created", "--sub", "orders.>")
	creds, err := accounts.ReadCredsFile(svc.CredsPath)
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

	pub.Close() // notifier is revoked below; its raw connection would be cut
	sub.Close()

	// Sealed envelopes across the accounts, wired by the CLI alone: `sealbus dev` (which
	// pushes every account), `service add --push`, `import --push`, `export --push`,
	// `service rotate --push`, `service revoke --push` and `push` put each account's JWT and
	// cards into the directory of every account it shares a stream with.
	ok(t, home, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>") // the publisher's ack
	ok(t, home, "stream", "add", "bank", "SHOPFEED", "--subjects", "shop.orders.>")
	var ledger serviceJSON
	okJSON(t, home, &ledger, "service", "add", "bank", "ledger", "--sub", "shop.orders.>", "--consumer", "SHOPFEED:ledger", "--push")
	wantPeers(t, "service add --push", ledger.Peers, "bank<-shop", "shop<-bank")

	ok(t, home, "account", "add", "insurer", "--push")
	ok(t, home, "stream", "add", "insurer", "FEED", "--subjects", "feed.orders.>")
	var claims serviceJSON
	okJSON(t, home, &claims, "service", "add", "insurer", "claims", "--sub", "feed.orders.>", "--consumer", "FEED:claims", "--push")
	wantPeers(t, "service add --push of an unlinked account", claims.Peers)
	var imp importJSON
	okJSON(t, home, &imp, "import", "insurer", "--from", "shop", "--subject", "orders.public.>", "--local-subject", "feed.orders.>", "--push")
	wantPeers(t, "import --push", imp.Peers, "insurer<-shop", "shop<-insurer")
	var exp exportJSON
	okJSON(t, home, &exp, "export", "shop", "--subject", "orders.eu.>", "--push")
	wantPeers(t, "export --push", exp.Peers, "bank<-shop", "insurer<-shop", "shop<-bank", "shop<-insurer")

	// One sealed publish in shop reaches a reader in each importing account.
	ok(t, home, "pub", "--as", "shop/notifier", "orders.public.created", "sealed across accounts")
	wantSealed(t, home, "bank/ledger", "SHOPFEED", "ledger", "sealed across accounts")
	wantSealed(t, home, "insurer/claims", "FEED", "claims", "sealed across accounts")

	// A rotated reader: shop's directory gets its new card, so the publisher encrypts to the
	// new key.
	ok(t, home, "service", "rotate", "bank", "ledger", "--push")
	ok(t, home, "pub", "--as", "shop/notifier", "orders.public.created", "after the rotation")
	wantSealed(t, home, "bank/ledger", "SHOPFEED", "ledger", "after the rotation")

	// A revoked publisher: the importing accounts' directories get shop's new JWT.
	ok(t, home, "service", "revoke", "shop", "notifier", "--push")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// ledger.CredsPath holds the rotated creds (rotate rewrites the file in place).
	reader, err := bus.Connect(ctx, bus.WithURL(di.URL), bus.WithRootCA(di.CAFile),
		bus.WithCredsFile(ledger.CredsPath), bus.WithTrustedOperator(operatorOf(t, home)))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	err = reader.Directory().CheckSender(shop.PublicKey, pubSvc.UserKey, "orders.public.created", time.Now())
	if !errors.Is(err, envelope.ErrSenderRevoked) {
		t.Fatalf("bank's directory after `service revoke shop notifier --push`: %v, want the sender revoked", err)
	}

	// An edited and a removed service: the peers get the account JWT and cards that follow.
	var edited struct {
		Peers []operator.PeerCopy `json:"peers"`
	}
	okJSON(t, home, &edited, "service", "edit", "bank", "ledger", "--add-sub", "private.orders.>", "--push")
	wantPeers(t, "service edit --push", edited.Peers, "bank<-shop", "shop<-bank")
	var removed struct {
		Peers []operator.PeerCopy `json:"peers"`
	}
	okJSON(t, home, &removed, "service", "remove", "shop", "notifier", "--push")
	wantPeers(t, "service remove --push", removed.Peers, "bank<-shop", "insurer<-shop", "shop<-bank", "shop<-insurer")

	var pushed []pushJSON
	okJSON(t, home, &pushed, "push")
	for _, p := range pushed {
		if p.Account == accounts.OperatorAccountName {
			continue // the operator account is pushed too; it has no directory of its own
		}
		if len(p.Peers) == 0 {
			t.Errorf("push: no peer directories updated for %s", p.Account)
		}
	}
}

// wantPeers checks the directories a command reports updated, as "into<-from".
func wantPeers(t *testing.T, what string, got []operator.PeerCopy, want ...string) {
	t.Helper()
	var have []string
	for _, p := range got {
		if p.Skipped != "" {
			t.Errorf("%s: %s<-%s skipped: %s", what, p.Into, p.From, p.Skipped)
		}
		have = append(have, p.Into+"<-"+p.From)
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Fatalf("%s: peer directories updated %v, want %v", what, have, want)
	}
}

// wantSealed consumes one message as service (ACCOUNT/NAME) and checks it opened to payload.
func wantSealed(t *testing.T, home, as, stream, durable, payload string) {
	t.Helper()
	out := ok(t, home, "sub", "--as", as, stream, durable, "--count", "1", "--timeout", "30s", "--json")
	var msg map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &msg); err != nil {
		t.Fatalf("sub --as %s: %v: %q", as, err, out)
	}
	if msg["payload"] != payload || msg["sender"] != "notifier" {
		t.Fatalf("sub --as %s: %v", as, msg)
	}
}
