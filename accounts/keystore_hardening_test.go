package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestHomeDir(t *testing.T) {
	t.Setenv("SEALBUS_HOME", "/x/sealbus-home")
	t.Setenv("XDG_DATA_HOME", "/x/data")
	if got := HomeDir(); got != "/x/sealbus-home" {
		t.Fatalf("SEALBUS_HOME: %s", got)
	}
	t.Setenv("SEALBUS_HOME", "")
	if got := HomeDir(); got != "/x/data/sealbus" {
		t.Fatalf("XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/x/home")
	if got := HomeDir(); got != "/x/home/.local/share/sealbus" {
		t.Fatalf("HOME: %s", got)
	}
	if _, err := OpenKeystore("", testPass); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("empty home: %v", err)
	}
}

func TestKeystoreDefaultScryptParams(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	k, err := OpenKeystore(home, testPass)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var m markerFile
	if err := readJSON(k.Path(KeystoreMarker), &m); err != nil {
		t.Fatal(err)
	}
	if m.Check.Params != (scryptParams{LogN: 15, R: 8, P: 1}) || m.Check.KDF != "scrypt" || m.Check.Format != sealFormat {
		t.Fatalf("default params %+v", m.Check)
	}
	for _, bad := range [][3]int{{9, 8, 1}, {23, 8, 1}, {15, 0, 1}, {15, 8, 0}, {15, 33, 1}, {15, 8, 17}} {
		if _, err := OpenKeystore(filepath.Join(t.TempDir(), "h"), testPass, WithScrypt(bad[0], bad[1], bad[2])); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithScrypt%v: %v", bad, err)
		}
	}
	if _, err := OpenKeystore(home, testPass, WithKeystoreRand(nil)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("nil rand: %v", err)
	}
}

// editJSON rewrites a keystore file through a generic map.
func editJSON(t *testing.T, path string, mutate func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeystoreTamperingDetected(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	second, err := f.acc.NewService(ServiceSpec{Name: "billing", Publish: []string{"billing.x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService("tenant-a", second); err != nil {
		t.Fatal(err)
	}
	orders := k.Path("accounts", "tenant-a", "services", "orders.json")
	billing := k.Path("accounts", "tenant-a", "services", "billing.json")
	pristine, _ := os.ReadFile(orders)
	restore := func() {
		if err := os.WriteFile(orders, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A flipped ciphertext byte.
	editJSON(t, orders, func(m map[string]any) {
		box := m["sealed"].(map[string]any)
		ct := []byte(box["ciphertext"].(string))
		if ct[10] == 'A' {
			ct[10] = 'B'
		} else {
			ct[10] = 'A'
		}
		box["ciphertext"] = string(ct)
	})
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("flipped ciphertext: %v", err)
	}
	restore()

	// Sealed secrets moved from another entry (billing's seeds into orders).
	var other map[string]any
	b, _ := os.ReadFile(billing)
	_ = json.Unmarshal(b, &other)
	editJSON(t, orders, func(m map[string]any) { m["sealed"] = other["sealed"] })
	if _, err := k.LoadService("tenant-a", "orders"); err == nil {
		t.Error("secrets of another entry accepted")
	}
	restore()

	// Public key swapped for another service's: the seed no longer matches.
	editJSON(t, orders, func(m map[string]any) {
		m["service"].(map[string]any)["user_public_key"] = second.UserPublicKey()
	})
	if _, err := k.LoadService("tenant-a", "orders"); err == nil {
		t.Error("swapped public key accepted")
	}
	restore()

	// Clear-text secrets smuggled into an encrypted store.
	editJSON(t, orders, func(m map[string]any) {
		m["secrets"] = map[string]string{"x": "y"}
	})
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("clear-text secrets: %v", err)
	}
	restore()

	// Marked unencrypted in an encrypted store.
	editJSON(t, orders, func(m map[string]any) { m["encrypted"] = false })
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("mode flip: %v", err)
	}
	restore()

	// Absurd scrypt cost is refused before any derivation (no memory bomb).
	editJSON(t, orders, func(m map[string]any) {
		m["sealed"].(map[string]any)["params"] = map[string]any{"log_n": 40, "r": 8, "p": 1}
	})
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("scrypt bomb: %v", err)
	}
	restore()

	// Garbage.
	if err := os.WriteFile(orders, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage: %v", err)
	}
	restore()
	if _, err := k.LoadService("tenant-a", "orders"); err != nil {
		t.Fatalf("restored file: %v", err)
	}

	// Errors never carry secrets.
	seed, _ := f.svc.UserKey.Seed()
	editJSON(t, orders, func(m map[string]any) { m["encrypted"] = false })
	_, err = k.LoadService("tenant-a", "orders")
	if err == nil || strings.Contains(err.Error(), string(seed)) || strings.Contains(err.Error(), string(testPass)) {
		t.Errorf("error leaks a secret or is nil: %v", err)
	}
}

func TestKeystoreOfflineIdentityKey(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	idSeed, _ := f.acc.Key.Seed()
	pub, err := nkeys.FromPublicKey(f.acc.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	f.acc.Key = pub // the identity key stays offline
	k := openTestStore(t, home, nil, WithUnencrypted())
	saveFixture(t, k, f)
	b, _ := os.ReadFile(k.Path("accounts", "tenant-a", "account.json"))
	if bytes.Contains(b, idSeed) {
		t.Fatal("offline identity seed written")
	}
	acc, err := k.LoadAccount("tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if hasSeed(acc.Key) || acc.PublicKey() != f.acc.PublicKey() {
		t.Fatal("identity key should load public-only")
	}
	// Day-to-day work needs only the signing key and the operator.
	svc, err := acc.NewService(ServiceSpec{Name: "billing", Publish: []string{"billing.x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService("tenant-a", svc); err != nil {
		t.Fatal(err)
	}
	acc.Revoke(svc.UserPublicKey(), acc.now())
	if err := f.op.Reissue(acc); err != nil {
		t.Fatal(err)
	}
	// A signing key held public-only cannot sign.
	acc.SigningKeys[0], _ = nkeys.FromPublicKey(publicKey(acc.SigningKeys[0]))
	if _, err := acc.NewService(ServiceSpec{Name: "x"}); !errors.Is(err, ErrNoSeed) {
		t.Fatalf("public-only signing key: %v", err)
	}
}

func TestKeystoreCredsOverwriteAndModes(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	p1, err := k.WriteCreds("tenant-a", "orders")
	if err != nil {
		t.Fatal(err)
	}
	// Rotation then new creds replace the file atomically.
	ns, err := f.acc.RotateService(f.svc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService("tenant-a", ns); err != nil {
		t.Fatal(err)
	}
	p2, err := k.WriteCreds("tenant-a", "orders")
	if err != nil || p1 != p2 {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p2)
	seed, _ := ns.UserKey.Seed()
	if !bytes.Contains(b, seed) {
		t.Fatal("creds not replaced")
	}
	if len(ns.PreviousCurveKeys) != 0 {
		t.Fatal("zero grace keeps no previous key")
	}
	assertModes(t, home)
	if _, err := k.WriteCreds("tenant-a", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("creds of a missing service: %v", err)
	}
}

// TestKeystoreLooseUmask: files and directories are private whatever the umask.
func TestKeystorePrivateDespiteExistingParent(t *testing.T) {
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(parent, "a", "b")
	k := openTestStore(t, home, testPass)
	f := newFixture(t)
	saveFixture(t, k, f)
	for _, d := range []string{filepath.Join(parent, "a"), home} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != DirMode {
			t.Errorf("%s: %v", d, fi.Mode().Perm())
		}
	}
	fi, _ := os.Stat(parent)
	if fi.Mode().Perm() != 0o755 {
		t.Error("an existing parent directory was changed")
	}
}
