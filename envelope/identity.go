package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

// Identity holds the private keys of one service: the Ed25519 user key that signs envelopes
// and the X25519 curve key that receives wrapped content keys. It is safe for concurrent use
// except with Wipe.
type Identity struct {
	signPriv ed25519.PrivateKey
	signPub  [32]byte
	curve    *ecdh.PrivateKey
	curveRaw []byte
	curvePub [32]byte
	signKey  string // "U..."
	encKey   string // "X..."
}

// NewIdentity builds an identity from an nkeys user seed ("SU...") and an nkeys curve seed
// ("SX...", as made by nkeys.CreateCurveKeys). It returns an error wrapping ErrInvalidKey if
// either seed is malformed or of the wrong kind. The seeds are not retained.
func NewIdentity(userSeed, curveSeed []byte) (*Identity, error) {
	pfx, raw, err := nkeys.DecodeSeed(userSeed)
	if err != nil || pfx != nkeys.PrefixByteUser || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: not an nkeys user seed", ErrInvalidKey)
	}
	id := &Identity{signPriv: ed25519.NewKeyFromSeed(raw)}
	clear(raw)
	copy(id.signPub[:], id.signPriv.Public().(ed25519.PublicKey))

	pfx, raw, err = nkeys.DecodeSeed(curveSeed)
	if err != nil || pfx != nkeys.PrefixByteCurve || len(raw) != 32 {
		id.Wipe()
		return nil, fmt.Errorf("%w: not an nkeys curve seed", ErrInvalidKey)
	}
	id.curve, err = ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		id.Wipe()
		return nil, fmt.Errorf("%w: curve seed", ErrInvalidKey)
	}
	id.curveRaw = raw
	copy(id.curvePub[:], id.curve.PublicKey().Bytes())

	sk, err := nkeys.Encode(nkeys.PrefixByteUser, id.signPub[:])
	if err != nil {
		id.Wipe()
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	ek, err := nkeys.Encode(nkeys.PrefixByteCurve, id.curvePub[:])
	if err != nil {
		id.Wipe()
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	id.signKey, id.encKey = string(sk), string(ek)
	return id, nil
}

// SigningKey returns the public Ed25519 user key ("U...") that verifies this identity's
// envelopes.
func (id *Identity) SigningKey() string { return id.signKey }

// EncryptionKey returns the public X25519 curve key ("X...") that senders encrypt to.
func (id *Identity) EncryptionKey() string { return id.encKey }

// Recipient returns the identity's public encryption key as a Recipient.
func (id *Identity) Recipient() Recipient { return Recipient{key: id.curvePub} }

// Wipe zeroes the private key material it holds (best effort: the runtime may have copied
// it) and makes the identity unusable for sealing and opening. Not safe to call concurrently
// with other uses of the identity.
func (id *Identity) Wipe() {
	clear(id.signPriv)
	clear(id.curveRaw)
	id.signPriv = nil
	id.curveRaw = nil
	id.curve = nil
}

func (id *Identity) usable() bool {
	return id != nil && id.signPriv != nil && id.curve != nil
}

// Recipient is a public X25519 key that an envelope's content key can be wrapped for. The zero
// value is not a valid recipient.
type Recipient struct {
	key [32]byte
}

// probe is a fixed X25519 scalar used to detect low-order public keys: X25519(probe, P) is
// all zero exactly when P has low order (the clamped scalar is a multiple of the cofactor).
var probe = func() *ecdh.PrivateKey {
	seed := sha256.Sum256([]byte("sealbus-envelope-v1 low-order probe"))
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}()

// x25519Ops counts X25519 computations done by sealers and openers (tests assert caching).
var x25519Ops atomic.Uint64

func sharedSecret(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	x25519Ops.Add(1)
	return suite.SharedSecret(priv, pub)
}

// ParseRecipient parses an nkeys public curve key ("X..."). It returns an error wrapping
// ErrInvalidKey for a malformed key, a non-canonical encoding, or a low-order point
// (including all-zero), whose shared secrets would be predictable.
func ParseRecipient(xkey string) (Recipient, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteCurve, []byte(xkey))
	if err != nil || len(raw) != 32 {
		return Recipient{}, fmt.Errorf("%w: not an nkeys curve public key", ErrInvalidKey)
	}
	if !format.CanonicalX25519(raw) {
		return Recipient{}, fmt.Errorf("%w: non-canonical X25519 key", ErrInvalidKey)
	}
	if _, err := suite.SharedSecret(probe, raw); err != nil {
		return Recipient{}, fmt.Errorf("%w: low-order X25519 key", ErrInvalidKey)
	}
	var r Recipient
	copy(r.key[:], raw)
	return r, nil
}

// String returns the nkeys form ("X...") of the key, or "" for the zero Recipient.
func (r Recipient) String() string {
	if r.key == ([32]byte{}) {
		return ""
	}
	return encodeCurve(r.key)
}

func encodeCurve(k [32]byte) string {
	b, err := nkeys.Encode(nkeys.PrefixByteCurve, k[:])
	if err != nil {
		return ""
	}
	return string(b)
}

// MessageID is the 128-bit random identifier of an envelope.
type MessageID [16]byte

// String returns the id as 32 lower-case hex digits, the value the bus puts in Nats-Msg-Id.
func (id MessageID) String() string {
	var b [2 * len(id)]byte
	return string(hex.AppendEncode(b[:0], id[:]))
}

// AppendText appends the String form of id to b (encoding.TextAppender); it never fails.
func (id MessageID) AppendText(b []byte) ([]byte, error) { return hex.AppendEncode(b, id[:]), nil }

// ParseMessageID parses the String form of a MessageID.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	if len(s) != 32 {
		return id, fmt.Errorf("envelope: message id must be 32 hex digits")
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("envelope: message id: %w", err)
	}
	if id.String() != s {
		return id, fmt.Errorf("envelope: message id must be lower-case hex")
	}
	return id, nil
}
