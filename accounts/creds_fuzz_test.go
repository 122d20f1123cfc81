package accounts

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCreds: ParseCreds never panics, fails only with ErrInvalidCreds, and whatever it accepts formats
// back to a file that parses to the same credentials.
func FuzzParseCreds(f *testing.F) {
	c := credsFixture(f)
	good, err := FormatCreds(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(bytes.Replace(good, []byte(curveEnd), nil, 1))
	f.Add([]byte("-----BEGIN NATS USER JWT-----\n\n------END NATS USER JWT------\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseCreds(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCreds) {
				t.Fatalf("error %v does not wrap ErrInvalidCreds", err)
			}
			return
		}
		again, err := FormatCreds(got)
		if err != nil {
			t.Fatalf("accepted credentials do not format: %v", err)
		}
		back, err := ParseCreds(again)
		if err != nil {
			t.Fatalf("formatted credentials do not parse: %v", err)
		}
		if back.UserJWT != got.UserJWT || !bytes.Equal(back.UserSeed, got.UserSeed) || !bytes.Equal(back.CurveSeed, got.CurveSeed) {
			t.Fatal("format/parse round trip changed the credentials")
		}
	})
}
