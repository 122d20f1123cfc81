package operator

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestUserAuthWipesItsCopy: the seed given to userAuth may be wiped by the caller at once; the
// connection signs with its own copy, which its closed handler wipes.
func TestUserAuthWipesItsCopy(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	seed = bytes.Clone(seed)
	pub, _ := kp.PublicKey()
	opts, _ := userAuth("a.user.jwt", seed)
	wipe(seed)
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if tok, err := o.UserJWT(); err != nil || tok != "a.user.jwt" {
		t.Fatalf("jwt callback: %q, %v", tok, err)
	}
	nonce := []byte("a nonce from the server")
	sig, err := o.SignatureCB(nonce)
	if err != nil {
		t.Fatal(err)
	}
	verifier, _ := nkeys.FromPublicKey(pub)
	if err := verifier.Verify(nonce, sig); err != nil {
		t.Fatalf("signature by the wrong key after the caller wiped its seed: %v", err)
	}
	o.ClosedCB(nil)
	if _, err := o.SignatureCB(nonce); err == nil {
		t.Fatal("signed after the connection closed: the copy was not wiped")
	}
}
