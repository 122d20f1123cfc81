package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const natsServerModule = "github.com/nats-io/nats-server/v2"

var buildOnce sync.Mutex

// natsServerBinary builds the nats-server of the version go.mod pins, once per machine, into
// the user cache directory (os.UserCacheDir()/sealbus/nats-server-<version>).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Lock()
	defer buildOnce.Unlock()
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == natsServerModule {
				version = d.Version
				if d.Replace != nil {
					version = d.Replace.Version
				}
			}
		}
	}
	if version == "" {
		t.Fatal("nats-server version not found in the build info")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sealbus", "nats-server-"+version)
	bin := filepath.Join(dir, "nats-server")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".build-"+strconv.Itoa(os.Getpid()))
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", tmp, natsServerModule)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building nats-server %s: %v\n%s", version, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built nats-server %s in %v", version, time.Since(start).Round(time.Second))
	return bin
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
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

// TestStockNATSServer runs a stock nats-server binary, built from the pinned module, with the
// output of `sealbus config server`, then provisions it with `sealbus push` and `stream add`
// and connects with generated creds over TLS.
func TestStockNATSServer(t *testing.T) {
	cleanEnv(t)
	bin := natsServerBinary(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	var svc serviceJSON
	okJSON(t, home, &svc, "service", "add", "shop", "billing", "--pub", "orders.created", "--sub", "orders.>", "--consumer", "ORDERS:billing")

	port := freePort(t)
	conf := filepath.Join(home, "nats.conf")
	ok(t, home, "config", "server", "--port", strconv.Itoa(port), "--out", conf)
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode: %v %v", fi, err)
	}
	cfgText, _ := os.ReadFile(conf)
	if !strings.Contains(string(cfgText), "127.0.0.1") {
		t.Fatal("config does not bind 127.0.0.1")
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	url := "tls://127.0.0.1:" + strconv.Itoa(port)
	ca := filepath.Join(home, "server", "tls", "ca.crt")
	t.Setenv("SEALBUS_URL", url)
	t.Setenv("SEALBUS_CA", ca)
	// Wait for the server: push until it succeeds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := sb(t, home, "push")
		if r.code == 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("nats-server exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("push to the stock server never succeeded: %s\nserver log:\n%s", r.stderr, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ok(t, home, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	out := ok(t, home, "push", "shop")
	if !strings.Contains(out, "ORDERS:billing created") {
		t.Fatalf("push did not create the durable: %s", out)
	}

	di := devInfo{URL: url, CAFile: ca}
	nc, err := connectCreds(t, di, svc.CredsPath)
	if err != nil {
		t.Fatalf("generated creds on the stock server: %v\n%s", err, logs.String())
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(ctx, "orders.created", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, "ORDERS", "billing")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if string(m.Data()) != "hello" {
			t.Fatalf("got %q", m.Data())
		}
		n++
		_ = m.Ack()
	}
	if n != 1 {
		t.Fatalf("fetched %d", n)
	}
	plaintextRefused(t, url)
}
