// Package suite is the fixed cryptographic suite of envelope version 1: X25519 key agreement,
// HKDF-SHA256 derivations with their labels, XChaCha20-Poly1305 for key wrapping and payload,
// and the Ed25519 batch-root statement (which starts with a byte that is never UTF-8, so the
// signing key cannot be abused as a NATS nonce-signing oracle). envelope/SPEC.md §4–§5 specifies every value here.
package suite

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// Labels (HKDF info strings and the signature context). Changing any of them is a new version.
const (
	LabelWrap    = "sealbus-envelope-v1 wrap"
	LabelCommit  = "sealbus-envelope-v1 commit"
	LabelPayload = "sealbus-envelope-v1 payload"
	LabelRoot    = "sealbus-envelope-v1 root"
)

// ErrLowOrder is returned when an X25519 computation yields the all-zero value.
var ErrLowOrder = errors.New("suite: low-order X25519 point")

// payloadNonce is the XChaCha20-Poly1305 nonce of the payload. It is constant because the
// payload key is derived from a fresh content key and used exactly once.
var payloadNonce [chacha20poly1305.NonceSizeX]byte

// SharedSecret returns X25519(priv, pub), or ErrLowOrder if it is all zero.
func SharedSecret(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, ErrLowOrder
	}
	s, err := priv.ECDH(p)
	if err != nil {
		return nil, ErrLowOrder
	}
	return s, nil
}

// WrapAEAD derives the key-wrapping key
//
//	W = HKDF-SHA256(ikm = shared, salt = epochPub || recipientPub, info = LabelWrap, L = 32)
//
// and returns an XChaCha20-Poly1305 instance keyed with it.
func WrapAEAD(shared, epochPub, recipientPub []byte) (cipher.AEAD, error) {
	salt := make([]byte, 0, 64)
	salt = append(append(salt, epochPub...), recipientPub...)
	w, err := hkdf.Key(sha256.New, shared, salt, LabelWrap, 32)
	if err != nil {
		return nil, err
	}
	defer clear(w)
	return chacha20poly1305.NewX(w)
}

// WrapAD is the associated data of a key wrap: message id || recipient public key.
func WrapAD(dst, id, recipientPub []byte) []byte {
	return append(append(dst, id...), recipientPub...)
}

// expand32 is HKDF-Expand(prk, label || id, 32) for a 32-byte prk, which is the single block
// HMAC-SHA256(prk, label || id || 0x01), computed without allocation. TestExpand32 checks it
// against crypto/hkdf.
func expand32(prk []byte, label string, id []byte) ([32]byte, error) {
	var out [32]byte
	if len(prk) != 32 || len(label)+len(id)+1 > 128-sha256.BlockSize {
		return out, errors.New("suite: bad expand input")
	}
	var inner [128]byte
	var outer [sha256.BlockSize + sha256.Size]byte
	for i := 0; i < sha256.BlockSize; i++ {
		var k byte
		if i < len(prk) {
			k = prk[i]
		}
		inner[i] = k ^ 0x36
		outer[i] = k ^ 0x5c
	}
	n := sha256.BlockSize
	n += copy(inner[n:], label)
	n += copy(inner[n:], id)
	inner[n] = 0x01
	n++
	ih := sha256.Sum256(inner[:n])
	copy(outer[sha256.BlockSize:], ih[:])
	out = sha256.Sum256(outer[:])
	clear(inner[:])
	clear(outer[:])
	return out, nil
}

// Commitment returns HKDF-Expand(contentKey, LabelCommit || id, 32).
func Commitment(contentKey, id []byte) ([32]byte, error) {
	return expand32(contentKey, LabelCommit, id)
}

// PayloadAEAD returns XChaCha20-Poly1305 keyed with HKDF-Expand(contentKey, LabelPayload || id, 32).
func PayloadAEAD(contentKey, id []byte) (cipher.AEAD, error) {
	k, err := expand32(contentKey, LabelPayload, id)
	if err != nil {
		return nil, err
	}
	defer clear(k[:])
	return chacha20poly1305.NewX(k[:])
}

// PayloadNonce returns the (constant, all-zero) payload nonce.
func PayloadNonce() []byte { return payloadNonce[:] }

// StatementPrefix is the first byte of every statement a sender's Ed25519 key signs. The
// byte 0xFF never occurs in well-formed UTF-8 (RFC 3629 §1), so no statement is valid UTF-8
// text. The same key authenticates the service to NATS, where the client signs a nonce the
// server chose and sent as a JSON string (which decodes to valid UTF-8): with the prefix, no
// such nonce can equal a statement, so a malicious server cannot obtain a batch signature.
// SPEC.md §5.3 gives the reasoning.
const StatementPrefix = 0xFF

// StatementLen is the length of a batch statement: prefix, label, 0x00, size, root.
const StatementLen = 1 + len(LabelRoot) + 1 + 4 + 32

// Statement returns the bytes Ed25519 signs for a batch:
//
//	0xFF || LabelRoot || 0x00 || size (uint32 big-endian) || root
//
// It is never valid UTF-8 (see StatementPrefix).
func Statement(size uint32, root [32]byte) []byte {
	b := make([]byte, 0, StatementLen)
	b = append(b, StatementPrefix)
	b = append(b, LabelRoot...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, size)
	return append(b, root[:]...)
}

// Labels of records (envelope/RECORD.md §5). Each follows RecordStatementPrefix and is
// followed by a 0x00 byte, so no two statements of different labels are equal.
const (
	LabelRecord       = "sealbus-record-v1 statement"
	LabelSubjectToken = "sealbus-record-v1 subject-token"
)

// RecordStatementPrefix is the first byte of every record statement. Like StatementPrefix it
// never occurs in well-formed UTF-8, so no NATS login nonce (UTF-8 text) and no JWT signing
// input ("eyJ...", ASCII) can equal a record statement; and it differs from StatementPrefix,
// so no record statement is a batch statement (RECORD.md §5 gives the argument).
const RecordStatementPrefix = 0xFE

// RecordStatementLen is the length of a record statement: prefix, label, 0x00, SHA-256.
const RecordStatementLen = 1 + len(LabelRecord) + 1 + sha256.Size

// RecordStatement returns the bytes Ed25519 signs for a record:
//
//	0xFE || LabelRecord || 0x00 || SHA-256(signed part)
func RecordStatement(signed []byte) []byte {
	h := sha256.Sum256(signed)
	b := make([]byte, 0, RecordStatementLen)
	b = append(b, RecordStatementPrefix)
	b = append(b, LabelRecord...)
	b = append(b, 0)
	return append(b, h[:]...)
}

// SubjectTokenStatement returns the bytes an account signing key signs to derive the secret
// token of its account's admin evidence subject:
//
//	0xFE || LabelSubjectToken || 0x00 || account public key (32 bytes)
//
// The signature itself is never published, only a hash of it.
func SubjectTokenStatement(account [32]byte) []byte {
	b := make([]byte, 0, 1+len(LabelSubjectToken)+1+32)
	b = append(b, RecordStatementPrefix)
	b = append(b, LabelSubjectToken...)
	b = append(b, 0)
	return append(b, account[:]...)
}
