// Package format is the strict wire codec of sealbus envelopes, version 1.
//
// It knows the byte layout and nothing of the cryptography: [Parse] turns bytes into an
// [Envelope] and rejects every input that is not the one canonical encoding of its values;
// [Envelope.Marshal] is its exact inverse. The layout is specified in envelope/SPEC.md.
package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Fixed sizes and limits of version 1.
const (
	Version = 1 // the only version byte accepted
	Suite   = 1 // Ed25519, X25519, HKDF-SHA256, XChaCha20-Poly1305

	IDSize         = 16
	KeySize        = 32 // Ed25519 and X25519 public keys, content keys, commitments
	NonceSize      = 24 // XChaCha20-Poly1305 nonce
	TagSize        = 16 // Poly1305 tag
	WrappedSize    = KeySize + TagSize
	RecipientSize  = KeySize + NonceSize + WrappedSize // 104
	HashSize       = 32                                // SHA-256
	SignatureSize  = 64                                // Ed25519
	MaxSubjectLen  = 1024
	MaxContentType = 255
	MaxRecipients  = 1024
	MaxTreeSize    = 1 << 16
	MaxPathLen     = 16
	MaxTime        = 1<<63 - 1 // timestamps are unix milliseconds below 2^63

	// FixedPrefixLen is the length of the fixed-width part of the header, from the version byte
	// through the key commitment.
	FixedPrefixLen = 2 + IDSize + 8 + 8 + 3*KeySize + KeySize // 162
)

// Errors returned by Parse. ErrVersion and ErrSuite are returned for an unknown first or
// second byte before anything else is read; every other failure wraps ErrMalformed.
var (
	ErrVersion   = errors.New("format: unknown version")
	ErrSuite     = errors.New("format: unknown suite")
	ErrMalformed = errors.New("format: malformed envelope")
)

// Recipient is one wrapped copy of the content key.
type Recipient struct {
	Key     [KeySize]byte     // recipient's X25519 public key
	Nonce   [NonceSize]byte   // nonce of the key wrap
	Wrapped [WrappedSize]byte // XChaCha20-Poly1305(wrap key, nonce, content key)
}

// Envelope is a parsed envelope. Byte slices alias the parsed input.
type Envelope struct {
	ID          [IDSize]byte
	Created     uint64 // unix milliseconds, 1 ≤ Created ≤ MaxTime
	Expires     uint64 // unix milliseconds, 0 or Created < Expires ≤ MaxTime
	Account     [KeySize]byte
	Sender      [KeySize]byte
	EpochKey    [KeySize]byte
	Commitment  [KeySize]byte
	Subject     string
	ContentType string
	Recipients  []Recipient // strictly ascending by Key

	// SubjectHint is read by ParseInto only: when the encoded subject equals it, Subject is
	// set to this string instead of a copy of the bytes (an opener passes the delivery's
	// subject, which a valid envelope must match).
	SubjectHint string

	Ciphertext []byte // payload ciphertext followed by its tag

	LeafIndex uint32
	TreeSize  uint32
	Path      [][HashSize]byte
	Signature [SignatureSize]byte

	// Offsets into the encoding: bytes [0:HeaderLen] are the header (the payload's associated
	// data) and bytes [0:SignedLen] are the signed part (the Merkle leaf).
	HeaderLen int
	SignedLen int
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) need(n int, what string) error {
	if n < 0 || len(r.b)-r.off < n {
		return fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	return nil
}

func (r *reader) bytes(dst []byte, what string) error {
	if err := r.need(len(dst), what); err != nil {
		return err
	}
	copy(dst, r.b[r.off:])
	r.off += len(dst)
	return nil
}

func (r *reader) slice(n int, what string) ([]byte, error) {
	if err := r.need(n, what); err != nil {
		return nil, err
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) u8(what string) (uint8, error) {
	if err := r.need(1, what); err != nil {
		return 0, err
	}
	v := r.b[r.off]
	r.off++
	return v, nil
}

func (r *reader) u16(what string) (uint16, error) {
	if err := r.need(2, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v, nil
}

func (r *reader) u32(what string) (uint32, error) {
	if err := r.need(4, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u64(what string) (uint64, error) {
	if err := r.need(8, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// CheckVersion looks only at the first two bytes: it returns ErrVersion or ErrSuite for an
// unknown version or suite, ErrMalformed if there are fewer than two bytes, and nil otherwise.
func CheckVersion(b []byte) error {
	if len(b) < 1 {
		return malformed("truncated version")
	}
	if b[0] != Version {
		return fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	if len(b) < 2 {
		return malformed("truncated suite")
	}
	if b[1] != Suite {
		return fmt.Errorf("%w %d", ErrSuite, b[1])
	}
	return nil
}

// Parse decodes b strictly. It rejects truncation, trailing bytes, out-of-range lengths and
// values, and every non-canonical encoding. Lengths are checked against the remaining input
// and the limits before anything is allocated.
func Parse(b []byte) (*Envelope, error) {
	e := new(Envelope)
	if err := ParseInto(e, b); err != nil {
		return nil, err
	}
	return e, nil
}

// ParseInto is Parse into e, reusing the capacity of e.Recipients and e.Path (a receiver
// parses every envelope into the same few structures). On error e holds a partial parse and
// must not be used.
func ParseInto(e *Envelope, b []byte) error {
	_, err := parseInto(e, b)
	return err
}

func parseInto(e *Envelope, b []byte) (*Envelope, error) {
	if err := CheckVersion(b); err != nil {
		return nil, err
	}
	recs, path, hint := e.Recipients[:0], e.Path[:0], e.SubjectHint
	*e = Envelope{SubjectHint: hint}
	r := &reader{b: b, off: 2}
	var err error
	if err = r.bytes(e.ID[:], "message id"); err != nil {
		return nil, err
	}
	if e.Created, err = r.u64("creation time"); err != nil {
		return nil, err
	}
	if e.Created == 0 || e.Created > MaxTime {
		return nil, malformed("creation time out of range")
	}
	if e.Expires, err = r.u64("expiry time"); err != nil {
		return nil, err
	}
	if e.Expires != 0 && (e.Expires <= e.Created || e.Expires > MaxTime) {
		return nil, malformed("expiry time out of range")
	}
	if err = r.bytes(e.Account[:], "account"); err != nil {
		return nil, err
	}
	if err = r.bytes(e.Sender[:], "sender"); err != nil {
		return nil, err
	}
	if err = r.bytes(e.EpochKey[:], "epoch key"); err != nil {
		return nil, err
	}
	if !CanonicalX25519(e.EpochKey[:]) {
		return nil, malformed("non-canonical epoch key")
	}
	if err = r.bytes(e.Commitment[:], "key commitment"); err != nil {
		return nil, err
	}

	n16, err := r.u16("subject length")
	if err != nil {
		return nil, err
	}
	if n16 == 0 || n16 > MaxSubjectLen {
		return nil, malformed("subject length %d out of range", n16)
	}
	s, err := r.slice(int(n16), "subject")
	if err != nil {
		return nil, err
	}
	if !ValidSubject(s) {
		return nil, malformed("invalid subject")
	}
	if e.SubjectHint != "" && string(s) == e.SubjectHint {
		e.Subject = e.SubjectHint
	} else {
		e.Subject = string(s)
	}

	n8, err := r.u8("content type length")
	if err != nil {
		return nil, err
	}
	s, err = r.slice(int(n8), "content type")
	if err != nil {
		return nil, err
	}
	if !ValidContentType(s) {
		return nil, malformed("invalid content type")
	}
	e.ContentType = string(s)

	n16, err = r.u16("recipient count")
	if err != nil {
		return nil, err
	}
	if n16 == 0 || n16 > MaxRecipients {
		return nil, malformed("recipient count %d out of range", n16)
	}
	if err := r.need(int(n16)*RecipientSize, "recipients"); err != nil {
		return nil, err
	}
	if cap(recs) >= int(n16) {
		e.Recipients = recs[:n16]
	} else {
		e.Recipients = make([]Recipient, n16)
	}
	for i := range e.Recipients {
		rc := &e.Recipients[i]
		_ = r.bytes(rc.Key[:], "recipient key")
		_ = r.bytes(rc.Nonce[:], "recipient nonce")
		_ = r.bytes(rc.Wrapped[:], "wrapped key")
		if !CanonicalX25519(rc.Key[:]) {
			return nil, malformed("non-canonical recipient key")
		}
		if i > 0 && compareKeys(&e.Recipients[i-1].Key, &rc.Key) >= 0 {
			return nil, malformed("recipients not in strictly ascending order")
		}
	}
	e.HeaderLen = r.off

	n32, err := r.u32("ciphertext length")
	if err != nil {
		return nil, err
	}
	if n32 < TagSize || uint64(n32) > uint64(len(b)-r.off) {
		return nil, malformed("ciphertext length %d out of range", n32)
	}
	if e.Ciphertext, err = r.slice(int(n32), "ciphertext"); err != nil {
		return nil, err
	}
	e.SignedLen = r.off

	if e.LeafIndex, err = r.u32("leaf index"); err != nil {
		return nil, err
	}
	if e.TreeSize, err = r.u32("tree size"); err != nil {
		return nil, err
	}
	if e.TreeSize == 0 || e.TreeSize > MaxTreeSize {
		return nil, malformed("tree size %d out of range", e.TreeSize)
	}
	n8, err = r.u8("path length")
	if err != nil {
		return nil, err
	}
	if n8 > MaxPathLen {
		return nil, malformed("path length %d out of range", n8)
	}
	if err := r.need(int(n8)*HashSize, "audit path"); err != nil {
		return nil, err
	}
	if n8 == 0 && path != nil {
		e.Path = path // empty; keeps the capacity for the next parse
	}
	if n8 > 0 {
		if cap(path) >= int(n8) {
			e.Path = path[:n8]
		} else {
			e.Path = make([][HashSize]byte, n8)
		}
		for i := range e.Path {
			_ = r.bytes(e.Path[i][:], "audit path")
		}
	}
	if err = r.bytes(e.Signature[:], "signature"); err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, malformed("%d trailing bytes", len(b)-r.off)
	}
	return e, nil
}

func compareKeys(a, b *[KeySize]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CanonicalX25519 reports whether k is the canonical encoding of an X25519 u-coordinate:
// the top bit clear and the value below 2^255-19.
func CanonicalX25519(k []byte) bool {
	if len(k) != KeySize || k[31]&0x80 != 0 {
		return false
	}
	if k[31] != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if k[i] != 0xff {
			return true
		}
	}
	return k[0] < 0xed
}

// ValidSubject reports whether s is a concrete NATS subject as version 1 accepts it:
// 1 to MaxSubjectLen bytes of printable ASCII without '*' or '>', in non-empty tokens
// separated by single dots.
func ValidSubject(s []byte) bool {
	if len(s) == 0 || len(s) > MaxSubjectLen || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i, c := range s {
		if c < 0x21 || c > 0x7e || c == '*' || c == '>' {
			return false
		}
		if c == '.' && s[i-1] == '.' {
			return false
		}
	}
	return true
}

// ValidContentType reports whether s is an acceptable content type: up to MaxContentType
// bytes of printable ASCII (space included), not starting or ending with a space.
func ValidContentType(s []byte) bool {
	if len(s) > MaxContentType {
		return false
	}
	if len(s) > 0 && (s[0] == ' ' || s[len(s)-1] == ' ') {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// AppendHeader appends the header encoding (version byte through the last recipient).
func (e *Envelope) AppendHeader(b []byte) []byte {
	b = append(b, Version, Suite)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Created)
	b = binary.BigEndian.AppendUint64(b, e.Expires)
	b = append(b, e.Account[:]...)
	b = append(b, e.Sender[:]...)
	b = append(b, e.EpochKey[:]...)
	b = append(b, e.Commitment[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Subject)))
	b = append(b, e.Subject...)
	b = append(b, uint8(len(e.ContentType)))
	b = append(b, e.ContentType...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Recipients)))
	for i := range e.Recipients {
		rc := &e.Recipients[i]
		b = append(b, rc.Key[:]...)
		b = append(b, rc.Nonce[:]...)
		b = append(b, rc.Wrapped[:]...)
	}
	return b
}

// AppendPayload appends the ciphertext length and the ciphertext.
func (e *Envelope) AppendPayload(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Ciphertext)))
	return append(b, e.Ciphertext...)
}

// AppendSignature appends the signature block: leaf index, tree size, audit path, signature.
func (e *Envelope) AppendSignature(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, e.LeafIndex)
	b = binary.BigEndian.AppendUint32(b, e.TreeSize)
	b = append(b, uint8(len(e.Path)))
	for i := range e.Path {
		b = append(b, e.Path[i][:]...)
	}
	return append(b, e.Signature[:]...)
}

// HeaderSize is the encoded length of the header.
func (e *Envelope) HeaderSize() int {
	return FixedPrefixLen + 2 + len(e.Subject) + 1 + len(e.ContentType) + 2 + len(e.Recipients)*RecipientSize
}

// SignatureBlockSize is the encoded length of a signature block with a path of n hashes.
func SignatureBlockSize(n int) int { return 4 + 4 + 1 + n*HashSize + SignatureSize }

// Marshal returns the full encoding. It is the inverse of Parse for every envelope Parse
// accepts; it does not validate.
func (e *Envelope) Marshal() []byte {
	b := make([]byte, 0, e.HeaderSize()+4+len(e.Ciphertext)+SignatureBlockSize(len(e.Path)))
	b = e.AppendHeader(b)
	b = e.AppendPayload(b)
	return e.AppendSignature(b)
}
