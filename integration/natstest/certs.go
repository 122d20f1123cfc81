package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/sealbus/sealbus/internal/pki"
)

// Certificate file names inside [CertDir].
const (
	caFile         = "ca.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// certValidity is short: the certificates live as long as one test.
const certValidity = 24 * time.Hour

// serverFiles issues a certificate for a node's names and returns the files to copy into its
// container: the CA certificate, the node certificate and its key (0600). A clustered node's
// certificate also serves its routes (see nodePair).
func serverFiles(ca *pki.CA, alias string, clustered bool) (map[string]fileSpec, error) {
	var pair pki.Pair
	var err error
	if clustered {
		pair, err = nodePair(ca, alias)
	} else {
		pair, err = ca.IssueServer([]string{alias, "127.0.0.1", "localhost"}, certValidity)
	}
	if err != nil {
		return nil, fmt.Errorf("natstest: server certificate for %s: %w", alias, err)
	}
	return map[string]fileSpec{
		CertDir + "/" + caFile:         {Content: ca.CertPEM, Mode: 0o644},
		CertDir + "/" + serverCertFile: {Content: pair.CertPEM, Mode: 0o644},
		CertDir + "/" + serverKeyFile:  {Content: pair.KeyPEM, Mode: 0o600},
	}, nil
}

// nodePair issues the certificate of a clustered node: the same key serves clients and routes,
// so it carries both the serverAuth and clientAuth extended key usages (route TLS verifies the
// connecting peer's certificate) and names the node's alias, 127.0.0.1 and localhost.
// internal/pki issues single-purpose certificates only, so this signs with the CA's key here.
func nodePair(ca *pki.CA, alias string) (pki.Pair, error) {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: node certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return pki.Pair{}, fmt.Errorf("natstest: node certificate: CA key does not decode")
	}
	caKey, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: node certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: serial: %w", err)
	}
	start := time.Now().Add(-5 * time.Minute)
	notAfter := start.Add(certValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: alias, Organization: []string{"sealbus natstest"}},
		NotBefore:    start,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{alias, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, caKey)
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: node certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return pki.Pair{}, fmt.Errorf("natstest: node key: %w", err)
	}
	return pki.Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, nil
}
