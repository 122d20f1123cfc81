package accounts

import (
	"errors"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

// detRand is a deterministic byte source for WithRand constructors.
func detRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

func TestWithRandIsDeterministic(t *testing.T) {
	build := func() (*Operator, *Account, *Service) {
		r := detRand(42)
		op, err := NewOperatorWithRand("det", r)
		if err != nil {
			t.Fatal(err)
		}
		acc, err := op.NewAccountWithRand("tenant", DefaultLimits(), r)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := acc.NewServiceWithRand(ServiceSpec{Name: "svc", Publish: []string{"a.b"}}, r)
		if err != nil {
			t.Fatal(err)
		}
		return op, acc, svc
	}
	o1, a1, s1 := build()
	o2, a2, s2 := build()
	if o1.PublicKey() != o2.PublicKey() || o1.System.PublicKey() != o2.System.PublicKey() || o1.SysUser.UserPublicKey() != o2.SysUser.UserPublicKey() {
		t.Fatal("operator keys differ")
	}
	if a1.PublicKey() != a2.PublicKey() || publicKey(a1.SigningKeys[0]) != publicKey(a2.SigningKeys[0]) {
		t.Fatal("account keys differ")
	}
	if s1.UserPublicKey() != s2.UserPublicKey() || s1.CurvePublicKey() != s2.CurvePublicKey() {
		t.Fatal("service keys differ")
	}
	if _, err := NewOperatorWithRand("x", nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil rand: %v", err)
	}
	if _, err := NewOperator("bad name"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("bad operator name: %v", err)
	}
}

func TestSetLimits(t *testing.T) {
	f := newFixture(t)
	lim := f.acc.Limits()
	lim.DiskStorage = 5 << 30
	lim.Connections = 3
	if err := f.acc.SetLimits(lim); err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	ac, err := f.trust().VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if got := LimitsOf(ac); got != lim {
		t.Fatalf("limits %+v, want %+v", got, lim)
	}
	if err := f.acc.SetLimits(Limits{MaxPayload: 1}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("tiny payload: %v", err)
	}
}

func TestValidationErrorFormat(t *testing.T) {
	e := newChainEnv(t)
	e.acc.Revoke(e.svc.UserPublicKey(), e.now.Add(time.Hour))
	e.reissue(t)
	ac, err := e.trust.VerifyAccount(e.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.trust.VerifyCard(e.card(t, newAccountKey(t), nil), ac)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("problems: %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "accounts: validation failed: ") || !strings.Contains(msg, "; ") {
		t.Fatalf("message %q", msg)
	}
	if errors.Is(err, ErrExpired) {
		t.Fatal("Is matches a problem that is not there")
	}
	// Unwrap exposes the problems themselves.
	u := ve.Unwrap()
	if len(u) != 2 || !errors.Is(u[0], ErrUnknownSigner) || !errors.Is(u[1], ErrRevoked) {
		t.Fatalf("unwrap %v", u)
	}
}

func TestVerifyTooLargeAndGarbageJWTs(t *testing.T) {
	e := newChainEnv(t)
	if _, err := e.trust.VerifyAccount(strings.Repeat("a", 1<<20+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge account jwt: %v", err)
	}
	if _, err := e.trust.VerifyAccount("x.y.z"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("garbage account jwt: %v", err)
	}
	ac, _ := e.trust.VerifyAccount(e.acc.JWT)
	if _, err := e.trust.VerifyService(e.svc.Card, "x.y.z", ac); !errors.Is(err, ErrBadToken) {
		t.Fatalf("garbage user jwt: %v", err)
	}
	if _, err := e.trust.VerifyService(e.svc.Card, strings.Repeat("a", 1<<20+1), ac); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge user jwt: %v", err)
	}
	if !IsRevoked(nil, e.svc.UserPublicKey(), e.now) {
		t.Fatal("nil claims must count as revoked")
	}
}

// TestKeystorePublicOnlyPreviousKey: a previous curve key whose seed was
// discarded is stored and loaded public-only.
func TestKeystorePublicOnlyPreviousKey(t *testing.T) {
	f := newFixture(t)
	ns, err := f.acc.RotateService(f.svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prev := ns.PreviousCurveKeys[0]
	ns.PreviousCurveKeys[0].Key = curvePublic(publicKey(prev.Key))
	k := openTestStore(t, filepath.Join(t.TempDir(), "home"), testPass)
	if err := k.SaveOperator(f.op); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService(f.acc.Name, ns); err != nil {
		t.Fatal(err)
	}
	got, err := k.LoadService(f.acc.Name, "orders")
	if err != nil {
		t.Fatal(err)
	}
	pk := got.PreviousCurveKeys[0].Key
	if publicKey(pk) != publicKey(prev.Key) || hasSeed(pk) {
		t.Fatal("previous key should load public-only")
	}
	if _, err := pk.Open([]byte("x"), "X"); !errors.Is(err, nkeys.ErrPublicKeyOnly) {
		t.Fatalf("public-only open: %v", err)
	}
	if _, err := pk.Sign(nil); err == nil {
		t.Fatal("curve keys do not sign")
	}
	if k.Home() == "" || !k.Encrypted() {
		t.Fatal("accessors")
	}
}
