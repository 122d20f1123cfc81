package natstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

func TestStartServerOperatorModeTLS(t *testing.T) {
	s := StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if !strings.HasPrefix(s.URL, "tls://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL)
	}
	if _, err := s.AddAccount(ctx, "A", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStream(ctx, "A", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	creds, err := s.AddService(ctx, "A", accounts.ServiceSpec{
		Name: "shipping", Subscribe: []string{"orders.>"}, Publish: []string{"orders.shipped"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "shipping"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	// The service connects over TLS with its creds file and may publish on its subject.
	nc, err := nats.Connect(s.URL, nats.RootCAs(s.CAFile()), nats.UserCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("server does not announce TLS as required")
	}
	if got := nc.ConnectedServerName(); got != "nats" {
		t.Errorf("connected to %q", got)
	}

	// The operator's admin sees the stream, the consumer, and the account's sealbus streams.
	anc, err := s.AdminConn(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	js, _ := jetstream.New(anc)
	for _, name := range []string{"ORDERS", accounts.DLQStream, accounts.AuditStream, accounts.DirectoryView} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	if _, err := js.Consumer(ctx, "ORDERS", "shipping"); err != nil {
		t.Errorf("consumer: %v", err)
	}

	// JetStream storage is encrypted: the server says so, and a marker published in plaintext
	// is nowhere in the stream's message block on disk.
	logs, err := s.Node.Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`Encryption:\s+AES-GCM`).MatchString(logs) {
		t.Error("server log does not report AES-GCM storage encryption (the rendered default)")
	}
	marker := []byte("natstest-plaintext-marker-7f3a9c")
	if _, err := js.Publish(ctx, "orders.created", marker); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Account("A")
	block := fmt.Sprintf("%s/jetstream/%s/streams/ORDERS/msgs/1.blk", StoreDir, a.PublicKey())
	rc, err := s.Node.ctr.CopyFileFromContainer(ctx, block)
	if err != nil {
		t.Fatalf("reading %s: %v", block, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		t.Fatal("empty message block")
	}
	if bytes.Contains(data, marker) {
		t.Error("message block holds the payload in plaintext")
	}
}

func TestStartServerMTLS(t *testing.T) {
	s := StartServer(t, WithMTLS())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.AddAccount(ctx, "A", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	creds, err := s.AddService(ctx, "A", accounts.ServiceSpec{Name: "svc", Publish: []string{"a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.URL, nats.RootCAs(s.CAFile()), nats.UserCredentials(creds), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Fatal("connection without a client certificate accepted")
	}
	cert, key, err := s.ClientCert("svc")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.URL, nats.RootCAs(s.CAFile()), nats.ClientCert(cert, key), nats.UserCredentials(creds))
	if err != nil {
		t.Fatalf("connection with a client certificate: %v", err)
	}
	nc.Close()
}

func TestStartClusterR3SurvivesANodeStop(t *testing.T) {
	c := StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.AddAccount(ctx, "A", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := c.AddStream(ctx, "A", operator.StreamSpec{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	nc, err := c.AdminConn(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Nodes do not advertise their in-network addresses to clients.
	if ds := nc.DiscoveredServers(); len(ds) != 0 {
		t.Errorf("client discovered %v", ds)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v", info.Cluster)
	}
	for i := range 50 {
		if _, err := js.Publish(ctx, "r3.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := js.Publish(ctx, "r3.x", []byte{byte(i)}, jetstream.WithRetryAttempts(20)); err != nil {
			t.Fatalf("publish with one node down: %v", err)
		}
	}
	if err := c.Start(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// The restarted node catches up: ask it directly for the stream state.
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = js.Stream(ctx, "R3")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().State.Msgs; got != 100 {
		t.Fatalf("stream holds %d messages, want 100", got)
	}
	// Routes, explicit and learned from gossip, verify the node certificates: no handshake
	// errors before or after the restart.
	for _, n := range c.Nodes {
		logs, err := n.Logs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(logs, "TLS route handshake error"); i >= 0 {
			t.Errorf("%s: %s", n.Name, lastLines(logs[i:], 1))
		}
	}
}
