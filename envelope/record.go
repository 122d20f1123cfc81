package envelope

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/merkle"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

// Records (envelope/RECORD.md) are sealbus's evidence: audit events, dead letters and replay
// authorizations, each signed by the key of its writer and naming that writer. They are not
// encrypted. A record's signature statement starts with 0xFE and its own label, so it can never
// be mistaken for an envelope batch statement, a NATS login nonce or a JWT.

// RecordKind is what a record carries (RECORD.md §3).
type RecordKind uint8

// Record kinds.
const (
	RecordAudit               RecordKind = 1 // an audit event (JSON)
	RecordDeadLetter          RecordKind = 2 // dead-letter metadata (JSON) and the envelope as received
	RecordReplayAuthorization RecordKind = 3 // an operator's authorization to replay one dead letter (JSON)
)

func (k RecordKind) String() string {
	switch k {
	case RecordAudit:
		return "audit"
	case RecordDeadLetter:
		return "dead_letter"
	case RecordReplayAuthorization:
		return "replay_authorization"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// WriterRole is the kind of key that signed a record.
type WriterRole uint8

// Writer roles.
const (
	WriterService  WriterRole = 1 // a service's user key ("U..."), with its name and identity card
	WriterAccount  WriterRole = 2 // an account identity or signing key ("A...")
	WriterOperator WriterRole = 3 // the operator key ("O...")
)

func (r WriterRole) String() string {
	switch r {
	case WriterService:
		return "service"
	case WriterAccount:
		return "account"
	case WriterOperator:
		return "operator"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

func (r WriterRole) prefix() nkeys.PrefixByte {
	switch r {
	case WriterService:
		return nkeys.PrefixByteUser
	case WriterAccount:
		return nkeys.PrefixByteAccount
	case WriterOperator:
		return nkeys.PrefixByteOperator
	}
	return 0
}

// Record size limits.
const (
	// MaxRecordPayload is the largest payload (JSON) of a record.
	MaxRecordPayload = 64 << 10
	// MaxRecordCredential is the largest writer credential (an identity card).
	MaxRecordCredential = 16 << 10
	// RecordOverhead bounds the bytes a record adds to its attachment (fixed fields, name,
	// credential, payload and signature at their maxima: RECORD.md §3).
	RecordOverhead = 94 + 1 + 64 + 2 + MaxRecordCredential + 4 + MaxRecordPayload + 4 + 64
	// HardMaxRecordSize is the largest record any reader accepts: an envelope of HardMaxSize
	// plus RecordOverhead.
	HardMaxRecordSize = HardMaxSize + RecordOverhead
	// DefaultMaxRecordSize is the largest record VerifyRecord accepts by default: a default
	// maximum envelope plus RecordOverhead.
	DefaultMaxRecordSize = DefaultMaxSize + RecordOverhead
)

// RecordID is the 128-bit random identifier of a record.
type RecordID [16]byte

// String returns the id as 32 lower-case hex digits.
func (id RecordID) String() string { return hex.EncodeToString(id[:]) }

// ParseRecordID parses the String form of a RecordID.
func ParseRecordID(s string) (RecordID, error) {
	m, err := ParseMessageID(s)
	if err != nil {
		return RecordID{}, fmt.Errorf("envelope: record id: %w", err)
	}
	return RecordID(m), nil
}

// Record is one evidence record. Fields named in the writer's favour (Writer, WriterName,
// Credential) are what the record states; VerifyRecord checks the signature against Writer and
// asks a RecordPolicy whether Writer may be trusted.
type Record struct {
	Kind       RecordKind
	ID         RecordID
	Time       time.Time // millisecond precision, UTC
	Account    string    // "A...": the account the record belongs to
	Role       WriterRole
	Writer     string // the signing key: "U..." (service), "A..." (account), "O..." (operator)
	WriterName string // the service's name; empty for account and operator writers
	Credential string // the service's identity card (a JWT); empty for account and operator writers
	Payload    []byte // JSON, kind-specific (RECORD.md §4)
	Attachment []byte // dead letters only: the envelope bytes as received (empty when omitted)
	Size       int    // encoded length (set by ParseRecord and VerifyRecord)
}

// RecordReason is the machine-readable cause of a refused record. Its string form is stable.
type RecordReason string

// Record reasons, in the order VerifyRecord checks them (RECORD.md §6).
const (
	RecordTooLarge       RecordReason = "too_large"       // longer than the reader's maximum
	RecordMalformed      RecordReason = "malformed"       // not a record, truncated, trailing bytes, a rule of §3 broken
	RecordUnknownVersion RecordReason = "unknown_version" // a record of another format version
	RecordBadSignature   RecordReason = "bad_signature"   // the signature does not verify under the named writer key
	RecordWriterUnknown  RecordReason = "writer_unknown"  // the policy does not vouch for the writer (any unspecified refusal)
	RecordWriterRevoked  RecordReason = "writer_revoked"  // the writer's key was revoked at or before the record's time
)

// ErrWriterUnknown and ErrWriterRevoked are what a RecordPolicy wraps to choose the reason of
// its refusal.
var (
	ErrWriterUnknown = errors.New("envelope: record writer unknown")
	ErrWriterRevoked = errors.New("envelope: record writer revoked")
)

// RecordError is the error ParseRecord and VerifyRecord return for a record they refuse.
type RecordError struct {
	Reason RecordReason
	Err    error
}

func (e *RecordError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("envelope: record refused (%s)", e.Reason)
	}
	return fmt.Sprintf("envelope: record refused (%s): %v", e.Reason, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &RecordError{Reason: r}) true for any refusal with reason r.
func (e *RecordError) Is(target error) bool {
	t, ok := target.(*RecordError)
	return ok && t.Reason == e.Reason && (t.Err == nil || t.Err == e.Err)
}

// RecordReasonOf returns the reason of a record refusal anywhere in err's chain.
func RecordReasonOf(err error) (RecordReason, bool) {
	var re *RecordError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	return "", false
}

func refuse(r RecordReason, format string, args ...any) *RecordError {
	return &RecordError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// RecordPolicy decides, after the record's signature verified under the key it names, whether
// that writer is trusted for the record: for example that a service's credential is a valid
// identity card of the record's account for that key and name, valid at the record's time and
// not revoked, or that an account key is a signing key of the account. A nil error accepts. A
// refusal should wrap ErrWriterRevoked (reason writer_revoked); any other error is
// writer_unknown. Implementations must be safe for concurrent use.
type RecordPolicy interface {
	CheckWriter(r *Record) error
}

// RecordPolicyFunc adapts a function to RecordPolicy.
type RecordPolicyFunc func(r *Record) error

// CheckWriter calls f.
func (f RecordPolicyFunc) CheckWriter(r *Record) error { return f(r) }

// ParseRecord parses data strictly (RECORD.md §3) without verifying anything, for tooling and
// for readers that report why a record failed. Its result is untrusted. Errors are
// *RecordError (too_large above HardMaxRecordSize, unknown_version, malformed).
func ParseRecord(data []byte) (*Record, error) {
	r, _, rerr := parseRecord(data, HardMaxRecordSize)
	if rerr != nil {
		return nil, rerr
	}
	return r, nil
}

func parseRecord(data []byte, maxSize int) (*Record, *format.Record, *RecordError) {
	if len(data) > maxSize {
		return nil, nil, refuse(RecordTooLarge, "%d bytes exceeds the maximum %d", len(data), maxSize)
	}
	fr, err := format.ParseRecord(data)
	if err != nil {
		if errors.Is(err, format.ErrRecordVersion) {
			return nil, nil, refuse(RecordUnknownVersion, "record version %d", data[3])
		}
		return nil, nil, &RecordError{Reason: RecordMalformed, Err: err}
	}
	role := WriterRole(fr.Role)
	r := &Record{
		Kind:       RecordKind(fr.Kind),
		ID:         RecordID(fr.ID),
		Time:       unixMilli(fr.Time),
		Account:    encodeKey(nkeys.PrefixByteAccount, fr.Account),
		Role:       role,
		Writer:     encodeKey(role.prefix(), fr.Writer),
		WriterName: fr.Name,
		Credential: string(fr.Credential),
		Payload:    fr.Payload,
		Attachment: fr.Attachment,
		Size:       len(data),
	}
	return r, fr, nil
}

// VerifyRecord verifies data and returns the record: its length against maxSize
// (DefaultMaxRecordSize when 0; at most HardMaxRecordSize), the strict parse, the Ed25519
// signature over the record statement under the writer key the record names, then the policy's
// decision about that writer. It stops at the first failure with a *RecordError. The returned
// slices alias data.
func VerifyRecord(data []byte, policy RecordPolicy, maxSize int) (*Record, error) {
	if policy == nil {
		return nil, fmt.Errorf("%w: nil record policy", ErrInvalidOption)
	}
	switch {
	case maxSize == 0:
		maxSize = DefaultMaxRecordSize
	case maxSize < MinMaxSize || maxSize > HardMaxRecordSize:
		return nil, fmt.Errorf("%w: record max size %d outside [%d, %d]", ErrInvalidOption, maxSize, MinMaxSize, HardMaxRecordSize)
	}
	r, fr, rerr := parseRecord(data, maxSize)
	if rerr != nil {
		return nil, rerr
	}
	if !ed25519.Verify(ed25519.PublicKey(fr.Writer[:]), suite.RecordStatement(data[:fr.SignedLen]), fr.Signature[:]) {
		return nil, refuse(RecordBadSignature, "signature does not verify under %s", r.Writer)
	}
	if err := policy.CheckWriter(r); err != nil {
		if errors.Is(err, ErrWriterRevoked) {
			return nil, &RecordError{Reason: RecordWriterRevoked, Err: err}
		}
		return nil, &RecordError{Reason: RecordWriterUnknown, Err: err}
	}
	return r, nil
}

// prepare validates r for signing by a writer of role with public key pub, fills the id (from
// crypto/rand when zero) and the time (now when zero), and returns the encoded record with a
// zero signature and the length of its signed part. The parser is the one statement of the
// rules: a record it would refuse is not signed.
func prepare(r Record, role WriterRole, pub []byte, name string) ([]byte, int, error) {
	fr := &format.Record{Kind: uint8(r.Kind), Role: uint8(role), Name: name, Credential: []byte(r.Credential), Payload: r.Payload, Attachment: r.Attachment}
	copy(fr.Writer[:], pub)
	if r.ID == (RecordID{}) {
		if _, err := io.ReadFull(rand.Reader, fr.ID[:]); err != nil {
			return nil, 0, fmt.Errorf("envelope: record id: %w", err)
		}
	} else {
		fr.ID = r.ID
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	if t.UnixMilli() < 1 {
		return nil, 0, fmt.Errorf("%w: record time before 1970", ErrInvalidMessage)
	}
	fr.Time = uint64(t.UnixMilli())
	acct, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(r.Account))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: record account is not an account public key", ErrInvalidMessage)
	}
	copy(fr.Account[:], acct)
	if len(name) > format.MaxRecordName || len(r.Credential) > format.MaxRecordCredential || len(r.Payload) > format.MaxRecordPayload || len(r.Attachment) > HardMaxSize {
		return nil, 0, fmt.Errorf("%w: record field too large", ErrInvalidMessage)
	}
	buf := fr.AppendSigned(make([]byte, 0, fr.RecordSize()))
	signed := len(buf)
	buf = append(buf, make([]byte, format.SignatureSize)...)
	if _, err := format.ParseRecord(buf); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	return buf, signed, nil
}

// SignRecord signs r as this identity's service: the writer is the identity's user key, with
// r.WriterName (the service's name) and r.Credential (its identity card) as given. A zero r.ID
// is drawn from crypto/rand and a zero r.Time is now; r.Role and r.Writer are set here. It
// returns the encoded record, or an error wrapping ErrInvalidMessage for a record that breaks
// a rule of RECORD.md §3 (ErrInvalidKey after Wipe).
func (id *Identity) SignRecord(r Record) ([]byte, error) {
	if id == nil || id.signPriv == nil {
		return nil, fmt.Errorf("%w: nil or wiped identity", ErrInvalidKey)
	}
	buf, signed, err := prepare(r, WriterService, id.signPub[:], r.WriterName)
	if err != nil {
		return nil, err
	}
	copy(buf[signed:], ed25519.Sign(id.signPriv, suite.RecordStatement(buf[:signed])))
	return buf, nil
}

// SignRecord signs r with an account key ("A...", role account) or the operator key ("O...",
// role operator); such writers have no name and no credential. A zero r.ID is drawn from
// crypto/rand and a zero r.Time is now. Service records are signed with Identity.SignRecord.
func SignRecord(key nkeys.KeyPair, r Record) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: nil signing key", ErrInvalidKey)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: signing key: %v", ErrInvalidKey, err)
	}
	var role WriterRole
	var raw []byte
	if b, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(pub)); err == nil {
		role, raw = WriterAccount, b
	} else if b, err := nkeys.Decode(nkeys.PrefixByteOperator, []byte(pub)); err == nil {
		role, raw = WriterOperator, b
	} else {
		return nil, fmt.Errorf("%w: records are signed by account or operator keys here (services use Identity.SignRecord)", ErrInvalidKey)
	}
	if r.WriterName != "" || r.Credential != "" {
		return nil, fmt.Errorf("%w: an account or operator writer has no name and no credential", ErrInvalidMessage)
	}
	buf, signed, err := prepare(r, role, raw, "")
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(suite.RecordStatement(buf[:signed]))
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %v", ErrInvalidKey, err)
	}
	if len(sig) != format.SignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrInvalidKey, len(sig))
	}
	copy(buf[signed:], sig)
	return buf, nil
}

// DeriveSubjectToken returns a secret token (32 lower-case hex digits) that only the holder of
// key can compute for account: a hash of key's Ed25519 signature over the subject-token
// statement of RECORD.md §5, which no verifier accepts as any other statement. The operator
// names its admin evidence subject with it, so that services cannot name (and flood) that
// subject. Ed25519 signatures are deterministic, so the token is stable for a key.
func DeriveSubjectToken(key nkeys.KeyPair, account string) (string, error) {
	if key == nil {
		return "", fmt.Errorf("%w: nil signing key", ErrInvalidKey)
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(account))
	if err != nil {
		return "", fmt.Errorf("%w: not an account public key", ErrInvalidKey)
	}
	var a [32]byte
	copy(a[:], raw)
	sig, err := key.Sign(suite.SubjectTokenStatement(a))
	if err != nil {
		return "", fmt.Errorf("%w: signing: %v", ErrInvalidKey, err)
	}
	h := sha256.Sum256(sig)
	return hex.EncodeToString(h[:16]), nil
}

// CheckSignature parses data strictly and verifies its batch proof and Ed25519 signature under
// the sender key its header names, without decrypting anything and without deciding whether
// that sender is trusted (the caller does, with Info.Sender). It is for operator tools that must
// not act on an envelope nobody signed, such as replaying a dead letter. Errors are
// *RejectError: too_large (above HardMaxSize), unknown_version, unknown_suite, malformed,
// bad_proof, bad_signature.
func CheckSignature(data []byte) (*Info, error) {
	info, err := Inspect(data)
	if err != nil {
		return nil, err
	}
	e, rerr := parse(data)
	if rerr != nil {
		return nil, rerr
	}
	if len(e.Path) != merkle.PathLen(e.LeafIndex, e.TreeSize) {
		return nil, reject(ReasonBadProof, "leaf %d of %d needs a path of %d hashes, has %d", e.LeafIndex, e.TreeSize, merkle.PathLen(e.LeafIndex, e.TreeSize), len(e.Path))
	}
	root, err := merkle.RootFromPath(merkle.LeafHash(data[:e.SignedLen]), e.LeafIndex, e.TreeSize, e.Path)
	if err != nil {
		return nil, reject(ReasonBadProof, "leaf %d of %d: %v", e.LeafIndex, e.TreeSize, err)
	}
	if !ed25519.Verify(ed25519.PublicKey(e.Sender[:]), suite.Statement(e.TreeSize, root), e.Signature[:]) {
		return nil, reject(ReasonBadSignature, "signature over the batch root does not verify")
	}
	return info, nil
}
