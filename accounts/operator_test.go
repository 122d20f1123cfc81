package accounts

import (
	"errors"
	"math/rand"
	"testing"
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
