package accounts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func credsFixture(t testing.TB) Creds {
	t.Helper()
	acct, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	apub, _ := acct.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = apub
	tok, err := uc.Encode(acct)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := user.Seed()
	curve, _ := nkeys.CreateCurveKeys()
	cseed, _ := curve.Seed()
	return Creds{UserJWT: tok, UserSeed: useed, CurveSeed: cseed}
}

func TestRoundTripAndNATSCompatible(t *testing.T) {
	c := credsFixture(t)
	data, err := FormatCreds(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCreds(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.UserJWT != c.UserJWT || !bytes.Equal(back.UserSeed, c.UserSeed) || !bytes.Equal(back.CurveSeed, c.CurveSeed) {
		t.Fatal("round trip changed the credentials")
	}
	// What nats.go's UserCredentials does with the file: the first block is the JWT, the
	// second the user seed; the sealbus block must not disturb either.
	tok, err := jwt.ParseDecoratedJWT(data)
	if err != nil || tok != c.UserJWT {
		t.Fatalf("NATS JWT parse: %v", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(data)
	if err != nil {
		t.Fatalf("NATS seed parse: %v", err)
	}
	if s, _ := kp.Seed(); !bytes.Equal(s, c.UserSeed) {
		t.Fatal("NATS parser picked the wrong seed")
	}
}

func TestPlainCredsHaveNoCurveSeed(t *testing.T) {
	c := credsFixture(t)
	c.CurveSeed = nil
	data, err := FormatCreds(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCreds(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.CurveSeed != nil {
		t.Fatal("curve seed appeared from nowhere")
	}
}

func TestRejects(t *testing.T) {
	c := credsFixture(t)
	good, _ := FormatCreds(c)
	other := credsFixture(t)
	swapped := c
	swapped.UserSeed = other.UserSeed
	swappedData, _ := jwt.FormatUserConfig(c.UserJWT, other.UserSeed)

	cases := map[string][]byte{
		"empty":                       nil,
		"seed of another user":        swappedData,
		"unterminated curve":          bytes.Replace(good, []byte(curveEnd), nil, 1),
		"curve block holds user seed": bytes.Replace(good, c.CurveSeed, c.UserSeed, 1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCreds(data)
			if !errors.Is(err, ErrInvalidCreds) {
				t.Fatalf("got %v, want ErrInvalidCreds", err)
			}
			for _, secret := range [][]byte{c.UserSeed, c.CurveSeed, other.UserSeed} {
				if bytes.Contains([]byte(err.Error()), secret) {
					t.Fatal("error message contains a seed")
				}
			}
		})
	}
	bad := c
	bad.CurveSeed = c.UserSeed
	if _, err := FormatCreds(bad); !errors.Is(err, ErrInvalidCreds) {
		t.Fatalf("FormatCreds with a user seed as curve seed: %v", err)
	}
}

func TestReadFileRefusesLooseMode(t *testing.T) {
	c := credsFixture(t)
	data, _ := FormatCreds(c)
	p := filepath.Join(t.TempDir(), "svc.creds")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredsFile(p); !errors.Is(err, ErrInvalidCreds) {
		t.Fatalf("0644 file accepted: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredsFile(p); err != nil {
		t.Fatal(err)
	}
}
