package accounts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

// TestEvidenceTokenOfServices: each service gets its own secret token at creation and a new
// one at rotation, kept by the keystore, and it appears in its user JWT only, never in its card
// (which every service of the account reads).
func TestEvidenceTokenOfServices(t *testing.T) {
	f := newFixture(t)
	tok := f.svc.Spec.EvidenceToken
	if !ValidEvidenceToken(tok) {
		t.Fatalf("service created without a token: %q", tok)
	}
	other, err := f.acc.NewService(ServiceSpec{Name: "shipping", Subscribe: []string{"payments.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if other.Spec.EvidenceToken == tok {
		t.Fatal("two services share a token")
	}
	if strings.Contains(f.svc.Card, tok) {
		t.Fatal("the card carries the token")
	}
	uc, err := jwt.DecodeUserClaims(f.svc.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := EvidenceTokenOf(uc.Pub.Allow, "orders"); !ok || got != tok {
		t.Fatalf("user JWT token %q %v", got, ok)
	}
	// A service without consumers writes no dead letters: no DLQ subject.
	ouc, _ := jwt.DecodeUserClaims(other.UserJWT)
	if slices.Contains(ouc.Pub.Allow, DLQSubject("shipping", other.Spec.EvidenceToken)) || !slices.Contains(ouc.Pub.Allow, AuditSubject("shipping", other.Spec.EvidenceToken)) {
		t.Fatalf("shipping's evidence permissions: %v", ouc.Pub.Allow)
	}
	rot, err := f.acc.RotateService(f.svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidEvidenceToken(rot.Spec.EvidenceToken) || rot.Spec.EvidenceToken == tok {
		t.Fatal("rotation kept the token (a token leaked with the old creds would still name the service's subject)")
	}
	k := openTestStore(t, t.TempDir(), testPass)
	saveFixture(t, k, f)
	back, err := k.LoadService(f.acc.Name, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.EvidenceToken != tok {
		t.Fatal("the keystore lost the token")
	}
}

// TestVerifyServiceRefusesWideEvidenceSubjects: a user JWT with the old account-wide
// "sealbus.audit.>" / "sealbus.dlq.>" (any service could forge, flood or pre-empt every
// writer's records) or with another service's token is not what sealbus issues.
func TestVerifyServiceRefusesWideEvidenceSubjects(t *testing.T) {
	e := newChainEnv(t)
	tok := e.svc.Spec.EvidenceToken
	if _, err := e.trust.VerifyService(e.svc.Card, e.svc.UserJWT, e.acc.Claims); err != nil {
		t.Fatalf("genuine service: %v", err)
	}
	for name, mutate := range map[string]func(*jwt.UserClaims){
		"wildcard audit and dlq": func(uc *jwt.UserClaims) {
			uc.Pub.Allow.Remove(AuditSubject("orders", tok), AuditOverflowSubject("orders", tok), DLQSubject("orders", tok))
			uc.Pub.Allow.Add(DLQSubjectPrefix+".>", AuditSubjectPrefix+".>")
		},
		"another writer's subject": func(uc *jwt.UserClaims) {
			uc.Pub.Allow.Add(AuditSubject("billing", "ffffffffffffffffffffffffffffffff"))
		},
		"the admin subject": func(uc *jwt.UserClaims) {
			uc.Pub.Allow.Add(AdminAuditSubject(tok))
		},
		"a wildcard under its own subject": func(uc *jwt.UserClaims) {
			uc.Pub.Allow.Add(AuditSubject("orders", tok) + ".>")
		},
	} {
		ujwt := e.userJWT(t, nil, mutate)
		if _, err := e.trust.VerifyService(e.svc.Card, ujwt, e.acc.Claims); !errors.Is(err, ErrPermissionMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
