package accounts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of these
// (with %w), so callers match them with [errors.Is]. Messages never contain
// secrets: seeds and passphrases are never formatted into an error.
var (
	// ErrInvalidOption reports an invalid argument, option, name or subject.
	ErrInvalidOption = errors.New("accounts: invalid option")
	// ErrUntrustedOperator reports an account JWT not signed by a trusted operator.
	ErrUntrustedOperator = errors.New("accounts: untrusted operator")
	// ErrUnknownSigner reports a card or user JWT signed by a key that is
	// neither the account identity key nor a signing key listed in the account.
	ErrUnknownSigner = errors.New("accounts: unknown signer")
	// ErrScopedSigner reports a card (or a key asked to sign one) that is
	// issued by a scoped signing key of the account. NATS lets a scoped key
	// issue only users whose permissions are its template, and a card carries
	// its own permissions, so sealbus cards must be issued by the account
	// identity key or an unscoped signing key. It matches [ErrUnknownSigner]
	// too, so callers that treat an unknown signer as a refusal keep doing so.
	ErrScopedSigner = fmt.Errorf("%w: scoped signing key", ErrUnknownSigner)
	// ErrExpired reports a token past its expiry (beyond the clock-skew allowance).
	ErrExpired = errors.New("accounts: expired")
	// ErrNotYetValid reports a token whose not-before or issue time is in the
	// future (beyond the clock-skew allowance).
	ErrNotYetValid = errors.New("accounts: not yet valid")
	// ErrRevoked reports a user key revoked by its account at or after the
	// token's issue time, or covered by a "*" revocation.
	ErrRevoked = errors.New("accounts: revoked")
	// ErrWrongAccount reports a card or user JWT that names another account.
	ErrWrongAccount = errors.New("accounts: wrong account")
	// ErrPermissionMismatch reports a card whose permissions differ from the
	// user JWT of the same service.
	ErrPermissionMismatch = errors.New("accounts: permission mismatch")
	// ErrKeyMismatch reports keys that should be equal and are not (card user
	// key vs user JWT subject, stored seed vs recorded public key).
	ErrKeyMismatch = errors.New("accounts: key mismatch")
	// ErrWrongType reports a token of another claim type than expected.
	ErrWrongType = errors.New("accounts: wrong token type")
	// ErrTooLarge reports a token larger than the accepted maximum.
	ErrTooLarge = errors.New("accounts: token too large")
	// ErrBadToken reports a token that cannot be parsed or whose signature
	// does not verify.
	ErrBadToken = errors.New("accounts: bad token")
	// ErrWrongPassphrase reports a keystore passphrase that does not open the
	// store, or a store opened in the other mode (encrypted vs unencrypted).
	ErrWrongPassphrase = errors.New("accounts: wrong passphrase")
	// ErrNotFound reports a missing keystore entry.
	ErrNotFound = errors.New("accounts: not found")
	// ErrExists reports a keystore entry that would be overwritten by a
	// different identity.
	ErrExists = errors.New("accounts: already exists")
	// ErrCorrupt reports a keystore file that cannot be parsed or whose
	// contents are inconsistent.
	ErrCorrupt = errors.New("accounts: keystore file corrupt")
	// ErrNoSeed reports an operation that needs a private key held only as a
	// public key (for example an account identity key kept offline).
	ErrNoSeed = errors.New("accounts: private key not available")
	// ErrReadOnly reports a write to, or a private key asked of, a keystore
	// opened with [OpenKeystoreReadOnly].
	ErrReadOnly = errors.New("accounts: keystore opened read-only")
	// ErrWeakPassphrase reports a new keystore passphrase shorter than
	// [MinPassphraseLength].
	ErrWeakPassphrase = errors.New("accounts: passphrase too short")
)

// NotFoundError is a keystore entry that does not exist, with the names that
// do, so a caller can say what was meant. It matches [ErrNotFound].
type NotFoundError struct {
	Kind  string   // "account" or "service"
	Name  string   // the name asked for
	Scope string   // the account of a service; "" for an account
	Known []string // the names of that kind that exist, sorted
}

func (e *NotFoundError) Error() string {
	where := "in the keystore"
	if e.Scope != "" {
		where = "in account " + strconv.Quote(e.Scope)
	}
	msg := fmt.Sprintf("accounts: no %s %q %s", e.Kind, e.Name, where)
	if len(e.Known) == 0 {
		return msg + " (there are none)"
	}
	msg += " (known: " + strings.Join(e.Known, ", ")
	if s := e.Suggestion(); s != "" {
		msg += "; did you mean " + strconv.Quote(s) + "?"
	}
	return msg + ")"
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Suggestion returns the known name closest to Name (at most a third of its
// letters different, case ignored), or "".
func (e *NotFoundError) Suggestion() string {
	best, bestD := "", len(e.Name)/3+1
	for _, k := range e.Known {
		if d := editDistance(strings.ToLower(e.Name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ValidationError collects every problem found while verifying a token chain,
// in the spirit of jwt/v2 ValidationResults: verification does not stop at the
// first failure. [errors.Is] on a *ValidationError matches any of its problems.
type ValidationError struct {
	Problems []error
}

// Error lists all problems, separated by "; ".
func (e *ValidationError) Error() string {
	if e == nil || len(e.Problems) == 0 {
		return "accounts: validation failed"
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "accounts: validation failed: " + strings.Join(parts, "; ")
}

// Is reports whether any problem matches target.
func (e *ValidationError) Is(target error) bool {
	if e == nil {
		return false
	}
	for _, p := range e.Problems {
		if errors.Is(p, target) {
			return true
		}
	}
	return false
}

// Unwrap returns the problems, so errors.As finds typed errors among them.
func (e *ValidationError) Unwrap() []error {
	if e == nil {
		return nil
	}
	return e.Problems
}

// problems accumulates verification failures.
type problems []error

func (p *problems) add(err error) { *p = append(*p, err) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}
