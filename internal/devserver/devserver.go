// Package devserver runs an embedded nats-server configured the way sealbus expects a
// production server to be, for development, tests and the demo.
//
// Guarantees of a server started with [Start]:
//
//   - Operator mode: only accounts signed by the configured operator exist. Account JWTs live
//     in a full directory resolver under the state directory, preloaded with the system account
//     and the configured accounts, and updated by pushes ($SYS.REQ.CLAIMS.UPDATE) from the
//     system account user. A newer JWT already in the resolver is kept over an older preload.
//   - TLS is required: plaintext clients are refused. A local CA and a server certificate for
//     127.0.0.1, ::1 and localhost are generated on first start and kept in the state
//     directory (keys 0600). With mutual TLS, clients must also present a certificate issued
//     by that CA ([Server.ClientCert]).
//   - JetStream is on, with storage encryption under a key generated on first start and kept
//     in the state directory (0600): AES (the server's AES-GCM key files, AES-CTR blocks) where
//     the CPU has AES instructions, ChaCha20 otherwise ([StoreCipher]). A store written under
//     the other cipher is converted by the server as it loads it.
//   - The server listens on 127.0.0.1 only, never on another interface. Port 0 picks a free
//     port.
//   - State (JetStream data, resolver, TLS material, storage key) is kept for the next start.
//   - Server logs go to the configured slog.Logger; notices at Debug so the server is quiet by
//     default. Protocol tracing stays off, so credentials are never logged.
//
// State directory layout (directories 0700, private files 0600):
//
//	<state>/tls/ca.crt, ca.key           local CA
//	<state>/tls/server.crt, server.key   server certificate for loopback
//	<state>/tls/clients/<name>.crt, .key client certificates (mTLS)
//	<state>/jetstream.key                JetStream storage encryption key
//	<state>/jetstream/                   JetStream store
//	<state>/resolver/                    full account resolver (account JWTs)
package devserver

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/sealbus/sealbus/internal/atomicfile"
	"github.com/sealbus/sealbus/internal/pki"
)

// Host is the only address the dev server listens on.
const Host = "127.0.0.1"

// DefaultServerName is the server name used when [Config.ServerName] is empty.
const DefaultServerName = "sealbus-dev"

// Config configures [Start].
type Config struct {
	// StateDir holds TLS material, the storage key, the JetStream store and the resolver. It
	// is created (0700) if missing and reused on the next start. Required.
	StateDir string
	// OperatorJWT is the trusted operator's JWT. Required.
	OperatorJWT string
	// SystemAccountJWT is the JWT of the operator's system account, which becomes the
	// server's system account. Required.
	SystemAccountJWT string
	// AccountJWTs are preloaded into the resolver. More can be pushed while the server runs.
	AccountJWTs []string
	// Port to listen on (on 127.0.0.1); 0 picks a free port.
	Port int
	// MTLS requires clients to present a certificate issued by the server's CA.
	MTLS bool
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// ServerName defaults to [DefaultServerName].
	ServerName string
	// ReadyTimeout bounds the wait for the server to accept connections (default 15s).
	ReadyTimeout time.Duration
	// Cipher is the JetStream storage cipher, "aes" or "chacha"; empty picks [StoreCipher]
	// for this CPU. A store written under the other cipher is converted as it is loaded.
	Cipher string
}

// Server is a running dev server.
type Server struct {
	ns       *server.Server
	stateDir string
	mtls     bool
	ca       *pki.CA
	url      string
}

// Start starts a dev server and waits until it accepts connections or ctx is done. The
// server's lifetime is not tied to ctx: stop it with [Server.Shutdown].
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = DefaultServerName
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 15 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := atomicfile.MkdirPrivate(cfg.StateDir); err != nil {
		return nil, err
	}
	// The state directory holds keys: make it private even if it existed.
	if err := os.Chmod(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	ca, err := EnsureTLS(filepath.Join(cfg.StateDir, "tls"), LoopbackHosts)
	if err != nil {
		return nil, err
	}
	storageKey, err := EnsureStorageKey(filepath.Join(cfg.StateDir, "jetstream.key"))
	if err != nil {
		return nil, err
	}
	sc, _ := parseCipher(cfg.Cipher) // checked by validate
	opc, err := jwt.DecodeOperatorClaims(cfg.OperatorJWT)
	if err != nil {
		return nil, fmt.Errorf("%w: operator JWT does not decode: %v", ErrInvalidConfig, err)
	}
	sys, err := jwt.DecodeAccountClaims(cfg.SystemAccountJWT)
	if err != nil {
		return nil, fmt.Errorf("%w: system account JWT does not decode: %v", ErrInvalidConfig, err)
	}
	resolver, err := openResolver(filepath.Join(cfg.StateDir, "resolver"), append([]string{cfg.SystemAccountJWT}, cfg.AccountJWTs...))
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(cfg.StateDir, "tls")
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: filepath.Join(tlsDir, "server.crt"),
		KeyFile:  filepath.Join(tlsDir, "server.key"),
		CaFile:   filepath.Join(tlsDir, "ca.crt"),
		Verify:   cfg.MTLS,
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: TLS configuration: %w", err)
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:             cfg.ServerName,
		Host:                   Host,
		Port:                   port,
		NoSigs:                 true,
		HTTPPort:               0,
		TrustedOperators:       []*jwt.OperatorClaims{opc},
		SystemAccount:          sys.Subject,
		AccountResolver:        resolver,
		JetStream:              true,
		StoreDir:               filepath.Join(cfg.StateDir, "jetstream"),
		JetStreamKey:           storageKey,
		JetStreamCipher:        sc,
		DisableJetStreamBanner: true,
		TLSConfig:              tc,
		TLSVerify:              cfg.MTLS,
		TLSTimeout:             5,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{logger}, false, false, false)
	ns.Start()
	if err := waitReady(ctx, ns, cfg.ReadyTimeout); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: no listen address", ErrNotReady)
	}
	s := &Server{
		ns:       ns,
		stateDir: cfg.StateDir,
		mtls:     cfg.MTLS,
		ca:       ca,
		url:      "tls://" + net.JoinHostPort(Host, strconv.Itoa(addr.Port)),
	}
	logger.Info("dev server ready", "url", s.url, "mtls", cfg.MTLS, "state", cfg.StateDir)
	return s, nil
}

func (c Config) validate() error {
	switch {
	case c.StateDir == "":
		return fmt.Errorf("%w: a state directory is required", ErrInvalidConfig)
	case c.OperatorJWT == "":
		return fmt.Errorf("%w: the operator JWT is required", ErrInvalidConfig)
	case c.SystemAccountJWT == "":
		return fmt.Errorf("%w: the system account JWT is required", ErrInvalidConfig)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("%w: port %d out of range", ErrInvalidConfig, c.Port)
	}
	if _, err := parseCipher(c.Cipher); err != nil {
		return err
	}
	for i, a := range c.AccountJWTs {
		if a == "" {
			return fmt.Errorf("%w: account JWT %d is empty", ErrInvalidConfig, i)
		}
	}
	return nil
}

func waitReady(ctx context.Context, ns *server.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if ns.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: not accepting connections after %v", ErrNotReady, timeout)
		}
	}
}

// openResolver opens the full directory resolver and stores the given account JWTs in it.
// Store keeps a JWT already present when it is newer.
func openResolver(dir string, jwts []string) (*server.DirAccResolver, error) {
	if err := atomicfile.MkdirPrivate(dir); err != nil {
		return nil, err
	}
	res, err := server.NewDirAccResolver(dir, 0, time.Minute, server.NoDelete)
	if err != nil {
		return nil, fmt.Errorf("devserver: account resolver: %w", err)
	}
	for _, tok := range jwts {
		ac, err := jwt.DecodeAccountClaims(tok)
		if err != nil {
			return nil, fmt.Errorf("%w: an account JWT does not decode: %v", ErrInvalidConfig, err)
		}
		if err := res.Store(ac.Subject, tok); err != nil {
			return nil, fmt.Errorf("devserver: preloading account %s (%s): %w", ac.Name, ac.Subject, err)
		}
	}
	return res, nil
}

// URL is the client URL, tls://127.0.0.1:<port>.
func (s *Server) URL() string { return s.url }

// CAFile is the path of the CA certificate clients must trust.
func (s *Server) CAFile() string { return filepath.Join(s.stateDir, "tls", "ca.crt") }

// StateDir is the server's state directory.
func (s *Server) StateDir() string { return s.stateDir }

// MTLS reports whether clients must present a certificate.
func (s *Server) MTLS() bool { return s.mtls }

// NATS returns the embedded server, for tests.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server and waits until it has stopped. State stays on disk. It is safe
// to call more than once.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// ClientCert issues (or reissues) a client certificate named name from the server's CA and
// returns the paths of the certificate and its key (0600) under the state directory. It fails
// with [ErrNoMTLS] when the server does not verify client certificates.
func (s *Server) ClientCert(name string) (certPath, keyPath string, err error) {
	if !s.mtls {
		return "", "", ErrNoMTLS
	}
	if !certName.MatchString(name) {
		return "", "", fmt.Errorf("%w: client certificate name %q", ErrInvalidConfig, name)
	}
	pair, err := s.ca.IssueClient(name, 0)
	if err != nil {
		return "", "", fmt.Errorf("devserver: %w", err)
	}
	dir := filepath.Join(s.stateDir, "tls", "clients")
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	if err := pair.WriteFiles(certPath, keyPath); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// certName is what a client certificate may be named: it becomes a file name.
var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// renewBefore is how long before expiry a CA or server certificate is replaced.
const renewBefore = 7 * 24 * time.Hour

// LoopbackHosts are the names in the dev server's certificate.
var LoopbackHosts = []string{Host, "::1", "localhost"}

// EnsureTLS keeps TLS material in dir (0700): a CA (ca.crt, ca.key 0600) created on first use
// and a server certificate (server.crt, server.key 0600) for hosts issued by it, usable for
// cluster routes too (server and client usage). Both are
// replaced when they expire within a week; the server certificate also when it does not name
// every host.
func EnsureTLS(dir string, hosts []string) (*pki.CA, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: no host for the server certificate", ErrInvalidConfig)
	}
	if err := atomicfile.MkdirPrivate(dir); err != nil {
		return nil, err
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	srvCert, srvKey := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")

	ca, err := loadCA(caCert, caKey)
	if err != nil {
		return nil, err
	}
	fresh := ca == nil || time.Until(ca.Cert.NotAfter) < renewBefore
	if fresh {
		if ca, err = pki.NewCA("sealbus dev CA", 0); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		if err := (pki.Pair{CertPEM: ca.CertPEM, KeyPEM: keyPEM}).WriteFiles(caCert, caKey); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
	}
	if !fresh && certUsable(srvCert, ca.Cert, hosts) {
		return ca, nil
	}
	// Server and client usage both: the same certificate serves cluster routes (each node
	// verifies the peer it dials and the peer dialing it) as well as clients.
	pair, err := ca.IssuePeer(hosts, 0)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := pair.WriteFiles(srvCert, srvKey); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	return ca, nil
}

// loadCA returns nil, nil when no CA exists yet.
func loadCA(certPath, keyPath string) (*pki.CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("devserver: stored CA: %w", err)
	}
	return ca, nil
}

// certUsable reports whether the certificate at path was issued by ca, names every host and
// is not about to expire.
func certUsable(path string, ca *x509.Certificate, hosts []string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return false
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return false
	}
	if cert.CheckSignatureFrom(ca) != nil {
		return false
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return false // from before certificates served routes too
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return time.Until(cert.NotAfter) > renewBefore
}

// EnsureStorageKey returns the JetStream storage key kept at path, creating it (0600, random
// 256 bits) on first use. A key file readable by others is refused.
func EnsureStorageKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%w: %s is accessible by other users; chmod 600 it", ErrInvalidConfig, path)
		}
		if len(data) < 32 {
			return "", fmt.Errorf("%w: storage key file %s is too short", ErrInvalidConfig, path)
		}
		return string(data), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("devserver: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return "", fmt.Errorf("devserver: storage key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(raw)
	if err := atomicfile.MkdirPrivate(filepath.Dir(path)); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(key), atomicfile.Private); err != nil {
		return "", err
	}
	return key, nil
}
