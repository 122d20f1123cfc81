package operator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// verifierEnv is an operator, an account with a service, and what the service's records look
// like, without a server.
type verifierEnv struct {
	op    *accounts.Operator
	acct  *accounts.Account
	svc   *accounts.Service
	id    *envelope.Identity
	trust accounts.Trust
}

func newVerifierEnv(t testing.TB) *verifierEnv {
	t.Helper()
	op, err := accounts.NewOperator("verify")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := op.NewAccount("shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := acct.NewService(accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &verifierEnv{op: op, acct: acct, svc: svc, id: identityOf(t, svc), trust: accounts.Trust{Operators: []string{op.PublicKey()}}}
}

func identityOf(t testing.TB, svc *accounts.Service) *envelope.Identity {
	t.Helper()
	us, _ := svc.UserKey.Seed()
	cs, _ := svc.CurveKey.Seed()
	id, err := envelope.NewIdentity(us, cs)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *verifierEnv) verifier(t testing.TB) *operator.RecordVerifier {
	t.Helper()
	v, err := operator.NewRecordVerifier(e.trust, e.acct.JWT)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *verifierEnv) event(t testing.TB, source string) []byte {
	t.Helper()
	ev := bus.Event{Type: bus.EventRejected, Data: bus.EventData{Reason: "bad_signature"}}
	if err := ev.Fill(source, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return b
}

// serviceRecord signs a record as e.svc (by id, with card), at time at.
func (e *verifierEnv) serviceRecord(t testing.TB, id *envelope.Identity, name, card string, kind envelope.RecordKind, payload, att []byte, at time.Time) []byte {
	t.Helper()
	data, err := id.SignRecord(envelope.Record{Kind: kind, Time: at, Account: e.acct.PublicKey(), WriterName: name, Credential: card, Payload: payload, Attachment: att})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRecordVerifierStates: every way a record can fail to be evidence has its own state, and
// only a record signed by a writer the account vouches for, stored on that writer's subject,
// is verified.
func TestRecordVerifierStates(t *testing.T) {
	e := newVerifierEnv(t)
	now := time.Now()
	tok := e.svc.Spec.EvidenceToken
	auditSubj := accounts.AuditSubject("billing", tok)
	dlqSubj := accounts.DLQSubject("billing", tok)
	src := bus.EventSource(e.acct.PublicKey(), "billing")
	good := e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, src), nil, now)

	env := bytes.Repeat([]byte{1}, 100)
	sum := sha256.Sum256(env)
	meta, _ := json.Marshal(consumers.DeadLetterMeta{Reason: "bad_signature", Stream: "ORDERS", Sequence: 3, Subject: "orders.x", Consumer: "billing",
		EnvelopeSize: len(env), EnvelopeSHA256: hex.EncodeToString(sum[:])})
	dl := e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordDeadLetter, meta, env, now)

	other, err := e.op.NewAccount("other", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.NewService(accounts.ServiceSpec{Name: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	mallory := identityOf(t, foreign)
	// A card for billing's name but mallory's key, signed by a key the account does not list.
	rogueSigner, _ := nkeys.CreateAccount()
	rogueCard, err := accounts.IssueCard(rogueSigner, accounts.Card{Name: "billing", Account: e.acct.PublicKey(), UserKey: mallory.SigningKey(),
		CurveKey: mallory.EncryptionKey(), IssuedAt: now.Add(-time.Hour), Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Clone(good)
	altered[len(altered)-70] ^= 1

	cases := []struct {
		name    string
		subject string
		data    []byte
		want    operator.RecordState
	}{
		{"genuine audit record", auditSubj, good, operator.StateVerified},
		{"genuine dead letter", dlqSubj, dl, operator.StateVerified},
		{"a JSON event (the old format, or a forgery)", auditSubj, e.event(t, src), operator.StateUnsigned},
		{"a JetStream API answer stored by a reply subject", auditSubj, []byte(`{"type":"io.nats.jetstream.api.v1.account_info_response"}`), operator.StateUnsigned},
		{"truncated", auditSubj, good[:len(good)-1], operator.StateMalformed},
		{"altered", auditSubj, altered, operator.StateBadSignature},
		{"signed by a service of another account", auditSubj, e.serviceRecord(t, mallory, "billing", foreign.Card, envelope.RecordAudit, e.event(t, src), nil, now), operator.StateUnknownWriter},
		{"a card from a key the account does not list", auditSubj, e.serviceRecord(t, mallory, "billing", rogueCard, envelope.RecordAudit, e.event(t, src), nil, now), operator.StateUnknownWriter},
		{"another service's card", auditSubj, e.serviceRecord(t, mallory, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, src), nil, now), operator.StateUnknownWriter},
		{"a time after the card expired", auditSubj, e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, src), nil, now.Add(accounts.DefaultValidity+time.Hour)), operator.StateUnknownWriter},
		{"on another writer's subject", accounts.AuditSubject("shipping", tok), good, operator.StateMisplaced},
		{"on the admin subject", accounts.AdminAuditSubject(tok), good, operator.StateMisplaced},
		{"an audit record in the dead-letter stream", dlqSubj, good, operator.StateMisplaced},
		{"a dead letter in the audit stream", auditSubj, dl, operator.StateMisplaced},
		{"an event naming another source", auditSubj, e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, bus.EventSource(e.acct.PublicKey(), "shipping")), nil, now), operator.StateMisplaced},
		{"a plain event on the overflow subject", accounts.AuditOverflowSubject("billing", tok), good, operator.StateMisplaced},
		{"a dead letter whose envelope does not match its hash", dlqSubj, e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordDeadLetter, meta, bytes.Repeat([]byte{2}, 100), now), operator.StateMisplaced},
		{"not an evidence subject", "orders.x", good, operator.StateMisplaced},
	}
	v := e.verifier(t)
	for _, c := range cases {
		got := v.Verify(c.subject, c.data)
		if got.State != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got.State, got.Detail, c.want)
		}
		if got.Verified() != (c.want == operator.StateVerified) || (got.Verified() && got.Writer != "billing") {
			t.Errorf("%s: verified %v writer %q", c.name, got.Verified(), got.Writer)
		}
	}
	// An empty subject skips the place check (records read from another stream).
	if got := v.Verify("", good); !got.Verified() {
		t.Errorf("no subject: %s", got.State)
	}

	// Revocation: records written before it stay verified, records dated at or after it are
	// refused; rotation revokes the old key the same way.
	revokedAt := now.Add(time.Minute).Truncate(time.Second)
	e.acct.Revoke(e.svc.UserPublicKey(), revokedAt)
	if err := e.op.Reissue(e.acct); err != nil {
		t.Fatal(err)
	}
	v = e.verifier(t)
	if got := v.Verify(auditSubj, good); !got.Verified() {
		t.Errorf("a record written before the revocation: %s (%s)", got.State, got.Detail)
	}
	late := e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, src), nil, revokedAt.Add(time.Second))
	if got := v.Verify(auditSubj, late); got.State != operator.StateRevokedWriter {
		t.Errorf("a record dated after the revocation: %s (%s)", got.State, got.Detail)
	}
}

// TestRecordVerifierAdminWriters: admin records verify when signed by a key of the account or
// by the account's trusted operator, on the admin subject only.
func TestRecordVerifierAdminWriters(t *testing.T) {
	e := newVerifierEnv(t)
	tok, err := operator.AdminEvidenceToken(e.acct)
	if err != nil {
		t.Fatal(err)
	}
	admin := accounts.AdminAuditSubject(tok)
	src := bus.EventSource(e.acct.PublicKey(), accounts.AdminWriter)
	sign := func(key nkeys.KeyPair, payload []byte) []byte {
		t.Helper()
		b, err := envelope.SignRecord(key, envelope.Record{Kind: envelope.RecordAudit, Account: e.acct.PublicKey(), Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v := e.verifier(t)
	otherOp, _ := nkeys.CreateOperator()
	unlisted, _ := nkeys.CreateAccount()
	for _, c := range []struct {
		name    string
		subject string
		data    []byte
		want    operator.RecordState
		writer  string
	}{
		{"the account's signing key", admin, sign(e.acct.SigningKeys[0], e.event(t, src)), operator.StateVerified, accounts.AdminWriter},
		{"the trusted operator", admin, sign(e.op.Key, e.event(t, src)), operator.StateVerified, operator.OperatorWriter},
		{"another operator", admin, sign(otherOp, e.event(t, src)), operator.StateUnknownWriter, ""},
		{"a key the account does not list", admin, sign(unlisted, e.event(t, src)), operator.StateUnknownWriter, ""},
		{"an admin record on a service's subject", accounts.AuditSubject("billing", e.svc.Spec.EvidenceToken), sign(e.acct.SigningKeys[0], e.event(t, src)), operator.StateMisplaced, ""},
	} {
		got := v.Verify(c.subject, c.data)
		if got.State != c.want || got.Writer != c.writer {
			t.Errorf("%s: %s %q (%s), want %s %q", c.name, got.State, got.Writer, got.Detail, c.want, c.writer)
		}
	}
}

// TestSetupEvidenceSubjects: the evidence streams list exactly the writers' literal subjects,
// each with its own quota, all quotas together inside the stream's byte limit; a rotation adds
// the service's new subject and keeps the old one while it holds records.
func TestSetupEvidenceSubjects(t *testing.T) {
	w := newWorld(t)
	p := w.Harness.Provisioner()
	c := ctx(t)
	acct, err := p.Keystore.LoadAccount(sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := operator.AdminEvidenceToken(acct)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name string) accounts.ServiceSpec {
		t.Helper()
		s, err := p.Keystore.LoadService(sealbustest.Shop, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec
	}
	expect := func() (audit, dlq []string) {
		audit = []string{accounts.AdminAuditSubject(admin)}
		dlq = []string{accounts.DLQSubject(accounts.AdminWriter, admin)}
		names, _ := p.Keystore.ListServices(sealbustest.Shop)
		for _, n := range names {
			s := spec(n)
			audit = append(audit, accounts.AuditSubject(n, s.EvidenceToken), accounts.AuditOverflowSubject(n, s.EvidenceToken))
			if len(s.Consumers) > 0 {
				dlq = append(dlq, accounts.DLQSubject(n, s.EvidenceToken))
			}
		}
		slices.Sort(audit)
		slices.Sort(dlq)
		return audit, dlq
	}
	js := adminJSOf(t, w)
	config := func(stream string) jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(c, stream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}
	audit, dlq := expect()
	for stream, want := range map[string][]string{accounts.AuditStream: audit, accounts.DLQStream: dlq} {
		cfg := config(stream)
		got := slices.Clone(cfg.Subjects)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s subjects\n got %v\nwant %v", stream, got, want)
		}
		if cfg.Discard != jetstream.DiscardNew || !cfg.DiscardNewPerSubject || cfg.MaxMsgsPerSubject < operator.MinEvidenceQuota || cfg.MaxMsgSize <= 0 {
			t.Errorf("%s limits %+v", stream, cfg)
		}
		if total := cfg.MaxMsgsPerSubject * int64(len(cfg.Subjects)) * int64(cfg.MaxMsgSize); total > cfg.MaxBytes {
			t.Errorf("%s: the quotas (%d bytes) exceed the stream's limit %d: one writer could fill it for all", stream, total, cfg.MaxBytes)
		}
	}
	// Billing writes a record, then both billing and support rotate.
	oldBilling, oldSupport := spec(sealbustest.Billing).EvidenceToken, spec(sealbustest.Support).EvidenceToken
	b, err := w.Connect(c, sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Audit(c, bus.Event{Type: "sealbus.test.before_rotation"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, s := range []string{sealbustest.Billing, sealbustest.Support} {
		if _, err := w.Harness.RotateService(c, sealbustest.Shop, s, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	subjects := config(accounts.AuditStream).Subjects
	for subj, want := range map[string]bool{
		accounts.AuditSubject(sealbustest.Billing, spec(sealbustest.Billing).EvidenceToken): true,  // the new subject
		accounts.AuditSubject(sealbustest.Billing, oldBilling):                              true,  // the old one holds a record
		accounts.AuditSubject(sealbustest.Support, oldSupport):                              false, // nothing there: dropped
	} {
		if slices.Contains(subjects, subj) != want {
			t.Errorf("after rotation, %s listed: %v, want %v", subj, !want, want)
		}
	}
	// The record written before the rotation still verifies, as billing's.
	v, err := p.RecordVerifier(sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	log, err := operator.NewAuditLog(js, v)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := log.Tail(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(recs, func(r operator.AuditRecord) bool {
		return r.Verified() && r.Verification.Writer == sealbustest.Billing && r.Event.Type == "sealbus.test.before_rotation"
	}) {
		t.Fatal("billing's record from before its rotation does not verify")
	}
}

func adminJSOf(t *testing.T, w *sealbustest.World) jetstream.JetStream {
	t.Helper()
	nc, err := w.Admin(ctx(t), sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}

// BenchmarkRecordVerifierVerify: what a reader pays per record: the record's signature, the
// writer's card (decoded and its signature verified), the account's signing keys and
// revocations, the place and the payload.
func BenchmarkRecordVerifierVerify(b *testing.B) {
	t := testing.TB(b)
	e := newVerifierEnv(t)
	src := bus.EventSource(e.acct.PublicKey(), "billing")
	data := e.serviceRecord(t, e.id, "billing", e.svc.Card, envelope.RecordAudit, e.event(t, src), nil, time.Now())
	v := e.verifier(t)
	subject := accounts.AuditSubject("billing", e.svc.Spec.EvidenceToken)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if got := v.Verify(subject, data); !got.Verified() {
			b.Fatal(got.State, got.Detail)
		}
	}
}
