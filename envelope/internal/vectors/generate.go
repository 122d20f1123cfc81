package vectors

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sealbus/sealbus/envelope"
)

// Clock of every vector: envelopes are created at T, and delivered (stored) at T+1.5s unless a
// case says otherwise. The opener's clock equals the stored time.
var T = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

var (
	alice   = testKey("alice")
	bob     = testKey("bob")
	carol   = testKey("carol")
	dave    = testKey("dave")
	mallory = testKey("mallory")

	tenantRaw, tenant = testAccount("tenant")
	_, otherTenant    = testAccount("other-tenant")
)

const (
	subject = "orders.created"
	ctype   = "application/json"
)

var payload = []byte(`{"order":42,"items":["tea","cake"],"total":"7.50"}`)

// lowOrder is a point of order 8 on Curve25519 (canonical encoding).
var lowOrder = [32]byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}

type gen struct {
	vs  []Vector
	err error
}

func (g *gen) vector(name, expect, reason, comment string, id keyset, data []byte) *Vector {
	g.vs = append(g.vs, Vector{
		Name: name, Expect: expect, Reason: reason, Comment: comment,
		IdentityUserSeed: id.userSeed, IdentityCurveSeed: id.curveSeed, Sender: alice.U,
		DeliveryAccount: tenant, DeliverySubject: subject, DeliveryStored: T.Add(1500 * time.Millisecond),
		Envelope: data,
	})
	return &g.vs[len(g.vs)-1]
}

func (g *gen) reject(name string, reason envelope.Reason, comment string, data []byte) *Vector {
	return g.vector(name, "reject", string(reason), comment, bob, data)
}

func created() uint64 { return uint64(T.UnixMilli()) }

func single(label string, m msg) batch {
	return batch{label: label, sender: alice, account: tenantRaw, created: created(), msgs: []msg{m}}
}

func baseMsg() msg {
	return msg{subject: subject, ctype: ctype, payload: payload, to: []keyset{bob, carol}}
}

// sealWithPackage seals bt with envelope.Sealer and the same randomness, and fails the
// generation if the bytes differ from the builder's: the package and this independent writer
// of the spec must agree exactly.
func (g *gen) sealWithPackage(bt batch, envs []*env) {
	id, err := envelope.NewIdentity([]byte(bt.sender.userSeed), []byte(bt.sender.curveSeed))
	if err != nil {
		g.err = err
		return
	}
	s, err := envelope.NewSealer(id, envelope.WithRand(newDRBG(bt.label)), envelope.WithClock(func() time.Time { return T }))
	if err != nil {
		g.err = err
		return
	}
	defer s.Close()
	msgs := make([]envelope.Message, len(bt.msgs))
	for i, m := range bt.msgs {
		h := envelope.Header{Account: tenant, Subject: m.subject, ContentType: m.ctype}
		if m.expires != 0 {
			h.Expires = time.UnixMilli(int64(m.expires))
		}
		msgs[i] = envelope.Message{Header: h, Payload: m.payload}
		for _, k := range m.to {
			msgs[i].To = append(msgs[i].To, must(envelope.ParseRecipient(k.X)))
		}
	}
	out, err := s.SealBatch(msgs)
	if err != nil {
		g.err = err
		return
	}
	for i := range out {
		if !bytes.Equal(out[i].Data, envs[i].bytes()) {
			g.err = fmt.Errorf("vectors: %s: envelope.Sealer and the spec builder differ at message %d", bt.label, i)
			return
		}
	}
}

func (g *gen) ok(name, comment string, bt batch, member int, id keyset) *Vector {
	envs := build(bt)
	g.sealWithPackage(bt, envs)
	e := envs[member]
	v := g.vector(name, "ok", "", comment, id, e.bytes())
	h := sha256.Sum256(bt.msgs[member].payload)
	v.PayloadSHA256 = hex.EncodeToString(h[:])
	v.DeliverySubject = bt.msgs[member].subject
	return v
}

func clone(b []byte) []byte { return bytes.Clone(b) }

func flip(b []byte, off int) []byte {
	b = clone(b)
	b[off] ^= 0x01
	return b
}

// Generate returns every vector, in a fixed order, or an error if the package's sealer and
// the generator's spec builder disagree.
func Generate() ([]Vector, error) {
	g := &gen{}

	// ---- valid envelopes ----
	g.ok("ok-single", "one message to two recipients, opened by the first", single("ok-single", baseMsg()), 0, bob)
	multi := baseMsg()
	multi.to = []keyset{dave, bob, carol, bob}
	g.ok("ok-multi-recipient", "three recipients (bob listed twice by the caller, sealed once), opened by carol", single("ok-multi", multi), 0, carol)
	g.ok("ok-empty-payload-no-content-type", "empty payload and empty content type", single("ok-empty", msg{subject: subject, to: []keyset{bob}}), 0, bob)
	exp := baseMsg()
	exp.expires = created() + 60_000
	g.ok("ok-expires", "expiry one minute after creation, stored 1.5s after creation", single("ok-expires", exp), 0, bob)
	v := g.ok("ok-stored-before-created", "stored 90s before the signed creation time: inside the 2m window", single("ok-early", baseMsg()), 0, bob)
	v.DeliveryStored = T.Add(-90 * time.Second)
	v = g.ok("ok-stored-at-window-edge", "stored exactly 2m after creation: the window is inclusive", single("ok-edge", baseMsg()), 0, bob)
	v.DeliveryStored = T.Add(2 * time.Minute)
	for _, c := range []struct{ n, member int }{{1, 0}, {2, 1}, {3, 0}, {3, 2}, {64, 37}} {
		bt := batch{label: fmt.Sprintf("batch-%d", c.n), sender: alice, account: tenantRaw, created: created()}
		for i := 0; i < c.n; i++ {
			m := baseMsg()
			m.payload = fmt.Appendf(nil, `{"order":%d}`, 1000+i)
			if i%2 == 1 {
				m.subject = "orders.updated"
			}
			bt.msgs = append(bt.msgs, m)
		}
		g.ok(fmt.Sprintf("ok-batch-%d-leaf-%d", c.n, c.member), fmt.Sprintf("member %d of a batch of %d under one signature", c.member, c.n), bt, c.member, bob)
	}

	// The base of most failures: a valid single envelope, and a member of a batch of 3 with
	// two recipients, which has every field including an audit path.
	base := build(single("base", baseMsg()))[0]
	good := base.bytes()
	b3 := batch{label: "base-batch", sender: alice, account: tenantRaw, created: created(), msgs: []msg{baseMsg(), baseMsg(), baseMsg()}}
	b3envs := build(b3)
	leaf0, leaf2 := b3envs[0], b3envs[2] // paths of 2 and 1 hashes

	// ---- size, version, suite ----
	big := baseMsg()
	big.payload = bytes.Repeat([]byte("x"), 1024)
	v = g.reject("too-large", envelope.ReasonTooLarge, "a valid envelope over the opener's max-size of 1024 bytes", build(single("too-large", big))[0].bytes())
	v.MaxSize = 1024
	g.reject("unknown-version", envelope.ReasonVersion, "version byte 2", func() []byte { b := clone(good); b[0] = 2; return b }())
	g.reject("unknown-version-zero", envelope.ReasonVersion, "version byte 0", func() []byte { b := clone(good); b[0] = 0; return b }())
	g.reject("unknown-version-only-byte", envelope.ReasonVersion, "a single byte 0x02: the version is judged before anything else is parsed", []byte{2})
	g.reject("unknown-suite", envelope.ReasonSuite, "suite byte 2", func() []byte { b := clone(good); b[1] = 2; return b }())
	g.reject("unknown-suite-garbage-after", envelope.ReasonSuite, "suite byte 0xff followed by garbage", []byte{1, 0xff, 0xde, 0xad})

	// ---- truncation at each field boundary, and trailing bytes ----
	g.reject("truncated-empty", envelope.ReasonMalformed, "zero bytes", []byte{})
	full := leaf0.bytes()
	bounds := leaf0.boundaries()
	for _, bd := range bounds[:len(bounds)-1] {
		g.reject("truncated-after-"+bd.name, envelope.ReasonMalformed, fmt.Sprintf("batch member cut after its %s field (%d of %d bytes)", bd.name, bd.off, len(full)), clone(full[:bd.off]))
	}
	g.reject("truncated-inside-ciphertext", envelope.ReasonMalformed, "cut in the middle of the ciphertext", clone(full[:leaf0.offset("ciphertext")+10]))
	g.reject("truncated-inside-signature", envelope.ReasonMalformed, "last byte of the signature missing", clone(full[:len(full)-1]))
	g.reject("trailing-byte", envelope.ReasonMalformed, "one zero byte after the signature", append(clone(good), 0))
	g.reject("trailing-envelope", envelope.ReasonMalformed, "two valid envelopes concatenated", append(clone(good), good...))

	// ---- each header field altered, not re-signed ----
	g.reject("altered-message-id", envelope.ReasonBadSignature, "one bit of the message id flipped", flip(good, base.offset("message-id")))
	g.reject("altered-created", envelope.ReasonBadSignature, "creation time +1 ms (still fresh)", flip(good, base.offset("expires")-1))
	expEnv := build(single("base-expires", exp))[0]
	g.reject("altered-expires", envelope.ReasonBadSignature, "expiry +1 ms", flip(expEnv.bytes(), expEnv.offset("account")-1))
	g.reject("altered-account", envelope.ReasonAccountMismatch, "one bit of the account key flipped: no longer the delivery account", flip(good, base.offset("account")+5))
	g.reject("altered-sender", envelope.ReasonSenderUnknown, "one bit of the sender key flipped: the policy does not know it", flip(good, base.offset("sender")+5))
	g.reject("altered-epoch-key", envelope.ReasonBadSignature, "one bit of the epoch key flipped", flip(good, base.offset("epoch-key")+5))
	g.reject("altered-commitment", envelope.ReasonBadSignature, "one bit of the key commitment flipped", flip(good, base.offset("commitment")+5))
	g.reject("altered-subject", envelope.ReasonSubjectMismatch, "subject orders.created changed to orders.createe", flip(good, base.offset("content-type-length")-1))
	g.reject("altered-content-type", envelope.ReasonBadSignature, "one bit of the content type flipped", flip(good, base.offset("content-type")+3))
	bobIdx := 0
	if base.recips[1].key == bob.curvePub {
		bobIdx = 1
	}
	bobOff := base.offset(fmt.Sprintf("recipient-%d", bobIdx))
	g.reject("altered-recipient-key", envelope.ReasonNotRecipient, "my recipient entry's key altered: no entry for me remains", func() []byte {
		b := clone(good)
		b[bobOff+31] ^= 0x01 // keeps the key canonical; may reorder nothing (last byte)
		return b
	}())
	g.reject("altered-recipient-nonce", envelope.ReasonBadSignature, "one bit of my wrap nonce flipped", flip(good, bobOff+32))
	g.reject("altered-wrapped-key", envelope.ReasonBadSignature, "one bit of my wrapped key flipped", flip(good, bobOff+56))
	g.reject("altered-ciphertext", envelope.ReasonBadSignature, "one bit of the payload ciphertext flipped", flip(good, base.offset("ciphertext")+3))
	g.reject("altered-tag", envelope.ReasonBadSignature, "one bit of the Poly1305 tag flipped", flip(good, base.offset("leaf-index")-1))
	g.reject("altered-signature", envelope.ReasonBadSignature, "one bit of the signature flipped", flip(good, len(good)-10))
	// ---- signatures by the right key over the wrong bytes ----
	unprefixed := single("unprefixed", baseMsg())
	unprefixed.signOver = func(st []byte) []byte { return st[1:] }
	g.reject("signature-over-unprefixed-statement", envelope.ReasonBadSignature, "signed over the statement without its leading 0xFF byte", build(unprefixed)[0].bytes())
	nonce := single("nats-nonce", baseMsg())
	nonce.signOver = natsNonce
	g.reject("signature-over-nats-nonce", envelope.ReasonBadSignature, "signed over what a NATS client signs when a server sends the statement as its nonce (JSON-decoded: 0xFF became U+FFFD)", build(nonce)[0].bytes())
	g.reject("altered-signature-zero", envelope.ReasonBadSignature, "signature replaced by zeros", func() []byte {
		b := clone(good)
		clear(b[len(b)-64:])
		return b
	}())

	// ---- audit path, leaf index, tree size ----
	l2 := leaf2.bytes()
	l0 := leaf0.bytes()
	g.reject("wrong-audit-path", envelope.ReasonBadSignature, "one bit of an audit path hash flipped: the root it yields is not the signed one", flip(l0, leaf0.offset("path-1")+7))
	g.reject("wrong-audit-path-swapped", envelope.ReasonBadSignature, "the two path hashes swapped", func() []byte {
		b := clone(l0)
		p0, p1 := leaf0.offset("path-0"), leaf0.offset("path-1")
		copy(b[p0:p1], l0[p1:p1+32])
		copy(b[p1:p1+32], l0[p0:p1])
		return b
	}())
	g.reject("wrong-audit-path-too-long", envelope.ReasonBadProof, "leaf 2 of 3 with a second path hash appended (needs 1)", func() []byte {
		e := *leaf2
		e.path = append(append([]hashT{}, leaf2.path...), leaf0.path[0])
		return e.bytes()
	}())
	g.reject("wrong-audit-path-empty", envelope.ReasonBadProof, "leaf 0 of 3 with no path (needs 2)", func() []byte {
		e := *leaf0
		e.path = nil
		return e.bytes()
	}())
	g.reject("wrong-leaf-index", envelope.ReasonBadProof, "leaf 2 of 3 claims index 0: path length no longer fits", func() []byte {
		b := clone(l2)
		binary.BigEndian.PutUint32(b[leaf2.offset("leaf-index"):], 0)
		return b
	}())
	g.reject("wrong-leaf-index-same-shape", envelope.ReasonBadSignature, "leaf 0 of 3 claims index 1: same path length, another root", func() []byte {
		b := clone(l0)
		binary.BigEndian.PutUint32(b[leaf0.offset("leaf-index"):], 1)
		return b
	}())
	g.reject("leaf-index-out-of-range", envelope.ReasonBadProof, "leaf index equal to the tree size", func() []byte {
		b := clone(l2)
		binary.BigEndian.PutUint32(b[leaf2.offset("leaf-index"):], 3)
		return b
	}())
	g.reject("tree-size-mismatch", envelope.ReasonBadProof, "leaf 2 of 3 claims a tree of 4: path length no longer fits", func() []byte {
		b := clone(l2)
		binary.BigEndian.PutUint32(b[leaf2.offset("tree-size"):], 4)
		return b
	}())
	g.reject("tree-size-mismatch-same-root", envelope.ReasonBadSignature, "leaf 0 of 3 claims a tree of 4: same path shape and root, but the signed size differs", func() []byte {
		b := clone(l0)
		binary.BigEndian.PutUint32(b[leaf0.offset("tree-size"):], 4)
		return b
	}())

	// ---- receiver-side checks ----
	g.vector("not-recipient", "reject", string(envelope.ReasonNotRecipient), "opened by mallory, who is not among the recipients", mallory, good)
	v = g.reject("subject-mismatch", envelope.ReasonSubjectMismatch, "delivered on orders.deleted", good)
	v.DeliverySubject = "orders.deleted"
	v = g.reject("account-mismatch", envelope.ReasonAccountMismatch, "delivered in another account", good)
	v.DeliveryAccount = otherTenant
	v = g.reject("stale-creation-time", envelope.ReasonStale, "stored 2m and 1ms after creation", good)
	v.DeliveryStored = T.Add(2*time.Minute + time.Millisecond)
	v = g.reject("stale-future-creation-time", envelope.ReasonStale, "stored 2m and 1ms before creation", good)
	v.DeliveryStored = T.Add(-2*time.Minute - time.Millisecond)
	exp30 := baseMsg()
	exp30.expires = created() + 30_000
	expired := build(single("expired", exp30))[0].bytes()
	v = g.reject("expired", envelope.ReasonExpired, "expires 30s after creation, stored 31s after", expired)
	v.DeliveryStored = T.Add(31 * time.Second)
	v = g.reject("expired-exactly", envelope.ReasonExpired, "stored exactly at the expiry time", expired)
	v.DeliveryStored = T.Add(30 * time.Second)
	v = g.reject("sender-not-trusted", envelope.ReasonSenderUnknown, "a valid envelope from mallory; only alice is trusted", build(batch{label: "mallory", sender: mallory, account: tenantRaw, created: created(), msgs: []msg{baseMsg()}})[0].bytes())

	// ---- re-signed forgeries: the signature is valid, a later check catches them ----
	resigned := func(label string, pre func(b *builder, e *env), post func(e *env)) []byte {
		bt := single(label, baseMsg())
		if pre != nil {
			bt.preSeal = func(b *builder, _ int, e *env) { pre(b, e) }
		}
		if post != nil {
			bt.postSeal = func(_ int, e *env) { post(e) }
		}
		return build(bt)[0].bytes()
	}
	mine := func(e *env) *recip {
		for i := range e.recips {
			if e.recips[i].key == bob.curvePub {
				return &e.recips[i]
			}
		}
		panic("bob not a recipient")
	}
	g.reject("key-commitment-mismatch", envelope.ReasonKeyCommitment, "signed commitment does not match the content key", resigned("kc", func(_ *builder, e *env) { e.commitment[0] ^= 1 }, nil))
	g.reject("key-commitment-two-keys", envelope.ReasonKeyCommitment, "sender wraps a different content key for bob than for carol (invisible-salamander attempt)", resigned("kc2", func(b *builder, e *env) {
		other := sha256.Sum256([]byte("another content key"))
		b.wrap(e, mine(e), other[:])
	}, nil))
	g.reject("unwrap-failed", envelope.ReasonUnwrap, "my wrapped key altered before signing", resigned("unwrap", func(_ *builder, e *env) { mine(e).wrapped[3] ^= 1 }, nil))
	g.reject("unwrap-failed-swapped-entries", envelope.ReasonUnwrap, "bob's and carol's wrapped keys swapped (entries bound to the recipient key)", resigned("unwrap-swap", func(_ *builder, e *env) {
		e.recips[0].wrapped, e.recips[1].wrapped = e.recips[1].wrapped, e.recips[0].wrapped
		e.recips[0].nonce, e.recips[1].nonce = e.recips[1].nonce, e.recips[0].nonce
	}, nil))
	g.reject("low-order-epoch-key", envelope.ReasonBadKey, "signed epoch key is a point of order 8", resigned("low-order", func(_ *builder, e *env) { e.epoch = lowOrder }, nil))
	g.reject("low-order-epoch-key-zero", envelope.ReasonBadKey, "signed epoch key is zero", resigned("zero-epoch", func(_ *builder, e *env) { e.epoch = [32]byte{} }, nil))
	g.reject("ciphertext-altered-resigned", envelope.ReasonDecrypt, "ciphertext altered before signing", resigned("ct", nil, func(e *env) { e.ciphertext[2] ^= 1 }))
	g.reject("tag-altered-resigned", envelope.ReasonDecrypt, "tag altered before signing", resigned("tag", nil, func(e *env) { e.ciphertext[len(e.ciphertext)-1] ^= 1 }))
	g.reject("header-not-associated-data", envelope.ReasonDecrypt, "content type changed after encryption, then signed: the header is the payload's associated data", resigned("ad", nil, func(e *env) { e.ctype = "text/plain" }))

	// ---- oversized length fields ----
	patch := func(b []byte, off int, v []byte) []byte { b = clone(b); copy(b[off:], v); return b }
	u16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	g.reject("oversized-subject-length", envelope.ReasonMalformed, "subject length 0xffff", patch(good, base.offset("subject-length"), u16(0xffff)))
	g.reject("oversized-subject-length-limit", envelope.ReasonMalformed, "subject length 1025, one over the limit", patch(good, base.offset("subject-length"), u16(1025)))
	g.reject("oversized-recipient-count", envelope.ReasonMalformed, "recipient count 0xffff", patch(good, base.offset("recipient-count"), u16(0xffff)))
	g.reject("oversized-recipient-count-limit", envelope.ReasonMalformed, "recipient count 1025, one over the limit", patch(good, base.offset("recipient-count"), u16(1025)))
	g.reject("oversized-ciphertext-length", envelope.ReasonMalformed, "ciphertext length 0xffffffff", patch(good, base.offset("ciphertext-length"), u32(0xffffffff)))
	g.reject("oversized-path-length", envelope.ReasonMalformed, "path length 255", patch(good, base.offset("path-length"), []byte{0xff}))
	g.reject("oversized-path-length-limit", envelope.ReasonMalformed, "path length 17, one over the limit", patch(good, base.offset("path-length"), []byte{17}))
	g.reject("oversized-tree-size", envelope.ReasonMalformed, "tree size 65537, one over the limit", patch(good, base.offset("tree-size"), u32(65537)))
	g.reject("zero-tree-size", envelope.ReasonMalformed, "tree size 0", patch(good, base.offset("tree-size"), u32(0)))

	// ---- non-canonical encodings and out-of-range values (re-signed, so only the parser
	// stands between them and acceptance) ----
	g.reject("noncanonical-epoch-key-top-bit", envelope.ReasonMalformed, "epoch key with the unused top bit set", resigned("nc-top", func(_ *builder, e *env) { e.epoch[31] |= 0x80 }, nil))
	g.reject("noncanonical-epoch-key-above-p", envelope.ReasonMalformed, "epoch key encoding 2^255-19+1 (u = 1 written non-canonically)", resigned("nc-p", func(_ *builder, e *env) {
		e.epoch = [32]byte{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	}, nil))
	g.reject("noncanonical-recipient-key", envelope.ReasonMalformed, "the other recipient's key with the top bit set", resigned("nc-rk", func(_ *builder, e *env) {
		for i := range e.recips {
			if e.recips[i].key != bob.curvePub {
				e.recips[i].key[31] |= 0x80
			}
		}
	}, nil))
	g.reject("noncanonical-recipient-order", envelope.ReasonMalformed, "recipients in descending order", resigned("nc-order", func(_ *builder, e *env) {
		e.recips[0], e.recips[1] = e.recips[1], e.recips[0]
	}, nil))
	g.reject("noncanonical-recipient-duplicate", envelope.ReasonMalformed, "bob's entry twice", resigned("nc-dup", func(_ *builder, e *env) {
		r := *mine(e)
		e.recips = []recip{r, r}
	}, nil))
	g.reject("noncanonical-expires-before-created", envelope.ReasonMalformed, "non-zero expiry equal to the creation time", resigned("nc-exp", func(_ *builder, e *env) { e.expires = e.created }, nil))
	g.reject("noncanonical-created-zero", envelope.ReasonMalformed, "creation time 0", resigned("nc-c0", func(_ *builder, e *env) { e.created = 0 }, nil))
	g.reject("noncanonical-created-top-bit", envelope.ReasonMalformed, "creation time with the top bit set (negative as int64)", resigned("nc-ctop", func(_ *builder, e *env) { e.created |= 1 << 63 }, nil))
	g.reject("noncanonical-subject-wildcard", envelope.ReasonMalformed, "subject orders.* (wildcards are not concrete subjects)", resigned("nc-wild", func(_ *builder, e *env) { e.subject = "orders.*" }, nil))
	g.reject("noncanonical-subject-empty-token", envelope.ReasonMalformed, "subject orders..created", resigned("nc-tok", func(_ *builder, e *env) { e.subject = "orders..created" }, nil))
	g.reject("noncanonical-subject-empty", envelope.ReasonMalformed, "subject of length 0", resigned("nc-sub0", func(_ *builder, e *env) { e.subject = "" }, nil))
	g.reject("noncanonical-content-type-control", envelope.ReasonMalformed, "content type with a newline", resigned("nc-ct", func(_ *builder, e *env) { e.ctype = "application/json\n" }, nil))
	g.reject("noncanonical-content-type-space", envelope.ReasonMalformed, "content type with a trailing space", resigned("nc-ctsp", func(_ *builder, e *env) { e.ctype = "application/json " }, nil))
	g.reject("noncanonical-recipient-count-zero", envelope.ReasonMalformed, "no recipients at all", resigned("nc-r0", func(_ *builder, e *env) { e.recips = nil }, nil))
	g.reject("ciphertext-shorter-than-tag", envelope.ReasonMalformed, "ciphertext of 15 bytes", resigned("nc-short", nil, func(e *env) { e.ciphertext = e.ciphertext[:15] }))

	if g.err != nil {
		return nil, g.err
	}
	seen := map[string]bool{}
	for _, v := range g.vs {
		if seen[v.Name] {
			return nil, fmt.Errorf("vectors: duplicate name %s", v.Name)
		}
		seen[v.Name] = true
	}
	return g.vs, nil
}

type hashT = [32]byte

// natsNonce returns the bytes a NATS client (nats.go) signs when a server sends b as the
// nonce of its INFO message: b sent as a JSON string and decoded again, which replaces every
// byte that is not UTF-8 with U+FFFD.
func natsNonce(b []byte) []byte {
	info := must(json.Marshal(map[string]string{"nonce": string(b)}))
	var got struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(info, &got); err != nil {
		panic(err)
	}
	return []byte(got.Nonce)
}
