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
func nodePair(ca *pki.CA, alias string) (pki.Pair, error) {
	return ca.IssuePeer([]string{alias, "127.0.0.1", "localhost"}, certValidity)
}
