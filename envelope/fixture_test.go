package envelope

import (
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/chacha20"
)

// detRand is a deterministic randomness source for tests: the ChaCha20 keystream of a key
// derived from a label.
func detRand(label string) io.Reader {
	k := sha256.Sum256([]byte("sealbus test rand " + label))
	c, err := chacha20.NewUnauthenticatedCipher(k[:], make([]byte, 12))
	if err != nil {
		panic(err)
	}
	return &streamReader{c}
}

type streamReader struct{ c *chacha20.Cipher }

func (r *streamReader) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

func rawKey(label string) []byte {
	k := sha256.Sum256([]byte("sealbus test key " + label))
	return k[:]
}

func testIdentity(t testing.TB, name string) *Identity {
	t.Helper()
	us, err := nkeys.EncodeSeed(nkeys.PrefixByteUser, rawKey(name+" user"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := nkeys.EncodeSeed(nkeys.PrefixByteCurve, rawKey(name+" curve"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentity(us, cs)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func testAccount(t testing.TB, name string) string {
	t.Helper()
	a, err := nkeys.Encode(nkeys.PrefixByteAccount, rawKey(name+" account"))
	if err != nil {
		t.Fatal(err)
	}
	return string(a)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// allowOnly accepts exactly the given sender keys.
func allowOnly(senders ...string) SenderPolicy {
	return SenderPolicyFunc(func(account, sender, subject string, created time.Time) error {
		for _, s := range senders {
			if s == sender {
				return nil
			}
		}
		return ErrSenderUnknown
	})
}
