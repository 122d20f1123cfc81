package accounts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestKeystoreWidenedSpecRefused is the review's proof of concept: someone
// with write access to the keystore but not the passphrase widens the stored
// spec of a service; loading it must fail, so the admin's next rotation
// never signs a wider card. Both modes check the spec against the signed
// user JWT and card; the encrypted mode also binds the public record into
// the sealed seeds.
func TestKeystoreWidenedSpecRefused(t *testing.T) {
	for _, mode := range keystoreModes {
		t.Run(mode.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			f := newFixture(t)
			k := openTestStore(t, home, mode.pass, mode.opts...)
			saveFixture(t, k, f)
			path := k.Path("accounts", "tenant-a", "services", "orders.json")
			pristine, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			edits := map[string]func(m map[string]any){
				"publish widened": func(m map[string]any) {
					m["service"].(map[string]any)["spec"].(map[string]any)["publish"] = []any{"orders.created", "orders.*.updated", "payments.>"}
				},
				"subscribe widened": func(m map[string]any) {
					m["service"].(map[string]any)["spec"].(map[string]any)["subscribe"] = []any{"payments.>", "orders.>"}
				},
				"consumer added": func(m map[string]any) {
					spec := m["service"].(map[string]any)["spec"].(map[string]any)
					spec["consumers"] = append(spec["consumers"].([]any), map[string]any{"stream": "SECRETS", "durable": "orders"})
				},
				"card removed": func(m map[string]any) {
					delete(m["service"].(map[string]any), "card")
				},
				"reserved subject": func(m map[string]any) {
					m["service"].(map[string]any)["spec"].(map[string]any)["publish"] = []any{">"}
				},
			}
			for name, edit := range edits {
				editJSON(t, path, edit)
				if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: %v, want ErrCorrupt", name, err)
				}
				if err := os.WriteFile(path, pristine, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := k.LoadService("tenant-a", "orders"); err != nil {
				t.Fatalf("pristine file: %v", err)
			}
		})
	}
}

// TestKeystorePublicRecordBound: in an encrypted store, any edit of an
// entry's public part — even one consistent with the signed tokens, such as
// an older account JWT (rolling back a revocation), a longer validity or a
// longer grace for a previous key — stops the sealed seeds from opening.
func TestKeystorePublicRecordBound(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	oldAccountJWT := f.acc.JWT

	// Rotate with a grace period so the record carries a previous key, and
	// revoke the old user key.
	rot, err := f.acc.RotateService(f.svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService("tenant-a", rot); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, file string
		load       func() error
		edit       func(m map[string]any)
	}{
		{"account jwt rolled back", "account.json",
			func() error { _, err := k.LoadAccount("tenant-a"); return err },
			func(m map[string]any) { m["account"].(map[string]any)["jwt"] = oldAccountJWT }},
		{"signing key dropped", "account.json",
			func() error { _, err := k.LoadAccount("tenant-a"); return err },
			func(m map[string]any) { m["account"].(map[string]any)["signing_keys"] = []any{} }},
		{"validity lengthened", "services/orders.json",
			func() error { _, err := k.LoadService("tenant-a", "orders"); return err },
			func(m map[string]any) {
				m["service"].(map[string]any)["spec"].(map[string]any)["validity"] = float64(10 * 365 * 24 * time.Hour)
			}},
		{"previous key grace lengthened", "services/orders.json",
			func() error { _, err := k.LoadService("tenant-a", "orders"); return err },
			func(m map[string]any) {
				prev := m["service"].(map[string]any)["previous_curve_keys"].([]any)
				prev[0].(map[string]any)["until"] = "2099-01-01T00:00:00Z"
			}},
	}
	for _, tc := range cases {
		path := filepath.Join(k.Path("accounts", "tenant-a"), tc.file)
		pristine, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.load(); err != nil {
			t.Fatalf("%s: pristine: %v", tc.name, err)
		}
		editJSON(t, path, tc.edit)
		if err := tc.load(); !errors.Is(err, ErrWrongPassphrase) {
			t.Errorf("%s: %v, want the sealed seeds to refuse the edited record", tc.name, err)
		}
		if err := os.WriteFile(path, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The operator entry too: its system account record.
	opPath := k.Path("operator", f.op.Name+".json")
	editJSON(t, opPath, func(m map[string]any) { m["system"].(map[string]any)["name"] = "SYS2" })
	if _, err := k.LoadOperator(); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("operator record edited: %v", err)
	}
}

// TestKeystoreOldVersionRefused: version 1 files (no public-record binding)
// are refused, not silently read.
func TestKeystoreOldVersionRefused(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	editJSON(t, k.Path("accounts", "tenant-a", "services", "orders.json"), func(m map[string]any) { m["version"] = 1 })
	if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 1 entry: %v", err)
	}
	editJSON(t, k.Path(KeystoreMarker), func(m map[string]any) { m["version"] = 1 })
	if _, err := OpenKeystore(home, testPass); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 1 marker: %v", err)
	}
}

// TestScryptParamsBoundedOnRead: parameters in a doctored file are bounded
// before any derivation (at most 256 MiB, p at most 4), both in the marker
// and in an entry.
func TestScryptParamsBoundedOnRead(t *testing.T) {
	for _, tc := range []struct {
		p  scryptParams
		ok bool
	}{
		{scryptParams{15, 8, 1}, true},
		{scryptParams{18, 8, 1}, true},  // 256 MiB exactly
		{scryptParams{16, 32, 1}, true}, // 256 MiB exactly
		{scryptParams{10, 8, 4}, true},
		{scryptParams{19, 8, 1}, false},   // 512 MiB
		{scryptParams{22, 8, 1}, false},   // 4 GiB
		{scryptParams{22, 32, 16}, false}, // the old maximum: 16 GiB, p 16
		{scryptParams{10, 8, 5}, false},
		{scryptParams{10, 8, 16}, false},
	} {
		if err := tc.p.check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.p, err)
		}
		if tc.ok || tc.p.LogN > 10 {
			// Allowed costs are slow to derive, and a regressed bound must
			// not make this test allocate gigabytes: probe cheap cases only.
			continue
		}
		if _, err := OpenKeystore(filepath.Join(t.TempDir(), "h"), testPass, WithScrypt(tc.p.LogN, tc.p.R, tc.p.P)); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("WithScrypt%+v: %v", tc.p, err)
		}
	}

	home := filepath.Join(t.TempDir(), "home")
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	for _, bad := range []map[string]any{
		{"log_n": 19, "r": 8, "p": 1}, // 512 MiB (bounded so that a regression stays survivable)
		{"log_n": 10, "r": 8, "p": 16},
		{"log_n": 17, "r": 32, "p": 1},
	} {
		entry := k.Path("accounts", "tenant-a", "services", "orders.json")
		pristine, _ := os.ReadFile(entry)
		editJSON(t, entry, func(m map[string]any) { m["sealed"].(map[string]any)["params"] = bad })
		if _, err := k.LoadService("tenant-a", "orders"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("entry params %v: %v", bad, err)
		}
		if err := os.WriteFile(entry, pristine, 0o600); err != nil {
			t.Fatal(err)
		}

		marker := k.Path(KeystoreMarker)
		pristine, _ = os.ReadFile(marker)
		editJSON(t, marker, func(m map[string]any) { m["check"].(map[string]any)["params"] = bad })
		if _, err := OpenKeystore(home, testPass); !errors.Is(err, ErrCorrupt) {
			t.Errorf("marker params %v: %v", bad, err)
		}
		if err := os.WriteFile(marker, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeystoreMissingMarkerNotRecreated: a home holding entries but no
// marker is refused; OpenKeystore does not write a new marker whose
// passphrase check would be whatever was typed.
func TestKeystoreMissingMarkerNotRecreated(t *testing.T) {
	for _, dir := range []string{"operator", "accounts"} {
		t.Run(dir, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			f := newFixture(t)
			k := openTestStore(t, home, testPass)
			if dir == "operator" {
				if err := k.SaveOperator(f.op); err != nil {
					t.Fatal(err)
				}
			} else if err := k.SaveAccount(f.acc); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(k.Path(KeystoreMarker)); err != nil {
				t.Fatal(err)
			}
			_, err := OpenKeystore(home, []byte("a mistyped passphrase"), WithScrypt(10, 8, 1))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("entries without a marker: %v", err)
			}
			if _, err := os.Stat(k.Path(KeystoreMarker)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a marker was created: %v", err)
			}
			if _, err := OpenKeystore(home, nil, WithUnencrypted()); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unencrypted over entries without a marker: %v", err)
			}
		})
	}
	// Empty entry directories (or other components' files) do not count.
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(filepath.Join(home, "accounts"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "ca.pem"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := OpenKeystore(home, testPass, WithScrypt(10, 8, 1))
	if err != nil {
		t.Fatalf("empty accounts/: %v", err)
	}
	k.Close()
}

// TestSecretsWiped: seeds are held as bytes the keystore owns and zeroes;
// wiping them never touches the key pair's own seed.
func TestSecretsWiped(t *testing.T) {
	f := newFixture(t)
	want, err := f.svc.UserKey.Seed()
	if err != nil {
		t.Fatal(err)
	}
	want = bytes.Clone(want)
	sec := secrets{}
	sec.add(f.svc.UserKey)
	sec.add(f.svc.CurveKey)
	held := slices.Collect(func(yield func([]byte) bool) {
		for _, v := range sec {
			if !yield(v) {
				return
			}
		}
	})
	if len(held) != 2 {
		t.Fatalf("%d seeds held", len(held))
	}
	enc, err := sec.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc, want) {
		t.Fatal("encoded secrets lack the seed")
	}
	sec.wipe()
	if len(sec) != 0 {
		t.Fatal("wipe left entries")
	}
	for _, v := range held {
		if bytes.ContainsFunc(v, func(r rune) bool { return r != 0 }) {
			t.Fatal("a seed was not zeroed")
		}
	}
	if got, _ := f.svc.UserKey.Seed(); !bytes.Equal(got, want) {
		t.Fatal("wiping the keystore's copy damaged the key pair")
	}
	// A seed that is not nkeys text is refused, not stored.
	if _, err := (secrets{"UABC": []byte(`x"y`)}).encode(); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("non-base32 seed: %v", err)
	}
}
