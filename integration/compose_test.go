package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
)

// composeProject runs docker compose on deploy/compose.yaml as one project of its own.
type composeProject struct {
	t    *testing.T
	cmd  []string
	file string
	name string
	env  []string
}

func (p *composeProject) run(ctx context.Context, args ...string) (string, error) {
	full := append(append(append([]string{}, p.cmd[1:]...), "-p", p.name, "-f", p.file), args...)
	c := exec.CommandContext(ctx, p.cmd[0], full...)
	c.Env = append(os.Environ(), p.env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s\n%s", p.cmd[0], strings.Join(full, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (p *composeProject) must(ctx context.Context, args ...string) string {
	p.t.Helper()
	out, err := p.run(ctx, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// sealbus runs the sealbus image as the project's tool container.
func (p *composeProject) sealbus(ctx context.Context, args ...string) (string, error) {
	return p.run(ctx, append([]string{"run", "--rm", "-T", "sealbus"}, args...)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestComposeDeployment brings up deploy/compose.yaml as docs/DEPLOY.md walks through it:
// `make image` builds the sealbus image FROM scratch, the sealbus tool container creates the
// keystore and renders a 3-node cluster's configurations (`config server --cluster`), the
// three nodes form a JetStream cluster, the tool pushes the account and creates an R3 stream
// and two services, and the example publisher and consumer containers exchange sealed
// messages: the consumer verifies every message the publisher sent. Then it tears it down.
func TestComposeDeployment(t *testing.T) {
	compose := natstest.Compose(t)
	natstest.HoldRunLock(t)
	ctx := testContext(t, 15*time.Minute)
	root, err := natstest.RootDir()
	if err != nil {
		t.Fatal(err)
	}

	// make image, as a user runs it.
	mk := exec.CommandContext(ctx, "make", "-C", root, "image")
	out, err := mk.CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`built image (sealbus/sealbus:\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("make image printed no tag:\n%s", out)
	}
	sealbusImage := string(m[1])
	natsImage, err := natstest.NATSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	examplesImage, err := natstest.ExamplesImage(ctx)
	if err != nil {
		t.Fatal(err)
	}

	state := t.TempDir()
	p := &composeProject{
		t: t, cmd: compose, file: filepath.Join(root, "deploy", "compose.yaml"),
		name: fmt.Sprintf("sealbustest%d", os.Getpid()),
		env: []string{
			"SEALBUS_IMAGE=" + sealbusImage, "NATS_IMAGE=" + natsImage, "EXAMPLES_IMAGE=" + examplesImage,
			"SEALBUS_STATE=" + state, "SEALBUS_PASSPHRASE=compose test passphrase",
			fmt.Sprintf("N1_PORT=%d", freePort(t)), fmt.Sprintf("N2_PORT=%d", freePort(t)), fmt.Sprintf("N3_PORT=%d", freePort(t)),
			"SEALBUS_OPERATOR=pending", // replaced once the operator exists
		},
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := p.run(dctx, "--profile", "apps", "--profile", "tools", "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Logf("compose down: %v %s", err, out)
		}
	})

	for _, args := range [][]string{
		{"init", "--name", "compose"},
		{"account", "add", "shop"},
		{"config", "server", "--cluster", "sealbus", "--nodes", "n1,n2,n3", "--host", "0.0.0.0", "--dir", "/state/server", "--out-dir", "/state/server"},
	} {
		if _, err := p.sealbus(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	var op struct {
		PublicKey string `json:"public_key"`
	}
	opOut, err := p.sealbus(ctx, "operator", "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(opOut), &op); err != nil {
		t.Fatalf("operator show: %v: %s", err, opOut)
	}
	p.env = append(p.env, "SEALBUS_OPERATOR="+op.PublicKey)

	p.must(ctx, "up", "-d", "n1", "n2", "n3")
	// The cluster elects its JetStream meta leader within seconds; push and the R3 stream wait.
	var last error
	if err := poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		if _, err := p.sealbus(ctx, "push"); err != nil {
			last = err
			return err
		}
		_, err := p.sealbus(ctx, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>", "--replicas", "3")
		last = err
		return err
	}); err != nil {
		logs, _ := p.run(ctx, "logs", "--tail", "30")
		t.Fatalf("cluster not ready: %v\n%s", last, logs)
	}
	for _, args := range [][]string{
		{"service", "add", "shop", "checkout", "--pub", "orders.>", "--push"},
		{"service", "add", "shop", "billing", "--sub", "orders.>", "--consumer", "ORDERS:billing", "--push"},
		{"service", "creds", "shop", "checkout", "--out", "/state/apps/checkout.creds"},
		{"service", "creds", "shop", "billing", "--out", "/state/apps/billing.creds"},
	} {
		if _, err := p.sealbus(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	var streams []struct {
		Name     string `json:"name"`
		Replicas int    `json:"replicas"`
	}
	sl, err := p.sealbus(ctx, "stream", "list", "shop", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(sl), &streams); err != nil {
		t.Fatalf("stream list: %v %s", err, sl)
	}
	r3 := false
	for _, s := range streams {
		r3 = r3 || s.Name == "ORDERS" && s.Replicas == 3
	}
	if !r3 {
		t.Fatalf("no R3 ORDERS stream: %s", sl)
	}

	pubOut := p.must(ctx, "run", "--rm", "-T", "publisher")
	published := regexp.MustCompile(`published ([0-9a-f]{32}) on orders\.eu\.new`).FindAllStringSubmatch(pubOut, -1)
	if len(published) != 10 {
		t.Fatalf("publisher printed %d publishes:\n%s", len(published), pubOut)
	}
	conOut := p.must(ctx, "run", "--rm", "-T", "consumer")
	for _, pm := range published {
		if want := "verified " + pm[1] + " from checkout on orders.eu.new"; !strings.Contains(conOut, want) {
			t.Errorf("consumer output lacks %q", want)
		}
	}
	if n := strings.Count(conOut, "verified "); n != 10 {
		t.Errorf("consumer verified %d messages, want 10:\n%s", n, conOut)
	}
	t.Logf("compose project %s: %d messages published through n1 and verified through n2 on an R3 stream", p.name, len(published))
}
