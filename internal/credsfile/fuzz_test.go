package credsfile

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, fails only with ErrInvalid, and whatever it accepts formats
// back to a file that parses to the same credentials.
func FuzzParse(f *testing.F) {
	c := fixture(f)
	good, err := Format(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(bytes.Replace(good, []byte(curveEnd), nil, 1))
	f.Add([]byte("-----BEGIN NATS USER JWT-----\n\n------END NATS USER JWT------\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := Format(got)
		if err != nil {
			t.Fatalf("accepted credentials do not format: %v", err)
		}
		back, err := Parse(again)
		if err != nil {
			t.Fatalf("formatted credentials do not parse: %v", err)
		}
		if back.UserJWT != got.UserJWT || !bytes.Equal(back.UserSeed, got.UserSeed) || !bytes.Equal(back.CurveSeed, got.CurveSeed) {
			t.Fatal("format/parse round trip changed the credentials")
		}
	})
}
