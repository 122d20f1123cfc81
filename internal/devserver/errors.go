package devserver

import "errors"

var (
	// ErrInvalidConfig reports a [Config] that cannot start a server (no state directory, no
	// operator, an account without a JWT, a port out of range).
	ErrInvalidConfig = errors.New("devserver: invalid config")
	// ErrNotReady reports a server that did not accept connections in time.
	ErrNotReady = errors.New("devserver: server not ready")
	// ErrNoMTLS reports a request for a client certificate from a server started without mTLS.
	ErrNoMTLS = errors.New("devserver: mutual TLS is not enabled")
)
