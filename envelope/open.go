package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/merkle"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

// Delivery is what the receiver knows about a message independently of the envelope.
type Delivery struct {
	Account string    // account the message was delivered in ("A...")
	Subject string    // subject it was delivered on
	Stored  time.Time // JetStream's stored timestamp; if zero, the opener's clock is used
	// SkipFreshness skips check 7 (the signed creation time against the stored time) and
	// nothing else: expiry, sender policy, recipient, signature, key commitment and decryption
	// all still run. Set it only for a delivery whose replay the receiver has authorized itself
	// (consumers.Verify does, for a dead letter replayed with an operator's signed replay
	// authorization); any other delivery outside the window must stay stale.
	SkipFreshness bool
}

// SenderPolicy decides, after the cheap checks and before any cryptography, whether sender
// (the "U..." key named in the envelope) may publish on subject in account. A nil error
// accepts; the envelope's signature is then verified with that same key. A refusal should wrap
// ErrSenderUnknown, ErrSenderRevoked or ErrSenderForbidden to choose the reason code; any other
// error counts as sender_unknown. Implementations must be safe for concurrent use.
type SenderPolicy interface {
	CheckSender(account, sender, subject string, created time.Time) error
}

// SenderPolicyFunc adapts a function to SenderPolicy.
type SenderPolicyFunc func(account, sender, subject string, created time.Time) error

// CheckSender calls f.
func (f SenderPolicyFunc) CheckSender(account, sender, subject string, created time.Time) error {
	return f(account, sender, subject, created)
}

// Opened is a verified, decrypted envelope.
type Opened struct {
	ID          MessageID
	Account     string // "A..."
	Subject     string
	Sender      string // "U..."
	ContentType string
	Created     time.Time // millisecond precision, UTC
	Expires     time.Time // zero if none
	Payload     []byte
	LeafIndex   uint32 // position in its batch
	TreeSize    uint32 // size of its batch
}

// maxKeyCache bounds the unwrap keys an opener keeps.
const maxKeyCache = 4096

type rootKey struct {
	sender [32]byte
	root   merkle.Hash
	size   uint32
	sig    [format.SignatureSize]byte
}

type unwrapKey struct {
	epoch, recipient [32]byte
}

// Opener opens envelopes addressed to one service. It holds one or more identities — the
// current one first, then earlier ones still inside their rotation grace window — and the
// sender policy. It caches verified batch signatures (bounded LRU, WithRootCache), so the
// other members of a verified batch cost no Ed25519 verification, and the unwrap key of each
// (sender epoch key, identity) pair, so steady-state opening does no X25519. Only results of
// successful verification enter the caches. Safe for concurrent use.
type Opener struct {
	ids    []*Identity
	policy SenderPolicy
	cfg    config
	roots  *lru[rootKey, struct{}]
	keys   *lru[unwrapKey, cipher.AEAD]
	names  *lru[nameKey, string] // nkeys string forms of account and sender keys

	lastAcct atomic.Pointer[decodedAccount] // the delivery account last checked
}

type nameKey struct {
	prefix nkeys.PrefixByte
	key    [32]byte
}

// name returns the nkeys string form of a public key, from a small cache: encoding costs a
// base32 pass and a checksum on every envelope otherwise.
func (o *Opener) name(p nkeys.PrefixByte, k [32]byte) string {
	nk := nameKey{p, k}
	if s, ok := o.names.get(nk); ok {
		return s
	}
	s := encodeKey(p, k)
	o.names.add(nk, s)
	return s
}

// isAccount reports whether key is the account public key named account ("A..."), decoding
// account once for as long as deliveries name the same one.
func (o *Opener) isAccount(key [32]byte, account string) bool {
	if k := o.lastAcct.Load(); k != nil && k.name == account {
		return k.key == key
	}
	raw, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(account))
	if err != nil || len(raw) != 32 {
		return false
	}
	k := &decodedAccount{name: account}
	copy(k.key[:], raw)
	o.lastAcct.Store(k)
	return k.key == key
}

// NewOpener returns an Opener for ids (at least one, current first) that asks policy about
// senders. Options: WithClock, WithMaxSize, WithFreshness, WithRootCache.
func NewOpener(ids []*Identity, policy SenderPolicy, opts ...Option) (*Opener, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no identity", ErrInvalidOption)
	}
	for _, id := range ids {
		if !id.usable() {
			return nil, fmt.Errorf("%w: nil or wiped identity", ErrInvalidKey)
		}
	}
	if policy == nil {
		return nil, fmt.Errorf("%w: nil sender policy", ErrInvalidOption)
	}
	cfg, err := newConfig(roleOpener, opts)
	if err != nil {
		return nil, err
	}
	return &Opener{
		ids:    append([]*Identity(nil), ids...),
		policy: policy,
		cfg:    cfg,
		roots:  newLRU[rootKey, struct{}](cfg.rootCache),
		keys:   newLRU[unwrapKey, cipher.AEAD](maxKeyCache),
		names:  newLRU[nameKey, string](maxKeyCache),
	}, nil
}

func unixMilli(ms uint64) time.Time { return time.UnixMilli(int64(ms)).UTC() }

// Open verifies and decrypts data, delivered as d. It runs the checks of envelope/SPEC.md §7
// in order — size, version and suite, parse, account and subject, freshness and expiry,
// sender policy, recipient entry, signature, unwrap, key commitment, decryption — and stops
// at the first failure with a *RejectError carrying its Reason. data is not modified or
// retained.
func (o *Opener) Open(data []byte, d Delivery) (*Opened, error) {
	op := new(Opened)
	if err := o.OpenInto(op, data, d); err != nil {
		return nil, err
	}
	return op, nil
}

// OpenInto is Open writing the opened envelope to dst, which is written only when it returns
// nil: a caller that opens many envelopes can reuse one Opened (its Payload is new each time).
func (o *Opener) OpenInto(dst *Opened, data []byte, d Delivery) error {
	if len(data) > o.cfg.maxSize {
		return reject(ReasonTooLarge, "%d bytes exceeds the maximum %d", len(data), o.cfg.maxSize)
	}
	e := envelopePool.Get().(*format.Envelope)
	defer releaseEnvelope(e)
	e.SubjectHint = d.Subject
	if rerr := parseInto(e, data); rerr != nil {
		return rerr
	}

	if !o.isAccount(e.Account, d.Account) {
		return reject(ReasonAccountMismatch, "signed account %s, delivered in %s", o.name(nkeys.PrefixByteAccount, e.Account), d.Account)
	}
	account, sender := d.Account, o.name(nkeys.PrefixByteUser, e.Sender)
	if e.Subject != d.Subject {
		return reject(ReasonSubjectMismatch, "signed subject %q, delivered on %q", e.Subject, d.Subject)
	}

	now := o.cfg.now()
	stored := d.Stored
	if stored.IsZero() {
		stored = now
	}
	created := unixMilli(e.Created)
	if skew := stored.Sub(created); !d.SkipFreshness && (skew > o.cfg.freshness || skew < -o.cfg.freshness) {
		return reject(ReasonStale, "created %s, stored %s, window %v", created.Format(time.RFC3339Nano), stored.UTC().Format(time.RFC3339Nano), o.cfg.freshness)
	}
	var expires time.Time
	if e.Expires != 0 {
		expires = unixMilli(e.Expires)
		if !stored.Before(expires) || !now.Before(expires) {
			return reject(ReasonExpired, "expired at %s", expires.Format(time.RFC3339Nano))
		}
	}

	if err := o.policy.CheckSender(account, sender, e.Subject, created); err != nil {
		r := ReasonSenderUnknown
		switch {
		case errors.Is(err, ErrSenderRevoked):
			r = ReasonSenderRevoked
		case errors.Is(err, ErrSenderForbidden):
			r = ReasonSenderForbidden
		}
		return &RejectError{Reason: r, Err: err}
	}

	var me *Identity
	var entry *format.Recipient
	for _, id := range o.ids {
		if entry = findRecipient(e.Recipients, &id.curvePub); entry != nil {
			me = id
			break
		}
	}
	if entry == nil || !me.usable() {
		return reject(ReasonNotRecipient, "no recipient entry for this service")
	}

	if err := o.verify(e, data[:e.SignedLen]); err != nil {
		return err
	}

	uk := unwrapKey{epoch: e.EpochKey, recipient: me.curvePub}
	wrap, ok := o.keys.get(uk)
	if !ok {
		shared, err := sharedSecret(me.curve, e.EpochKey[:])
		if err != nil {
			return reject(ReasonBadKey, "low-order epoch key")
		}
		wrap, err = suite.WrapAEAD(shared, e.EpochKey[:], me.curvePub[:])
		clear(shared)
		if err != nil {
			return reject(ReasonUnwrap, "deriving wrap key: %v", err)
		}
		o.keys.add(uk, wrap)
	}
	// The content key and the associated data live in pooled scratch memory (the AEAD
	// interface call would move stack buffers to the heap); the key is wiped on return.
	sc := unwrapPool.Get().(*unwrapScratch)
	defer sc.release()
	ck, err := wrap.Open(sc.ck[:0], entry.Nonce[:], entry.Wrapped[:], suite.WrapAD(sc.ad[:0], e.ID[:], me.curvePub[:]))
	if err != nil {
		return reject(ReasonUnwrap, "wrapped content key does not authenticate")
	}

	commit, err := suite.Commitment(ck, e.ID[:])
	if err != nil || subtle.ConstantTimeCompare(commit[:], e.Commitment[:]) != 1 {
		return reject(ReasonKeyCommitment, "content key does not match the signed commitment")
	}
	pa, err := suite.PayloadAEAD(ck, e.ID[:])
	if err != nil {
		return reject(ReasonDecrypt, "payload key: %v", err)
	}
	pt, err := pa.Open(make([]byte, 0, len(e.Ciphertext)-format.TagSize), suite.PayloadNonce(), e.Ciphertext, data[:e.HeaderLen])
	if err != nil {
		return reject(ReasonDecrypt, "payload does not authenticate")
	}
	*dst = Opened{
		ID:          MessageID(e.ID),
		Account:     account,
		Subject:     e.Subject,
		Sender:      sender,
		ContentType: e.ContentType,
		Created:     created,
		Expires:     expires,
		Payload:     pt,
		LeafIndex:   e.LeafIndex,
		TreeSize:    e.TreeSize,
	}
	return nil
}

// verify checks the audit path and the batch signature, consulting and filling the root
// cache. The cache key includes the signature bytes, so an envelope whose signature field was
// altered never matches a cached entry.
func (o *Opener) verify(e *format.Envelope, signed []byte) error {
	if len(e.Path) != merkle.PathLen(e.LeafIndex, e.TreeSize) {
		return reject(ReasonBadProof, "leaf %d of %d needs a path of %d hashes, has %d", e.LeafIndex, e.TreeSize, merkle.PathLen(e.LeafIndex, e.TreeSize), len(e.Path))
	}
	root, err := merkle.RootFromPath(merkle.LeafHash(signed), e.LeafIndex, e.TreeSize, e.Path)
	if err != nil {
		return reject(ReasonBadProof, "leaf %d of %d: %v", e.LeafIndex, e.TreeSize, err)
	}
	rk := rootKey{sender: e.Sender, root: root, size: e.TreeSize, sig: e.Signature}
	if _, ok := o.roots.get(rk); ok {
		return nil
	}
	if !ed25519.Verify(ed25519.PublicKey(e.Sender[:]), suite.Statement(e.TreeSize, root), e.Signature[:]) {
		return reject(ReasonBadSignature, "signature over the batch root does not verify")
	}
	o.roots.add(rk, struct{}{})
	return nil
}

func findRecipient(rs []format.Recipient, k *[32]byte) *format.Recipient {
	i := sort.Search(len(rs), func(i int) bool { return bytes.Compare(rs[i].Key[:], k[:]) >= 0 })
	if i < len(rs) && rs[i].Key == *k {
		return &rs[i]
	}
	return nil
}

func encodeKey(p nkeys.PrefixByte, k [32]byte) string {
	b, err := nkeys.Encode(p, k[:])
	if err != nil {
		return ""
	}
	return string(b)
}

// unwrapScratch is Open's working memory for the content key.
type unwrapScratch struct {
	ck [32]byte
	ad [48]byte
}

var unwrapPool = sync.Pool{New: func() any { return new(unwrapScratch) }}

func (sc *unwrapScratch) release() {
	*sc = unwrapScratch{}
	unwrapPool.Put(sc)
}

// envelopePool holds parsed envelopes for reuse by Open (their recipient and path slices
// keep their capacity); nothing in them is secret.
var envelopePool = sync.Pool{New: func() any { return new(format.Envelope) }}

func releaseEnvelope(e *format.Envelope) {
	*e = format.Envelope{Recipients: e.Recipients[:0], Path: e.Path[:0]}
	envelopePool.Put(e)
}

// parseInto runs the version and suite check on the first two bytes, then the strict parse
// into e, mapping failures to reasons.
func parseInto(e *format.Envelope, data []byte) *RejectError {
	err := format.ParseInto(e, data)
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, format.ErrVersion):
		return reject(ReasonVersion, "version byte %d", data[0])
	case errors.Is(err, format.ErrSuite):
		return reject(ReasonSuite, "suite byte %d", data[1])
	default:
		return &RejectError{Reason: ReasonMalformed, Err: err}
	}
}
