package accounts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadOnlyKeystoreShowsPublicRecordsOnly(t *testing.T) {
	for _, mode := range keystoreModes {
		t.Run(mode.name, func(t *testing.T) {
			home := t.TempDir()
			f := newFixture(t)
			saveFixture(t, openTestStore(t, home, mode.pass, mode.opts...), f)

			ro, err := OpenKeystoreReadOnly(home)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if !ro.ReadOnly() || ro.Anchor() != f.op.PublicKey() {
				t.Fatalf("read-only %v, anchor %s", ro.ReadOnly(), ro.Anchor())
			}
			acct, err := ro.LoadAccount(f.acc.Name)
			if err != nil {
				t.Fatal(err)
			}
			if acct.JWT != f.acc.JWT || hasSeed(acct.Key) || hasSeed(acct.SigningKeys[0]) {
				t.Fatalf("read-only account: jwt equal %v, seeds %v %v", acct.JWT == f.acc.JWT, hasSeed(acct.Key), hasSeed(acct.SigningKeys[0]))
			}
			svc, err := ro.LoadService(f.acc.Name, f.svc.Spec.Name)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Card != f.svc.Card || hasSeed(svc.UserKey) {
				t.Fatal("read-only service: wrong card or a seed was loaded")
			}
			if _, err := svc.Creds(); err == nil {
				t.Fatal("creds from a read-only store")
			}
			for name, err := range map[string]error{
				"SaveAccount":   ro.SaveAccount(f.acc),
				"SaveService":   ro.SaveService(f.acc.Name, f.svc),
				"SaveOperator":  ro.SaveOperator(f.op),
				"RemoveService": ro.RemoveService(f.acc.Name, f.svc.Spec.Name),
			} {
				if !errors.Is(err, ErrReadOnly) {
					t.Errorf("%s on a read-only store: %v", name, err)
				}
			}
		})
	}
}

// TestReadOnlyKeystoreRefusesEditedRecords: without the passphrase the records are verified up
// the chain; an account JWT signed by another operator is refused, not shown.
func TestReadOnlyKeystoreRefusesEditedRecords(t *testing.T) {
	home := t.TempDir()
	f := newFixture(t)
	saveFixture(t, openTestStore(t, home, testPass), f)
	// An intruder with write access (no passphrase) swaps in an account JWT of its own operator.
	other := newFixture(t)
	path := filepath.Join(home, "accounts", f.acc.Name, "account.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	forged := *f.acc
	forged.Claims.Issuer = ""
	tok, err := forged.Claims.Encode(other.op.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(f.acc.JWT), []byte(tok), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenKeystoreReadOnly(home)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.LoadAccount(f.acc.Name); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("forged account JWT in a read-only store: %v", err)
	}
	if _, err := OpenKeystoreReadOnly(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read-only open of an empty home: %v", err)
	}
}

func TestNotFoundErrorListsKnownNames(t *testing.T) {
	home := t.TempDir()
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	_, err := k.LoadAccount("tenant-b")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, home) || !strings.Contains(msg, "tenant-a") || nf.Suggestion() != "tenant-a" {
		t.Fatalf("message %q (suggestion %q): want the known names and no path", msg, nf.Suggestion())
	}
	if _, err := k.LoadService("tenant-a", "order"); !errors.As(err, &nf) || nf.Suggestion() != "orders" || nf.Scope != "tenant-a" {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := k.LoadService("nope", "orders"); !errors.As(err, &nf) || nf.Kind != "account" {
		t.Fatalf("service of an unknown account: %v", err)
	}
	if s := (&NotFoundError{Name: "zzzzzz", Known: []string{"shop"}}).Suggestion(); s != "" {
		t.Fatalf("far-off name suggested %q", s)
	}
}

func TestRemoveServiceAndAccount(t *testing.T) {
	home := t.TempDir()
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	if _, err := k.WriteCreds(f.acc.Name, f.svc.Spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := k.RemoveService(f.acc.Name, f.svc.Spec.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "accounts", f.acc.Name, "services", f.svc.Spec.Name+".creds")); !os.IsNotExist(err) {
		t.Fatal("creds file left after RemoveService")
	}
	if err := k.RemoveService(f.acc.Name, f.svc.Spec.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if err := k.RemoveAccount(f.acc.Name); err != nil {
		t.Fatal(err)
	}
	if names, _ := k.ListAccounts(); len(names) != 0 {
		t.Fatalf("accounts after remove: %v", names)
	}
	if err := k.RemoveAccount(f.acc.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second account remove: %v", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	home := t.TempDir()
	f := newFixture(t)
	k := openTestStore(t, home, testPass)
	saveFixture(t, k, f)
	before := treeOf(t, filepath.Join(home, "accounts"))
	snap, err := k.Snapshot(f.acc.Name)
	if err != nil {
		t.Fatal(err)
	}
	// A half-done change: the account reissued, one service replaced, one added with creds.
	f.acc.Revoke(f.svc.UserPublicKey(), f.acc.now())
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	if err := k.SaveAccount(f.acc); err != nil {
		t.Fatal(err)
	}
	extra, err := f.acc.NewService(ServiceSpec{Name: "extra", Publish: []string{"x.y"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SaveService(f.acc.Name, extra); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WriteCreds(f.acc.Name, "extra"); err != nil {
		t.Fatal(err)
	}
	if err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	after := treeOf(t, filepath.Join(home, "accounts"))
	if len(after) != len(before) {
		t.Fatalf("files after restore %d, before %d", len(after), len(before))
	}
	for p, b := range before {
		if !bytes.Equal(after[p], b) {
			t.Errorf("%s differs after restore", p)
		}
	}
	// A new account's snapshot: restoring removes it entirely.
	snap, err = k.Snapshot("fresh")
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := f.op.NewAccount("fresh", DefaultLimits())
	if err := k.SaveAccount(acct); err != nil {
		t.Fatal(err)
	}
	if err := snap.Restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "accounts", "fresh")); !os.IsNotExist(err) {
		t.Fatal("new account left after restore")
	}
}

func treeOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, rerr := os.ReadFile(p)
			out[p] = b
			return rerr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestChangePassphrase(t *testing.T) {
	for _, mode := range keystoreModes {
		t.Run(mode.name, func(t *testing.T) {
			home := t.TempDir()
			f := newFixture(t)
			k := openTestStore(t, home, mode.pass, mode.opts...)
			saveFixture(t, k, f)
			newPass := []byte("a much better passphrase")
			if err := k.ChangePassphrase([]byte("short")); !errors.Is(err, ErrWeakPassphrase) {
				t.Fatalf("short passphrase: %v", err)
			}
			if err := k.ChangePassphrase(newPass); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenKeystore(home, testPass, WithScrypt(10, 8, 1)); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("old passphrase after change: %v", err)
			}
			k2 := openTestStore(t, home, newPass)
			svc, err := k2.LoadService(f.acc.Name, f.svc.Spec.Name)
			if err != nil {
				t.Fatal(err)
			}
			if svc.UserPublicKey() != f.svc.UserPublicKey() || !hasSeed(svc.UserKey) {
				t.Fatal("service keys lost in re-encryption")
			}
			if _, err := k2.LoadOperator(); err != nil {
				t.Fatal(err)
			}
			staged, _ := filepath.Glob(filepath.Join(home, "*", "*", "*.rekey"))
			if len(staged) > 0 {
				t.Fatalf("staged files left: %v", staged)
			}
		})
	}
}

// TestChangePassphraseCrash plays a crash at each point of a passphrase change: before the
// journal the store opens with the old passphrase, after it with the new one, never a mix.
func TestChangePassphraseCrash(t *testing.T) {
	newPass := []byte("a much better passphrase")
	setup := func(t *testing.T) (string, *fixture) {
		home := t.TempDir()
		f := newFixture(t)
		saveFixture(t, openTestStore(t, home, testPass), f)
		return home, f
	}
	// Stage the new files as ChangePassphrase does, without committing.
	stageOnly := func(t *testing.T, home string) *Keystore {
		k := openTestStore(t, home, testPass)
		next := &Keystore{home: k.home, passphrase: bytes.Clone(newPass), encrypted: true, params: scryptParams{LogN: 10, R: 8, P: 1}, rand: k.rand, staging: rekeySuffix, keys: map[string][]byte{}}
		op, _ := k.LoadOperator()
		if err := next.SaveOperator(op); err != nil {
			t.Fatal(err)
		}
		if err := next.writeMarker(); err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Run("before the journal", func(t *testing.T) {
		home, f := setup(t)
		stageOnly(t, home)
		k := openTestStore(t, home, testPass) // the old passphrase still opens everything
		if _, err := k.LoadAccount(f.acc.Name); err != nil {
			t.Fatal(err)
		}
		if left, _ := filepath.Glob(filepath.Join(home, "*.rekey")); len(left) > 0 {
			t.Fatalf("staged files not tidied: %v", left)
		}
	})
	t.Run("after the journal", func(t *testing.T) {
		home, f := setup(t)
		k := openTestStore(t, home, testPass)
		if err := k.ChangePassphrase(newPass); err != nil {
			t.Fatal(err)
		}
		// Put a committed-but-unfinished state back: the journal and one staged file.
		k2 := openTestStore(t, home, newPass)
		acct, _ := k2.LoadAccount(f.acc.Name)
		k2.staging = rekeySuffix
		if err := k2.SaveAccount(acct); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, rekeyJournal), []byte(`{"format":"sealbus-keystore-rekey","files":["accounts/`+f.acc.Name+`/account.json"]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		k3 := openTestStore(t, home, newPass)
		if _, err := k3.LoadAccount(f.acc.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(home, rekeyJournal)); !os.IsNotExist(err) {
			t.Fatal("journal left after the open that finished it")
		}
	})
}

func TestLimitsValidateRefusesNonsense(t *testing.T) {
	for _, l := range []Limits{{Connections: -5}, {Subscriptions: -1}, {Streams: -2}, {MaxAckPending: -1}, {DiskStorage: -2}, {MemoryStorage: -7}} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := (Limits{DiskStorage: -1, MemoryStorage: 0}).Validate(); err != nil {
		t.Fatalf("unlimited storage refused: %v", err)
	}
	op, _ := NewOperator("o")
	if _, err := op.NewAccount("a", Limits{Connections: -5, DiskStorage: 1 << 20}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("NewAccount with -5 connections: %v", err)
	}
}
