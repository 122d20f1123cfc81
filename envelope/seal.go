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
	"sync/atomic"
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

// epochChecks counts the expiry checks run by epoch timers (tests wait for one).
var epochChecks atomic.Uint64

type epoch struct {
	priv       *ecdh.PrivateKey
	pub        [32]byte
	start, end time.Time // the epoch is live for start ≤ now < end, by the sealer's clock

	// use is held for reading by every seal that uses the epoch and for writing by discard,
	// so a seal in progress finishes with the key it started with.
	use sync.RWMutex

	mu   sync.RWMutex
	wrap map[[32]byte]cipher.AEAD
}

func (e *epoch) live(now time.Time) bool { return !now.Before(e.start) && now.Before(e.end) }

// discard drops the epoch private key and every wrap key derived from it, after the seals in
// progress have finished. The key material itself lives inside crypto/ecdh and the AEAD
// instances, which cannot be zeroed from here: discarding removes the last reference.
func (e *epoch) discard() {
	e.use.Lock()
	defer e.use.Unlock()
	e.mu.Lock()
	clear(e.wrap)
	e.wrap = nil
	e.mu.Unlock()
	e.priv = nil
}

// Sealer seals envelopes for one sender identity. It holds the current epoch (ephemeral
// X25519) key and caches the key-wrapping key of each (epoch key, recipient) pair, so once a
// recipient has been sealed to in an epoch no X25519 is computed for it again. Safe for
// concurrent use.
//
// # Epoch key lifetime
//
// An epoch key is drawn by the first Seal or SealBatch that needs one and is live while the
// sealer's clock reads from its start to start + the epoch length (WithEpoch). It and every
// wrap key derived from it are discarded, whichever comes first:
//
//   - by the first Seal or SealBatch that finds the epoch over (which then draws a new key);
//   - by a timer armed when the key is drawn, which fires one epoch length later (real
//     time) and discards the key if the sealer's clock says the epoch is over — so an idle
//     sealer does not keep it; if the clock says otherwise, the timer re-arms for the
//     remainder by that clock;
//   - by Close.
//
// Discarding waits for seals in progress that use the key. It drops every reference the
// sealer holds (the key bytes inside crypto/ecdh and the AEADs cannot be zeroed, so this is
// best effort against memory disclosure). A sealer that is dropped without Close stays
// reachable through its timer until the epoch ends, and is then discarded the same way.
type Sealer struct {
	id  *Identity
	cfg config

	mu     sync.Mutex // guards epoch, timer and closed
	epoch  *epoch
	timer  *time.Timer
	closed bool
	rmu    sync.Mutex // serialises reads from cfg.rand

	lastAcct atomic.Pointer[decodedAccount] // the account key last sealed for
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

// Close discards the current epoch key and the wrap keys derived from it (after seals in
// progress finish) and stops the epoch timer. Later Seal and SealBatch calls fail with
// ErrClosed. The Identity is not wiped: it belongs to the caller, who may use it elsewhere.
// Close is idempotent and always returns nil.
func (s *Sealer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.dropEpoch()
	return nil
}

// EpochStart returns when the current epoch key was drawn, by the sealer's clock; ok is false
// when there is none (nothing sealed yet, the last epoch ended or the sealer is closed). It
// reveals nothing about the key.
func (s *Sealer) EpochStart() (start time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch == nil || s.closed {
		return time.Time{}, false
	}
	return s.epoch.start, true
}

func (s *Sealer) read(b []byte) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if _, err := io.ReadFull(s.cfg.rand, b); err != nil {
		return fmt.Errorf("envelope: reading randomness: %w", err)
	}
	return nil
}

// dropEpoch stops the timer and discards the current epoch. s.mu must be held.
func (s *Sealer) dropEpoch() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.epoch != nil {
		s.epoch.discard()
		s.epoch = nil
	}
}

// acquireEpoch returns the epoch live at now, drawing a new one (and discarding the old one)
// if there is none, with its use lock held for reading: the caller must RUnlock it.
func (s *Sealer) acquireEpoch(now time.Time) (*epoch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if e := s.epoch; e != nil {
		if e.live(now) {
			e.use.RLock()
			return e, nil
		}
		s.dropEpoch()
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
	e := &epoch{priv: priv, start: now, end: now.Add(s.cfg.epoch), wrap: make(map[[32]byte]cipher.AEAD)}
	copy(e.pub[:], priv.PublicKey().Bytes())
	s.epoch = e
	s.timer = time.AfterFunc(s.cfg.epoch, func() { s.expire(e) })
	e.use.RLock()
	return e, nil
}

// expire runs on the epoch timer: it discards e if it is still current and the sealer's clock
// says it is over, and otherwise re-arms the timer for the rest of the epoch by that clock.
func (s *Sealer) expire(e *epoch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer epochChecks.Add(1)
	if s.epoch != e {
		return // rotated or closed meanwhile; that path discarded it
	}
	now := s.cfg.now()
	if !e.live(now) {
		s.dropEpoch()
		return
	}
	s.timer = time.AfterFunc(e.end.Sub(now), func() { s.expire(e) })
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

// stackRecipients is the largest recipient list sealOne keeps on the stack.
const stackRecipients = 8

// sealScratch is sealOne's working memory for up to stackRecipients recipients.
type sealScratch struct {
	keys [stackRecipients][32]byte
	recs [stackRecipients]format.Recipient
	rnd  [16 + 32 + stackRecipients*format.NonceSize]byte // id, content key, nonces
	ad   [16 + 32]byte
}

var scratchPool = sync.Pool{New: func() any { return new(sealScratch) }}

// release wipes the content key and the rest, and returns the scratch to the pool.
func (sc *sealScratch) release() {
	*sc = sealScratch{}
	scratchPool.Put(sc)
}

// accountKey decodes an account public key ("A..."), remembering the last one: a sealer seals
// for one account, and the base32 decoding and checksum would otherwise run per message.
func (s *Sealer) accountKey(account string) ([32]byte, error) {
	if k := s.lastAcct.Load(); k != nil && k.name == account {
		return k.key, nil
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(account))
	if err != nil || len(raw) != 32 {
		return [32]byte{}, fmt.Errorf("%w: account is not an nkeys account public key", ErrInvalidMessage)
	}
	k := &decodedAccount{name: account}
	copy(k.key[:], raw)
	s.lastAcct.Store(k)
	return k.key, nil
}

type decodedAccount struct {
	name string
	key  [32]byte
}

// Seal seals one message: a batch of one, signed on its own. It returns an error wrapping
// ErrInvalidMessage if the header, recipients or size are not acceptable, and ErrClosed after
// Close.
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
// is returned; after Close the error is ErrClosed.
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
	ep, err := s.acquireEpoch(now)
	if err != nil {
		return nil, err
	}
	defer ep.use.RUnlock()
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
	acct, err := s.accountKey(h.Account)
	if err != nil {
		return nil, id, err
	}
	e.Account = acct
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

	// Small recipient lists use pooled scratch space (keys, entries, randomness, associated
	// data): the AEAD interface calls would move stack buffers to the heap.
	sc := scratchPool.Get().(*sealScratch)
	defer sc.release()
	keys := sc.keys[:0]
	if len(m.To) > stackRecipients {
		keys = make([][32]byte, 0, len(m.To))
	}
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
	if len(keys) <= stackRecipients {
		e.Recipients = sc.recs[:len(keys)]
	} else {
		e.Recipients = make([]format.Recipient, len(keys))
	}

	size := e.HeaderSize() + 4 + len(m.Payload) + format.TagSize + format.SignatureBlockSize(pathLen)
	if size > s.cfg.maxSize {
		return nil, id, fmt.Errorf("%w: envelope of %d bytes exceeds the maximum %d", ErrInvalidMessage, size, s.cfg.maxSize)
	}

	// Randomness: id, content key, one nonce per recipient.
	var rnd []byte
	if n := 16 + 32 + len(keys)*format.NonceSize; n <= len(sc.rnd) {
		rnd = sc.rnd[:n]
	} else {
		rnd = make([]byte, n)
		defer clear(rnd)
	}
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
	ad := sc.ad[:0]
	for i, k := range keys {
		rc := &e.Recipients[i]
		rc.Key = k
		copy(rc.Nonce[:], rnd[48+i*format.NonceSize:])
		a, err := ep.wrapFor(k)
		if err != nil {
			return nil, id, err
		}
		a.Seal(rc.Wrapped[:0], rc.Nonce[:], ck, suite.WrapAD(ad, id[:], k[:]))
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
