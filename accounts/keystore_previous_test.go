package accounts

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

// TestKeystorePublicOnlyPreviousKey: a previous curve key whose seed was
// discarded is stored and loaded public-only.
func TestKeystorePublicOnlyPreviousKey(t *testing.T) {
	f := newFixture(t)
	ns, err := f.acc.RotateService(f.svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prev := ns.PreviousCurveKeys[0]
	ns.PreviousCurveKeys[0].Key = curvePublic(publicKey(prev.Key))
	k := openTestStore(t, filepath.Join(t.TempDir(), "home"), testPass)
	if err := k.SaveOperator(f.op); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService(f.acc.Name, ns); err != nil {
		t.Fatal(err)
	}
	got, err := k.LoadService(f.acc.Name, "orders")
	if err != nil {
		t.Fatal(err)
	}
	pk := got.PreviousCurveKeys[0].Key
	if publicKey(pk) != publicKey(prev.Key) || hasSeed(pk) {
		t.Fatal("previous key should load public-only")
	}
	if _, err := pk.Open([]byte("x"), "X"); !errors.Is(err, nkeys.ErrPublicKeyOnly) {
		t.Fatalf("public-only open: %v", err)
	}
	if _, err := pk.Sign(nil); err == nil {
		t.Fatal("curve keys do not sign")
	}
	if k.Home() == "" || !k.Encrypted() {
		t.Fatal("accessors")
	}
}
