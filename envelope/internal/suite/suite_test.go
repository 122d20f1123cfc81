package suite

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"testing"
)

func TestExpand32MatchesHKDF(t *testing.T) {
	for i := 0; i < 50; i++ {
		prk := sha256.Sum256([]byte{byte(i)})
		id := prk[:16]
		for _, label := range []string{LabelCommit, LabelPayload} {
			want, err := hkdf.Expand(sha256.New, prk[:], label+string(id), 32)
			if err != nil {
				t.Fatal(err)
			}
			got, err := expand32(prk[:], label, id)
			if err != nil || string(got[:]) != string(want) {
				t.Fatalf("expand32 differs from crypto/hkdf for %q", label)
			}
		}
	}
	if _, err := expand32(make([]byte, 31), LabelCommit, nil); err == nil {
		t.Fatal("short prk accepted")
	}
}

func TestSharedSecretRejectsLowOrder(t *testing.T) {
	// Covered with real keys in the envelope tests; here only the all-zero point.
	priv := mustPriv(t)
	if _, err := SharedSecret(priv, make([]byte, 32)); err != ErrLowOrder {
		t.Fatalf("zero point: %v", err)
	}
	if _, err := SharedSecret(priv, make([]byte, 31)); err != ErrLowOrder {
		t.Fatalf("short point: %v", err)
	}
}

func mustPriv(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte("suite test"))
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}
