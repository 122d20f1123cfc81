package accounts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// fixture is an operator with one account and one service.
type fixture struct {
	op  *Operator
	acc *Account
	svc *Service
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	op, err := NewOperator("test-op")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := op.NewAccount("tenant-a", DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := acc.NewService(ServiceSpec{
		Name:      "orders",
		Publish:   []string{"orders.created", "orders.*.updated"},
		Subscribe: []string{"payments.>"},
		Consumers: []ConsumerRef{{Stream: "PAYMENTS", Durable: "orders"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{op: op, acc: acc, svc: svc}
}

func (f *fixture) trust() Trust { return Trust{Operators: []string{f.op.PublicKey()}} }

func TestNewOperatorKeysAndJWT(t *testing.T) {
	f := newFixture(t)
	if !nkeys.IsValidPublicOperatorKey(f.op.PublicKey()) {
		t.Fatalf("operator key %q", f.op.PublicKey())
	}
	oc, err := jwt.DecodeOperatorClaims(f.op.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if oc.Subject != f.op.PublicKey() || oc.Issuer != f.op.PublicKey() || oc.Name != "test-op" {
		t.Fatalf("operator claims: sub %s iss %s name %s", oc.Subject, oc.Issuer, oc.Name)
	}
	if oc.SystemAccount != f.op.System.PublicKey() {
		t.Fatalf("system account %s, want %s", oc.SystemAccount, f.op.System.PublicKey())
	}
	if f.op.System.Name != SystemAccountName {
		t.Fatalf("system account name %q", f.op.System.Name)
	}
	sc, err := f.trust().VerifyAccount(f.op.System.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Limits.IsJSEnabled() {
		t.Fatal("system account must not have JetStream")
	}
	uc, err := jwt.DecodeUserClaims(f.op.SysUser.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	if uc.IssuerAccount != f.op.System.PublicKey() || !sc.DidSign(uc) {
		t.Fatalf("sys user not signed by system account")
	}
}

func TestNewAccountClaims(t *testing.T) {
	f := newFixture(t)
	ac, err := f.trust().VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Subject != f.acc.PublicKey() || ac.Name != "tenant-a" {
		t.Fatalf("subject %s name %s", ac.Subject, ac.Name)
	}
	if len(f.acc.SigningKeys) != 1 || !ac.SigningKeys.Contains(publicKey(f.acc.SigningKeys[0])) {
		t.Fatal("signing key not listed")
	}
	if ac.SigningKeys.Contains(f.acc.PublicKey()) {
		t.Fatal("identity key must not be listed as a signing key")
	}
	lim := DefaultLimits()
	if got := LimitsOf(ac); got != lim {
		t.Fatalf("limits round trip: got %+v want %+v", got, lim)
	}
	if !ac.Limits.DisallowBearer || ac.Limits.LeafNodeConn != 0 {
		t.Fatalf("bearer tokens or leaf nodes allowed: %+v", ac.Limits.AccountLimits)
	}
	if !ac.Limits.IsJSEnabled() || ac.Limits.DiskStorage <= 0 || ac.Limits.MemoryStorage <= 0 {
		t.Fatalf("default limits must enable finite JetStream: %+v", ac.Limits.JetStreamLimits)
	}
}

func TestLimitsMapping(t *testing.T) {
	c := jwt.NewAccountClaims(mustKey(t, nkeys.PrefixByteAccount))
	Limits{}.apply(c)
	if c.Limits.Conn != jwt.NoLimit || c.Limits.Subs != jwt.NoLimit || c.Limits.Payload != jwt.NoLimit || c.Limits.Data != jwt.NoLimit {
		t.Fatalf("zero NATS limits must be unlimited: %+v", c.Limits.NatsLimits)
	}
	if c.Limits.IsJSEnabled() {
		t.Fatal("zero storage must disable JetStream")
	}
	Limits{DiskStorage: -1}.apply(c)
	if c.Limits.DiskStorage != jwt.NoLimit || c.Limits.MemoryStorage != 0 || !c.Limits.IsJSEnabled() {
		t.Fatalf("negative disk storage must be unlimited: %+v", c.Limits.JetStreamLimits)
	}
	if c.Limits.Streams != jwt.NoLimit || c.Limits.Consumer != jwt.NoLimit {
		t.Fatalf("zero streams/consumers must be unlimited: %+v", c.Limits.JetStreamLimits)
	}
	if err := (Limits{MaxPayload: 10}).Validate(); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("tiny payload: %v", err)
	}
}

func mustKey(t testing.TB, p nkeys.PrefixByte) string {
	t.Helper()
	kp, err := nkeys.CreatePair(p)
	if err != nil {
		t.Fatal(err)
	}
	return publicKey(kp)
}

func TestNewServiceCardAndUserJWT(t *testing.T) {
	f := newFixture(t)
	ac, err := f.trust().VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.trust().VerifyService(f.svc.Card, f.svc.UserJWT, ac)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "orders" || c.UserKey != f.svc.UserPublicKey() || c.CurveKey != f.svc.CurvePublicKey() || c.Account != f.acc.PublicKey() {
		t.Fatalf("card %+v", c)
	}
	if c.Issuer != publicKey(f.acc.SigningKeys[0]) {
		t.Fatalf("card issuer %s, want the signing key", c.Issuer)
	}
	if !nkeys.IsValidPublicCurveKey(c.CurveKey) || !nkeys.IsValidPublicUserKey(c.UserKey) {
		t.Fatal("card keys of wrong type")
	}
	if got := c.Expires.Sub(c.IssuedAt); got != DefaultValidity {
		t.Fatalf("validity %v", got)
	}
	uc, err := jwt.DecodeUserClaims(f.svc.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Expires != c.Expires.Unix() {
		t.Fatalf("user jwt expiry %d, card %d", uc.Expires, c.Expires.Unix())
	}
	if !ac.DidSign(uc) {
		t.Fatal("account did not sign the user jwt")
	}
	if !c.MayPublish("orders.created") || !c.MayPublish("orders.42.updated") || c.MayPublish("orders.42") {
		t.Fatal("MayPublish")
	}
	if !c.MaySubscribe("payments.eu.settled") || c.MaySubscribe("orders.created") {
		t.Fatal("MaySubscribe")
	}
	if !slices.Contains(uc.Sub.Allow, InboxPrefix(f.svc.UserPublicKey())+".>") {
		t.Fatalf("inbox missing from %v", uc.Sub.Allow)
	}
}

func TestCredsParse(t *testing.T) {
	f := newFixture(t)
	b, err := f.svc.Creds()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil || tok != f.svc.UserJWT {
		t.Fatalf("jwt from creds: %v", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if publicKey(kp) != f.svc.UserPublicKey() {
		t.Fatal("creds seed is not the user key")
	}
	kp2, err := nkeys.ParseDecoratedNKey(b)
	if err != nil || publicKey(kp2) != f.svc.UserPublicKey() {
		t.Fatalf("nkeys.ParseDecoratedNKey: %v", err)
	}
	// Sign a nonce as the server would ask the client to.
	sig, err := kp.Sign([]byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := nkeys.FromPublicKey(f.svc.UserPublicKey())
	if pub.Verify([]byte("nonce"), sig) != nil {
		t.Fatal("creds key does not verify")
	}
	if !strings.Contains(string(b), "BEGIN NATS USER JWT") {
		t.Fatal("creds not decorated")
	}
}

func TestRotateService(t *testing.T) {
	f := newFixture(t)
	now := time.Now().Truncate(time.Second)
	f.acc.Now = func() time.Time { return now }
	ns, err := f.acc.RotateService(f.svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ns.UserPublicKey() == f.svc.UserPublicKey() || ns.CurvePublicKey() == f.svc.CurvePublicKey() {
		t.Fatal("rotation kept a key")
	}
	if len(ns.PreviousCurveKeys) != 1 || publicKey(ns.PreviousCurveKeys[0].Key) != f.svc.CurvePublicKey() || !ns.PreviousCurveKeys[0].Until.Equal(now.Add(time.Hour)) {
		t.Fatalf("previous keys %+v", ns.PreviousCurveKeys)
	}
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	tr := f.trust()
	tr.Now = func() time.Time { return now }
	ac, err := tr.VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.VerifyService(ns.Card, ns.UserJWT, ac)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CurveKeyAt(f.svc.CurvePublicKey(), now.Add(30*time.Minute)) || c.CurveKeyAt(f.svc.CurvePublicKey(), now.Add(2*time.Hour)) {
		t.Fatal("grace period of the previous curve key")
	}
	if _, err := tr.VerifyCard(f.svc.Card, ac); !errors.Is(err, ErrRevoked) {
		t.Fatalf("old card after rotation: %v", err)
	}
	if !IsRevoked(ac, f.svc.UserPublicKey(), now) {
		t.Fatal("old user key not revoked")
	}
	// A second rotation after the grace period drops the expired previous key.
	later := now.Add(2 * time.Hour)
	f.acc.Now = func() time.Time { return later }
	ns2, err := f.acc.RotateService(ns, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns2.PreviousCurveKeys) != 1 || publicKey(ns2.PreviousCurveKeys[0].Key) != ns.CurvePublicKey() {
		t.Fatalf("previous keys after second rotation: %d", len(ns2.PreviousCurveKeys))
	}
}

func TestServiceSpecValidation(t *testing.T) {
	f := newFixture(t)
	bad := []ServiceSpec{
		{Name: ""},
		{Name: "a.b"},
		{Name: "../x"},
		{Name: "ok", Publish: []string{">"}},
		{Name: "ok", Publish: []string{"*.x"}},
		{Name: "ok", Publish: []string{"$JS.API.STREAM.CREATE.X"}},
		{Name: "ok", Subscribe: []string{"_INBOX.>"}},
		{Name: "ok", Publish: []string{"sealbus.audit.x"}},
		{Name: "ok", Publish: []string{"a..b"}},
		{Name: "ok", Publish: []string{"a.>.b"}},
		{Name: "ok", Publish: []string{"a b"}},
		{Name: "ok", Consumers: []ConsumerRef{{Stream: "S.X", Durable: "d"}}},
		{Name: "ok", Consumers: []ConsumerRef{{Stream: "S", Durable: "*"}}},
		{Name: "ok", Validity: -time.Second},
	}
	for _, spec := range bad {
		if _, err := f.acc.NewService(spec); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("spec %+v: err %v, want ErrInvalidOption", spec, err)
		}
	}
}

func TestDirectoryConstants(t *testing.T) {
	if DirectoryBucket != "SEALBUS_DIRECTORY" || DirectoryAccountKey != "account" || DirectoryCardKey("orders", "UABC") != "card.orders.UABC" {
		t.Fatal("directory layout")
	}
	if DLQStream != "SEALBUS_DLQ" || AuditStream != "SEALBUS_AUDIT" || DLQSubjectPrefix != "sealbus.dlq" || AuditSubjectPrefix != "sealbus.audit" {
		t.Fatal("stream layout")
	}
	if InboxPrefix("UABC") != "_INBOX_UABC" {
		t.Fatal("inbox prefix")
	}
}

func TestReissueExportsImportsAndErrors(t *testing.T) {
	f := newFixture(t)
	b, err := f.op.NewAccount("tenant-b", DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	f.acc.Claims.Exports.Add(&jwt.Export{Name: "orders", Subject: "orders.public.>", Type: jwt.Stream})
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	b.Claims.Imports.Add(&jwt.Import{Name: "orders", Subject: "orders.public.>", Account: f.acc.PublicKey(), LocalSubject: "a.orders.>", Type: jwt.Stream})
	if err := f.op.Reissue(b); err != nil {
		t.Fatal(err)
	}
	tr := f.trust()
	ac, err := tr.VerifyAccount(f.acc.JWT)
	if err != nil || len(ac.Exports) != 1 {
		t.Fatalf("export: %v", err)
	}
	bc, err := tr.VerifyAccount(b.JWT)
	if err != nil || len(bc.Imports) != 1 || bc.Imports[0].Account != f.acc.PublicKey() {
		t.Fatalf("import: %v", err)
	}

	// An invalid import is refused and the old JWT kept.
	old := b.JWT
	b.Claims.Imports.Add(&jwt.Import{Name: "bad", Subject: "x.>", Type: jwt.Stream}) // no account to import from
	if err := f.op.Reissue(b); !errors.Is(err, ErrInvalidOption) || b.JWT != old {
		t.Fatalf("invalid import: %v", err)
	}

	// A public-only operator key cannot sign.
	pubOp, _ := nkeys.FromPublicKey(f.op.PublicKey())
	ro := &Operator{Name: f.op.Name, Key: pubOp}
	if err := ro.Reissue(f.acc); !errors.Is(err, ErrNoSeed) {
		t.Fatalf("public-only operator: %v", err)
	}
	// Claims of another account.
	f.acc.Claims.Subject = b.PublicKey()
	if err := f.op.Reissue(f.acc); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("claims of another account: %v", err)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	f := newFixture(t)
	old := publicKey(f.acc.SigningKeys[0])
	nk, err := f.acc.AddSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	// Promote the new key, retire the old one.
	f.acc.SigningKeys = []nkeys.KeyPair{nk, f.acc.SigningKeys[0]}
	if err := f.acc.RemoveSigningKey(old); err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	svc, err := f.acc.NewService(ServiceSpec{Name: "fresh", Publish: []string{"x.y"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := f.trust()
	ac, err := tr.VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.VerifyService(svc.Card, svc.UserJWT, ac); err != nil {
		t.Fatalf("card of the new signing key: %v", err)
	}
	if _, err := tr.VerifyCard(f.svc.Card, ac); !errors.Is(err, ErrUnknownSigner) {
		t.Fatalf("card of the removed key: %v", err)
	}
	if err := f.acc.RemoveSigningKey(old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
}
