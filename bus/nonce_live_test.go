package bus_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/pki"
	"github.com/sealbus/sealbus/sealbustest"
)

// fakeServerTLS returns a TLS config for 127.0.0.1 and the PEM of the CA that signed it.
func fakeServerTLS(t *testing.T) (*tls.Config, []byte) {
	t.Helper()
	ca, err := pki.NewCA("fake CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.IssueServer([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, ca.CertPEM
}

// fakeServer accepts one client, sends an INFO carrying nonce, upgrades to TLS and returns
// the CONNECT the client sends (nil if it sends none), answering it with an authorization
// error.
func fakeServer(t *testing.T, cfg *tls.Config, nonce string) (url string, connect <-chan map[string]any) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan map[string]any, 1)
	go func() {
		defer close(out)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		info, _ := json.Marshal(map[string]any{
			"server_id": "FAKE", "version": "2.15.2", "proto": 1, "headers": true,
			"max_payload": 1 << 20, "tls_required": true, "nonce": nonce,
		})
		if _, err := conn.Write([]byte("INFO " + string(info) + "\r\n")); err != nil {
			return
		}
		tc := tls.Server(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		r := bufio.NewReader(tc)
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "CONNECT ") {
			return
		}
		var m map[string]any
		if json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "CONNECT ")), &m) == nil {
			out <- m
		}
		_, _ = tc.Write([]byte("-ERR 'Authorization Violation'\r\n"))
	}()
	return "tls://" + ln.Addr().String(), out
}

// TestConnectSignsOnlyServerNonces: a server (or anything in front of it) that sends as login
// nonce bytes no nats-server sends gets no signature from the service's user key, which also
// signs envelopes; a nonce of the real shape is signed as nats.go would sign it.
func TestConnectSignsOnlyServerNonces(t *testing.T) {
	w := sharedWorld(t)
	svc, err := w.Harness.Provisioner().Keystore.LoadService(sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	userKey, err := nkeys.FromPublicKey(svc.UserPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	cfg, caPEM := fakeServerTLS(t)
	dial := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := bus.Connect(ctx, bus.WithURL(url), bus.WithRootCAPEM(caPEM), bus.WithTimeout(5*time.Second),
			bus.WithCredsFile(w.CredsPath(sealbustest.Shop, sealbustest.Billing)), bus.WithTrustedOperator(w.Harness.OperatorKey()))
		if err == nil {
			c.Close()
			t.Fatal("connected to a fake server")
		}
		return err
	}

	for _, nonce := range []string{
		"\xff" + `{"batch":"root","subject":"orders.new"}`,
		"sealbus statement: pay 100 to mallory",
		strings.Repeat("A", 65),
	} {
		url, connect := fakeServer(t, cfg, nonce)
		err := dial(url)
		if !errors.Is(err, bus.ErrServerNonce) {
			t.Errorf("nonce %q: %v, want ErrServerNonce", nonce, err)
		}
		if m, ok := <-connect; ok {
			t.Errorf("nonce %q: the client sent CONNECT with a signature (%v)", nonce, m["sig"] != nil)
		}
	}

	raw := make([]byte, 11)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw)
	url, connect := fakeServer(t, cfg, nonce)
	if err := dial(url); errors.Is(err, bus.ErrServerNonce) {
		t.Fatalf("a real-looking nonce refused: %v", err)
	}
	m, ok := <-connect
	if !ok {
		t.Fatal("no CONNECT for a real-looking nonce")
	}
	sig, err := base64.RawURLEncoding.DecodeString(m["sig"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := userKey.Verify([]byte(nonce), sig); err != nil {
		t.Fatalf("signature over the nonce does not verify: %v", err)
	}
	if m["jwt"] != svc.UserJWT {
		t.Fatal("CONNECT does not carry the service's user JWT")
	}
}
