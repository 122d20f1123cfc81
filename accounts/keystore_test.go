package accounts

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

var testPass = []byte("correct horse battery staple")

// keystoreModes are the two ways a store is kept: seeds sealed under testPass, or in clear.
var keystoreModes = []struct {
	name string
	pass []byte
	opts []KeystoreOption
}{
	{"encrypted", testPass, nil},
	{"unencrypted", nil, []KeystoreOption{WithUnencrypted()}},
}

func openTestStore(t testing.TB, home string, pass []byte, opts ...KeystoreOption) *Keystore {
	t.Helper()
	k, err := OpenKeystore(home, pass, append([]KeystoreOption{WithScrypt(10, 8, 1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func saveFixture(t testing.TB, k *Keystore, f *fixture) {
	t.Helper()
	if err := k.SaveOperator(f.op); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService(f.acc.Name, f.svc); err != nil {
		t.Fatal(err)
	}
}

func TestKeystoreRoundTrip(t *testing.T) {
	for _, mode := range keystoreModes {
		t.Run(mode.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			f := newFixture(t)
			// Give the service a previous curve key so it is stored too.
			rot, err := f.acc.RotateService(f.svc, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f.svc = rot
			if err := f.op.Reissue(f.acc); err != nil {
				t.Fatal(err)
			}
			k := openTestStore(t, home, mode.pass, mode.opts...)
			saveFixture(t, k, f)

			// A fresh handle reads everything back.
			k2 := openTestStore(t, home, mode.pass, mode.opts...)
			op, err := k2.LoadOperator()
			if err != nil {
				t.Fatal(err)
			}
			if op.Name != f.op.Name || op.PublicKey() != f.op.PublicKey() || op.JWT != f.op.JWT || !sameSeed(op.Key, f.op.Key) {
				t.Fatal("operator round trip")
			}
			if op.System.JWT != f.op.System.JWT || !sameSeed(op.System.SigningKeys[0], f.op.System.SigningKeys[0]) {
				t.Fatal("system account round trip")
			}
			if op.SysUser.UserJWT != f.op.SysUser.UserJWT || !sameSeed(op.SysUser.UserKey, f.op.SysUser.UserKey) {
				t.Fatal("system user round trip")
			}
			acc, err := k2.LoadAccount("tenant-a")
			if err != nil {
				t.Fatal(err)
			}
			if acc.JWT != f.acc.JWT || !sameSeed(acc.Key, f.acc.Key) || len(acc.SigningKeys) != 1 || !sameSeed(acc.SigningKeys[0], f.acc.SigningKeys[0]) {
				t.Fatal("account round trip")
			}
			if len(acc.Claims.Revocations) != 1 {
				t.Fatal("account claims not decoded from the jwt")
			}
			svc, err := k2.LoadService("tenant-a", "orders")
			if err != nil {
				t.Fatal(err)
			}
			if svc.UserJWT != f.svc.UserJWT || svc.Card != f.svc.Card || svc.Account != f.svc.Account {
				t.Fatal("service public parts")
			}
			if !sameSeed(svc.UserKey, f.svc.UserKey) || !sameSeed(svc.CurveKey, f.svc.CurveKey) {
				t.Fatal("service seeds")
			}
			if len(svc.PreviousCurveKeys) != 1 || !sameSeed(svc.PreviousCurveKeys[0].Key, f.svc.PreviousCurveKeys[0].Key) || !svc.PreviousCurveKeys[0].Until.Equal(f.svc.PreviousCurveKeys[0].Until) {
				t.Fatal("previous curve keys")
			}
			if svc.Spec.Name != "orders" || len(svc.Spec.Consumers) != 1 || svc.Spec.Consumers[0] != f.svc.Spec.Consumers[0] {
				t.Fatalf("spec %+v", svc.Spec)
			}
			// The loaded account can still issue services.
			if _, err := acc.NewService(ServiceSpec{Name: "billing", Publish: []string{"billing.x"}}); err != nil {
				t.Fatal(err)
			}
			if names, err := k2.ListAccounts(); err != nil || len(names) != 1 || names[0] != "tenant-a" {
				t.Fatalf("ListAccounts %v %v", names, err)
			}
			if names, err := k2.ListServices("tenant-a"); err != nil || len(names) != 1 || names[0] != "orders" {
				t.Fatalf("ListServices %v %v", names, err)
			}
			path, err := k2.WriteCreds("tenant-a", "orders")
			if err != nil {
				t.Fatal(err)
			}
			if path != k2.Path("accounts", "tenant-a", "services", "orders.creds") {
				t.Fatalf("creds path %s", path)
			}
			creds, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tok, err := jwt.ParseDecoratedJWT(creds); err != nil || tok != f.svc.UserJWT {
				t.Fatal("creds file")
			}
			assertModes(t, home)
			assertSeedsHidden(t, home, f, mode.pass != nil)
		})
	}
}

func sameSeed(a, b interface{ Seed() ([]byte, error) }) bool {
	sa, err1 := a.Seed()
	sb, err2 := b.Seed()
	return err1 == nil && err2 == nil && bytes.Equal(sa, sb)
}

// assertModes checks every directory is 0700 and every file 0600.
func assertModes(t *testing.T, home string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := FileMode
		if d.IsDir() {
			want = DirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("stray temporary file %s", p)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d entries under home", n)
	}
}

// assertSeedsHidden checks that no seed appears in the clear when encrypted,
// and that the files say which mode they are in.
func assertSeedsHidden(t *testing.T, home string, f *fixture, encrypted bool) {
	t.Helper()
	seeds := [][]byte{}
	for _, kp := range []interface{ Seed() ([]byte, error) }{f.op.Key, f.acc.Key, f.acc.SigningKeys[0], f.svc.UserKey, f.svc.CurveKey, f.op.SysUser.UserKey} {
		s, err := kp.Seed()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, s)
	}
	for _, rel := range []string{"operator/test-op.json", "accounts/tenant-a/account.json", "accounts/tenant-a/services/orders.json"} {
		b, err := os.ReadFile(filepath.Join(home, rel))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range seeds {
			if bytes.Contains(b, s) {
				found = true
			}
		}
		if encrypted && found {
			t.Errorf("%s holds a seed in the clear", rel)
		}
		if !encrypted && !found {
			t.Errorf("%s: unencrypted store should hold seeds", rel)
		}
		wantMode := `"encrypted": false`
		if encrypted {
			wantMode = `"encrypted": true`
		}
		if !bytes.Contains(b, []byte(wantMode)) {
			t.Errorf("%s does not say %s", rel, wantMode)
		}
	}
}

// snapshot records every file's bytes and modification time under home.
func snapshot(t *testing.T, home string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.ModTime().String() + "|" + fi.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += "|" + string(b)
		}
		m[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameSnapshot(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestKeystoreWrongPassphraseTouchesNothing(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	before := snapshot(t, home)

	_, err := OpenKeystore(home, []byte("wrong passphrase"), WithScrypt(10, 8, 1))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if strings.Contains(err.Error(), "wrong passphrase\"") || strings.Contains(err.Error(), string(testPass)) {
		t.Fatal("error message leaks the passphrase")
	}
	if _, err := OpenKeystore(home, nil, WithUnencrypted()); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("encrypted store opened without passphrase: %v", err)
	}
	if _, err := OpenKeystore(home, nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("no passphrase and no WithUnencrypted: %v", err)
	}
	if !sameSnapshot(before, snapshot(t, home)) {
		t.Fatal("a failed open modified the keystore")
	}
}

func TestKeystoreUnencryptedRefusesPassphrase(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	openTestStore(t, home, nil, WithUnencrypted())
	before := snapshot(t, home)
	if _, err := OpenKeystore(home, testPass, WithScrypt(10, 8, 1)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("unencrypted store opened with a passphrase: %v", err)
	}
	if _, err := OpenKeystore(home, testPass, WithUnencrypted()); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("passphrase with WithUnencrypted: %v", err)
	}
	if !sameSnapshot(before, snapshot(t, home)) {
		t.Fatal("a failed open modified the keystore")
	}
}

func TestKeystoreNotFoundAndExists(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	k := openTestStore(t, home, testPass)
	if _, err := k.LoadOperator(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadOperator on empty store: %v", err)
	}
	if _, err := k.LoadAccount("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadAccount: %v", err)
	}
	if _, err := k.LoadService("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadService: %v", err)
	}
	if _, err := k.LoadAccount("../etc"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("path traversal: %v", err)
	}
	f := newFixture(t)
	if err := k.SaveService("tenant-a", f.svc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("service before its account: %v", err)
	}
	saveFixture(t, k, f)
	other := newFixture(t)
	if err := k.SaveOperator(other.op); !errors.Is(err, ErrExists) {
		t.Fatalf("second operator: %v", err)
	}
	if err := k.SaveAccount(other.acc); !errors.Is(err, ErrExists) {
		t.Fatalf("account with another key under the same name: %v", err)
	}
	if err := k.SaveService("tenant-a", other.svc); !errors.Is(err, ErrWrongAccount) {
		t.Fatalf("service of another account: %v", err)
	}
	// Re-saving the same identities is an update.
	saveFixture(t, k, f)
}
