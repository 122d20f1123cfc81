package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
)

// shell runs commands of one sealbus home and nats CLI configuration.
type shell struct {
	t   *testing.T
	env []string
}

func (s *shell) run(ctx context.Context, bin string, args ...string) (string, string, error) {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(), s.env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	return out.String(), errb.String(), err
}

func (s *shell) must(ctx context.Context, bin string, args ...string) string {
	s.t.Helper()
	out, errOut, err := s.run(ctx, bin, args...)
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// TestStockNATSCLI runs the stock nats CLI (natscli v0.5.0, built from the module proxy) with
// the contexts sealbus writes, against `sealbus dev`: as a service through
// `sealbus service context`, a request/reply command works because the context carries the
// service's inbox prefix (and fails without it); with `sealbus admin creds` (short-lived,
// audited), `nats stream ls` lists the account's streams and, with the system account's,
// `nats server ls` the server.
func TestStockNATSCLI(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	nats, err := natstest.NATSCLI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sealbus, err := natstest.SealbusCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	xdg := filepath.Join(dir, "xdg")
	sh := &shell{t: t, env: []string{"SEALBUS_HOME=" + home, "XDG_CONFIG_HOME=" + xdg, "SEALBUS_PASSPHRASE=", "SEALBUS_URL=", "SEALBUS_CA=", "NATS_CONTEXT="}}
	sh.must(ctx, sealbus, "init", "--unencrypted")
	sh.must(ctx, sealbus, "account", "add", "shop")

	dev := exec.Command(sealbus, "dev", "--port", "0")
	dev.Env = append(os.Environ(), sh.env...)
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var devErr bytes.Buffer
	dev.Stderr = &devErr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGTERM)
		_ = dev.Wait()
	})
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if strings.Contains(line, "press Ctrl-C") {
			break
		}
		if err != nil {
			t.Fatalf("sealbus dev: %v %s", err, devErr.String())
		}
	}
	go io.Copy(io.Discard, r)

	sh.must(ctx, sealbus, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	sh.must(ctx, sealbus, "service", "add", "shop", "checkout", "--pub", "orders.>", "--push")
	sh.must(ctx, sealbus, "service", "add", "shop", "billing", "--sub", "orders.>", "--consumer", "ORDERS:billing", "--push")
	sh.must(ctx, sealbus, "pub", "--as", "shop/checkout", "orders.eu.1", "hello")

	// As the service: a request through the context's inbox prefix.
	var sc map[string]string
	if err := json.Unmarshal([]byte(sh.must(ctx, sealbus, "service", "context", "shop", "billing", "--json")), &sc); err != nil {
		t.Fatal(err)
	}
	out := sh.must(ctx, nats, "--context", "shop-billing", "request", "$JS.API.CONSUMER.INFO.ORDERS.billing", "", "--timeout", "5s")
	if !strings.Contains(out, `"name":"billing"`) || !strings.Contains(out, `"num_pending":1`) {
		t.Fatalf("nats request as billing: %s", out)
	}
	out = sh.must(ctx, nats, "--context", "shop-billing", "consumer", "info", "ORDERS", "billing")
	if !strings.Contains(out, "billing") {
		t.Fatalf("nats consumer info as billing: %s", out)
	}
	// The same creds without the inbox prefix: the reply subject is not the service's, so the
	// server refuses the subscription and the request gets no answer (nats v0.5.0 prints the
	// violation; its exit status is 0 all the same).
	var nopfx map[string]any
	b, err := os.ReadFile(sc["path"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &nopfx); err != nil {
		t.Fatal(err)
	}
	delete(nopfx, "inbox_prefix")
	b, _ = json.Marshal(nopfx)
	if err := os.WriteFile(filepath.Join(filepath.Dir(sc["path"]), "no-prefix.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, _ := sh.run(ctx, nats, "--context", "no-prefix", "request", "$JS.API.CONSUMER.INFO.ORDERS.billing", "", "--timeout", "2s")
	if strings.Contains(out+errOut, `"name":"billing"`) || !strings.Contains(out+errOut, "Permissions Violation for Subscription") {
		t.Fatalf("request without the inbox prefix: %s %s", out, errOut)
	}

	// Operator side: short-lived admin creds for the account and for the system account.
	sh.must(ctx, sealbus, "admin", "creds", "shop", "--ttl", "10m", "--context", "shop-admin")
	out = sh.must(ctx, nats, "--context", "shop-admin", "stream", "ls")
	for _, want := range []string{"ORDERS", "SEALBUS_AUDIT", "SEALBUS_DLQ"} {
		if !strings.Contains(out, want) {
			t.Errorf("nats stream ls with admin creds lacks %s:\n%s", want, out)
		}
	}
	sh.must(ctx, sealbus, "admin", "creds", "SYS", "--ttl", "5m", "--context", "sys-admin")
	out = sh.must(ctx, nats, "--context", "sys-admin", "server", "ls")
	if !strings.Contains(out, "sealbus-dev") {
		t.Errorf("nats server ls with system creds:\n%s", out)
	}
	if audit := sh.must(ctx, sealbus, "audit", "tail", "shop", "--json"); !strings.Contains(audit, "sealbus.admin.creds_issued") {
		t.Errorf("admin creds issuance not in the audit log:\n%s", audit)
	}
}
