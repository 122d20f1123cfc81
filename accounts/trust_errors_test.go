package accounts

import (
	"errors"
	"strings"
	"testing"
	"time"
)

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
