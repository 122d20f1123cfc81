package devserver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/devserver"
	"github.com/sealbus/sealbus/sealbustest"
)

type fixture struct {
	op   *accounts.Operator
	acct *accounts.Account
	svc  *accounts.Service
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	op, err := accounts.NewOperator("devtest")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := op.NewAccount("orders", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := acct.NewService(accounts.ServiceSpec{Name: "billing", Publish: []string{"orders.created"}, Subscribe: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{op: op, acct: acct, svc: svc}
}

func start(t *testing.T, dir string, f fixture, mtls bool) *devserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := devserver.Start(ctx, devserver.Config{StateDir: dir, OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, AccountJWTs: []string{f.acct.JWT}, MTLS: mtls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func userOpt(t *testing.T, s *accounts.Service) nats.Option {
	t.Helper()
	seed, err := s.UserKey.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return nats.UserJWTAndSeed(s.UserJWT, string(seed))
}

// adminUser mints an unrestricted user of the account, signed by its signing key.
func adminUser(t *testing.T, a *accounts.Account) nats.Option {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.IssuerAccount = a.PublicKey()
	uc.Expires = time.Now().Add(10 * time.Minute).Unix()
	tok, err := uc.Encode(a.SigningKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	return nats.UserJWTAndSeed(tok, string(seed))
}

func TestStartTLSAndCreds(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	s := start(t, dir, f, false)

	if !strings.HasPrefix(s.URL(), "tls://127.0.0.1:") {
		t.Fatalf("URL %q is not tls on 127.0.0.1", s.URL())
	}
	for _, p := range []string{"tls/ca.key", "tls/server.key", "jetstream.key"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}

	nc, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), userOpt(t, f.svc))
	if err != nil {
		t.Fatalf("TLS connection with service creds: %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("server does not require TLS")
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Without the CA the server certificate is not trusted.
	if nc2, err := nats.Connect(s.URL(), userOpt(t, f.svc)); err == nil {
		nc2.Close()
		t.Error("connected without trusting the dev CA")
	}
	// A user of an unknown account is refused.
	other := newFixture(t)
	if nc3, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), userOpt(t, other.svc)); err == nil {
		nc3.Close()
		t.Error("a user of another operator connected")
	}
	if _, _, err := s.ClientCert("x"); !errors.Is(err, devserver.ErrNoMTLS) {
		t.Errorf("ClientCert without mTLS: %v, want ErrNoMTLS", err)
	}
}

// TestPlaintextRefused speaks the NATS protocol without TLS: the server announces that TLS is
// required and closes the connection instead of accepting CONNECT.
func TestPlaintextRefused(t *testing.T) {
	f := newFixture(t)
	s := start(t, t.TempDir(), f, false)

	addr := strings.TrimPrefix(s.URL(), "tls://")
	if err := sealbustest.RefusesPlaintext(addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// nats.go refuses too when told not to upgrade.
	if nc, err := nats.Connect("nats://"+addr, userOpt(t, f.svc), nats.Secure(nil), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Fatal("nats.go connected")
	}
}

func TestRestartKeepsJetStreamState(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	s, err := devserver.Start(ctx, devserver.Config{StateDir: dir, OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, AccountJWTs: []string{f.acct.JWT}})
	if err != nil {
		t.Fatal(err)
	}
	ca1, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), adminUser(t, f.acct))
	if err != nil {
		s.Shutdown()
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		nc.Close()
		s.Shutdown()
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "orders.created", []byte("secret-payload-marker")); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	s.Shutdown()

	// Storage is encrypted: the payload is not on disk in clear.
	found := false
	_ = filepath.WalkDir(filepath.Join(dir, "jetstream"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "secret-payload-marker") {
				found = true
			}
		}
		return nil
	})
	if found {
		t.Error("payload found in clear in the JetStream store")
	}

	s2 := start(t, dir, f, false)
	ca2, err := os.ReadFile(s2.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if string(ca1) != string(ca2) {
		t.Error("CA changed across restarts")
	}
	nc2, err := nats.Connect(s2.URL(), nats.RootCAs(s2.CAFile()), adminUser(t, f.acct))
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	st, err := js2.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
	if n := st.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("stream has %d messages after restart, want 3", n)
	}
}

func TestMTLS(t *testing.T) {
	f := newFixture(t)
	s := start(t, t.TempDir(), f, true)

	if nc, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), userOpt(t, f.svc), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	cert, key, err := s.ClientCert("billing")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %v", fi.Mode().Perm())
	}
	nc, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), nats.ClientCert(cert, key), userOpt(t, f.svc))
	if err != nil {
		t.Fatalf("mTLS connection: %v", err)
	}
	nc.Close()
}

func TestConfigValidation(t *testing.T) {
	f := newFixture(t)
	cases := map[string]devserver.Config{
		"no state dir":   {OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT},
		"no operator":    {StateDir: t.TempDir(), SystemAccountJWT: f.op.System.JWT},
		"no system":      {StateDir: t.TempDir(), OperatorJWT: f.op.JWT},
		"bad port":       {StateDir: t.TempDir(), OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, Port: 70000},
		"empty account":  {StateDir: t.TempDir(), OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, AccountJWTs: []string{""}},
		"garbage system": {StateDir: t.TempDir(), OperatorJWT: f.op.JWT, SystemAccountJWT: "x"},
		"unknown cipher": {StateDir: t.TempDir(), OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, Cipher: "rot13"},
	}
	for name, cfg := range cases {
		if _, err := devserver.Start(context.Background(), cfg); !errors.Is(err, devserver.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// A home's store written under one storage cipher is read under the other (the server
// converts it as it loads it): every message and the durable's acknowledgements survive the
// change both ways, and nothing is in clear on disk under either.
func TestStoreCipherChangeKeepsMessages(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const marker = "cipher-change-payload-marker"

	// run starts the server under cipher, checks the stream holds want messages (each with
	// its payload) and the durable has acknowledged acked of them, then publishes one more and
	// acknowledges one more.
	run := func(cipher string, want, acked int) {
		t.Helper()
		s, err := devserver.Start(ctx, devserver.Config{StateDir: dir, OperatorJWT: f.op.JWT, SystemAccountJWT: f.op.System.JWT, AccountJWTs: []string{f.acct.JWT}, Cipher: cipher})
		if err != nil {
			t.Fatalf("%s: %v", cipher, err)
		}
		defer s.Shutdown()
		nc, err := nats.Connect(s.URL(), nats.RootCAs(s.CAFile()), adminUser(t, f.acct))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage})
		if err != nil {
			t.Fatalf("%s: stream: %v", cipher, err)
		}
		if n := st.CachedInfo().State.Msgs; n != uint64(want) {
			t.Fatalf("%s: stream holds %d messages, want %d", cipher, n, want)
		}
		for seq := 1; seq <= want; seq++ {
			m, err := st.GetMsg(ctx, uint64(seq))
			if err != nil {
				t.Fatalf("%s: message %d: %v", cipher, seq, err)
			}
			if got, wantData := string(m.Data), fmt.Sprintf("%s-%d", marker, seq); got != wantData {
				t.Fatalf("%s: message %d holds %q, want %q", cipher, seq, got, wantData)
			}
		}
		c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("%s: durable: %v", cipher, err)
		}
		if info := c.CachedInfo(); info.AckFloor.Stream != uint64(acked) {
			t.Fatalf("%s: durable's ack floor %d, want %d", cipher, info.AckFloor.Stream, acked)
		}
		if _, err := js.Publish(ctx, "orders.created", fmt.Appendf(nil, "%s-%d", marker, want+1)); err != nil {
			t.Fatalf("%s: publish: %v", cipher, err)
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatalf("%s: fetch: %v", cipher, err)
		}
		for m := range batch.Messages() {
			if meta, _ := m.Metadata(); meta == nil || meta.Sequence.Stream != uint64(acked+1) {
				t.Fatalf("%s: fetched %v, want stream sequence %d", cipher, meta, acked+1)
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("%s: ack: %v", cipher, err)
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("%s: fetch: %v", cipher, err)
		}
	}
	for i, cipher := range []string{"chacha", "aes", "chacha", "aes"} {
		run(cipher, i, i)
		// The message blocks' keys were written (or converted) under the cipher of the run:
		// sealed with XChaCha20-Poly1305 (a 24-byte nonce) or AES-GCM (a 16-byte nonce).
		keys, _ := filepath.Glob(filepath.Join(dir, "jetstream", "jetstream", "*", "streams", "ORDERS", "msgs", "*.key"))
		if len(keys) == 0 {
			t.Fatalf("%s: no message block key in the store", cipher)
		}
		for _, k := range keys {
			b, err := os.ReadFile(k)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"chacha": 24 + 32 + 16, "aes": 16 + 32 + 16}[cipher]
			if len(b) != want {
				t.Errorf("%s: block key %s is %d bytes, want %d (the run's cipher)", cipher, filepath.Base(k), len(b), want)
			}
		}
	}

	_ = filepath.WalkDir(filepath.Join(dir, "jetstream"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), marker) {
				t.Errorf("a payload is in clear in %s", p)
			}
		}
		return nil
	})
}
