package format

// The strict codec of sealbus evidence records, version 1 (envelope/RECORD.md): audit events,
// dead letters and replay authorizations, each signed by its writer. Like the envelope codec it
// knows the layout and the structural rules, nothing of the cryptography.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Record layout constants (envelope/RECORD.md §3).
const (
	RecordMagic   = "sbr" // bytes 0-2 of every record
	RecordVersion = 1     // byte 3

	// Kinds (byte 4).
	KindAudit      = 1 // payload: an audit event (JSON); no attachment
	KindDeadLetter = 2 // payload: dead-letter metadata (JSON); attachment: the envelope as received, or empty
	KindReplay     = 3 // payload: a replay authorization (JSON); no attachment

	// Writer roles (byte 61).
	RoleService  = 1 // a service's user key ("U..."); name and credential (its identity card) required
	RoleAccount  = 2 // an account identity or signing key ("A..."); no name, no credential
	RoleOperator = 3 // the operator key ("O..."); no name, no credential

	MaxRecordName       = 64
	MaxRecordCredential = 16 << 10
	MaxRecordPayload    = 64 << 10

	// RecordFixedLen is the length of the fixed-width prefix, magic through the writer key.
	RecordFixedLen = 3 + 1 + 1 + IDSize + 8 + KeySize + 1 + KeySize // 94
	// RecordMinLen is the length of the smallest record: the fixed prefix, the name, credential,
	// payload and attachment lengths, a one-byte payload and the signature.
	RecordMinLen = RecordFixedLen + 1 + 2 + 4 + 1 + 4 + SignatureSize
)

// Errors of ParseRecord: ErrRecordVersion for a record of another version (checked right after
// the magic), ErrMalformed (shared with the envelope codec) for everything else.
var ErrRecordVersion = errors.New("format: unknown record version")

// Record is a parsed record. Byte slices alias the parsed input.
type Record struct {
	Kind       uint8
	ID         [IDSize]byte
	Time       uint64 // unix milliseconds, 1 ≤ Time ≤ MaxTime
	Account    [KeySize]byte
	Role       uint8
	Writer     [KeySize]byte
	Name       string
	Credential []byte
	Payload    []byte
	Attachment []byte
	Signature  [SignatureSize]byte

	// SignedLen is the length of the signed part: bytes [0:SignedLen] are hashed into the
	// signature statement.
	SignedLen int
}

// validName is the service-name rule: [A-Za-z0-9][A-Za-z0-9_-]{0,63}.
func validName(s []byte) bool {
	if len(s) == 0 || len(s) > MaxRecordName {
		return false
	}
	for i, c := range s {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func printable(s []byte) bool {
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// ParseRecord decodes b strictly: the magic, then the version (ErrRecordVersion), then every
// field, rejecting truncation, trailing bytes, out-of-range lengths and values and combinations
// of kind and role RECORD.md forbids. Lengths are checked against the remaining input and the
// limits before anything is allocated.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) < len(RecordMagic) || string(b[:len(RecordMagic)]) != RecordMagic {
		return nil, malformed("not a record (magic)")
	}
	if len(b) < 4 {
		return nil, malformed("truncated record version")
	}
	if b[3] != RecordVersion {
		return nil, fmt.Errorf("%w %d", ErrRecordVersion, b[3])
	}
	rec := new(Record)
	r := &reader{b: b, off: 4}
	var err error
	if rec.Kind, err = r.u8("kind"); err != nil {
		return nil, err
	}
	if rec.Kind < KindAudit || rec.Kind > KindReplay {
		return nil, malformed("unknown record kind %d", rec.Kind)
	}
	if err = r.bytes(rec.ID[:], "record id"); err != nil {
		return nil, err
	}
	if rec.Time, err = r.u64("time"); err != nil {
		return nil, err
	}
	if rec.Time == 0 || rec.Time > MaxTime {
		return nil, malformed("time out of range")
	}
	if err = r.bytes(rec.Account[:], "account"); err != nil {
		return nil, err
	}
	if rec.Role, err = r.u8("writer role"); err != nil {
		return nil, err
	}
	if rec.Role < RoleService || rec.Role > RoleOperator {
		return nil, malformed("unknown writer role %d", rec.Role)
	}
	if err = r.bytes(rec.Writer[:], "writer"); err != nil {
		return nil, err
	}
	n8, err := r.u8("name length")
	if err != nil {
		return nil, err
	}
	if n8 > MaxRecordName {
		return nil, malformed("name length %d out of range", n8)
	}
	name, err := r.slice(int(n8), "name")
	if err != nil {
		return nil, err
	}
	n16, err := r.u16("credential length")
	if err != nil {
		return nil, err
	}
	if n16 > MaxRecordCredential {
		return nil, malformed("credential length %d out of range", n16)
	}
	if rec.Credential, err = r.slice(int(n16), "credential"); err != nil {
		return nil, err
	}
	switch rec.Role {
	case RoleService:
		if !validName(name) {
			return nil, malformed("a service writer needs a valid name")
		}
		if len(rec.Credential) == 0 || !printable(rec.Credential) {
			return nil, malformed("a service writer needs a printable credential")
		}
	default:
		if len(name) != 0 || len(rec.Credential) != 0 {
			return nil, malformed("an account or operator writer has no name and no credential")
		}
	}
	rec.Name = string(name)
	switch {
	case rec.Kind == KindDeadLetter && rec.Role != RoleService:
		return nil, malformed("dead letters are written by services")
	case rec.Kind == KindReplay && rec.Role != RoleAccount:
		return nil, malformed("replay authorizations are written by account keys")
	}
	n32, err := r.u32("payload length")
	if err != nil {
		return nil, err
	}
	if n32 == 0 || n32 > MaxRecordPayload {
		return nil, malformed("payload length %d out of range", n32)
	}
	if rec.Payload, err = r.slice(int(n32), "payload"); err != nil {
		return nil, err
	}
	if !utf8.Valid(rec.Payload) {
		return nil, malformed("payload is not UTF-8")
	}
	if n32, err = r.u32("attachment length"); err != nil {
		return nil, err
	}
	if uint64(n32) > uint64(len(b)-r.off) {
		return nil, malformed("attachment length %d beyond the input", n32)
	}
	if n32 != 0 && rec.Kind != KindDeadLetter {
		return nil, malformed("only dead letters carry an attachment")
	}
	if rec.Attachment, err = r.slice(int(n32), "attachment"); err != nil {
		return nil, err
	}
	rec.SignedLen = r.off
	if err = r.bytes(rec.Signature[:], "signature"); err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, malformed("%d trailing bytes", len(b)-r.off)
	}
	return rec, nil
}

// AppendSigned appends the signed part of rec (everything but the signature). It does not
// validate: callers check the rules first (or re-parse).
func (rec *Record) AppendSigned(b []byte) []byte {
	b = append(b, RecordMagic...)
	b = append(b, RecordVersion, rec.Kind)
	b = append(b, rec.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, rec.Time)
	b = append(b, rec.Account[:]...)
	b = append(b, rec.Role)
	b = append(b, rec.Writer[:]...)
	b = append(b, uint8(len(rec.Name)))
	b = append(b, rec.Name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rec.Credential)))
	b = append(b, rec.Credential...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Payload)))
	b = append(b, rec.Payload...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Attachment)))
	return append(b, rec.Attachment...)
}

// RecordSize is the encoded length of rec.
func (rec *Record) RecordSize() int {
	return RecordFixedLen + 1 + len(rec.Name) + 2 + len(rec.Credential) + 4 + len(rec.Payload) + 4 + len(rec.Attachment) + SignatureSize
}

// Marshal returns the full encoding, the inverse of ParseRecord for every record it accepts.
func (rec *Record) Marshal() []byte {
	b := make([]byte, 0, rec.RecordSize())
	b = rec.AppendSigned(b)
	return append(b, rec.Signature[:]...)
}
