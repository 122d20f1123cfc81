package natstest

import (
	"fmt"

	"github.com/sealbus/sealbus/accounts"
)

// Option configures [StartServer] and [StartCluster]. An option given an unusable value makes
// the start fail with [ErrInvalidOption].
type Option func(*config) error

type config struct {
	image      string
	keystore   *accounts.Keystore
	mtls       bool
	maxPayload int64
}

// WithImage runs the servers from image instead of the one [NATSImage] builds. The image must
// already be on the engine: nothing is pulled.
func WithImage(image string) Option {
	return func(c *config) error {
		if image == "" {
			return fmt.Errorf("%w: empty image", ErrInvalidOption)
		}
		c.image = image
		return nil
	}
}

// WithKeystore runs the servers for the operator in ks (created there, with its system
// account, when ks has none yet) and preloads every account ks holds. Accounts and services
// added later are saved to ks. Without this option a fresh unencrypted keystore is made in a
// temporary directory of the test.
func WithKeystore(ks *accounts.Keystore) Option {
	return func(c *config) error {
		if ks == nil {
			return fmt.Errorf("%w: nil keystore", ErrInvalidOption)
		}
		c.keystore = ks
		return nil
	}
}

// WithMTLS makes the servers require a client certificate signed by the deployment's CA
// (mutual TLS) from every client, in addition to its user JWT. [Deployment.ClientCert] issues
// such certificates; the deployment's own admin and system connections carry one.
func WithMTLS() Option {
	return func(c *config) error {
		c.mtls = true
		return nil
	}
}

// WithMaxPayload sets the servers' max_payload, the largest message they accept (nats-server's
// default is 1 MiB; at most 64 MiB). Tests use it to deliver envelopes larger than a
// receiver's limit, which a default server refuses before any receiver sees them. Accounts'
// own MaxPayload limits still apply.
func WithMaxPayload(bytes int64) Option {
	return func(c *config) error {
		if bytes < 1024 || bytes > 64<<20 {
			return fmt.Errorf("%w: max payload %d (1 KiB to 64 MiB)", ErrInvalidOption, bytes)
		}
		c.maxPayload = bytes
		return nil
	}
}
