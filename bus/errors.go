package bus

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (or an error of a package
// it builds on, such as a [*PublishError]) and are matched with [errors.Is] / [errors.As].
// Messages never contain key material or payloads.
var (
	// ErrInvalidOption reports an invalid option value, a missing required option
	// (creds, trusted operator, URL) or a combination that would weaken security
	// (a plaintext URL without TLS material).
	ErrInvalidOption = errors.New("bus: invalid option")
	// ErrNoCard reports that the client's own identity card is not in the account
	// directory, or does not verify up to a trusted operator, or names other keys than
	// the creds. Connect fails with it.
	ErrNoCard = errors.New("bus: own identity card not found or not valid")
	// ErrNoDirectory reports that the account directory (the account's SEALBUS_DIRECTORY view)
	// cannot be read, or holds no account JWT that verifies up to a trusted operator.
	ErrNoDirectory = errors.New("bus: account directory unavailable")
	// ErrForbidden reports a publish on a subject the client's own card does not allow.
	// Nothing is sent.
	ErrForbidden = errors.New("bus: subject not allowed by own card")
	// ErrNoAudience reports a publish on a subject no valid, non-revoked card may
	// subscribe to: nobody could read it. Nothing is sent.
	ErrNoAudience = errors.New("bus: no recipient may read this subject")
	// ErrInvalidSubject reports a subject that is empty, malformed or holds wildcards
	// (a message is published on one concrete subject).
	ErrInvalidSubject = errors.New("bus: invalid subject")
	// ErrRevoked reports that the client's own card has been revoked or has expired:
	// it may no longer publish.
	ErrRevoked = errors.New("bus: own card revoked or expired")
	// ErrClosed reports use of a client after Close or Drain.
	ErrClosed = errors.New("bus: client closed")
	// ErrMaxPending reports that PublishAsync waited too long for room below the bound
	// on in-flight publishes (WithMaxPending).
	ErrMaxPending = errors.New("bus: too many pending publishes")
	// ErrServerNonce reports a login nonce from the server that does not have the shape of a
	// NATS server nonce (1 to 64 base64 characters). The service's user key, which also signs
	// envelopes, is not used on it; the connection attempt fails.
	ErrServerNonce = errors.New("bus: server login nonce refused")
	// ErrPublishExpired reports a publish that was not acknowledged while its envelope was
	// young enough to send again: the client resends an envelope (same bytes, same
	// Nats-Msg-Id) only while its creation time is less than the freshness window minus a
	// margin (a quarter of the window) old, because receivers reject an envelope stored
	// later than the window after its creation as stale. An earlier attempt may still have
	// been stored (its ack lost), in which case receivers handle it. The caller may publish
	// the payload again: that seals a new envelope under a new message id.
	ErrPublishExpired = errors.New("bus: publish expired before it was acknowledged")
	// ErrNoStream reports a publish that no stream answered, again and again within about a
	// second: no stream stores the subject (or every server holding it is down). The envelope
	// was not stored.
	ErrNoStream = errors.New("bus: no stream stores this subject")
	// ErrStreamFull reports a publish the stream refused because it is full (its size,
	// message or per-subject limit, or the account's storage): streams keep what they hold
	// rather than remove others' messages, so the refusal comes back to the publisher. The
	// client also writes an EventPublishRefused audit event. Nothing was stored.
	ErrStreamFull = errors.New("bus: stream full; message refused")
)

// PublishError wraps the failure of one publish with the message id it was sealed under
// (empty if sealing did not happen). Retrying with the same envelope is what the client
// does internally; a caller retrying Publish creates a new envelope and a new id.
type PublishError struct {
	Subject string
	ID      string
	Err     error
}

func (e *PublishError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("bus: publish on %q: %v", e.Subject, e.Err)
	}
	return fmt.Sprintf("bus: publish %s on %q: %v", e.ID, e.Subject, e.Err)
}

// Unwrap returns the underlying error.
func (e *PublishError) Unwrap() error { return e.Err }
