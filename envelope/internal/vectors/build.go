package vectors

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sealbus/sealbus/envelope/internal/merkle"
)

// This file is a second, deliberately separate writer of envelopes, following SPEC.md rather
// than the package code: its own encoder, its own key schedule with the labels spelled out.
// The generator checks that it produces byte-identical envelopes to envelope.Sealer for the
// valid vectors, then uses its hooks to build the invalid ones.

// drbg is the deterministic randomness of the vectors: the ChaCha20 keystream (zero nonce)
// under SHA-256("sealbus-envelope-v1 vectors " || label).
type drbg struct{ c *chacha20.Cipher }

func newDRBG(label string) *drbg {
	k := sha256.Sum256([]byte("sealbus-envelope-v1 vectors " + label))
	c, err := chacha20.NewUnauthenticatedCipher(k[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err)
	}
	return &drbg{c}
}

func (d *drbg) Read(p []byte) (int, error) {
	clear(p)
	d.c.XORKeyStream(p, p)
	return len(p), nil
}

// keyset is one test identity.
type keyset struct {
	name                string
	userSeed, curveSeed string
	signPriv            ed25519.PrivateKey
	signPub, curvePub   [32]byte
	U, X                string
}

func testKey(name string) keyset {
	u := sha256.Sum256([]byte("sealbus-envelope-v1 vector key " + name + " user"))
	x := sha256.Sum256([]byte("sealbus-envelope-v1 vector key " + name + " curve"))
	ks := keyset{name: name, signPriv: ed25519.NewKeyFromSeed(u[:])}
	copy(ks.signPub[:], ks.signPriv.Public().(ed25519.PublicKey))
	cp, err := ecdh.X25519().NewPrivateKey(x[:])
	if err != nil {
		panic(err)
	}
	copy(ks.curvePub[:], cp.PublicKey().Bytes())
	ks.userSeed = string(must(nkeys.EncodeSeed(nkeys.PrefixByteUser, u[:])))
	ks.curveSeed = string(must(nkeys.EncodeSeed(nkeys.PrefixByteCurve, x[:])))
	ks.U = string(must(nkeys.Encode(nkeys.PrefixByteUser, ks.signPub[:])))
	ks.X = string(must(nkeys.Encode(nkeys.PrefixByteCurve, ks.curvePub[:])))
	return ks
}

func testAccount(name string) ([32]byte, string) {
	a := sha256.Sum256([]byte("sealbus-envelope-v1 vector account " + name))
	return a, string(must(nkeys.Encode(nkeys.PrefixByteAccount, a[:])))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type recip struct {
	key     [32]byte
	nonce   [24]byte
	wrapped [48]byte
}

// env is the generator's model of one envelope.
type env struct {
	id                [16]byte
	created, expires  uint64
	account, sender   [32]byte
	epoch, commitment [32]byte
	subject, ctype    string
	recips            []recip
	ciphertext        []byte
	leafIndex, size   uint32
	path              []merkle.Hash
	sig               [64]byte
	contentKey        [32]byte
	payload           []byte
}

func (e *env) header() []byte {
	b := []byte{1, 1}
	b = append(b, e.id[:]...)
	b = binary.BigEndian.AppendUint64(b, e.created)
	b = binary.BigEndian.AppendUint64(b, e.expires)
	b = append(b, e.account[:]...)
	b = append(b, e.sender[:]...)
	b = append(b, e.epoch[:]...)
	b = append(b, e.commitment[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.subject)))
	b = append(b, e.subject...)
	b = append(b, byte(len(e.ctype)))
	b = append(b, e.ctype...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.recips)))
	for _, r := range e.recips {
		b = append(b, r.key[:]...)
		b = append(b, r.nonce[:]...)
		b = append(b, r.wrapped[:]...)
	}
	return b
}

func (e *env) signed() []byte {
	b := e.header()
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.ciphertext)))
	return append(b, e.ciphertext...)
}

func (e *env) bytes() []byte {
	b := e.signed()
	b = binary.BigEndian.AppendUint32(b, e.leafIndex)
	b = binary.BigEndian.AppendUint32(b, e.size)
	b = append(b, byte(len(e.path)))
	for _, h := range e.path {
		b = append(b, h[:]...)
	}
	return append(b, e.sig[:]...)
}

// boundaries returns the offset at the end of each field, by name, in encoding order.
func (e *env) boundaries() []struct {
	name string
	off  int
} {
	type nb = struct {
		name string
		off  int
	}
	var out []nb
	off := 0
	add := func(name string, n int) { off += n; out = append(out, nb{name, off}) }
	add("version", 1)
	add("suite", 1)
	add("message-id", 16)
	add("created", 8)
	add("expires", 8)
	add("account", 32)
	add("sender", 32)
	add("epoch-key", 32)
	add("commitment", 32)
	add("subject-length", 2)
	add("subject", len(e.subject))
	add("content-type-length", 1)
	add("content-type", len(e.ctype))
	add("recipient-count", 2)
	for i := range e.recips {
		add(fmt.Sprintf("recipient-%d", i), 104)
	}
	add("ciphertext-length", 4)
	add("ciphertext", len(e.ciphertext))
	add("leaf-index", 4)
	add("tree-size", 4)
	add("path-length", 1)
	for i := range e.path {
		add(fmt.Sprintf("path-%d", i), 32)
	}
	add("signature", 64)
	return out
}

func (e *env) offset(field string) int {
	prev := 0
	for _, b := range e.boundaries() {
		if b.name == field {
			return prev
		}
		prev = b.off
	}
	panic("no field " + field)
}

type msg struct {
	subject, ctype string
	payload        []byte
	to             []keyset
	expires        uint64
}

type builder struct {
	rand      io.Reader
	epochPriv *ecdh.PrivateKey
	epochPub  [32]byte
}

// wrap wraps key for recipient r under the builder's epoch key (SPEC §4.2).
func (b *builder) wrap(e *env, r *recip, key []byte) {
	p, err := ecdh.X25519().NewPublicKey(r.key[:])
	if err != nil {
		panic(err)
	}
	shared := must(b.epochPriv.ECDH(p))
	salt := append(append([]byte{}, b.epochPub[:]...), r.key[:]...)
	w := must(hkdf.Key(sha256.New, shared, salt, "sealbus-envelope-v1 wrap", 32))
	a := must(chacha20poly1305.NewX(w))
	ad := append(append([]byte{}, e.id[:]...), r.key[:]...)
	a.Seal(r.wrapped[:0], r.nonce[:], key, ad)
}

type batch struct {
	label    string // randomness label
	sender   keyset
	account  [32]byte
	created  uint64
	msgs     []msg
	preSeal  func(b *builder, i int, e *env) // after key wrapping, before the header is fixed
	postSeal func(i int, e *env)             // after encryption, before signing
	signOver func(stmt []byte) []byte        // what the sender signs instead of the statement
}

// statement is the batch statement of SPEC §5.3, spelled out:
// 0xFF || "sealbus-envelope-v1 root" || 0x00 || uint32(n) || root.
func statement(n uint32, root merkle.Hash) []byte {
	b := []byte{0xff}
	b = append(b, "sealbus-envelope-v1 root"...)
	b = append(b, 0x00)
	b = binary.BigEndian.AppendUint32(b, n)
	return append(b, root[:]...)
}

// build seals a batch the way SPEC.md describes, consuming randomness in the order the
// reference implementation does: the epoch key seed, then per message the id, the content key
// and one nonce per recipient in ascending key order.
func build(bt batch) []*env {
	b := &builder{rand: newDRBG(bt.label)}
	var seed [32]byte
	must(io.ReadFull(b.rand, seed[:]))
	b.epochPriv = must(ecdh.X25519().NewPrivateKey(seed[:]))
	copy(b.epochPub[:], b.epochPriv.PublicKey().Bytes())

	envs := make([]*env, len(bt.msgs))
	leaves := make([]merkle.Hash, len(bt.msgs))
	for i, m := range bt.msgs {
		e := &env{created: bt.created, expires: m.expires, account: bt.account, sender: bt.sender.signPub,
			epoch: b.epochPub, subject: m.subject, ctype: m.ctype, payload: m.payload}
		keys := make([][32]byte, 0, len(m.to))
		for _, k := range m.to {
			keys = append(keys, k.curvePub)
		}
		slices.SortFunc(keys, func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) })
		keys = slices.Compact(keys)
		must(io.ReadFull(b.rand, e.id[:]))
		must(io.ReadFull(b.rand, e.contentKey[:]))
		e.recips = make([]recip, len(keys))
		for j, k := range keys {
			e.recips[j].key = k
			must(io.ReadFull(b.rand, e.recips[j].nonce[:]))
		}
		ck := e.contentKey[:]
		copy(e.commitment[:], must(hkdf.Expand(sha256.New, ck, "sealbus-envelope-v1 commit"+string(e.id[:]), 32)))
		for j := range e.recips {
			b.wrap(e, &e.recips[j], ck)
		}
		if bt.preSeal != nil {
			bt.preSeal(b, i, e)
		}
		pk := must(hkdf.Expand(sha256.New, ck, "sealbus-envelope-v1 payload"+string(e.id[:]), 32))
		a := must(chacha20poly1305.NewX(pk))
		e.ciphertext = a.Seal(nil, make([]byte, 24), m.payload, e.header())
		if bt.postSeal != nil {
			bt.postSeal(i, e)
		}
		envs[i] = e
		leaves[i] = merkle.LeafHash(e.signed())
	}
	root, paths := merkle.Paths(leaves)
	signed := statement(uint32(len(envs)), root)
	if bt.signOver != nil {
		signed = bt.signOver(signed)
	}
	sig := ed25519.Sign(bt.sender.signPriv, signed)
	for i, e := range envs {
		e.leafIndex, e.size, e.path = uint32(i), uint32(len(envs)), paths[i]
		copy(e.sig[:], sig)
	}
	return envs
}
