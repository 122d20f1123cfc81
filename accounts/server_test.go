package accounts

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/sealbus/sealbus/internal/devserver"
)

// startServer starts the dev server (operator mode trusting op, accts preloaded, TLS required,
// encrypted JetStream) for the live tests, and returns its host:port and a pool holding its CA.
func startServer(t testing.TB, op *Operator, accts ...*Account) (addr, caFile string, pool *x509.CertPool) {
	t.Helper()
	jwts := make([]string, len(accts))
	for i, a := range accts {
		jwts[i] = a.JWT
	}
	s, err := devserver.Start(context.Background(), devserver.Config{
		StateDir: t.TempDir(), OperatorJWT: op.JWT, SystemAccountJWT: op.System.JWT, AccountJWTs: jwts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return strings.TrimPrefix(s.URL(), "tls://"), s.CAFile(), pool
}
