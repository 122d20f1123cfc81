package natstest

import (
	"fmt"
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

// serverFiles issues a server certificate for the node's names and returns the files to copy
// into its container: the CA certificate, the server certificate and its key (0600).
func serverFiles(ca *pki.CA, alias string) (map[string]FileSpec, error) {
	pair, err := ca.IssueServer([]string{alias, "127.0.0.1", "localhost"}, certValidity)
	if err != nil {
		return nil, fmt.Errorf("natstest: server certificate for %s: %w", alias, err)
	}
	return map[string]FileSpec{
		CertDir + "/" + caFile:         {Content: ca.CertPEM, Mode: 0o644},
		CertDir + "/" + serverCertFile: {Content: pair.CertPEM, Mode: 0o644},
		CertDir + "/" + serverKeyFile:  {Content: pair.KeyPEM, Mode: 0o600},
	}, nil
}
