package bus

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func TestValidServerNonce(t *testing.T) {
	real := func() string {
		// What nats-server sends: 11 random bytes, unpadded base64url (15 characters).
		b := make([]byte, 11)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	binary := make([]byte, 32)
	if _, err := rand.Read(binary); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		nonce string
		ok    bool
	}{
		{"nats-server nonce", real(), true},
		{"another nats-server nonce", real(), true},
		{"padded standard base64", "q83vEjRWeJA+/w==", true},
		{"one character", "A", true},
		{"64 characters", strings.Repeat("Ab9_", 16), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("A", 65), false},
		{"long text", strings.Repeat("nonce", 100), false},
		{"UTF-8 text", "nonce-é", false},
		{"space", "abc def", false},
		{"JSON", `{"account":"A","subject":"orders.new"}`, false},
		{"newline", "abc\n", false},
		{"NUL byte", "abc\x00", false},
		{"0xFF statement prefix", "\xffsealbus", false},
		{"binary", string(binary), false},
		{"dot", "abc.def", false},
	} {
		if got := validServerNonce([]byte(tc.nonce)); got != tc.ok {
			t.Errorf("%s (%q): valid = %v, want %v", tc.name, tc.nonce, got, tc.ok)
		}
	}
}
