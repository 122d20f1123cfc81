package operator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// RecordState is a reader's verdict on one stored message of the audit or dead-letter stream.
// Only [StateVerified] records are evidence; everything else is something a service (or the
// broker) put there, shown for what it is and counted, never as genuine.
type RecordState string

// Record states, from the least to the most established.
const (
	// StateUnsigned: not a record at all (a JSON event, a JetStream API answer a service made
	// the server store with a reply subject, junk).
	StateUnsigned RecordState = "unsigned"
	// StateMalformed: it starts like a record but does not parse (truncated, altered lengths,
	// another version, too large).
	StateMalformed RecordState = "malformed"
	// StateBadSignature: the signature does not verify under the writer key it names (altered,
	// or forged in another writer's name).
	StateBadSignature RecordState = "bad_signature"
	// StateUnknownWriter: the signature verifies, but the account does not vouch for the
	// writer: its card does not verify up to the trusted operator or names other keys, the
	// record's time is outside the card's validity, its key is not a signing key of the
	// account, or it belongs to another account.
	StateUnknownWriter RecordState = "unknown_writer"
	// StateRevokedWriter: the writer's key was revoked before the record's time.
	StateRevokedWriter RecordState = "revoked_writer"
	// StateMisplaced: a genuine record in the wrong place: on a subject that is not its
	// writer's, of a kind that does not belong in this stream, or with content that disagrees
	// with the record (an event whose source is not its writer, a dead letter whose envelope
	// does not match its hash, metadata that does not decode).
	StateMisplaced RecordState = "misplaced"
	// StateVerified: signed by its writer, the writer vouched for by the account up to the
	// trusted operator and not revoked at the record's time, and stored where its writer
	// writes.
	StateVerified RecordState = "verified"
)

// Verification is the outcome of verifying one stored record.
type Verification struct {
	State RecordState
	// Detail says why a record is not verified. It may quote names from the record:
	// untrusted text, escape it before printing.
	Detail string
	// Record is the parsed record (nil when it does not parse). Its fields are the writer's
	// claims unless State is StateVerified.
	Record *envelope.Record
	// Writer names the verified writer: a service name, accounts.AdminWriter for an account
	// key, or "_operator" for the operator key. Empty unless StateVerified.
	Writer string
}

// Verified reports whether the record is evidence.
func (v Verification) Verified() bool { return v.State == StateVerified }

// OperatorWriter names records written by the operator key (Verification.Writer).
const OperatorWriter = "_operator"

// RecordVerifier verifies the records of one account up to a trusted operator: a service's
// record by its identity card (carried in the record) against the account's verified JWT —
// card signed by a listed, unscoped signing key, naming the record's writer key and name,
// valid at the record's time, its key not revoked before that time (so records written
// before a rotation or revocation still verify, later ones do not); an admin record by the
// account's identity or signing keys; an operator record by the trusted operator key that
// signed the account. Safe for concurrent use. The monitor and other operator tools use it
// for records read anywhere.
type RecordVerifier struct {
	trust  accounts.Trust
	claims *jwt.AccountClaims

	mu    sync.Mutex
	cards map[string]*accounts.Card // card tokens decoded and signature-checked, bounded by maxCardCache
}

// maxCardCache bounds the decoded cards a verifier keeps: a writer's records all carry the same
// card, so its signature is checked once.
const maxCardCache = 1024

// card decodes a card token (its signature checked against its issuer), through the cache.
func (v *RecordVerifier) card(token string) (*accounts.Card, error) {
	v.mu.Lock()
	c, ok := v.cards[token]
	v.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := accounts.DecodeCard(token)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.cards == nil || len(v.cards) >= maxCardCache {
		v.cards = map[string]*accounts.Card{}
	}
	v.cards[token] = c
	v.mu.Unlock()
	return c, nil
}

// NewRecordVerifier returns a verifier for the account of accountJWT, which must verify up to
// trust's operators (the keystore's account JWT is the usual source: it carries the current
// signing keys and revocations).
func NewRecordVerifier(trust accounts.Trust, accountJWT string) (*RecordVerifier, error) {
	claims, err := trust.VerifyAccount(accountJWT)
	if err != nil {
		return nil, err
	}
	return &RecordVerifier{trust: trust, claims: claims}, nil
}

// Account returns the public key of the account the verifier is for.
func (v *RecordVerifier) Account() string { return v.claims.Subject }

// revokedAt reports whether the account revoked key before at: a revocation of key (or of "*")
// dated in an earlier second (revocations have second precision, and a rotation revokes the old
// key in the second it happens: a record its writer signed in that second, before it, stays
// verified; the server refuses the key from then on).
func revokedAt(claims *jwt.AccountClaims, key string, at time.Time) bool {
	for _, k := range []string{key, jwt.All} {
		if ts, ok := claims.Revocations[k]; ok && ts < at.Unix() {
			return true
		}
	}
	return false
}

// CheckWriter implements envelope.RecordPolicy for this account.
func (v *RecordVerifier) CheckWriter(r *envelope.Record) error {
	c := v.claims
	if r.Account != c.Subject {
		return fmt.Errorf("%w: record of account %s, verifier of %s", envelope.ErrWriterUnknown, r.Account, c.Subject)
	}
	switch r.Role {
	case envelope.WriterService:
		card, err := v.card(r.Credential)
		if err != nil {
			return fmt.Errorf("%w: credential: %v", envelope.ErrWriterUnknown, err)
		}
		switch {
		case card.Account != c.Subject:
			return fmt.Errorf("%w: card of another account", envelope.ErrWriterUnknown)
		case !(card.Issuer == c.Subject || c.SigningKeys.Contains(card.Issuer)):
			return fmt.Errorf("%w: card signed by %s, not a signing key of the account", envelope.ErrWriterUnknown, card.Issuer)
		case card.UserKey != r.Writer || card.Name != r.WriterName:
			return fmt.Errorf("%w: the card names another key or service", envelope.ErrWriterUnknown)
		}
		if scope, ok := c.SigningKeys.GetScope(card.Issuer); ok && scope != nil {
			return fmt.Errorf("%w: card signed by a scoped signing key", envelope.ErrWriterUnknown)
		}
		skew := v.trust.Skew
		if skew == 0 {
			skew = accounts.DefaultSkew
		}
		if r.Time.Before(card.NotBefore.Add(-skew)) || r.Time.After(card.Expires.Add(skew)) {
			return fmt.Errorf("%w: record time outside the card's validity", envelope.ErrWriterUnknown)
		}
		if revokedAt(c, r.Writer, r.Time) {
			return fmt.Errorf("%w: key %s revoked", envelope.ErrWriterRevoked, r.Writer)
		}
	case envelope.WriterAccount:
		if r.Writer != c.Subject && !c.SigningKeys.Contains(r.Writer) {
			return fmt.Errorf("%w: %s is not a key of the account", envelope.ErrWriterUnknown, r.Writer)
		}
		if scope, ok := c.SigningKeys.GetScope(r.Writer); ok && scope != nil {
			return fmt.Errorf("%w: %s is a scoped signing key", envelope.ErrWriterUnknown, r.Writer)
		}
	case envelope.WriterOperator:
		if r.Writer != c.Issuer || !v.trusts(r.Writer) {
			return fmt.Errorf("%w: %s is not the account's trusted operator", envelope.ErrWriterUnknown, r.Writer)
		}
	default:
		return fmt.Errorf("%w: role %v", envelope.ErrWriterUnknown, r.Role)
	}
	return nil
}

func (v *RecordVerifier) trusts(op string) bool {
	for _, o := range v.trust.Operators {
		if o == op {
			return true
		}
	}
	return false
}

// recordMagic is how a record starts (envelope/RECORD.md §3).
var recordMagic = []byte("sbr")

// Verify verifies one stored message of the account's audit or dead-letter stream, data as
// stored under subject: the record and its writer (see RecordVerifier), then its place: an
// audit record on its writer's audit (or overflow) subject with an event whose source is that
// writer, a dead letter on its writer's dead-letter subject with metadata that decodes and an
// envelope matching its hash. An empty subject skips the place check (for records copied into
// another stream under other subjects, such as an operator-wide view): the caller then checks
// where a record came from itself.
func (v *RecordVerifier) Verify(subject string, data []byte) Verification {
	if !bytes.HasPrefix(data, recordMagic) {
		return Verification{State: StateUnsigned, Detail: "not a signed record"}
	}
	r, err := envelope.VerifyRecord(data, v, envelope.HardMaxRecordSize)
	if err != nil {
		out := Verification{Detail: err.Error()}
		out.Record, _ = envelope.ParseRecord(data)
		reason, _ := envelope.RecordReasonOf(err)
		switch reason {
		case envelope.RecordBadSignature:
			out.State = StateBadSignature
		case envelope.RecordWriterUnknown:
			out.State = StateUnknownWriter
		case envelope.RecordWriterRevoked:
			out.State = StateRevokedWriter
		default:
			out.State = StateMalformed
		}
		return out
	}
	out := Verification{Record: r, State: StateMisplaced}
	writer := r.WriterName
	switch r.Role {
	case envelope.WriterAccount:
		writer = accounts.AdminWriter
	case envelope.WriterOperator:
		writer = accounts.AdminWriter // the operator writes on the account's admin subject too
	}
	var overflow bool
	if subject != "" {
		es, ok := accounts.ParseEvidenceSubject(subject)
		switch {
		case !ok:
			out.Detail = "stored on a subject that is not an evidence subject"
			return out
		case es.Writer != writer:
			out.Detail = fmt.Sprintf("written by %s, stored on the subject of %s", writer, es.Writer)
			return out
		case (es.Stream == accounts.AuditStream) != (r.Kind == envelope.RecordAudit) || (es.Stream == accounts.DLQStream) != (r.Kind == envelope.RecordDeadLetter):
			out.Detail = fmt.Sprintf("a %s record in %s", r.Kind, es.Stream)
			return out
		}
		overflow = es.Overflow
	}
	switch r.Kind {
	case envelope.RecordAudit:
		e, err := bus.ParseEvent(r.Payload)
		if err != nil {
			out.Detail = "the event does not decode: " + err.Error()
			return out
		}
		if e.Source != bus.EventSource(r.Account, writer) {
			out.Detail = "the event names another source than its writer"
			return out
		}
		if overflow && e.Type != bus.EventEvidenceRefused {
			out.Detail = "an event other than an overflow report on an overflow subject"
			return out
		}
	case envelope.RecordDeadLetter:
		m, err := consumers.ParseDeadLetterMeta(r.Payload)
		if err != nil {
			out.Detail = err.Error()
			return out
		}
		if m.EnvelopeOmitted != (len(r.Attachment) == 0) {
			out.Detail = "the envelope is missing or was said to be omitted"
			return out
		}
		if !m.EnvelopeOmitted {
			sum := sha256.Sum256(r.Attachment)
			if hex.EncodeToString(sum[:]) != m.EnvelopeSHA256 || len(r.Attachment) != m.EnvelopeSize {
				out.Detail = "the envelope does not match its hash"
				return out
			}
		}
	default:
		out.Detail = fmt.Sprintf("a %s record is never stored", r.Kind)
		return out
	}
	if r.Role == envelope.WriterOperator {
		out.Writer = OperatorWriter
	} else {
		out.Writer = writer
	}
	out.State, out.Detail = StateVerified, ""
	return out
}

// Counts tallies verification states (for a summary line: how many records verified, how
// many did not and why).
type Counts map[RecordState]int

// Add counts one state.
func (c Counts) Add(s RecordState) { c[s]++ }

// Verified returns the number of verified records.
func (c Counts) Verified() int { return c[StateVerified] }

// Unverified returns the number of records that did not verify.
func (c Counts) Unverified() int {
	n := 0
	for s, k := range c {
		if s != StateVerified {
			n += k
		}
	}
	return n
}

// errNoVerifier is what a reader made without a JetStream context or a verifier returns.
var errNoVerifier = fmt.Errorf("%w: a JetStream context and a record verifier are required", ErrInvalidSpec)
