package envelope

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these (or are a *RejectError)
// and are matched with [errors.Is] / [errors.As].
var (
	// ErrInvalidOption is returned by NewSealer and NewOpener for an option with an
	// out-of-range value, an option that does not apply to that constructor, or a missing
	// required argument (no identity, nil policy).
	ErrInvalidOption = errors.New("envelope: invalid option")
	// ErrInvalidKey is returned for a seed or public key that cannot be used: wrong nkeys
	// prefix or checksum, a non-canonical or low-order X25519 key, a wiped identity.
	ErrInvalidKey = errors.New("envelope: invalid key")
	// ErrInvalidMessage is returned by Seal and SealBatch when the input cannot be sealed:
	// an invalid account key, subject or content type, an expiry not after the creation
	// time, no or too many recipients, an empty or oversized batch, or an envelope that would
	// exceed the maximum size.
	ErrInvalidMessage = errors.New("envelope: invalid message")
	// ErrClosed is returned by Seal and SealBatch after Sealer.Close.
	ErrClosed = errors.New("envelope: sealer closed")

	// ErrSenderUnknown, ErrSenderRevoked and ErrSenderForbidden are what a SenderPolicy wraps
	// to choose the reason code of its refusal.
	ErrSenderUnknown   = errors.New("envelope: sender unknown")
	ErrSenderRevoked   = errors.New("envelope: sender revoked")
	ErrSenderForbidden = errors.New("envelope: sender not allowed to publish on subject")
)

// Reason is the machine-readable cause of a rejection. Its string form is stable: it goes
// into dead-letter headers, audit events and metric labels.
type Reason string

// Reason codes, in the order Open checks them (envelope/SPEC.md §7).
const (
	ReasonTooLarge        Reason = "too_large"        // envelope larger than the maximum size
	ReasonMalformed       Reason = "malformed"        // truncation, trailing bytes, non-canonical encoding, bad lengths
	ReasonVersion         Reason = "unknown_version"  // first byte is not version 1
	ReasonSuite           Reason = "unknown_suite"    // second byte is not suite 1
	ReasonAccountMismatch Reason = "account_mismatch" // signed account differs from the delivery account
	ReasonSubjectMismatch Reason = "subject_mismatch" // signed subject differs from the delivery subject
	ReasonStale           Reason = "stale"            // created too far from the stored time (either side)
	ReasonExpired         Reason = "expired"          // expiry reached at the stored time or now
	ReasonSenderUnknown   Reason = "sender_unknown"   // the policy does not know the sender
	ReasonSenderRevoked   Reason = "sender_revoked"   // the sender's key is revoked
	ReasonSenderForbidden Reason = "sender_forbidden" // the sender may not publish on the subject
	ReasonNotRecipient    Reason = "not_recipient"    // no recipient entry for any of my identities
	ReasonBadSignature    Reason = "bad_signature"    // Ed25519 signature over the batch root fails
	ReasonBadProof        Reason = "bad_proof"        // audit path length, leaf index and tree size inconsistent
	ReasonBadKey          Reason = "bad_key"          // X25519 with the epoch key gives the all-zero value
	ReasonUnwrap          Reason = "unwrap_failed"    // my wrapped content key does not authenticate
	ReasonKeyCommitment   Reason = "key_commitment"   // content key does not match the signed commitment
	ReasonDecrypt         Reason = "decrypt_failed"   // payload does not authenticate
)

var allReasons = []Reason{
	ReasonTooLarge, ReasonMalformed, ReasonVersion, ReasonSuite, ReasonAccountMismatch,
	ReasonSubjectMismatch, ReasonStale, ReasonExpired, ReasonSenderUnknown, ReasonSenderRevoked,
	ReasonSenderForbidden, ReasonNotRecipient, ReasonBadSignature, ReasonBadProof, ReasonBadKey,
	ReasonUnwrap, ReasonKeyCommitment, ReasonDecrypt,
}

// AllReasons returns every reason code in check order (a new slice each call).
func AllReasons() []Reason { return append([]Reason(nil), allReasons...) }

// Valid reports whether r is one of the defined reason codes.
func (r Reason) Valid() bool {
	for _, v := range allReasons {
		if r == v {
			return true
		}
	}
	return false
}

// RejectError is the error Open and Inspect return for an envelope they refuse. Err carries
// detail (never secret material) and is what Unwrap returns.
type RejectError struct {
	Reason Reason
	Err    error
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("envelope: rejected (%s)", e.Reason)
	}
	return fmt.Sprintf("envelope: rejected (%s): %v", e.Reason, e.Err)
}

func (e *RejectError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &RejectError{Reason: r}) true for any rejection with reason r.
func (e *RejectError) Is(target error) bool {
	t, ok := target.(*RejectError)
	return ok && t.Reason == e.Reason && (t.Err == nil || t.Err == e.Err)
}

// ReasonOf returns the reason of a rejection anywhere in err's chain, and false if err is not
// a rejection.
func ReasonOf(err error) (Reason, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	return "", false
}

func reject(r Reason, format string, args ...any) *RejectError {
	return &RejectError{Reason: r, Err: fmt.Errorf(format, args...)}
}
