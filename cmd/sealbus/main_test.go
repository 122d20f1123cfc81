package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/sealbustest"
)

// syncBuffer is a bytes.Buffer safe for a command running in another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cleanEnv keeps the caller's environment out of the tests.
func cleanEnv(t *testing.T) {
	for _, k := range []string{"SEALBUS_URL", "SEALBUS_CA", "SEALBUS_CLIENT_CERT", "SEALBUS_CLIENT_KEY", "SEALBUS_PASSPHRASE", "SEALBUS_HOME"} {
		t.Setenv(k, "")
	}
}

type result struct {
	stdout, stderr string
	code           int
}

// sb runs the CLI with --home home.
func sb(t *testing.T, home string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := runContext(ctx, append([]string{"--home", home}, args...), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// ok runs the CLI and fails the test unless it exits 0.
func ok(t *testing.T, home string, args ...string) string {
	t.Helper()
	r := sb(t, home, args...)
	if r.code != 0 {
		t.Fatalf("sealbus %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs the CLI with --json and decodes its output into v.
func okJSON(t *testing.T, home string, v any, args ...string) {
	t.Helper()
	out := ok(t, home, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("sealbus %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func wantCode(t *testing.T, r result, code int, stderrHas string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if code != 0 && !strings.HasPrefix(r.stderr, "sealbus: error: ") && !strings.Contains(r.stderr, "\nsealbus: error: ") {
		t.Fatalf("stderr has no line starting with 'sealbus: error: ': %q", r.stderr)
	}
	if stderrHas != "" && !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, stderrHas)
	}
}

// startDev runs `sealbus dev --port 0` in the background and waits for it to be ready.
func startDev(t *testing.T, home string, extra ...string) devInfo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	go func() {
		done <- runContext(ctx, append([]string{"--home", home, "dev", "--port", "0"}, extra...), &out, &errb)
	}()
	path := filepath.Join(home, "dev", "server.json")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(out.String(), "ready") {
			var di devInfo
			if err := json.Unmarshal(b, &di); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("sealbus dev exited %d: %s", code, errb.String())
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("server.json left behind after a clean stop")
				}
			})
			return di
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("sealbus dev exited %d early: %s %s", code, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("sealbus dev not ready: %s %s", out.String(), errb.String())
		}
	}
}

func connectCreds(t *testing.T, di devInfo, credsPath string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	c, err := accounts.ReadCredsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(c.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	base := []nats.Option{
		nats.RootCAs(di.CAFile), nats.UserCredentials(credsPath),
		nats.CustomInboxPrefix(accounts.InboxPrefix(uc.Subject)), nats.Timeout(5 * time.Second), nats.NoReconnect(),
	}
	return nats.Connect(di.URL, append(base, opts...)...)
}

// TestCLIAcceptance is issue 3's in-process acceptance through the CLI: `sealbus dev`, two
// accounts, services and streams made with CLI commands, generated creds over TLS; the server
// refuses out-of-permission publishes and stream creation by a service; account B cannot read
// account A's stream; plaintext is refused; `service revoke` + `push` locks the service out.
func TestCLIAcceptance(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	r := sb(t, home, "init", "--unencrypted", "--name", "acme")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING") || !strings.Contains(r.stderr, "UNENCRYPTED") {
		t.Fatalf("init --unencrypted: %d %q", r.code, r.stderr)
	}
	ok(t, home, "account", "add", "shop")
	ok(t, home, "account", "add", "bank", "--disk-storage", "512MiB")
	di := startDev(t, home)
	if !strings.HasPrefix(di.URL, "tls://127.0.0.1:") {
		t.Fatalf("dev URL %q", di.URL)
	}

	var st streamJSON
	okJSON(t, home, &st, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>", "--max-age", "7d")
	if st.Name != "ORDERS" || st.Duplicates != 2*time.Minute || st.MaxAge != 7*24*time.Hour {
		t.Fatalf("stream add --json: %+v", st)
	}
	ok(t, home, "stream", "add", "bank", "PAYMENTS", "--subjects", "payments.>")

	var checkout, billing, ledger serviceJSON
	okJSON(t, home, &checkout, "service", "add", "shop", "checkout", "--pub", "orders.created", "--push")
	okJSON(t, home, &billing, "service", "add", "shop", "billing", "--sub", "orders.created", "--consumer", "ORDERS:billing", "--push")
	okJSON(t, home, &ledger, "service", "add", "bank", "ledger", "--pub", "payments.>", "--sub", "orders.>", "--push")
	if len(billing.ConsumerOps) != 1 || billing.ConsumerOps[0].Status != "created" || billing.ConsumerOps[0].Filter[0] != "orders.created" {
		t.Fatalf("billing consumer: %+v", billing.ConsumerOps)
	}
	if !strings.HasPrefix(checkout.UserKey, "U") || !strings.HasPrefix(checkout.CurveKey, "X") {
		t.Fatalf("service add --json keys: %+v", checkout)
	}

	var streams []streamJSON
	okJSON(t, home, &streams, "stream", "list", "shop")
	names := map[string]bool{}
	for _, s := range streams {
		names[s.Name] = true
	}
	if !names["ORDERS"] || !names[accounts.DLQStream] || !names[accounts.AuditStream] || names["PAYMENTS"] {
		t.Fatalf("stream list shop: %v", names)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Within its permissions, checkout publishes into the stream.
	errs := make(chan error, 4)
	cnc, err := connectCreds(t, di, checkout.CredsPath, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	cjs, _ := jetstream.New(cnc)
	if _, err := cjs.Publish(ctx, "orders.created", []byte("o1")); err != nil {
		t.Fatal(err)
	}
	// 1. Outside its permissions: refused by the server.
	if err := cnc.Publish("payments.steal", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("unexpected async error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no permissions violation for a publish outside the service's rights")
	}

	// 2. Creating a stream as a service: refused.
	bnc, err := connectCreds(t, di, billing.CredsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer bnc.Close()
	bjs, _ := jetstream.New(bnc)
	c2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	_, err = bjs.CreateStream(c2, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
	cancel2()
	if err == nil {
		t.Fatal("service created a stream")
	}
	okJSON(t, home, &streams, "stream", "list", "shop")
	for _, s := range streams {
		if s.Name == "EVIL" {
			t.Fatal("stream EVIL exists")
		}
	}
	// billing reads its durable.
	cons, err := bjs.Consumer(ctx, "ORDERS", "billing")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		_ = m.Ack()
	}
	if got != 1 {
		t.Fatalf("billing got %d messages", got)
	}

	// 3. Account B cannot read account A's stream or messages.
	lnc, err := connectCreds(t, di, ledger.CredsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lnc.Close()
	sub, err := lnc.SubscribeSync("orders.>")
	if err != nil {
		t.Fatal(err)
	}
	lnc.Flush()
	if _, err := cjs.Publish(ctx, "orders.created", []byte("o2")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(time.Second); err == nil {
		t.Fatalf("bank read %q from shop", m.Data)
	}
	ljs, _ := jetstream.New(lnc)
	c3, cancel3 := context.WithTimeout(ctx, 3*time.Second)
	_, err = ljs.Consumer(c3, "ORDERS", "billing")
	cancel3()
	if err == nil {
		t.Fatal("bank's service reached shop's consumer")
	}

	// 4. Plaintext is refused.
	plaintextRefused(t, di.URL)

	// 5. service revoke + push: the revoked service can no longer connect.
	var rv serviceJSON
	okJSON(t, home, &rv, "service", "revoke", "shop", "billing")
	if !rv.Revoked {
		t.Fatalf("revoke --json: %+v", rv)
	}
	// Not pushed yet: the server still accepts the key.
	if nc, err := connectCreds(t, di, billing.CredsPath); err != nil {
		t.Fatalf("before push: %v", err)
	} else {
		nc.Close()
	}
	var pushed []map[string]any
	okJSON(t, home, &pushed, "push", "shop")
	if len(pushed) != 1 || pushed[0]["account"] != "shop" {
		t.Fatalf("push --json: %v", pushed)
	}
	if nc, err := connectCreds(t, di, billing.CredsPath); err == nil {
		nc.Close()
		t.Fatal("revoked service connected after push")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("revoked service: %v", err)
	}
	if nc, err := connectCreds(t, di, checkout.CredsPath); err != nil {
		t.Fatalf("checkout after billing's revocation: %v", err)
	} else {
		nc.Close()
	}
	var list []serviceJSON
	okJSON(t, home, &list, "service", "list", "shop")
	if len(list) != 2 || list[0].Name != "billing" || !list[0].Revoked || list[1].Revoked {
		t.Fatalf("service list: %+v", list)
	}
}

func plaintextRefused(t *testing.T, url string) {
	t.Helper()
	if err := sealbustest.RefusesPlaintext(url, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCLIExitCodes(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()

	wantCode(t, sb(t, home, "account", "list"), exitNotFound, "no keystore")
	wantCode(t, sb(t, home, "frobnicate"), exitUsage, "unknown command")
	wantCode(t, sb(t, home, "init", "--bogus"), exitUsage, "unknown flag")
	t.Setenv("SEALBUS_PASSPHRASE", "correct horse battery")
	ok(t, home, "init", "--name", "acme")
	wantCode(t, sb(t, home, "init", "--name", "again"), exitError, "already exists")
	wantCode(t, sb(t, home, "account", "add"), exitUsage, "takes 1 argument")
	wantCode(t, sb(t, home, "account", "add", "bad name"), exitUsage, "")
	wantCode(t, sb(t, home, "account", "add", "x", "--disk-storage", "lots"), exitUsage, "--disk-storage")
	ok(t, home, "account", "add", "shop")
	wantCode(t, sb(t, home, "account", "add", "shop"), exitError, "already exists")
	wantCode(t, sb(t, home, "account", "show", "nope"), exitNotFound, "")
	wantCode(t, sb(t, home, "service", "show", "shop", "nope"), exitNotFound, "")
	wantCode(t, sb(t, home, "service", "add", "shop", "s", "--consumer", "nocolon"), exitUsage, "STREAM:DURABLE")
	wantCode(t, sb(t, home, "service", "add", "shop", "s", "--pub", "$JS.API.>"), exitUsage, "")
	wantCode(t, sb(t, home, "stream", "add", "shop", "S", "--subjects", "a.>", "--duplicates", "30s"), exitUsage, "freshness")
	wantCode(t, sb(t, home, "stream", "list", "shop"), exitError, "no server")
	r := sb(t, home, "stream", "list", "shop")
	if !strings.Contains(r.stderr, "sealbus: hint: ") {
		t.Fatalf("no hint: %q", r.stderr)
	}
	wantCode(t, sb(t, home, "import", "shop", "--from", "shop", "--subject", "a"), exitUsage, "itself")

	t.Setenv("SEALBUS_PASSPHRASE", "wrong")
	r = sb(t, home, "account", "add", "other")
	wantCode(t, r, exitRefused, "passphrase")
	if !strings.Contains(r.stderr, "sealbus: hint: ") {
		t.Fatalf("no hint for a wrong passphrase: %q", r.stderr)
	}
	t.Setenv("SEALBUS_PASSPHRASE", "correct horse battery")
	var accts []map[string]any
	okJSON(t, home, &accts, "account", "list")
	if len(accts) != 1 || accts[0]["name"] != "shop" || !strings.HasPrefix(accts[0]["public_key"].(string), "A") {
		t.Fatalf("account list --json: %v", accts)
	}
}

func TestCLIAccountEditAndShow(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop", "--connections", "10")
	var before, after accountJSON
	okJSON(t, home, &before, "account", "show", "shop")
	if before.Limits.Connections != 10 || before.Limits.DiskStorage != accounts.DefaultLimits().DiskStorage || len(before.SigningKeys) != 1 {
		t.Fatalf("account show: %+v", before)
	}
	okJSON(t, home, &after, "account", "edit", "shop", "--subscriptions", "77", "--disk-storage", "2GiB", "--add-signing-key")
	if after.Limits.Connections != 10 || after.Limits.Subscriptions != 77 || after.Limits.DiskStorage != 2<<30 || len(after.SigningKeys) != 2 {
		t.Fatalf("account edit kept/changed the wrong limits: %+v", after.Limits)
	}
	var removed accountJSON
	extra := after.SigningKeys[0]
	if extra == before.SigningKeys[0] {
		extra = after.SigningKeys[1]
	}
	okJSON(t, home, &removed, "account", "edit", "shop", "--remove-signing-key", extra)
	if len(removed.SigningKeys) != 1 || removed.SigningKeys[0] != before.SigningKeys[0] {
		t.Fatalf("remove signing key: %v", removed.SigningKeys)
	}
	var shown accountJSON
	okJSON(t, home, &shown, "account", "show", "shop", "--jwt")
	ac, err := (accounts.Trust{Operators: []string{operatorOf(t, home)}}).VerifyAccount(shown.JWT)
	if err != nil || ac.Limits.Subs != 77 {
		t.Fatalf("shown JWT does not verify or lacks the edit: %v", err)
	}
	// Human output of every read command says something useful.
	if out := ok(t, home, "account", "show", "shop"); !strings.Contains(out, shown.PublicKey) {
		t.Fatalf("account show: %s", out)
	}
}

func operatorOf(t *testing.T, home string) string {
	t.Helper()
	ks, err := accounts.OpenKeystore(home, nil, accounts.WithUnencrypted())
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	op, err := ks.LoadOperator()
	if err != nil {
		t.Fatal(err)
	}
	return op.PublicKey()
}

func TestCLIHelpHasExamples(t *testing.T) {
	cleanEnv(t)
	a := &app{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard}
	root := a.rootCmd()
	for _, c := range allCommands(root) {
		if c.Example == "" && c.Name() != "help" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
	}
	r := sb(t, t.TempDir(), "service", "add", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
		t.Fatalf("--help: %d %s", r.code, r.stdout)
	}
	r = sb(t, t.TempDir(), "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "bash completion") {
		t.Fatalf("completion bash: %d %.200s", r.code, r.stdout)
	}
}

func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}
