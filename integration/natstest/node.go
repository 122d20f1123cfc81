package natstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
)

// Paths inside a server container.
const (
	ConfigPath  = "/etc/nats/nats-server.conf" // the rendered configuration (0600)
	CertDir     = "/etc/nats/certs"            // CA, node certificate and key
	StoreDir    = "/data/jetstream"            // JetStream store (kept across Stop and Start)
	ResolverDir = "/data/resolver"             // full account resolver
)

// Ports inside a server container. Only the client and monitoring ports are published, on
// 127.0.0.1; the cluster port is reachable on the test's network only.
const (
	ClientPort  = 4222
	ClusterPort = 6222
	MonitorPort = 8222
)

const (
	stopTimeout  = 10 * time.Second // graceful stop before SIGKILL
	readyTimeout = 90 * time.Second // longest wait for /healthz
)

// NodeState is what a node is doing as far as the test has driven it.
type NodeState int

// Node states.
const (
	Running NodeState = iota
	Stopped
	Paused
	Partitioned // cut off its Docker network (Node.Disconnect)
)

func (s NodeState) String() string {
	switch s {
	case Running:
		return "running"
	case Stopped:
		return "stopped"
	case Paused:
		return "paused"
	case Partitioned:
		return "partitioned"
	}
	return "unknown"
}

// Node is one nats-server container. Its client and monitoring ports are published on fixed
// 127.0.0.1 ports chosen when it is created, so its URL stays valid across Stop and Start and a
// client reconnects to the same address. Its filesystem, and so its JetStream store, survives
// Stop and Start; it is removed in t.Cleanup.
type Node struct {
	// Name is the node's server name and its host name (alias) on the test's Docker network.
	Name string
	// URL is the client URL on the host: tls://127.0.0.1:<port> (nats:// without TLS).
	URL string
	// InternalURL is the client URL for containers on the same Docker network.
	InternalURL string
	// MonitorURL is the HTTP monitoring endpoint on the host: http://127.0.0.1:<port>.
	MonitorURL string

	ctr     *testcontainers.DockerContainer
	prov    *testcontainers.DockerProvider
	network string // the Docker network it is on, "" when none
	mu      sync.Mutex
	state   NodeState
}

// fileSpec is a file copied into a container before it starts.
type fileSpec struct {
	Content []byte
	Mode    int64
}

// nodeSpec describes a server container to create.
type nodeSpec struct {
	Image   string
	Name    string
	Network string
	Config  []byte
	Files   map[string]fileSpec
	TLS     bool
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1 and releases them for Docker to bind.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natstest: reserving a port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newNetwork creates a bridge network for one test and removes it in t.Cleanup (after the
// containers on it, which are registered later and so cleaned up first).
func newNetwork(t testing.TB, ctx context.Context) (string, error) {
	nw, err := network.New(ctx)
	if err != nil {
		return "", fmt.Errorf("natstest: creating network: %w", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			t.Logf("natstest: removing network %s: %v", nw.Name, err)
		}
	})
	return nw.Name, nil
}

// startNode creates and starts a server container without waiting for it to be ready.
func startNode(t testing.TB, ctx context.Context, spec nodeSpec) (*Node, error) {
	p, err := dockerProvider(ctx)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		n, err := createNode(t, ctx, p, spec)
		if err == nil {
			return n, nil
		}
		lastErr = err
		// Another process may have taken a reserved port between release and bind: retry
		// with new ports; anything else is final.
		if !strings.Contains(err.Error(), "port is already allocated") && !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func createNode(t testing.TB, ctx context.Context, p *testcontainers.DockerProvider, spec nodeSpec) (*Node, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	clientPort, monitorPort := ports[0], ports[1]
	files := []testcontainers.ContainerFile{{
		Reader: bytes.NewReader(spec.Config), ContainerFilePath: ConfigPath, FileMode: 0o600,
	}}
	for path, f := range spec.Files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o600
		}
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(f.Content), ContainerFilePath: path, FileMode: mode})
	}
	clientKey := mobynet.MustParsePort(fmt.Sprintf("%d/tcp", ClientPort))
	monitorKey := mobynet.MustParsePort(fmt.Sprintf("%d/tcp", MonitorPort))
	lo := loopback()
	req := testcontainers.ContainerRequest{
		Image:        spec.Image,
		Name:         "",
		Cmd:          []string{"-c", ConfigPath},
		ExposedPorts: []string{clientKey.String(), monitorKey.String()},
		Files:        files,
		Labels:       map[string]string{"org.sealbus.natstest": spec.Name},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = mobynet.PortMap{
				clientKey:  {{HostIP: lo, HostPort: strconv.Itoa(clientPort)}},
				monitorKey: {{HostIP: lo, HostPort: strconv.Itoa(monitorPort)}},
			}
		},
	}
	if spec.Network != "" {
		req.Networks = []string{spec.Network}
		req.NetworkAliases = map[string][]string{spec.Network: {spec.Name}}
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		ProviderType:     testcontainers.ProviderDocker,
		Logger:           tclog.TestLogger(t),
		Started:          true,
	})
	if ctr != nil {
		registerCleanup(t, ctr)
	}
	if err != nil {
		return nil, fmt.Errorf("natstest: starting %s: %w", spec.Name, err)
	}
	scheme := "nats"
	if spec.TLS {
		scheme = "tls"
	}
	dc, ok := ctr.(*testcontainers.DockerContainer)
	if !ok {
		return nil, fmt.Errorf("natstest: unexpected container type %T", ctr)
	}
	n := &Node{
		Name:        spec.Name,
		URL:         fmt.Sprintf("%s://127.0.0.1:%d", scheme, clientPort),
		InternalURL: fmt.Sprintf("%s://%s:%d", scheme, spec.Name, ClientPort),
		MonitorURL:  fmt.Sprintf("http://127.0.0.1:%d", monitorPort),
		ctr:         dc,
		prov:        p,
		network:     spec.Network,
	}
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if logs, err := n.Logs(ctx); err == nil {
				t.Logf("natstest: last log lines of %s:\n%s", n.Name, lastLines(logs, 60))
			}
		}
		// A paused container cannot be stopped cleanly; resume it before termination.
		if n.State() == Paused {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Unpause(ctx)
		}
	})
	return n, nil
}

// registerCleanup terminates ctr (and its anonymous volumes) when the test ends.
func registerCleanup(t testing.TB, ctr testcontainers.Container) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ctr.Terminate(ctx, testcontainers.StopTimeout(2*time.Second)); err != nil {
			t.Logf("natstest: terminating container %s: %v", ctr.GetContainerID(), err)
		}
	})
}

func loopback() netip.Addr { return netip.MustParseAddr("127.0.0.1") }

// ContainerID returns the Docker container id of the node.
func (n *Node) ContainerID() string { return n.ctr.GetContainerID() }

// State returns the state the test last put the node in.
func (n *Node) State() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

func (n *Node) setState(s NodeState) {
	n.mu.Lock()
	n.state = s
	n.mu.Unlock()
}

// Stop stops the node gracefully (SIGTERM, then SIGKILL after 10 seconds). Its filesystem and
// JetStream store are kept for Start.
func (n *Node) Stop(ctx context.Context) error {
	d := stopTimeout
	if err := n.ctr.Stop(ctx, &d); err != nil {
		return fmt.Errorf("natstest: stopping %s: %w", n.Name, err)
	}
	n.setState(Stopped)
	return nil
}

// Kill stops the node abruptly with SIGKILL, as a crash would. Data the server had written
// but not synced stays in the host's page cache, so only a host crash could lose it.
func (n *Node) Kill(ctx context.Context) error {
	if _, err := n.prov.Client().ContainerKill(ctx, n.ContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("natstest: killing %s: %w", n.Name, err)
	}
	// Wait until the engine reports the container exited, so Start does not race the kill.
	for {
		st, err := n.ctr.State(ctx)
		if err != nil {
			return fmt.Errorf("natstest: killing %s: %w", n.Name, err)
		}
		if !st.Running {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natstest: killing %s: %w", n.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.setState(Stopped)
	return nil
}

// Start starts a stopped node and waits until it reports healthy (see [Node.WaitReady]).
func (n *Node) Start(ctx context.Context) error {
	if err := n.ctr.Start(ctx); err != nil {
		return fmt.Errorf("natstest: starting %s: %w", n.Name, err)
	}
	n.setState(Running)
	return n.WaitReady(ctx)
}

// Pause freezes every process of the node (docker pause): connections stay open but nothing
// answers, as with a hung machine or a network partition.
func (n *Node) Pause(ctx context.Context) error {
	if _, err := n.prov.Client().ContainerPause(ctx, n.ContainerID(), client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("natstest: pausing %s: %w", n.Name, err)
	}
	n.setState(Paused)
	return nil
}

// Unpause resumes a paused node.
func (n *Node) Unpause(ctx context.Context) error {
	if _, err := n.prov.Client().ContainerUnpause(ctx, n.ContainerID(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("natstest: unpausing %s: %w", n.Name, err)
	}
	n.setState(Running)
	return nil
}

// Disconnect cuts the node off its Docker network (docker network disconnect): its routes to
// the other nodes and every client connection through that network, including the host's
// published port, go silent at once, as in a network partition; the process keeps running
// and keeps its connections open. Reconnect heals it.
func (n *Node) Disconnect(ctx context.Context) error {
	if n.network == "" {
		return fmt.Errorf("%w: %s is on no network of its own", ErrInvalidOption, n.Name)
	}
	if _, err := n.prov.Client().NetworkDisconnect(ctx, n.network, client.NetworkDisconnectOptions{Container: n.ContainerID(), Force: true}); err != nil {
		return fmt.Errorf("natstest: disconnecting %s: %w", n.Name, err)
	}
	n.setState(Partitioned)
	return nil
}

// Reconnect attaches a disconnected node to its network again under its alias, so the other
// nodes and clients find it by name and on its published port again.
func (n *Node) Reconnect(ctx context.Context) error {
	if _, err := n.prov.Client().NetworkConnect(ctx, n.network, client.NetworkConnectOptions{
		Container:      n.ContainerID(),
		EndpointConfig: &mobynet.EndpointSettings{Aliases: []string{n.Name}},
	}); err != nil {
		return fmt.Errorf("natstest: reconnecting %s: %w", n.Name, err)
	}
	n.setState(Running)
	return nil
}

// Healthy reports whether the node's /healthz endpoint answers OK: the server accepts clients
// and, with JetStream, its JetStream is enabled and current (in a cluster: it has a meta
// leader and its streams and consumers have caught up).
func (n *Node) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MonitorURL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitReady polls /healthz until the node is healthy, for at most 90 seconds.
func (n *Node) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		if last = n.Healthy(ctx); last == nil {
			return nil
		}
		if st, err := n.ctr.State(ctx); err == nil && !st.Running && !st.Paused {
			logs, _ := n.Logs(context.Background())
			return fmt.Errorf("%w: %s exited (code %d): %s", ErrNotReady, n.Name, st.ExitCode, lastLines(logs, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %v", ErrNotReady, n.Name, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logs returns the node's output so far (nats-server logs to standard error).
func (n *Node) Logs(ctx context.Context) (string, error) {
	rc, err := n.ctr.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("natstest: logs of %s: %w", n.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil && !errors.Is(err, io.EOF) {
		return string(b), fmt.Errorf("natstest: logs of %s: %w", n.Name, err)
	}
	return string(b), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
