package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/devserver"
)

// failFast is the generous bound within which a refused command must have failed.
const failFast = 2 * time.Second

// day drives the sealbus binary (this test binary acting as main, see TestMain) in a home of
// its own, as an operator would from a shell.
type day struct {
	t    *testing.T
	home string
	env  []string
}

type dayRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func newDay(t *testing.T) *day {
	cleanEnv(t)
	d := &day{t: t, home: t.TempDir()}
	d.env = append(os.Environ(), "SEALBUS_TEST_AS_MAIN=1", "SEALBUS_HOME="+d.home, "XDG_CONFIG_HOME="+filepath.Join(d.home, "xdg"))
	return d
}

func (d *day) cmd(env []string, stdin string, args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(append([]string{}, d.env...), env...)
	c.Stdin = strings.NewReader(stdin)
	return c
}

// sh runs one command with extra environment and returns what it did.
func (d *day) sh(env []string, args ...string) dayRun {
	d.t.Helper()
	c := d.cmd(env, "", args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	err := c.Run()
	r := dayRun{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("sealbus %v: %v", args, err)
	}
	return r
}

func (d *day) ok(args ...string) string {
	d.t.Helper()
	r := d.sh(nil, args...)
	if r.code != 0 {
		d.t.Fatalf("sealbus %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (d *day) json(v any, args ...string) {
	d.t.Helper()
	out := d.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("sealbus %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	assertSnakeCase(d.t, strings.Join(args, " "), []byte(out))
}

// fails checks a refused command: its exit code, a message on stderr, and that it failed fast.
func (d *day) fails(r dayRun, code int, stderrHas ...string) {
	d.t.Helper()
	d.exits(r, code, stderrHas...)
	if r.took > failFast {
		d.t.Fatalf("failed after %v (bound %v): %s", r.took, failFast, r.stderr)
	}
}

// exits checks a refused command's exit code and messages (and logs how long it took), with
// no time bound: for commands that work before they refuse, or derive the keystore's keys.
func (d *day) exits(r dayRun, code int, stderrHas ...string) {
	d.t.Helper()
	d.t.Logf("exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), firstLine(r.stderr))
	if r.code != code {
		d.t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			d.t.Fatalf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "sealbus: error: ") {
		d.t.Fatalf("no 'sealbus: error:' line: %s", r.stderr)
	}
}

// dev starts `sealbus dev --port 0` and returns its URL once it is ready; it is stopped with
// SIGTERM at the end of the test.
func (d *day) dev() (devInfo, *exec.Cmd) {
	d.t.Helper()
	c := d.cmd(nil, "", "dev", "--port", "0")
	var errb syncBuffer
	c.Stderr = &errb
	out, err := c.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		d.t.Fatal(err)
	}
	r := bufio.NewReader(out)
	var seen strings.Builder
	deadline := time.Now().Add(60 * time.Second)
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, "press Ctrl-C") {
			break
		}
		if err != nil || time.Now().After(deadline) {
			_ = c.Process.Kill()
			d.t.Fatalf("dev not ready: %v\n%s\n%s", err, seen.String(), errb.String())
		}
	}
	go io.Copy(io.Discard, r)
	d.t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
	})
	b, err := os.ReadFile(filepath.Join(d.home, "dev", "server.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var info devInfo
	if err := json.Unmarshal(b, &info); err != nil {
		d.t.Fatal(err)
	}
	return info, c
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// assertSnakeCase checks every object key of a JSON document (or of each line of a JSON lines
// output) is snake_case. Maps whose keys are data (public keys, names) are skipped.
func assertSnakeCase(t *testing.T, what string, out []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		walkKeys(t, what, "", v)
	}
}

func walkKeys(t *testing.T, what, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			dataKeys := path == ".revocations" || path == ".names" || path == ".claims" || strings.HasPrefix(path, ".claims.") || strings.HasPrefix(path, ".permissions")
			if !dataKeys && !snakeKey.MatchString(k) {
				t.Errorf("%s: JSON key %q at %s is not snake_case", what, k, path)
			}
			walkKeys(t, what, path+"."+k, e)
		}
	case []any:
		for _, e := range x {
			walkKeys(t, what, path, e)
		}
	}
}

// TestOperatorsDay replays, in order, a new operator's first day with sealbus (issue "The
// operator's day") against the binary, and checks each finding is fixed: exit codes, messages,
// and refusals within 2 s.
func TestOperatorsDay(t *testing.T) {
	d := newDay(t)

	// --version names the module, the revision, Go and the embedded nats-server.
	if v := d.ok("--version"); !strings.Contains(v, "sealbus ") || !strings.Contains(v, "nats-server v"+server.VERSION) || !strings.Contains(v, "go1.") {
		t.Fatalf("--version: %q", v)
	}

	// A 1-character passphrase is refused at init; a long one works.
	d.fails(d.sh([]string{"SEALBUS_PASSPHRASE=x"}, "init"), exitUsage, "passphrase too short")
	pass := "SEALBUS_PASSPHRASE=correct horse battery staple"
	d.env = append(d.env, pass)
	d.ok("init", "--name", "acme")
	d.ok("account", "add", "shop")

	// Read-only commands need no passphrase.
	noPass := []string{"SEALBUS_PASSPHRASE="}
	if r := d.sh(noPass, "account", "list"); r.code != 0 || !strings.Contains(r.stdout, "shop") {
		t.Fatalf("account list without the passphrase: %d %s %s", r.code, r.stdout, r.stderr)
	}
	var op operatorJSON
	d.json(&op, "operator", "show")
	if !strings.HasPrefix(op.PublicKey, "O") || op.SystemAccount == "" || op.DevURL != "" {
		t.Fatalf("operator show before dev: %+v", op)
	}
	// A command that signs needs it, and says so fast.
	d.fails(d.sh(noPass, "account", "add", "bank"), exitUsage, "no passphrase")

	// Nonsense limits: exit 2, nothing changes.
	d.fails(d.sh(nil, "account", "edit", "shop", "--connections", "-5"), exitUsage, "negative")
	var shop accountJSON
	d.json(&shop, "account", "show", "shop")
	if shop.Limits.Connections != 1000 {
		t.Fatalf("connections after a refused edit: %d", shop.Limits.Connections)
	}
	// An unknown account: no file path, the known ones, a suggestion.
	r := d.sh(nil, "account", "show", "shp")
	d.fails(r, exitNotFound, `did you mean "shop"`, "known: shop")
	if strings.Contains(r.stderr, d.home) {
		t.Fatalf("internal path in the error: %s", r.stderr)
	}

	d.ok("service", "add", "shop", "checkout", "--pub", "orders.>,alerts.>")
	info, devProc := d.dev()
	// Every --json document is snake_case (d.json checks); these are not used otherwise.
	var anyJSON any
	d.json(&anyJSON, "push")
	d.json(&anyJSON, "service", "show", "shop", "checkout")
	var svcShow serviceJSON
	d.json(&svcShow, "service", "show", "shop", "checkout")
	d.json(&anyJSON, "inspect", filepath.Join(d.home, "accounts", "shop", "services", "checkout.creds"))
	d.json(&anyJSON, "inspect", "--verify", cardOf(t, d, "shop", "checkout"))

	// A second dev server on the same home is refused with the first one's pid and URL, and
	// leaves the first one's files alone.
	d.fails(d.sh(nil, "dev", "--port", "0"), exitError, fmt.Sprintf("pid %d", devProc.Process.Pid), info.URL)
	if _, err := os.Stat(filepath.Join(d.home, "dev", "server.json")); err != nil {
		t.Fatalf("the second dev removed the first one's server.json: %v", err)
	}
	d.json(&op, "operator", "show")
	if op.DevURL != info.URL || op.DevCAFile != info.CAFile {
		t.Fatalf("operator show with dev: %+v", op)
	}

	d.ok("push")
	d.ok("stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	d.ok("service", "add", "shop", "pager", "--sub", "alerts.>", "--push")

	// The typo: a consumer whose filter does not match the stream. With --push nothing is
	// saved, exit 2, the reason said.
	before := listServices(t, d)
	// (These open the encrypted keystore, whose key derivation — scrypt, per entry — dominates
	// their time; the 2 s bound is for refusals that wait on nothing but the server.)
	d.exits(d.sh(nil, "service", "add", "shop", "billing", "--sub", "order.created", "--consumer", "ORDERS:billing", "--push"), exitUsage, "none of which is in stream ORDERS")
	d.exits(d.sh(nil, "service", "add", "shop", "billing", "--sub", "orders.created", "--consumer", "ORDRES:billing", "--push"), exitNotFound, `did you mean "ORDERS"`)
	if after := listServices(t, d); len(after) != len(before) {
		t.Fatalf("a refused service add saved something: %v -> %v", before, after)
	}
	// Saved without --push, the typo no longer stops push for the rest: it is reported, the
	// other services are pushed, exit 1; then service edit fixes it.
	d.ok("service", "add", "shop", "billing", "--sub", "order.created", "--consumer", "ORDERS:billing")
	d.ok("service", "add", "shop", "shipping", "--sub", "orders.>", "--consumer", "ORDERS:shipping")
	r = d.sh(nil, "push")
	d.exits(r, exitError, "shop/billing not applied", "1 problem")
	var streams []streamJSON
	d.json(&streams, "stream", "list", "shop")
	if !hasConsumers(streams, "ORDERS", 1) {
		t.Fatalf("shipping's durable not made by a push with a bad sibling: %+v", streams)
	}
	d.ok("service", "edit", "shop", "billing", "--sub", "orders.created", "--push")
	d.ok("push")
	d.json(&streams, "stream", "list", "shop")
	if !hasConsumers(streams, "ORDERS", 2) {
		t.Fatalf("billing's durable after the fix: %+v", streams)
	}
	// billing will handle more than the default replay guard store allows: the operator sizes
	// it for its rate (a full store stalls the durable), and a later push keeps the size.
	var guard struct {
		Store    string `json:"store"`
		MaxBytes int64  `json:"max_bytes"`
		Rate     int64  `json:"sustained_msgs_per_s"`
	}
	d.json(&guard, "stream", "guard-size", "shop", "ORDERS", "billing")
	defaultRate := guard.Rate
	d.json(&guard, "stream", "guard-size", "shop", "ORDERS", "billing", "--max-bytes", "256MiB")
	if guard.MaxBytes != 256<<20 || guard.Rate <= defaultRate || guard.Store == "" {
		t.Fatalf("guard-size --max-bytes 256MiB: %+v (default allowed %d msgs/s)", guard, defaultRate)
	}
	if out := d.ok("stream", "guard-size", "shop", "ORDERS", "billing"); !strings.Contains(out, "256MiB") || !strings.Contains(out, "msgs/s sustained") {
		t.Fatalf("guard-size says: %q", out)
	}
	d.exits(d.sh(nil, "stream", "guard-size", "shop", "ORDERS", "billing", "--max-bytes", "1KiB"), exitUsage, "at least")
	d.exits(d.sh(nil, "stream", "guard-size", "shop", "ORDERS", "nobody"), exitNotFound, "nobody")
	d.ok("push")
	d.json(&guard, "stream", "guard-size", "shop", "ORDERS", "billing")
	if guard.MaxBytes != 256<<20 {
		t.Fatalf("guard store after a push: %+v", guard)
	}
	// service remove exists, and takes the durable with it.
	d.ok("service", "remove", "shop", "shipping", "--push")
	d.json(&streams, "stream", "list", "shop")
	if !hasConsumers(streams, "ORDERS", 1) {
		t.Fatalf("after service remove: %+v", streams)
	}

	// pub and sub, with the JSON of every command in snake_case (d.json checks it).
	var acks []pubAckJSON
	d.json(&acks, "pub", "--as", "shop/checkout", "orders.created", `{"id":1}`)
	if len(acks) != 1 || acks[0].Stream != "ORDERS" || acks[0].Sequence != 1 {
		t.Fatalf("pub --json: %+v", acks)
	}
	// A subject outside the card: exit 4. An invalid subject: exit 2 (docs/CLI.md).
	d.fails(d.sh(nil, "pub", "--as", "shop/checkout", "payments.x", "x"), exitRefused, "not allowed")
	d.fails(d.sh(nil, "pub", "--as", "shop/checkout", "orders..x", "x"), exitUsage)
	// A subject with a reader but no stream: said as such, fast, exit 3.
	d.fails(d.sh(nil, "pub", "--as", "shop/checkout", "alerts.disk", "x"), exitNotFound, "no stream stores this subject", "stream add")

	// Wrong durable, wrong stream, another service's durable: the server's reason and the
	// durables the service may use, within 2 s.
	for _, args := range [][]string{{"ORDERS", "billin"}, {"ORDER", "billing"}, {"ORDERS", "shipping"}} {
		d.fails(d.sh(nil, append([]string{"sub", "--as", "shop/billing", "--timeout", "10s"}, args...)...), exitRefused,
			"Permissions Violation", "shop/billing may use: ORDERS billing")
	}
	out := d.ok("sub", "--as", "shop/billing", "ORDERS", "billing", "--count", "1", "--timeout", "20s")
	if !strings.Contains(out, "verified ") || !strings.Contains(out, `{"id":1}`) {
		t.Fatalf("sub: %s", out)
	}
	// --timeout with nothing received says so and exits 1.
	d.exits(d.sh(nil, "sub", "--as", "shop/billing", "ORDERS", "billing", "--timeout", "1s"), exitError, "no message received")

	// Admin creds for the stock tools: short-lived, audited.
	var ac map[string]any
	d.json(&ac, "admin", "creds", "shop", "--ttl", "10m")
	nc, err := nats.Connect(info.URL, nats.RootCAs(info.CAFile), nats.UserCredentials(ac["creds_path"].(string)), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A forged message before a valid one: sub reports the rejection on stderr with its reason.
	if _, err := js.Publish(ctx, "orders.created", []byte("\x01\x01forged")); err != nil {
		t.Fatal(err)
	}
	d.ok("pub", "--as", "shop/checkout", "orders.created", `{"id":2}`)
	r = d.sh(nil, "sub", "--as", "shop/billing", "ORDERS", "billing", "--count", "1", "--timeout", "20s")
	if r.code != 0 || !strings.Contains(r.stderr, "dead-lettered") || !strings.Contains(r.stderr, "reason=") || !strings.Contains(r.stdout, `{"id":2}`) {
		t.Fatalf("sub with a forged message: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// A payload with terminal escapes (any publisher's bytes are untrusted) is printed escaped.
	d.ok("pub", "--as", "shop/checkout", "orders.created", "\x1b[2J\x1b[31mfake line\n")
	out = d.ok("sub", "--as", "shop/billing", "ORDERS", "billing", "--count", "1", "--timeout", "20s")
	if strings.ContainsRune(out, 0x1b) || !strings.Contains(out, `\x1b[2J\x1b[31mfake line\x0a`) {
		t.Fatalf("sub printed an untrusted payload raw: %q", out)
	}
	audit := d.ok("audit", "tail", "shop", "--json")
	if !strings.Contains(audit, "sealbus.admin.creds_issued") {
		t.Fatalf("admin creds not audited: %s", audit)
	}

	// inspect names the services and verifies the envelope; a trailing newline and base64 (as
	// nats prints them) are fine.
	orders, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := orders.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "env.b64")
	if err := os.WriteFile(envFile, []byte(base64.StdEncoding.EncodeToString(raw.Data)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = d.ok("inspect", "--verify", envFile)
	if !strings.Contains(out, "(shop/checkout)") || !strings.Contains(out, "(shop/billing)") || !strings.Contains(out, "verified by shop/billing") {
		t.Fatalf("inspect --verify: %s", out)
	}
	nl := filepath.Join(t.TempDir(), "env.bin")
	if err := os.WriteFile(nl, append(raw.Data, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := d.ok("inspect", nl); !strings.Contains(out, "trailing newline") {
		t.Fatalf("inspect with a trailing newline: %s", out)
	}
	tampered := append([]byte(nil), raw.Data...)
	tampered[len(tampered)-1] ^= 1
	tf := filepath.Join(t.TempDir(), "tampered.bin")
	if err := os.WriteFile(tf, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	d.exits(d.sh(nil, "inspect", "--verify", tf), exitRefused, "does not verify") // opens the keystore: scrypt per entry

	// --server without --ca against the home's dev server, as a bare host:port: the dev CA.
	u, _ := url.Parse(info.URL)
	if r := d.sh(nil, "stream", "list", "shop", "--server", "localhost:"+u.Port()); r.code != 0 {
		t.Fatalf("--server host:port without --ca: %d %s", r.code, r.stderr)
	}
	// Another server without a CA it trusts: the x509 cause with a hint, exit 4.
	other := startForeignTLS(t)
	d.exits(d.sh(nil, "stream", "list", "shop", "--server", other), exitRefused, "--ca")

	// A nats context for a service.
	var nctx map[string]any
	d.json(&nctx, "service", "context", "shop", "billing")
	if nctx["inbox_prefix"] == "" || !strings.HasSuffix(nctx["path"].(string), "shop-billing.json") {
		t.Fatalf("service context: %v", nctx)
	}

	// Completion knows services, streams and durables, without the passphrase.
	if out := d.sh(noPass, "__complete", "service", "show", "shop", "").stdout; !strings.Contains(out, "billing") || !strings.Contains(out, "checkout") {
		t.Fatalf("service completion: %s", out)
	}
	if out := d.sh(noPass, "__complete", "stream", "remove", "shop", "").stdout; !strings.Contains(out, "ORDERS") {
		t.Fatalf("stream completion: %s", out)
	}
	if out := d.sh(noPass, "__complete", "sub", "--as", "shop/billing", "ORDERS", "").stdout; !strings.Contains(out, "billing") {
		t.Fatalf("durable completion: %s", out)
	}

	// stream and account removal are refused while in use, then done.
	d.exits(d.sh(nil, "stream", "remove", "shop", "ORDERS"), exitError, "in use", "billing")
	d.exits(d.sh(nil, "account", "remove", "shop"), exitError, "in use", "service billing")

	// The passphrase changes atomically; the old one stops working.
	d.exits(d.sh(nil, "passphrase", "change"), exitUsage, "no new passphrase")
	d.exits(d.sh([]string{"SEALBUS_NEW_PASSPHRASE=short"}, "passphrase", "change"), exitUsage, "passphrase too short")
	if r := d.sh([]string{"SEALBUS_NEW_PASSPHRASE=a whole new passphrase here"}, "passphrase", "change"); r.code != 0 {
		t.Fatalf("passphrase change: %d %s", r.code, r.stderr)
	}
	d.exits(d.sh(nil, "account", "add", "bank"), exitRefused, "passphrase")
	d.env = append(d.env, "SEALBUS_PASSPHRASE=a whole new passphrase here")
	d.ok("account", "add", "bank", "--push")

	// The dev server stops cleanly and leaves the next start free.
	if err := devProc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = devProc.Wait()
	if _, err := os.Stat(filepath.Join(d.home, "dev", "server.json")); !os.IsNotExist(err) {
		t.Fatal("server.json left after a clean stop")
	}
	d.exits(d.sh(nil, "stream", "list", "shop"), exitError, "no `sealbus dev` running")
}

func listServices(t *testing.T, d *day) []serviceJSON {
	t.Helper()
	var out []serviceJSON
	d.json(&out, "service", "list", "shop")
	return out
}

func hasConsumers(streams []streamJSON, name string, n int) bool {
	for _, s := range streams {
		if s.Name == name {
			return s.Consumers == n
		}
	}
	return false
}

// startForeignTLS starts a TLS server on 127.0.0.1 whose CA sealbus was not told about.
func startForeignTLS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := devserver.EnsureTLS(dir, devserver.LoopbackHosts); err != nil {
		t.Fatal(err)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("foreign server not ready")
	}
	return ns.Addr().String()
}

// TestCrossAccountExampleFollowedLiterally runs the set-up commands of examples/crossaccount's
// documentation, exactly as written, against `sealbus dev`, then checks a sealed message
// crosses from shop to bank's ledger.
func TestCrossAccountExampleFollowedLiterally(t *testing.T) {
	cleanEnv(t)
	src, err := os.ReadFile("../../examples/crossaccount/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var steps [][]string
	for _, line := range strings.Split(string(src), "\n") {
		cmd, ok := strings.CutPrefix(line, "//\tsealbus ")
		if !ok {
			continue
		}
		for _, part := range strings.Split("sealbus "+cmd, "&&") {
			words := shellWords(strings.TrimSpace(part))
			if len(words) == 0 || words[0] != "sealbus" {
				t.Fatalf("not a sealbus command: %q", part)
			}
			steps = append(steps, words[1:])
		}
	}
	if len(steps) < 7 {
		t.Fatalf("found %d set-up commands in the example's documentation", len(steps))
	}
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	startDev(t, home)
	for _, s := range steps {
		ok(t, home, s...)
	}
	ok(t, home, "pub", "--as", "shop/checkout", "orders.public.eu.1", "crosses")
	out := ok(t, home, "sub", "--as", "bank/ledger", "SHOPFEED", "ledger", "--count", "1", "--timeout", "20s")
	if !strings.Contains(out, "from checkout") || !strings.Contains(out, "crosses") {
		t.Fatalf("ledger: %s", out)
	}
}

// shellWords splits a command line the way a shell would for these examples: on spaces,
// with single-quoted words kept whole.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, any := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			in, any = !in, true
		case r == ' ' && !in:
			if any || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			any = false
		default:
			cur.WriteRune(r)
		}
	}
	if any || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// TestREADMEFollowedLiterally runs the operator commands of README.md's "Using it" block as
// written (the passphrase from the environment, `sealbus dev &` as a background server), and
// checks that README says bin/ is not on PATH.
func TestREADMEFollowedLiterally(t *testing.T) {
	cleanEnv(t)
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(src)
	if !strings.Contains(readme, "**`bin/` is not on your `PATH`**") || !strings.Contains(readme, "go run ./examples/publisher") {
		t.Fatal("README no longer says bin/ is not on PATH or how to run the examples")
	}
	_, block, _ := strings.Cut(readme, "Then, with a dev server of your own:\n\n```sh\n")
	block, _, _ = strings.Cut(block, "```")
	home := t.TempDir()
	t.Setenv("SEALBUS_PASSPHRASE", "correct horse battery staple")
	ran := 0
	for _, line := range strings.Split(block, "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		cmd = strings.TrimSpace(cmd)
		if !strings.HasPrefix(cmd, "sealbus ") {
			continue
		}
		words := shellWords(cmd)[1:]
		if words[len(words)-1] == "&" {
			startDev(t, home)
			continue
		}
		ok(t, home, words...)
		ran++
	}
	if ran < 8 {
		t.Fatalf("ran %d README commands", ran)
	}
}

// cardOf returns a service's identity card from the keystore (public, no passphrase).
func cardOf(t *testing.T, d *day, account, service string) string {
	t.Helper()
	var show struct {
		UserKey string `json:"user_key"`
	}
	d.json(&show, "service", "show", account, service)
	ks, err := accounts.OpenKeystoreReadOnly(d.home)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	svc, err := ks.LoadService(account, service)
	if err != nil {
		t.Fatal(err)
	}
	return svc.Card
}

// TestDevGoesOnPastABadEntry: an account whose keystore entry cannot be loaded is reported by
// `sealbus dev`, which serves the other accounts.
func TestDevGoesOnPastABadEntry(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	ok(t, home, "account", "add", "bank")
	if err := os.WriteFile(filepath.Join(home, "accounts", "bank", "account.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	startDev(t, home)
	ok(t, home, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	r := sb(t, home, "push", "bank")
	if r.code != exitError || !strings.Contains(r.stderr, "pushing bank") {
		t.Fatalf("push of the bad entry: %d %s", r.code, r.stderr)
	}
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "sealbus: error: ") {
			return l
		}
	}
	return s
}
