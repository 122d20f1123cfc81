package natstest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNATSImageIsBuiltOnceAndReused(t *testing.T) {
	RequireDocker(t)
	ctx := context.Background()
	tag, err := NATSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	version, err := NATSServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if want := NATSImageRepo + ":" + version; tag != want {
		t.Fatalf("tag %q, want %q", tag, want)
	}
	p, err := dockerProvider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.Client().ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Config.Labels["org.opencontainers.image.version"]; got != version {
		t.Errorf("image version label %q, want %q", got, version)
	}
	if len(first.Config.Entrypoint) != 1 || first.Config.Entrypoint[0] != "/nats-server" {
		t.Errorf("entrypoint %v", first.Config.Entrypoint)
	}
	// A fresh lookup (as in the next test process) finds the kept image instead of building.
	natsMu.Lock()
	natsImage = ""
	natsMu.Unlock()
	again, err := NATSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Client().ImageInspect(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != second.ID {
		t.Errorf("image rebuilt: %s then %s", first.ID, second.ID)
	}
}

// plainConfig is a minimal non-operator configuration: enough to test the container plumbing
// (ports, restarts, pauses) independently of sealbus identities.
const plainConfig = `server_name: plain
listen: 0.0.0.0:4222
http: 0.0.0.0:8222
jetstream { store_dir: "/data/jetstream" }
`

func TestNodeStopStartPauseKeepsStore(t *testing.T) {
	RequireDocker(t)
	holdRunLock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	image, err := NATSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(t, ctx, nodeSpec{Image: image, Name: "plain", Config: []byte(plainConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.URL, "nats://127.0.0.1:") || !strings.HasPrefix(n.MonitorURL, "http://127.0.0.1:") {
		t.Fatalf("URLs %s %s", n.URL, n.MonitorURL)
	}

	// Every published port is bound to the loopback address only.
	info, err := n.ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.HostConfig.PortBindings) != 2 {
		t.Fatalf("port bindings %v", info.HostConfig.PortBindings)
	}
	for port, bs := range info.HostConfig.PortBindings {
		for _, b := range bs {
			if b.HostIP.String() != "127.0.0.1" {
				t.Errorf("port %s bound on %s", port, b.HostIP)
			}
		}
	}

	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLUMB", Subjects: []string{"plumb.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "plumb.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}

	// Stop and start: same URL, same store.
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Healthy(ctx) == nil {
		t.Fatal("stopped node reports healthy")
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ctx, nc)
	st, err := js.Stream(ctx, "PLUMB")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().State.Msgs; got != 10 {
		t.Fatalf("after restart the stream holds %d messages, want 10", got)
	}

	// Pause: nothing answers; unpause: it answers again.
	if err := n.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	_, err = js.Publish(pctx, "plumb.x", []byte("paused"))
	pcancel()
	if err == nil {
		t.Fatal("publish acknowledged by a paused server")
	}
	if err := n.Unpause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "plumb.x", []byte("resumed"), jetstream.WithRetryAttempts(50)); err != nil {
		t.Fatal(err)
	}

	// Kill (SIGKILL) and start: the store survives a crash of the container.
	if err := n.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ctx, nc)
	st, err = js.Stream(ctx, "PLUMB")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().State.Msgs; got < 11 {
		t.Fatalf("after kill the stream holds %d messages, want at least 11", got)
	}
}

func waitConnected(t *testing.T, ctx context.Context, nc *nats.Conn) {
	t.Helper()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			t.Fatalf("client did not reconnect: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recordingTB records Skipf and Fatalf instead of stopping the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Skipf(f string, a ...any)  { r.skipped = fmt.Sprintf(f, a...) }
func (r *recordingTB) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }

func TestMissingDockerSkipsOnlyOutsideCI(t *testing.T) {
	missing := fmt.Errorf("%w: connection refused", ErrNoDocker)

	t.Setenv("CI", "true")
	var r recordingTB
	dockerMissing(&r, missing)
	if r.failed == "" || r.skipped != "" {
		t.Fatalf("under CI: failed=%q skipped=%q; want a failure", r.failed, r.skipped)
	}

	os.Unsetenv("CI") // t.Setenv restores it after the test
	r = recordingTB{}
	dockerMissing(&r, missing)
	if r.skipped == "" || r.failed != "" || !strings.Contains(r.skipped, "connection refused") {
		t.Fatalf("without CI: failed=%q skipped=%q; want a skip with the reason", r.failed, r.skipped)
	}
}

func TestTestcontainersDefaultsRespectTheEnvironment(t *testing.T) {
	t.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.2")
	os.Unsetenv("TESTCONTAINERS_RYUK_DISABLED")
	setTestcontainersDefaults()
	if got := os.Getenv("TESTCONTAINERS_HOST_OVERRIDE"); got != "127.0.0.2" {
		t.Errorf("a set variable was overwritten: %q", got)
	}
	if got := os.Getenv("TESTCONTAINERS_RYUK_DISABLED"); got != "true" {
		t.Errorf("an unset variable was not defaulted: %q", got)
	}
}

// TestNodeDisconnectReconnect: a node cut off its network (docker network disconnect) goes
// silent for clients on the host too (its monitoring endpoint and a client request time out)
// while it keeps running; reconnected under its alias, it answers again on the same URLs with
// its store intact.
func TestNodeDisconnectReconnect(t *testing.T) {
	RequireDocker(t)
	holdRunLock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	image, err := NATSImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	netName, err := newNetwork(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(t, ctx, nodeSpec{Image: image, Name: "plain", Network: netName, Config: []byte(plainConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.URL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PART", Subjects: []string{"part.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "part.x", []byte("before")); err != nil {
		t.Fatal(err)
	}

	if err := n.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if n.State() != Partitioned {
		t.Fatalf("state %v", n.State())
	}
	if n.Healthy(ctx) == nil {
		t.Fatal("a disconnected node answers its monitoring endpoint")
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = js.Publish(pctx, "part.x", []byte("during"))
	pcancel()
	if err == nil {
		t.Fatal("a disconnected node acknowledged a publish")
	}
	st, err := n.ctr.State(ctx)
	if err != nil || !st.Running {
		t.Fatalf("the disconnected node is not running: %+v %v", st, err)
	}

	if err := n.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, ctx, nc)
	var stream jetstream.Stream
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		stream, err = js.Stream(rctx, "PART")
		rcancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
	if got := stream.CachedInfo().State.Msgs; got < 1 {
		t.Fatalf("after reconnecting the stream holds %d messages", got)
	}
}
