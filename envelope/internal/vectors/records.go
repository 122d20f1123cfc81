package vectors

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

// This file is a second, separate writer of records, following RECORD.md rather than the
// package code: its own encoder and statement with the label spelled out. For every valid
// vector the generator checks that envelope's signers produce the same bytes.

// rec is the generator's model of one record.
type rec struct {
	kind        byte
	id          [16]byte
	time        uint64
	account     [32]byte
	role        byte
	writer      [32]byte
	name        string
	credential  string
	payload     []byte
	attachment  []byte
	sig         [64]byte
	nameLen     int // -1: len(name); otherwise the length byte written (to alter it)
	credLen     int
	payloadLen  int64
	attachLen   int64
	magic       string
	version     byte
	signedAfter []byte // extra bytes appended after the signature (trailing data)
}

func (r *rec) signed() []byte {
	magic := r.magic
	if magic == "" {
		magic = "sbr"
	}
	b := append([]byte(magic), r.version, r.kind)
	b = append(b, r.id[:]...)
	b = binary.BigEndian.AppendUint64(b, r.time)
	b = append(b, r.account[:]...)
	b = append(b, r.role)
	b = append(b, r.writer[:]...)
	n := len(r.name)
	if r.nameLen >= 0 {
		n = r.nameLen
	}
	b = append(b, byte(n))
	b = append(b, r.name...)
	c := len(r.credential)
	if r.credLen >= 0 {
		c = r.credLen
	}
	b = binary.BigEndian.AppendUint16(b, uint16(c))
	b = append(b, r.credential...)
	p := int64(len(r.payload))
	if r.payloadLen >= 0 {
		p = r.payloadLen
	}
	b = binary.BigEndian.AppendUint32(b, uint32(p))
	b = append(b, r.payload...)
	a := int64(len(r.attachment))
	if r.attachLen >= 0 {
		a = r.attachLen
	}
	b = binary.BigEndian.AppendUint32(b, uint32(a))
	return append(b, r.attachment...)
}

func (r *rec) bytes() []byte {
	b := append(r.signed(), r.sig[:]...)
	return append(b, r.signedAfter...)
}

// recordStatement is RECORD.md §5: 0xFE || "sealbus-record-v1 statement" || 0x00 || SHA-256(signed part).
func recordStatement(signed []byte) []byte {
	h := sha256.Sum256(signed)
	b := []byte{0xFE}
	b = append(b, "sealbus-record-v1 statement"...)
	b = append(b, 0)
	return append(b, h[:]...)
}

// signer is a test writer key: its role, raw keys and nkeys forms.
type signer struct {
	role byte
	priv ed25519.PrivateKey
	pub  [32]byte
	nk   string        // U..., A... or O...
	kp   nkeys.KeyPair // for envelope.SignRecord (account and operator keys)
	user keyset        // for Identity.SignRecord (services)
}

func serviceSigner(k keyset) signer {
	return signer{role: 1, priv: k.signPriv, pub: k.signPub, nk: k.U, user: k}
}

func keySigner(role byte, prefix nkeys.PrefixByte, name string) signer {
	seed := sha256.Sum256([]byte("sealbus-record-v1 vector key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	s := signer{role: role, priv: priv}
	copy(s.pub[:], priv.Public().(ed25519.PublicKey))
	s.nk = string(must(nkeys.Encode(prefix, s.pub[:])))
	s.kp = must(nkeys.FromRawSeed(prefix, seed[:]))
	return s
}

var (
	aliceW   = serviceSigner(alice)
	malloryW = serviceSigner(mallory)
	adminW   = keySigner(2, nkeys.PrefixByteAccount, "tenant signing key")
	opW      = keySigner(3, nkeys.PrefixByteOperator, "operator")
)

// RecordTime is the time of every vector record.
var RecordTime = T

// credential is an opaque stand-in for an identity card: the envelope layer treats it as
// printable bytes; whether it is a valid card is the policy's question.
const credential = "eyJ0eXAiOiJKVFciLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJuYW1lIjoiYWxpY2UifQ.c2lnbmF0dXJl"

var auditPayload = []byte(`{"specversion":"1.0","id":"0b1f","source":"sealbus://` + tenant + `/alice","type":"sealbus.rejected","time":"2026-01-02T03:04:05.678Z","datacontenttype":"application/json","data":{"reason":"bad_signature","stream":"ORDERS","seq":7}}`)

var deadLetterPayload = []byte(`{"reason":"bad_signature","stream":"ORDERS","seq":7,"subject":"orders.created","consumer":"alice","delivered":1,"error":"envelope: rejected (bad_signature)","envelope_size":96,"envelope_sha256":"` + hex.EncodeToString(sha256Sum(deadLetterEnvelope)) + `"}`)

var deadLetterEnvelope = bytes.Repeat([]byte{0x01, 0x01, 0xab}, 32)

var replayPayload = []byte(`{"dead_letter":12,"stream":"ORDERS","durable":"alice","subject":"orders.created","envelope_sha256":"` + hex.EncodeToString(sha256Sum(deadLetterEnvelope)) + `","expires":"2026-01-02T03:06:05.678Z"}`)

func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func baseRecord(label string, kind byte, s signer) *rec {
	r := &rec{kind: kind, time: uint64(RecordTime.UnixMilli()), account: tenantRaw, role: s.role, writer: s.pub,
		version: 1, nameLen: -1, credLen: -1, payloadLen: -1, attachLen: -1}
	if _, err := io.ReadFull(newDRBG("record "+label), r.id[:]); err != nil {
		panic(err)
	}
	if s.role == 1 {
		r.name, r.credential = s.user.name, credential
	}
	switch kind {
	case 1:
		r.payload = auditPayload
	case 2:
		r.payload, r.attachment = deadLetterPayload, deadLetterEnvelope
	case 3:
		r.payload = replayPayload
	}
	return r
}

func (r *rec) sign(s signer) *rec {
	copy(r.sig[:], ed25519.Sign(s.priv, recordStatement(r.signed())))
	return r
}

type recGen struct {
	vs  []RecordVector
	err error
}

func (g *recGen) add(v RecordVector) *RecordVector {
	g.vs = append(g.vs, v)
	return &g.vs[len(g.vs)-1]
}

var kindNames = map[byte]string{1: "audit", 2: "dead_letter", 3: "replay_authorization"}

// ok adds a valid vector, after checking that the package's signer makes the same bytes.
func (g *recGen) ok(name, comment string, r *rec, s signer) *RecordVector {
	r.sign(s)
	data := r.bytes()
	pr := envelope.Record{
		Kind: envelope.RecordKind(r.kind), ID: envelope.RecordID(r.id), Time: time.UnixMilli(int64(r.time)),
		Account: tenant, WriterName: r.name, Credential: r.credential, Payload: r.payload, Attachment: r.attachment,
	}
	var pkg []byte
	var err error
	if s.role == 1 {
		id := must(envelope.NewIdentity([]byte(s.user.userSeed), []byte(s.user.curveSeed)))
		pkg, err = id.SignRecord(pr)
	} else {
		pkg, err = envelope.SignRecord(s.kp, pr)
	}
	if err != nil && g.err == nil {
		g.err = fmt.Errorf("vectors: %s: package signer: %w", name, err)
	}
	if err == nil && !bytes.Equal(pkg, data) && g.err == nil {
		g.err = fmt.Errorf("vectors: %s: the package's record signer and the spec builder differ", name)
	}
	return g.add(RecordVector{
		Name: name, Expect: "ok", Comment: comment, Writer: s.nk, Kind: kindNames[r.kind],
		RecordID: hex.EncodeToString(r.id[:]), PayloadSHA256: hex.EncodeToString(sha256Sum(r.payload)),
		AttachmentSHA256: hex.EncodeToString(sha256Sum(r.attachment)), Record: data,
	})
}

func (g *recGen) reject(name string, reason envelope.RecordReason, comment string, writer string, data []byte) *RecordVector {
	return g.add(RecordVector{Name: name, Expect: "reject", Reason: string(reason), Comment: comment, Writer: writer, Record: data})
}

// GenerateRecords returns every record vector, in a fixed order, or an error if the package's
// signers and this builder disagree.
func GenerateRecords() ([]RecordVector, error) {
	g := &recGen{}

	// ---- valid records ----
	g.ok("ok-audit-service", "an audit event written by a service (alice), with its name and credential", baseRecord("audit", 1, aliceW), aliceW)
	g.ok("ok-dead-letter", "a dead letter written by a service, carrying the envelope bytes", baseRecord("dl", 2, aliceW), aliceW)
	omitted := baseRecord("dl-omitted", 2, aliceW)
	omitted.attachment = nil
	g.ok("ok-dead-letter-omitted", "a dead letter whose envelope was too large to carry (empty attachment)", omitted, aliceW)
	g.ok("ok-admin-event", "an admin audit event written by an account signing key (no name, no credential)", baseRecord("admin", 1, adminW), adminW)
	g.ok("ok-replay-authorization", "a replay authorization written by an account signing key", baseRecord("replay", 3, adminW), adminW)
	g.ok("ok-operator-event", "an audit event written by the operator key", baseRecord("operator", 1, opW), opW)
	before := g.ok("ok-writer-revoked-later", "the writer's key is revoked one millisecond after the record's time", baseRecord("revoked-later", 1, aliceW), aliceW)
	before.RevokedAt = RecordTime.Add(time.Millisecond)

	base := baseRecord("dl", 2, aliceW).sign(aliceW)
	good := base.bytes()
	rejectAlice := func(name string, reason envelope.RecordReason, comment string, data []byte) {
		g.reject(name, reason, comment, aliceW.nk, data)
	}

	// ---- the writer ----
	rejectAlice("wrong-writer", envelope.RecordWriterUnknown, "a valid record by mallory; the reader trusts only alice",
		baseRecord("mallory", 1, malloryW).sign(malloryW).bytes())
	claims := baseRecord("claims", 1, aliceW)
	claims.sign(malloryW)
	rejectAlice("writer-claims-another-key", envelope.RecordBadSignature, "names alice as its writer but is signed by mallory", claims.bytes())
	rv := g.reject("revoked-writer", envelope.RecordWriterRevoked, "alice's key is revoked at the record's time (revocation is a reader input)", aliceW.nk, good)
	rv.RevokedAt = RecordTime
	rv2 := g.reject("revoked-writer-before", envelope.RecordWriterRevoked, "alice's key was revoked an hour before the record's time", aliceW.nk, good)
	rv2.RevokedAt = RecordTime.Add(-time.Hour)

	// ---- each field altered (one bit), keeping the record parseable where the field allows ----
	off := map[string]int{}
	{
		o := 0
		for _, f := range []struct {
			name string
			size int
		}{{"magic", 3}, {"version", 1}, {"kind", 1}, {"id", 16}, {"time", 8}, {"account", 32}, {"role", 1}, {"writer", 32}, {"name-length", 1}} {
			off[f.name] = o
			o += f.size
		}
		off["name"] = o
		o += len(base.name)
		off["credential-length"] = o
		o += 2
		off["credential"] = o
		o += len(base.credential)
		off["payload-length"] = o
		o += 4
		off["payload"] = o
		o += len(base.payload)
		off["attachment-length"] = o
		o += 4
		off["attachment"] = o
		o += len(base.attachment)
		off["signature"] = o
	}
	alter := []struct {
		field  string
		at     int // byte offset within the field
		mask   byte
		reason envelope.RecordReason
		what   string
	}{
		{"magic", 0, 0x01, envelope.RecordMalformed, "the magic (not a record any more)"},
		{"version", 0, 0x03, envelope.RecordUnknownVersion, "the version byte (1 -> 2)"},
		{"kind", 0, 0x01, envelope.RecordMalformed, "the kind (dead letter -> replay authorization, which a service may not write)"},
		{"id", 5, 0x01, envelope.RecordBadSignature, "the record id"},
		{"time", 7, 0x01, envelope.RecordBadSignature, "the time"},
		{"account", 9, 0x01, envelope.RecordBadSignature, "the account key"},
		{"role", 0, 0x01, envelope.RecordMalformed, "the role (service -> 0)"},
		{"writer", 3, 0x01, envelope.RecordBadSignature, "the writer key"},
		{"name", 1, 0x01, envelope.RecordBadSignature, "the writer name (alice -> amice)"},
		{"credential", 40, 0x01, envelope.RecordBadSignature, "the credential"},
		{"payload", 3, 0x01, envelope.RecordBadSignature, "the payload"},
		{"attachment", 2, 0x01, envelope.RecordBadSignature, "the attachment (the envelope bytes)"},
		{"signature", 63, 0x01, envelope.RecordBadSignature, "the signature"},
		{"name-length", 0, 0x01, envelope.RecordMalformed, "the name length"},
		{"credential-length", 1, 0x01, envelope.RecordMalformed, "the credential length"},
		{"payload-length", 3, 0x01, envelope.RecordMalformed, "the payload length"},
		{"attachment-length", 3, 0x01, envelope.RecordMalformed, "the attachment length (beyond the input)"},
	}
	for _, a := range alter {
		b := clone(good)
		b[off[a.field]+a.at] ^= a.mask
		rejectAlice("altered-"+a.field, a.reason, "one bit of "+a.what+" altered", b)
	}

	// A kind altered where the result is still well formed: an omitted dead letter (no
	// attachment) read as an audit event.
	kindSwap := baseRecord("dl-omitted", 2, aliceW)
	kindSwap.attachment = nil
	kb := kindSwap.sign(aliceW).bytes()
	kb[off["kind"]] ^= 0x03
	rejectAlice("altered-kind-well-formed", envelope.RecordBadSignature, "an omitted dead letter's kind changed to audit event (still well formed)", kb)

	// ---- truncation and trailing bytes ----
	for _, n := range []int{0, 2, 4, 60, off["payload-length"] + 2, len(good) - 64, len(good) - 1} {
		rejectAlice(fmt.Sprintf("truncated-%d", n), envelope.RecordMalformed, fmt.Sprintf("the first %d bytes of a valid record", n), good[:n])
	}
	rejectAlice("trailing-byte", envelope.RecordMalformed, "a valid record followed by one byte", append(clone(good), 0))

	// ---- oversize ----
	big := baseRecord("big", 2, aliceW)
	big.attachment = bytes.Repeat([]byte{0x5a}, 2048)
	ov := g.reject("oversize", envelope.RecordTooLarge, "a valid record of 2.4 KB, read with a 1024-byte limit", aliceW.nk, big.sign(aliceW).bytes())
	ov.MaxSize = 1024
	longPayload := baseRecord("long", 1, aliceW)
	longPayload.payload = bytes.Repeat([]byte{'x'}, envelope.MaxRecordPayload+1)
	rejectAlice("oversize-payload", envelope.RecordMalformed, "a payload one byte above the 64 KiB limit", longPayload.sign(aliceW).bytes())

	// ---- signatures over other statements ----
	unprefixed := baseRecord("dl", 2, aliceW)
	copy(unprefixed.sig[:], ed25519.Sign(aliceW.priv, recordStatement(unprefixed.signed())[1:]))
	rejectAlice("signature-over-unprefixed-statement", envelope.RecordBadSignature, "signed over the statement without its 0xFE prefix", unprefixed.bytes())
	batchDomain := baseRecord("dl", 2, aliceW)
	st := recordStatement(batchDomain.signed())
	st[0] = 0xFF
	copy(batchDomain.sig[:], ed25519.Sign(aliceW.priv, st))
	rejectAlice("signature-with-envelope-prefix", envelope.RecordBadSignature, "signed over the statement with the envelope batch prefix 0xFF", batchDomain.bytes())
	raw := baseRecord("dl", 2, aliceW)
	copy(raw.sig[:], ed25519.Sign(aliceW.priv, raw.signed()))
	rejectAlice("signature-over-raw-bytes", envelope.RecordBadSignature, "signed over the signed part itself instead of the statement", raw.bytes())

	// ---- structural rules (re-signed, so only the rule can catch them) ----
	rule := func(name, comment string, mutate func(*rec), s signer) {
		r := baseRecord(name, 2, s)
		mutate(r)
		g.reject("rule-"+name, envelope.RecordMalformed, comment, s.nk, r.sign(s).bytes())
	}
	rule("dead-letter-by-account", "a dead letter written by an account key", func(r *rec) { r.payload = deadLetterPayload }, adminW)
	rule("replay-by-service", "a replay authorization written by a service", func(r *rec) { r.kind, r.payload, r.attachment = 3, replayPayload, nil }, aliceW)
	rule("audit-with-attachment", "an audit event carrying an attachment", func(r *rec) { r.kind, r.payload = 1, auditPayload }, aliceW)
	rule("service-without-credential", "a service writer with no credential", func(r *rec) { r.credential = "" }, aliceW)
	rule("service-without-name", "a service writer with no name", func(r *rec) { r.name = "" }, aliceW)
	rule("account-with-name", "an account writer naming itself", func(r *rec) { r.kind, r.payload, r.attachment, r.name = 1, auditPayload, nil, "admin" }, adminW)
	rule("empty-payload", "an empty payload", func(r *rec) { r.payload = nil }, aliceW)
	rule("payload-not-utf8", "a payload that is not UTF-8", func(r *rec) { r.payload = []byte{'{', 0xff, '}'} }, aliceW)
	rule("time-zero", "time 0", func(r *rec) { r.time = 0 }, aliceW)
	rule("kind-unknown", "kind 4", func(r *rec) { r.kind = 4 }, aliceW)

	// ---- not a record ----
	rejectAlice("envelope-is-not-a-record", envelope.RecordMalformed, "the first bytes of an envelope (version 1, suite 1)", append([]byte{1, 1}, good[2:]...))
	return g.vs, g.err
}
