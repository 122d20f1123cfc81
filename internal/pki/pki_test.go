package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServerAndClientChainVerify(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer([]string{"127.0.0.1", "nats-0"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.IssueClient("svc", 0)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("CA PEM not accepted")
	}
	for _, tc := range []struct {
		pair  Pair
		name  string
		usage x509.ExtKeyUsage
	}{
		{srv, "127.0.0.1", x509.ExtKeyUsageServerAuth},
		{srv, "nats-0", x509.ExtKeyUsageServerAuth},
		{cli, "", x509.ExtKeyUsageClientAuth},
	} {
		c, err := tls.X509KeyPair(tc.pair.CertPEM, tc.pair.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: tc.name, KeyUsages: []x509.ExtKeyUsage{tc.usage}}
		if ip := net.ParseIP(tc.name); ip != nil {
			opts.DNSName = ""
			if err := leaf.VerifyHostname(tc.name); err != nil {
				t.Fatalf("hostname %s: %v", tc.name, err)
			}
		}
		if _, err := leaf.Verify(opts); err != nil {
			t.Fatalf("verify %q: %v", tc.name, err)
		}
	}
	// A name the certificate was not issued for must not verify.
	c, _ := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if err := leaf.VerifyHostname("example.invalid"); err == nil {
		t.Fatal("certificate verified for a host it does not name")
	}
}

func TestPeerCertificateServesBothSides(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.IssuePeer([]string{"n1", "127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "n1", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("usage %v: %v", usage, err)
		}
	}
	if _, err := ca.IssuePeer(nil, 0); err == nil {
		t.Fatal("a peer certificate without hosts was issued")
	}
	// A server certificate is not a client certificate.
	s, _ := ca.IssueServer([]string{"n1"}, 0)
	sc, _ := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	sleaf, _ := x509.ParseCertificate(sc.Certificate[0])
	if _, err := sleaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a server certificate verified as a client certificate")
	}
}

func TestTLSHandshakeMutual(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvPair, _ := ca.IssueServer([]string{"127.0.0.1"}, 0)
	cliPair, _ := ca.IssueClient("svc", 0)
	srvCert, _ := tls.X509KeyPair(srvPair.CertPEM, srvPair.KeyPEM)
	cliCert, _ := tls.X509KeyPair(cliPair.CertPEM, cliPair.KeyPEM)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srvCert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer conn.Close()
		buf := make([]byte, 2)
		if _, err := io.ReadFull(conn, buf); err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cliCert}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hi"))
	conn.Close()
	if cn := <-got; cn != "svc" {
		t.Fatalf("server saw client %q, want svc", cn)
	}
}

func TestLoadCARoundTripAndMismatch(t *testing.T) {
	ca, _ := NewCA("a", time.Hour)
	other, _ := NewCA("b", time.Hour)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadCA(ca.CertPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Fatal("loaded CA differs")
	}
	otherKey, _ := other.KeyPEM()
	if _, err := LoadCA(ca.CertPEM, otherKey); err == nil {
		t.Fatal("LoadCA accepted a key that does not match the certificate")
	}
	if _, err := LoadCA([]byte("junk"), keyPEM); err == nil {
		t.Fatal("LoadCA accepted junk")
	}
}

func TestWriteFilesModes(t *testing.T) {
	ca, _ := NewCA("a", time.Hour)
	p, _ := ca.IssueServer([]string{"localhost"}, 0)
	dir := filepath.Join(t.TempDir(), "tls")
	if err := p.WriteFiles(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"server.pem": 0o644, "server-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", fi.Mode().Perm())
	}
}
