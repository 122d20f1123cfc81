package accounts

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// chainEnv is a fresh operator, account (signing key SK1), service and a
// fixed clock for one verification case.
type chainEnv struct {
	*fixture
	now   time.Time
	trust Trust
	base  Card // the service's card, decoded
	sk    nkeys.KeyPair
}

func newChainEnv(t *testing.T) *chainEnv {
	t.Helper()
	f := newFixture(t)
	now := time.Now().Truncate(time.Second)
	f.acc.Now = func() time.Time { return now }
	svc, err := f.acc.NewService(f.svc.Spec)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	c, err := DecodeCard(svc.Card)
	if err != nil {
		t.Fatal(err)
	}
	return &chainEnv{
		fixture: f,
		now:     now,
		trust:   Trust{Operators: []string{f.op.PublicKey()}, Now: func() time.Time { return now }},
		base:    *c,
		sk:      f.acc.SigningKeys[0],
	}
}

// card issues a variant of the service's card signed by kp (nil = SK1).
func (e *chainEnv) card(t *testing.T, kp nkeys.KeyPair, mutate func(c *Card)) string {
	t.Helper()
	c := e.base
	if mutate != nil {
		mutate(&c)
	}
	if kp == nil {
		kp = e.sk
	}
	tok, err := IssueCard(kp, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *chainEnv) reissue(t *testing.T) {
	t.Helper()
	if err := e.op.Reissue(e.acc); err != nil {
		t.Fatal(err)
	}
}

// userJWT signs user claims for the service's user key with kp (nil = SK1)
// after mutate.
func (e *chainEnv) userJWT(t *testing.T, kp nkeys.KeyPair, mutate func(uc *jwt.UserClaims)) string {
	t.Helper()
	uc, err := jwt.DecodeUserClaims(e.svc.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(uc)
	}
	if kp == nil {
		kp = e.sk
	}
	tok, err := uc.Encode(kp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newAccountKey(t *testing.T) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// chainCase produces the inputs of one verification: account JWT, card and,
// for VerifyService, the user JWT ("" means VerifyCard only).
type chainCase struct {
	name  string
	setup func(t *testing.T, e *chainEnv) (acctJWT, card, user string)
	want  []error // every listed error must be reported; nil means valid
}

func chainCases() []chainCase {
	return []chainCase{
		{"valid card", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, ""
		}, nil},
		{"valid service", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.svc.UserJWT
		}, nil},
		{"card signed by the account identity key", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, e.acc.Key, nil), ""
		}, nil},
		{"second listed signing key", func(t *testing.T, e *chainEnv) (string, string, string) {
			sk2, err := e.acc.AddSigningKey()
			if err != nil {
				t.Fatal(err)
			}
			e.reissue(t)
			return e.acc.JWT, e.card(t, sk2, nil), ""
		}, nil},
		{"wrong operator", func(t *testing.T, e *chainEnv) (string, string, string) {
			other, err := NewOperator("other")
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Reissue(e.acc); err != nil {
				t.Fatal(err)
			}
			return e.acc.JWT, e.svc.Card, ""
		}, []error{ErrUntrustedOperator}},
		{"signing key not listed", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, newAccountKey(t), nil), ""
		}, []error{ErrUnknownSigner}},
		{"signing key removed later", func(t *testing.T, e *chainEnv) (string, string, string) {
			if _, err := e.acc.AddSigningKey(); err != nil {
				t.Fatal(err)
			}
			if err := e.acc.RemoveSigningKey(publicKey(e.sk)); err != nil {
				t.Fatal(err)
			}
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, e.svc.UserJWT
		}, []error{ErrUnknownSigner}},
		{"expired", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) {
				c.IssuedAt, c.NotBefore, c.Expires = e.now.Add(-48*time.Hour), e.now.Add(-48*time.Hour), e.now.Add(-DefaultSkew-time.Second)
			}), ""
		}, []error{ErrExpired}},
		{"expired within the skew allowance", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) {
				c.IssuedAt, c.NotBefore, c.Expires = e.now.Add(-48*time.Hour), e.now.Add(-48*time.Hour), e.now.Add(-DefaultSkew+time.Second)
			}), ""
		}, nil},
		{"not yet valid", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) {
				c.NotBefore = e.now.Add(DefaultSkew + time.Second)
			}), ""
		}, []error{ErrNotYetValid}},
		{"not yet valid within the skew allowance", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) {
				c.NotBefore = e.now.Add(DefaultSkew - time.Second)
			}), ""
		}, nil},
		{"issued in the future", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) {
				c.IssuedAt, c.NotBefore = e.now.Add(time.Hour), e.now.Add(-time.Hour)
			}), ""
		}, []error{ErrNotYetValid}},
		{"revoked after issue time", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(e.svc.UserPublicKey(), e.now.Add(time.Minute))
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, []error{ErrRevoked}},
		{"revoked at issue time", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(e.svc.UserPublicKey(), e.now)
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, []error{ErrRevoked}},
		{"revoked before issue time", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(e.svc.UserPublicKey(), e.now.Add(-time.Hour))
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, nil},
		{"another user revoked", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(mustKey(t, nkeys.PrefixByteUser), e.now.Add(time.Hour))
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, nil},
		{"* revocation after issue time", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(jwt.All, e.now.Add(time.Minute))
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, []error{ErrRevoked}},
		{"* revocation before issue time", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(jwt.All, e.now.Add(-time.Minute))
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, nil},
		{"card user key differs from the user jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			other, err := e.acc.NewService(e.svc.Spec)
			if err != nil {
				t.Fatal(err)
			}
			return e.acc.JWT, e.svc.Card, other.UserJWT
		}, []error{ErrKeyMismatch}},
		{"card name differs from the user jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) { c.Name = "impostor" }), e.svc.UserJWT
			// the user JWT's evidence subjects are named for "orders", not for the card's name
		}, []error{ErrKeyMismatch, ErrPermissionMismatch}},
		{"tampered payload", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, tamperPayload(t, e.svc.Card, func(m map[string]any) {
				m["nats"].(map[string]any)["pub"] = []any{"secrets.>"}
			}), ""
		}, []error{ErrBadToken}},
		{"tampered signature", func(t *testing.T, e *chainEnv) (string, string, string) {
			parts := strings.Split(e.svc.Card, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 1
			return e.acc.JWT, parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig), ""
		}, []error{ErrBadToken}},
		{"re-signed by an attacker key naming the real issuer", func(t *testing.T, e *chainEnv) (string, string, string) {
			// Contents changed and signed by another key, issuer field left pointing at SK1.
			evil := newAccountKey(t)
			tok := e.card(t, evil, func(c *Card) { c.Publish = []string{"secrets.>"} })
			return e.acc.JWT, tamperPayload(t, tok, func(m map[string]any) { m["iss"] = publicKey(e.sk) }), ""
		}, []error{ErrBadToken}},
		{"card of another account", func(t *testing.T, e *chainEnv) (string, string, string) {
			other, err := e.op.NewAccount("tenant-b", DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			osvc, err := other.NewService(e.svc.Spec)
			if err != nil {
				t.Fatal(err)
			}
			return e.acc.JWT, osvc.Card, ""
		}, []error{ErrWrongAccount, ErrUnknownSigner}},
		{"card naming another account signed by our key", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) { c.Account = mustKey(t, nkeys.PrefixByteAccount) }), ""
		}, []error{ErrWrongAccount}},
		{"user jwt of another account", func(t *testing.T, e *chainEnv) (string, string, string) {
			otherAcc := newAccountKey(t)
			return e.acc.JWT, e.svc.Card, e.userJWT(t, otherAcc, func(uc *jwt.UserClaims) { uc.IssuerAccount = "" })
		}, []error{ErrWrongAccount, ErrUnknownSigner}},
		{"permission mismatch: card publishes more", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.card(t, nil, func(c *Card) { c.Publish = append(c.Publish, "extra.subject") }), e.svc.UserJWT
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt subscribes more", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Sub.Allow.Add("secrets.>") })
		}, []error{ErrPermissionMismatch}},
		{"infrastructure subject in card", func(t *testing.T, e *chainEnv) (string, string, string) {
			// IssueCard refuses it; a card signed anyway does not decode.
			return e.acc.JWT, resign(t, e.svc.Card, e.sk, func(m map[string]any) {
				m["nats"].(map[string]any)["pub"] = []any{"orders.created", "$JS.API.>"}
			}), e.svc.UserJWT
		}, []error{ErrBadToken}},
		{"card signed by a scoped signing key", func(t *testing.T, e *chainEnv) (string, string, string) {
			scoped := newAccountKey(t)
			scope := jwt.NewUserScope()
			scope.Key = publicKey(scoped)
			scope.Template.Pub.Allow.Add("team-a.>")
			e.acc.Claims.SigningKeys.AddScopedSigner(scope)
			e.reissue(t)
			return e.acc.JWT, e.card(t, scoped, func(c *Card) { c.Publish = []string{"payments.>"} }), ""
		}, []error{ErrScopedSigner}},
		{"permission mismatch: user jwt allows the JetStream API", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Pub.Allow.Add("$JS.API.>") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt allows KV writes", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Pub.Allow.Add("$KV.>") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt reads every inbox", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Sub.Allow.Add("_INBOX.>") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt allows $SYS", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Pub.Allow.Add("$SYS.>") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt without its deny list", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Pub.Deny = nil })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with a subscribe deny entry", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Sub.Deny.Add("payments.secret") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with a response permission", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Resp = &jwt.ResponsePermission{MaxMsgs: -1} })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with another consumer", func(t *testing.T, e *chainEnv) (string, string, string) {
			// Part of a consumer's entries: not a set sealbus issues.
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Pub.Allow.Add("$JS.API.CONSUMER.MSG.NEXT.ORDERS.orders") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt allows websocket connections", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeWebsocket) })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with a payload limit too small for an envelope", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Limits.Payload = 512 })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with unlimited subscriptions", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Limits.Subs = jwt.NoLimit })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt without a connection quota", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Tags = nil })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with two connection quotas", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Tags.Add(ConnectionQuotaTag + "1000") })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: user jwt with a data limit", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Limits.Data = 1 << 20 })
		}, []error{ErrPermissionMismatch}},
		{"valid: user jwt with other per-service limits", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) {
				uc.Limits.Payload, uc.Limits.Subs = 4096, 7
				uc.Tags = jwt.TagList{ConnectionQuotaTag + "3"}
			})
		}, nil},
		{"permission mismatch: bearer user jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.BearerToken = true })
		}, []error{ErrPermissionMismatch}},
		{"permission mismatch: scoped signing key", func(t *testing.T, e *chainEnv) (string, string, string) {
			scope := jwt.NewUserScope()
			scope.Key = publicKey(e.sk)
			scope.Template.Pub.Allow.Add(">")
			e.acc.Claims.SigningKeys.AddScopedSigner(scope)
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Permissions = jwt.Permissions{}; uc.SetScoped(true) })
		}, []error{ErrPermissionMismatch, ErrScopedSigner}},
		{"user jwt revoked", func(t *testing.T, e *chainEnv) (string, string, string) {
			// Card re-issued after the revocation, user JWT still the revoked one.
			e.acc.Revoke(e.svc.UserPublicKey(), time.Now().Add(time.Minute))
			e.reissue(t)
			return e.acc.JWT, e.card(t, nil, func(c *Card) { c.IssuedAt = e.now.Add(90 * time.Second); c.NotBefore = e.now }), e.svc.UserJWT
		}, []error{ErrRevoked}},
		{"user jwt expired", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.userJWT(t, nil, func(uc *jwt.UserClaims) { uc.Expires = e.now.Add(-time.Hour).Unix() })
		}, []error{ErrExpired}},
		{"wrong claim type: user jwt as card", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.userJWT(t, nil, nil), ""
		}, []error{ErrWrongType}},
		{"wrong claim type: generic claim", func(t *testing.T, e *chainEnv) (string, string, string) {
			gc := jwt.NewGenericClaims(e.svc.UserPublicKey())
			gc.Data["type"] = "sealbus-other"
			tok, err := gc.Encode(e.sk)
			if err != nil {
				t.Fatal(err)
			}
			return e.acc.JWT, tok, ""
		}, []error{ErrWrongType}},
		{"wrong claim type: card as account jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.svc.Card, e.svc.Card, ""
		}, []error{ErrWrongType}},
		{"wrong claim type: card as user jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card, e.svc.Card
		}, []error{ErrWrongType}},
		{"token too large", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, e.svc.Card + strings.Repeat("A", MaxCardSize), ""
		}, []error{ErrTooLarge}},
		{"not a jwt", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, "not-a-token", ""
		}, []error{ErrBadToken}},
		{"unknown card version", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, resign(t, e.svc.Card, e.sk, func(m map[string]any) {
				m["nats"].(map[string]any)["card_version"] = 2
			}), ""
		}, []error{ErrBadToken}},
		{"card without expiry", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, resign(t, e.svc.Card, e.sk, func(m map[string]any) { m["exp"] = 0 }), ""
		}, []error{ErrBadToken}},
		{"unknown card field", func(t *testing.T, e *chainEnv) (string, string, string) {
			return e.acc.JWT, resign(t, e.svc.Card, e.sk, func(m map[string]any) {
				m["nats"].(map[string]any)["admin"] = true
			}), ""
		}, []error{ErrBadToken}},
		{"account jwt expired", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Claims.Expires = e.now.Add(-time.Hour).Unix()
			e.reissue(t)
			return e.acc.JWT, e.svc.Card, ""
		}, []error{ErrExpired}},
		{"every problem is reported", func(t *testing.T, e *chainEnv) (string, string, string) {
			e.acc.Revoke(e.svc.UserPublicKey(), e.now.Add(time.Hour))
			e.reissue(t)
			return e.acc.JWT, e.card(t, newAccountKey(t), func(c *Card) {
				c.IssuedAt, c.NotBefore, c.Expires = e.now.Add(-48*time.Hour), e.now.Add(-48*time.Hour), e.now.Add(-time.Hour)
				c.Publish = []string{"other.subject"}
			}), e.svc.UserJWT
		}, []error{ErrUnknownSigner, ErrExpired, ErrRevoked, ErrPermissionMismatch}},
	}
}

func TestVerifyChain(t *testing.T) {
	all := []error{ErrUntrustedOperator, ErrUnknownSigner, ErrScopedSigner, ErrExpired, ErrNotYetValid, ErrRevoked, ErrWrongAccount,
		ErrPermissionMismatch, ErrKeyMismatch, ErrWrongType, ErrTooLarge, ErrBadToken}
	for _, tc := range chainCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := newChainEnv(t)
			acctJWT, card, user := tc.setup(t, e)
			var c *Card
			ac, err := e.trust.VerifyAccount(acctJWT)
			if err == nil {
				if user == "" {
					c, err = e.trust.VerifyCard(card, ac)
				} else {
					c, err = e.trust.VerifyService(card, user, ac)
				}
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if c == nil || c.UserKey == "" {
					t.Fatal("valid chain returned no card")
				}
				return
			}
			if err == nil {
				t.Fatalf("want %v, chain verified", tc.want)
			}
			if c != nil {
				t.Error("a card was returned with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("missing %v in %v", w, err)
				}
			}
			// No unexpected problem kinds.
			for _, p := range ve.Problems {
				known := false
				for _, w := range tc.want {
					if errors.Is(p, w) {
						known = true
					}
				}
				if !known {
					for _, a := range all {
						if errors.Is(p, a) {
							t.Errorf("unexpected problem %v", p)
						}
					}
				}
			}
		})
	}
}

// TestVerifyCardUntrustedClaims: claims decoded without VerifyAccount from
// an untrusted operator are refused by VerifyCard too.
func TestVerifyCardUntrustedClaims(t *testing.T) {
	e := newChainEnv(t)
	ac, err := jwt.DecodeAccountClaims(e.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	tr := Trust{Operators: []string{mustKey(t, nkeys.PrefixByteOperator)}}
	if _, err := tr.VerifyCard(e.svc.Card, ac); !errors.Is(err, ErrUntrustedOperator) {
		t.Fatalf("got %v", err)
	}
	if _, err := (Trust{}).VerifyAccount(e.acc.JWT); !errors.Is(err, ErrUntrustedOperator) {
		t.Fatalf("zero Trust trusts: %v", err)
	}
	if _, err := e.trust.VerifyCard(e.svc.Card, nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil claims: %v", err)
	}
}

func TestTrustSkew(t *testing.T) {
	e := newChainEnv(t)
	past := func(exp time.Duration) func(c *Card) {
		return func(c *Card) {
			c.IssuedAt, c.NotBefore, c.Expires = e.now.Add(-48*time.Hour), e.now.Add(-48*time.Hour), e.now.Add(exp)
		}
	}
	tok := e.card(t, nil, past(-30*time.Second))
	ac, err := e.trust.VerifyAccount(e.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.trust.VerifyCard(tok, ac); err != nil {
		t.Fatalf("default skew: %v", err)
	}
	strict := e.trust
	strict.Skew = -1
	if _, err := strict.VerifyCard(tok, ac); !errors.Is(err, ErrExpired) {
		t.Fatalf("no skew: %v", err)
	}
	wide := e.trust
	wide.Skew = time.Hour
	late := e.card(t, nil, past(-50*time.Minute))
	if _, err := wide.VerifyCard(late, ac); err != nil {
		t.Fatalf("one hour skew: %v", err)
	}
}

// tamperPayload changes the payload without re-signing.
func tamperPayload(t *testing.T, tok string, mutate func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// resign changes the payload and signs it again with kp.
func resign(t *testing.T, tok string, kp nkeys.KeyPair, mutate func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tamperPayload(t, tok, mutate), ".")
	sig, err := kp.Sign([]byte(parts[0] + "." + parts[1]))
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}
