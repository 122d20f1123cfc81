// Package pki makes the small X.509 hierarchy sealbus needs for TLS on a development or test
// server: a local certificate authority, server certificates for loopback and container host
// names, and client certificates for mutual TLS.
//
// Keys are ECDSA P-256. Every certificate is short-lived by default and names only the hosts it
// is issued for. Private keys are returned PEM-encoded and must be written with mode 0600
// (see [WriteFiles]).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/sealbus/sealbus/internal/atomicfile"
)

// ErrBadPEM is returned when a certificate or key cannot be decoded.
var ErrBadPEM = errors.New("pki: bad PEM data")

// DefaultValidity is the lifetime of certificates issued without an explicit validity.
const DefaultValidity = 397 * 24 * time.Hour

// CA is a certificate authority that can issue server and client certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	rand    io.Reader
	now     func() time.Time
}

// NewCA creates a self-signed CA named commonName, valid for validity (DefaultValidity when 0).
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	return newCA(rand.Reader, time.Now, commonName, validity)
}

func newCA(r io.Reader, now func() time.Time, commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		validity = DefaultValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, fmt.Errorf("pki: generating CA key: %w", err)
	}
	serial, err := serialNumber(r)
	if err != nil {
		return nil, err
	}
	start := now().Add(-5 * time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"sealbus"}},
		NotBefore:             start,
		NotAfter:              start.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(r, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: encodePEM("CERTIFICATE", der), key: key, rand: r, now: now}, nil
}

// LoadCA reads a CA from its PEM certificate and PEM private key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: CA certificate", ErrBadPEM)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: CA certificate: %v", ErrBadPEM, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%w: CA key", ErrBadPEM)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: CA key is not an EC private key", ErrBadPEM)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: CA key does not match certificate", ErrBadPEM)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key, rand: rand.Reader, now: time.Now}, nil
}

// KeyPEM returns the CA's private key, PEM-encoded. Write it with mode 0600.
func (ca *CA) KeyPEM() ([]byte, error) {
	k, ok := ca.key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("pki: CA key is not exportable")
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding CA key: %w", err)
	}
	return encodePEM("EC PRIVATE KEY", der), nil
}

// Pair is a PEM certificate and its PEM private key.
type Pair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// IssueServer issues a server certificate for hosts (DNS names or IP addresses).
func (ca *CA) IssueServer(hosts []string, validity time.Duration) (Pair, error) {
	if len(hosts) == 0 {
		return Pair{}, errors.New("pki: a server certificate needs at least one host")
	}
	return ca.issue(hosts[0], hosts, validity, x509.ExtKeyUsageServerAuth)
}

// IssuePeer issues a certificate for a cluster node: it names hosts and may be used both as a
// server and as a client certificate, as NATS routes need (each node verifies the peer that
// connects to it and the peer it connects to with the same certificate).
func (ca *CA) IssuePeer(hosts []string, validity time.Duration) (Pair, error) {
	if len(hosts) == 0 {
		return Pair{}, errors.New("pki: a peer certificate needs at least one host")
	}
	return ca.issue(hosts[0], hosts, validity, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

// IssueClient issues a client certificate whose common name is name, for mutual TLS.
func (ca *CA) IssueClient(name string, validity time.Duration) (Pair, error) {
	if name == "" {
		return Pair{}, errors.New("pki: a client certificate needs a name")
	}
	return ca.issue(name, nil, validity, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(cn string, hosts []string, validity time.Duration, usages ...x509.ExtKeyUsage) (Pair, error) {
	if validity <= 0 {
		validity = DefaultValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), ca.rand)
	if err != nil {
		return Pair{}, fmt.Errorf("pki: generating key: %w", err)
	}
	serial, err := serialNumber(ca.rand)
	if err != nil {
		return Pair{}, err
	}
	start := ca.now().Add(-5 * time.Minute)
	notAfter := start.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"sealbus"}},
		NotBefore:    start,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, fmt.Errorf("pki: creating certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, fmt.Errorf("pki: encoding key: %w", err)
	}
	return Pair{CertPEM: encodePEM("CERTIFICATE", der), KeyPEM: encodePEM("EC PRIVATE KEY", kder)}, nil
}

// WriteFiles writes p's certificate to certPath (0644) and key to keyPath (0600), creating
// parent directories with mode 0700.
func (p Pair) WriteFiles(certPath, keyPath string) error {
	if err := atomicfile.Write(certPath, p.CertPEM, atomicfile.Public); err != nil {
		return err
	}
	return atomicfile.Write(keyPath, p.KeyPEM, atomicfile.Private)
}

func serialNumber(r io.Reader) (*big.Int, error) {
	n, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
