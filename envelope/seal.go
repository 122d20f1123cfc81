package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/merkle"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

// MaxRecipients is the largest number of recipients of one envelope, and MaxBatch the largest
// batch SealBatch signs at once.
const (
	MaxRecipients = format.MaxRecipients
	MaxBatch      = format.MaxTreeSize
)

// Header is what the sender states about a message. Seal adds the sender key, message id and
// creation time, and signs all of it.
type Header struct {
	Account     string    // "A..." account public key the message is published in
	Subject     string    // concrete NATS subject (no wildcards)
	ContentType string    // e.g. "application/json"; may be empty; printable ASCII, ≤ 255 bytes
	Expires     time.Time // zero means no expiry; otherwise after the creation time
}

// Message is one message to seal in a batch.
type Message struct {
	Header  Header
	Payload []byte
	To      []Recipient
}

// Sealed is one sealed envelope.
type Sealed struct {
	ID   MessageID
	Data []byte // the envelope bytes to publish
}

// maxWrapCache bounds the wrap keys a sealer keeps per epoch.
const maxWrapCache = 1 << 16

type epoch struct {
	priv  *ecdh.PrivateKey
	pub   [32]byte
	start time.Time

	mu   sync.RWMutex
	wrap map[[32]byte]cipher.AEAD
}

// Sealer seals envelopes for one sender identity. It holds the current epoch (ephemeral
// X25519) key, drawing a fresh one when the epoch ends, and caches the key-wrapping key of
// each (epoch key, recipient) pair, so once a recipient has been sealed to in an epoch no
// X25519 is computed for it again. Safe for concurrent use.
type Sealer struct {
	id  *Identity
	cfg config

	mu    sync.Mutex
	epoch *epoch
	rmu   sync.Mutex // serialises reads from cfg.rand
}

// NewSealer returns a Sealer for id. Options: WithRand, WithClock, WithMaxSize, WithEpoch.
func NewSealer(id *Identity, opts ...Option) (*Sealer, error) {
	if !id.usable() {
		return nil, fmt.Errorf("%w: nil or wiped identity", ErrInvalidKey)
	}
	cfg, err := newConfig(roleSealer, opts)
	if err != nil {
		return nil, err
	}
	return &Sealer{id: id, cfg: cfg}, nil
}

func (s *Sealer) read(b []byte) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if _, err := io.ReadFull(s.cfg.rand, b); err != nil {
		return fmt.Errorf("envelope: reading randomness: %w", err)
	}
	return nil
}

func (s *Sealer) currentEpoch(now time.Time) (*epoch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.epoch; e != nil && now.Sub(e.start) < s.cfg.epoch && !now.Before(e.start) {
		return e, nil
	}
	var seed [32]byte
	if err := s.read(seed[:]); err != nil {
		return nil, err
	}
	priv, err := ecdh.X25519().NewPrivateKey(seed[:])
	clear(seed[:])
	if err != nil {
		return nil, fmt.Errorf("envelope: epoch key: %w", err)
	}
	e := &epoch{priv: priv, start: now, wrap: make(map[[32]byte]cipher.AEAD)}
	copy(e.pub[:], priv.PublicKey().Bytes())
	s.epoch = e
	return e, nil
}

func (e *epoch) wrapFor(r [32]byte) (cipher.AEAD, error) {
	e.mu.RLock()
	a := e.wrap[r]
	e.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	shared, err := sharedSecret(e.priv, r[:])
	if err != nil {
		return nil, fmt.Errorf("%w: low-order recipient key", ErrInvalidMessage)
	}
	a, err = suite.WrapAEAD(shared, e.pub[:], r[:])
	clear(shared)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if len(e.wrap) >= maxWrapCache {
		clear(e.wrap)
	}
	e.wrap[r] = a
	e.mu.Unlock()
	return a, nil
}

// Seal seals one message: a batch of one, signed on its own. It returns an error wrapping
// ErrInvalidMessage if the header, recipients or size are not acceptable.
func (s *Sealer) Seal(h Header, payload []byte, to []Recipient) (Sealed, error) {
	out, err := s.SealBatch([]Message{{Header: h, Payload: payload, To: to}})
	if err != nil {
		return Sealed{}, err
	}
	return out[0], nil
}

// SealBatch seals up to MaxBatch messages under one Ed25519 signature over the Merkle root of
// their signed bytes; each envelope carries its leaf index, the tree size and its audit path,
// and opens on its own. All messages share the creation time and epoch key. On error nothing
// is returned.
func (s *Sealer) SealBatch(msgs []Message) ([]Sealed, error) {
	if len(msgs) == 0 || len(msgs) > MaxBatch {
		return nil, fmt.Errorf("%w: batch of %d messages (1 to %d)", ErrInvalidMessage, len(msgs), MaxBatch)
	}
	if !s.id.usable() {
		return nil, fmt.Errorf("%w: wiped identity", ErrInvalidKey)
	}
	now := s.cfg.now()
	created := now.UnixMilli()
	if created < 1 {
		return nil, fmt.Errorf("%w: clock before 1970", ErrInvalidMessage)
	}
	ep, err := s.currentEpoch(now)
	if err != nil {
		return nil, err
	}
	n := uint32(len(msgs))
	bufs := make([][]byte, len(msgs))
	ids := make([]MessageID, len(msgs))
	leaves := make([]merkle.Hash, len(msgs))
	for i := range msgs {
		b, id, err := s.sealOne(&msgs[i], ep, uint64(created), merkle.PathLen(uint32(i), n))
		if err != nil {
			if len(msgs) > 1 {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			return nil, err
		}
		bufs[i], ids[i] = b, id
		leaves[i] = merkle.LeafHash(b)
	}
	root, paths := merkle.Paths(leaves)
	sig := ed25519.Sign(s.id.signPriv, suite.Statement(n, root))
	out := make([]Sealed, len(msgs))
	for i, b := range bufs {
		b = binary.BigEndian.AppendUint32(b, uint32(i))
		b = binary.BigEndian.AppendUint32(b, n)
		b = append(b, uint8(len(paths[i])))
		for _, h := range paths[i] {
			b = append(b, h[:]...)
		}
		b = append(b, sig...)
		out[i] = Sealed{ID: ids[i], Data: b}
	}
	return out, nil
}

// sealOne returns the signed part (header and payload) of one envelope, with capacity for its
// signature block.
func (s *Sealer) sealOne(m *Message, ep *epoch, created uint64, pathLen int) ([]byte, MessageID, error) {
	var id MessageID
	e := format.Envelope{Created: created, EpochKey: ep.pub, Sender: s.id.signPub}
	h := &m.Header
	acct, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(h.Account))
	if err != nil || len(acct) != 32 {
		return nil, id, fmt.Errorf("%w: account is not an nkeys account public key", ErrInvalidMessage)
	}
	copy(e.Account[:], acct)
	if !format.ValidSubject([]byte(h.Subject)) {
		return nil, id, fmt.Errorf("%w: subject %q is not a concrete subject of at most %d printable ASCII bytes", ErrInvalidMessage, h.Subject, format.MaxSubjectLen)
	}
	e.Subject = h.Subject
	if !format.ValidContentType([]byte(h.ContentType)) {
		return nil, id, fmt.Errorf("%w: content type must be at most %d printable ASCII bytes", ErrInvalidMessage, format.MaxContentType)
	}
	e.ContentType = h.ContentType
	if !h.Expires.IsZero() {
		x := h.Expires.UnixMilli()
		if x <= int64(created) {
			return nil, id, fmt.Errorf("%w: expiry not after creation time", ErrInvalidMessage)
		}
		e.Expires = uint64(x)
	}

	keys := make([][32]byte, 0, len(m.To))
	for _, r := range m.To {
		if r.key == ([32]byte{}) {
			return nil, id, fmt.Errorf("%w: zero recipient", ErrInvalidMessage)
		}
		keys = append(keys, r.key)
	}
	slices.SortFunc(keys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	keys = slices.Compact(keys)
	if len(keys) == 0 || len(keys) > MaxRecipients {
		return nil, id, fmt.Errorf("%w: %d recipients (1 to %d)", ErrInvalidMessage, len(keys), MaxRecipients)
	}
	e.Recipients = make([]format.Recipient, len(keys))

	size := e.HeaderSize() + 4 + len(m.Payload) + format.TagSize + format.SignatureBlockSize(pathLen)
	if size > s.cfg.maxSize {
		return nil, id, fmt.Errorf("%w: envelope of %d bytes exceeds the maximum %d", ErrInvalidMessage, size, s.cfg.maxSize)
	}

	// Randomness: id, content key, one nonce per recipient.
	rnd := make([]byte, 16+32+len(keys)*format.NonceSize)
	if err := s.read(rnd); err != nil {
		return nil, id, err
	}
	copy(id[:], rnd[:16])
	e.ID = id
	ck := rnd[16:48]
	defer clear(ck)
	if e.Commitment, err = suite.Commitment(ck, id[:]); err != nil {
		return nil, id, err
	}
	var ad [16 + 32]byte
	for i, k := range keys {
		rc := &e.Recipients[i]
		rc.Key = k
		copy(rc.Nonce[:], rnd[48+i*format.NonceSize:])
		a, err := ep.wrapFor(k)
		if err != nil {
			return nil, id, err
		}
		a.Seal(rc.Wrapped[:0], rc.Nonce[:], ck, suite.WrapAD(ad[:0], id[:], k[:]))
	}

	pa, err := suite.PayloadAEAD(ck, id[:])
	if err != nil {
		return nil, id, err
	}
	b := make([]byte, 0, size)
	b = e.AppendHeader(b)
	hlen := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Payload)+format.TagSize))
	b = pa.Seal(b, suite.PayloadNonce(), m.Payload, b[:hlen])
	return b, id, nil
}
