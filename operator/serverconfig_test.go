package operator

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/pki"
)

// testTLS writes a CA (internal/pki) and a certificate for 127.0.0.1 and localhost, usable by
// the server and its routes, and returns the paths of the certificate, key and CA files, and
// the CA pool.
func testTLS(t testing.TB, dir string) (certFile, keyFile, caFile string, pool *x509.CertPool) {
	t.Helper()
	ca, err := pki.NewCA("sealbus test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.IssuePeer([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	if err := pair.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return certFile, keyFile, caFile, pool
}

// configFixture is an operator and one account to render configurations for.
type configFixture struct {
	op  *accounts.Operator
	acc *accounts.Account
}

func newConfigFixture(t testing.TB) *configFixture {
	t.Helper()
	op, err := accounts.NewOperator("test-op")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := op.NewAccount("tenant-a", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return &configFixture{op: op, acc: acc}
}

func testServerConfig(t testing.TB, f *configFixture) ServerConfig {
	t.Helper()
	dir := t.TempDir()
	cert, key, ca, _ := testTLS(t, dir)
	return ServerConfig{
		Operator:    f.op,
		Accounts:    []*accounts.Account{f.acc},
		Port:        -1,
		StoreDir:    filepath.Join(dir, "js"),
		ResolverDir: filepath.Join(dir, "resolver"),
		StorageKey:  "0123456789abcdef0123456789abcdef",
		TLSCert:     cert,
		TLSKey:      key,
		TLSCA:       ca,
		ServerName:  "n1",
	}
}

func renderAndParse(t *testing.T, c ServerConfig) *server.Options {
	t.Helper()
	b, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "server.conf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the rendered config: %v\n%s", err, b)
	}
	return opts
}

func TestRenderParsesWithNATSServer(t *testing.T) {
	f := newConfigFixture(t)
	c := testServerConfig(t, f)
	c.Port = 4333
	c.VerifyClients = true
	c.HTTPPort = 8333
	opts := renderAndParse(t, c)

	if opts.Host != "127.0.0.1" || opts.Port != 4333 || opts.ServerName != "n1" {
		t.Fatalf("listen %s:%d name %s", opts.Host, opts.Port, opts.ServerName)
	}
	if opts.HTTPHost != "127.0.0.1" || opts.HTTPPort != 8333 {
		t.Fatalf("monitoring %s:%d", opts.HTTPHost, opts.HTTPPort)
	}
	if len(opts.TrustedOperators) != 1 || opts.TrustedOperators[0].Subject != f.op.PublicKey() {
		t.Fatal("trusted operator")
	}
	if opts.SystemAccount != f.op.System.PublicKey() {
		t.Fatalf("system account %s", opts.SystemAccount)
	}
	if _, ok := opts.AccountResolver.(*server.DirAccResolver); !ok {
		t.Fatalf("resolver %T, want the full directory resolver", opts.AccountResolver)
	}
	if !opts.JetStream || opts.StoreDir != c.StoreDir {
		t.Fatalf("jetstream %v store %s", opts.JetStream, opts.StoreDir)
	}
	if opts.JetStreamCipher != server.AES || opts.JetStreamKey != c.StorageKey {
		t.Fatalf("storage encryption cipher %v, want AES by default", opts.JetStreamCipher)
	}
	c.StorageCipher = "chacha"
	if got := renderAndParse(t, c).JetStreamCipher; got != server.ChaCha {
		t.Fatalf("storage cipher chacha renders as %v", got)
	}
	c.StorageCipher = ""
	if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || opts.AllowNonTLS {
		t.Fatalf("tls: config %v allow non-tls %v", opts.TLSConfig != nil, opts.AllowNonTLS)
	}
	c.VerifyClients = false
	if opts := renderAndParse(t, c); opts.TLSConfig == nil || opts.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert {
		t.Fatal("tls without client verification")
	}
}

// TestRenderStartsServer starts an in-process nats-server from the rendered
// configuration and checks the preloaded accounts are resolved with their
// JetStream limits.
func TestRenderStartsServer(t *testing.T) {
	f := newConfigFixture(t)
	c := testServerConfig(t, f)
	opts := renderAndParse(t, c)
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("server not ready")
	}
	for _, a := range []*accounts.Account{f.op.System, f.acc} {
		if got, err := opts.AccountResolver.Fetch(a.PublicKey()); err != nil || got != a.JWT {
			t.Fatalf("account %s not preloaded: %v", a.Name, err)
		}
	}
	acc, err := s.LookupAccount(f.acc.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !acc.JetStreamEnabled() {
		t.Fatal("tenant account has no JetStream")
	}
	if s.SystemAccount() == nil || s.SystemAccount().Name != f.op.System.PublicKey() {
		t.Fatal("system account not in use")
	}
}

func TestRenderClusterParses(t *testing.T) {
	f := newConfigFixture(t)
	c := testServerConfig(t, f)
	c.Host = "0.0.0.0"
	c.Cluster = &ClusterConfig{Name: "sealbus", Port: 6222, Routes: []string{"nats-route://n2:6222", "nats-route://n3:6222"}}
	opts := renderAndParse(t, c)
	if opts.Cluster.Name != "sealbus" || opts.Cluster.Port != 6222 || opts.Cluster.Host != "0.0.0.0" {
		t.Fatalf("cluster %+v", opts.Cluster)
	}
	if len(opts.Routes) != 2 || opts.Routes[1].Host != "n3:6222" {
		t.Fatalf("routes %v", opts.Routes)
	}
	if opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("routes must use TLS and verify the peer")
	}
	if opts.Cluster.NoAdvertise {
		t.Fatal("no_advertise by default")
	}
	c.Cluster.NoTLS = true
	c.Cluster.NoAdvertise = true
	c.Cluster.Advertise = "n1:6222"
	c.MaxPayload = 2 << 20
	opts = renderAndParse(t, c)
	if opts.Cluster.Advertise != "n1:6222" {
		t.Fatalf("cluster advertise %q, want n1:6222", opts.Cluster.Advertise)
	}
	if opts.MaxPayload != 2<<20 {
		t.Fatalf("max payload %d, want %d", opts.MaxPayload, 2<<20)
	}
	if opts.Cluster.TLSConfig != nil {
		t.Fatal("NoTLS still configures route TLS")
	}
	if !opts.Cluster.NoAdvertise {
		t.Fatal("NoAdvertise not rendered")
	}
}

func TestRenderRefusesInsecureOrIncomplete(t *testing.T) {
	f := newConfigFixture(t)
	base := testServerConfig(t, f)
	cases := map[string]func(c *ServerConfig){
		"no operator":        func(c *ServerConfig) { c.Operator = nil },
		"no tls cert":        func(c *ServerConfig) { c.TLSCert = "" },
		"no tls key":         func(c *ServerConfig) { c.TLSKey = "" },
		"no storage key":     func(c *ServerConfig) { c.StorageKey = "" },
		"short storage key":  func(c *ServerConfig) { c.StorageKey = "short" },
		"unknown cipher":     func(c *ServerConfig) { c.StorageCipher = "none" },
		"no store dir":       func(c *ServerConfig) { c.StoreDir = "" },
		"no resolver dir":    func(c *ServerConfig) { c.ResolverDir = "" },
		"mtls without ca":    func(c *ServerConfig) { c.VerifyClients = true; c.TLSCA = "" },
		"bad host":           func(c *ServerConfig) { c.Host = "a b" },
		"newline in path":    func(c *ServerConfig) { c.StoreDir = "/tmp/x\ninclude /etc/passwd" },
		"port out of range":  func(c *ServerConfig) { c.Port = 70000 },
		"cluster no name":    func(c *ServerConfig) { c.Cluster = &ClusterConfig{Port: 6222} },
		"cluster no server":  func(c *ServerConfig) { c.ServerName = ""; c.Cluster = &ClusterConfig{Name: "x", Port: 6222} },
		"account no jwt":     func(c *ServerConfig) { c.Accounts = []*accounts.Account{{Name: "x", Key: f.acc.Key}} },
		"route with newline": func(c *ServerConfig) { c.Cluster = &ClusterConfig{Name: "x", Port: 6222, Routes: []string{"a\nb"}} },
		"advertise no port":  func(c *ServerConfig) { c.Cluster = &ClusterConfig{Name: "x", Port: 6222, Advertise: "n1"} },
		"max payload huge":   func(c *ServerConfig) { c.MaxPayload = 1 << 30 },
		"max payload < 0":    func(c *ServerConfig) { c.MaxPayload = -1 },
	}
	for name, mutate := range cases {
		c := base
		mutate(&c)
		if _, err := c.Render(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: err %v, want ErrInvalidSpec", name, err)
		}
	}
}

func TestRenderQuotesValues(t *testing.T) {
	f := newConfigFixture(t)
	c := testServerConfig(t, f)
	c.StorageKey = `key"with\quotes and $dollar`
	opts := renderAndParse(t, c)
	if opts.JetStreamKey != c.StorageKey {
		t.Fatalf("storage key round trip: %q", opts.JetStreamKey)
	}
	b, _ := c.Render()
	if strings.Count(string(b), "resolver_preload") != 1 {
		t.Fatal("preload block")
	}
}
