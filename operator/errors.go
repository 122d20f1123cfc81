package operator

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidSpec reports an invalid target, stream, consumer or card argument.
	ErrInvalidSpec = errors.New("operator: invalid specification")
	// ErrNoTLS reports a target that would connect without TLS.
	ErrNoTLS = errors.New("operator: TLS is required")
	// ErrNoDirectory reports a directory that does not exist yet on this server: the operator
	// account's bucket was never set up, or the connection given is not the operator
	// account's.
	ErrNoDirectory = errors.New("operator: account directory not set up")
	// ErrNotFound reports a dead letter, audit record or stream entry that does not exist.
	ErrNotFound = errors.New("operator: not found")
	// ErrPushRejected reports a server that refused an account JWT; see [PushError].
	ErrPushRejected = errors.New("operator: account JWT rejected by the server")
	// ErrInUse refuses to remove an account or stream others still use; see [InUseError].
	ErrInUse = errors.New("operator: in use")
	// ErrDevRunning reports a `sealbus dev` already running for the home; see [DevRunningError].
	ErrDevRunning = errors.New("operator: a dev server is already running for this home")
	// ErrNoDevServer reports a home with no running dev server (none started, or it stopped
	// without tidying up).
	ErrNoDevServer = errors.New("operator: no dev server running for this home")
	// ErrNotAudited reports an administrative action that was carried out but whose signed
	// audit record could not be made or kept for writing (no signing key, the keystore's
	// audit-pending directory not writable): the action stands, and nothing in the audit says so.
	ErrNotAudited = errors.New("operator: action done but not audited")
)

// PushError is the server's refusal of an account JWT pushed with [PushAccount]. It matches
// [ErrPushRejected] with errors.Is.
type PushError struct {
	Account     string // account public key, or "n/a" when the JWT did not decode
	Code        int    // the server's status code
	Description string // the server's explanation
}

func (e *PushError) Error() string {
	return fmt.Sprintf("operator: server refused account %s (%d): %s", e.Account, e.Code, e.Description)
}

// Is makes errors.Is(err, ErrPushRejected) true.
func (e *PushError) Is(target error) bool { return target == ErrPushRejected }
