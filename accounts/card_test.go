package accounts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func TestCardRoundTrip(t *testing.T) {
	sk, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0).UTC()
	in := Card{
		Name:              "orders",
		Account:           mustKey(t, nkeys.PrefixByteAccount),
		UserKey:           mustKey(t, nkeys.PrefixByteUser),
		CurveKey:          mustCurve(t),
		PreviousCurveKeys: []PreviousKey{{CurveKey: mustCurve(t), Until: now.Add(time.Hour)}},
		Publish:           []string{"orders.created"},
		Subscribe:         []string{"payments.>"},
		IssuedAt:          now,
		Expires:           now.Add(24 * time.Hour),
	}
	tok, err := IssueCard(sk, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeCard(tok)
	if err != nil {
		t.Fatal(err)
	}
	if out.Issuer != publicKey(sk) || out.Name != in.Name || out.Account != in.Account || out.UserKey != in.UserKey || out.CurveKey != in.CurveKey {
		t.Fatalf("identity fields: %+v", out)
	}
	if !out.IssuedAt.Equal(now) || !out.NotBefore.Equal(now) || !out.Expires.Equal(in.Expires) {
		t.Fatalf("times: %v %v %v", out.IssuedAt, out.NotBefore, out.Expires)
	}
	if len(out.PreviousCurveKeys) != 1 || out.PreviousCurveKeys[0] != in.PreviousCurveKeys[0] {
		t.Fatalf("previous keys %+v", out.PreviousCurveKeys)
	}
	if len(out.ID) != 52 {
		t.Fatalf("id %q", out.ID)
	}
	// Deterministic: the same card signs to the same token.
	again, err := IssueCard(sk, *out)
	if err != nil || again != tok {
		t.Fatal("issuing a decoded card again changes the token")
	}
	// NATS tooling reads it as a generic claim with our type.
	gc, err := jwt.DecodeGeneric(tok)
	if err != nil {
		t.Fatal(err)
	}
	if gc.Data["type"] != CardType || gc.Subject != in.UserKey || gc.Issuer != publicKey(sk) {
		t.Fatalf("generic view: type %q", gc.ClaimType())
	}
}

func mustCurve(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	return publicKey(kp)
}

func TestIssueCardRefuses(t *testing.T) {
	sk, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pubOnly, _ := nkeys.FromPublicKey(publicKey(sk))
	now := time.Now()
	good := Card{
		Name: "svc", Account: publicKey(sk), UserKey: publicKey(user), CurveKey: mustCurve(t),
		IssuedAt: now, Expires: now.Add(time.Hour),
	}
	cases := map[string]struct {
		signer nkeys.KeyPair
		mut    func(c *Card)
		want   error
	}{
		"user key signer":     {user, nil, ErrInvalidOption},
		"public-only signer":  {pubOnly, nil, ErrNoSeed},
		"no expiry":           {sk, func(c *Card) { c.Expires = time.Time{} }, ErrInvalidOption},
		"expires before nbf":  {sk, func(c *Card) { c.Expires = now.Add(-time.Hour) }, ErrInvalidOption},
		"bad name":            {sk, func(c *Card) { c.Name = "a b" }, ErrInvalidOption},
		"account is user key": {sk, func(c *Card) { c.Account = c.UserKey }, ErrInvalidOption},
		"user is account key": {sk, func(c *Card) { c.UserKey = c.Account }, ErrInvalidOption},
		"curve is user key":   {sk, func(c *Card) { c.CurveKey = c.UserKey }, ErrInvalidOption},
		"bad subject":         {sk, func(c *Card) { c.Publish = []string{"a..b"} }, ErrInvalidOption},
		"previous = current":  {sk, func(c *Card) { c.PreviousCurveKeys = []PreviousKey{{CurveKey: c.CurveKey}} }, ErrInvalidOption},
		"too large": {sk, func(c *Card) {
			for i := 0; i < 1000; i++ {
				c.Subscribe = append(c.Subscribe, "subject.number.something.long")
			}
		}, ErrTooLarge},
	}
	for name, tc := range cases {
		c := good
		if tc.mut != nil {
			tc.mut(&c)
		}
		if _, err := IssueCard(tc.signer, c); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
	if _, err := IssueCard(sk, good); err != nil {
		t.Fatalf("good card: %v", err)
	}
}

func TestDecodeCardMalformed(t *testing.T) {
	f := newFixture(t)
	parts := strings.Split(f.svc.Card, ".")
	cases := map[string]string{
		"empty":            "",
		"two parts":        parts[0] + "." + parts[1],
		"four parts":       f.svc.Card + ".x",
		"bad header b64":   "!!." + parts[1] + "." + parts[2],
		"padded payload":   parts[0] + "." + parts[1] + "=." + parts[2],
		"other algorithm":  b64.EncodeToString([]byte(`{"typ":"JWT","alg":"ed25519"}`)) + "." + parts[1] + "." + parts[2],
		"no signature":     parts[0] + "." + parts[1] + ".",
		"payload not json": parts[0] + "." + b64.EncodeToString([]byte("hello")) + "." + parts[2],
	}
	for name, tok := range cases {
		if _, err := DecodeCard(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeCard(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.svc.Card)
	f.Add(fx.svc.UserJWT)
	f.Add(fx.acc.JWT)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := DecodeCard(tok)
		if err != nil {
			if c != nil {
				t.Fatal("card with error")
			}
			return
		}
		if len(tok) > MaxCardSize || !nkeys.IsValidPublicAccountKey(c.Issuer) || !nkeys.IsValidPublicUserKey(c.UserKey) || !nkeys.IsValidPublicCurveKey(c.CurveKey) {
			t.Fatalf("accepted an invalid card: %+v", c)
		}
	})
}

// TestCardSubjectsAreApplicationSubjects: a card's subjects obey the rule of
// ServiceSpec, when issued and when decoded, so a card can never claim
// everything (">") or the server's own subjects.
func TestCardSubjectsAreApplicationSubjects(t *testing.T) {
	f := newFixture(t)
	sk := f.acc.SigningKeys[0]
	base, err := DecodeCard(f.svc.Card)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{">", "*.created", "*", "$JS.>", "$JS.API.STREAM.DELETE.ORDERS", "$KV.SEALBUS_DIRECTORY.>",
		"$SYS.>", "_INBOX.>", "_INBOX_X.>", "sealbus.dlq.>", "sealbus", "a..b", "a.>.b"} {
		for _, field := range []string{"pub", "sub"} {
			c := *base
			if field == "pub" {
				c.Publish = []string{"orders.created", subj}
			} else {
				c.Subscribe = []string{subj}
			}
			if _, err := IssueCard(sk, c); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("IssueCard %s %q: %v", field, subj, err)
			}
			// Signed anyway by the account's own key: DecodeCard refuses it.
			tok := resign(t, f.svc.Card, sk, func(m map[string]any) {
				m["nats"].(map[string]any)[field] = []any{subj}
			})
			if _, err := DecodeCard(tok); !errors.Is(err, ErrBadToken) {
				t.Errorf("DecodeCard %s %q: %v", field, subj, err)
			}
		}
	}
	// Application subjects, wildcards after a literal first token, are fine.
	c := *base
	c.Publish, c.Subscribe = []string{"orders.*.updated", "orders.>"}, []string{"payments.>", "sealbusx.y", "a.*"}
	if _, err := IssueCard(sk, c); err != nil {
		t.Fatalf("application subjects: %v", err)
	}
}

// TestVerifyCardScopedSigner is the review's proof of concept: a scoped
// signing key delegated for "team-a" users signs a card for payments.>; the
// card must not verify.
func TestVerifyCardScopedSigner(t *testing.T) {
	f := newFixture(t)
	scoped, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	scope := jwt.NewUserScope()
	scope.Key = publicKey(scoped)
	scope.Role = "team-a"
	scope.Template.Pub.Allow.Add("team-a.>")
	scope.Template.Sub.Allow.Add("team-a.>")
	f.acc.Claims.SigningKeys.AddScopedSigner(scope)
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	ac, err := f.trust().VerifyAccount(f.acc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := IssueCard(scoped, Card{Name: "rogue", Account: f.acc.PublicKey(), UserKey: mustKey(t, nkeys.PrefixByteUser),
		CurveKey: mustCurve(t), Publish: []string{"payments.>"}, Subscribe: []string{"orders.>"}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.trust().VerifyCard(tok, ac)
	if c != nil || !errors.Is(err, ErrScopedSigner) || !errors.Is(err, ErrUnknownSigner) {
		t.Fatalf("card from a scoped key: card %v, err %v", c != nil, err)
	}
	// The unscoped signing key still issues valid cards.
	if _, err := f.trust().VerifyCard(f.svc.Card, ac); err != nil {
		t.Fatalf("card from the unscoped key: %v", err)
	}
	// An account whose first signing key is scoped cannot issue services.
	f.acc.SigningKeys = append([]nkeys.KeyPair{scoped}, f.acc.SigningKeys...)
	if _, err := f.acc.NewService(ServiceSpec{Name: "x", Publish: []string{"x.y"}}); !errors.Is(err, ErrScopedSigner) {
		t.Fatalf("service issued with a scoped key: %v", err)
	}
}
