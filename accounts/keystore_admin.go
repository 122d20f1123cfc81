package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/sealbus/sealbus/internal/atomicfile"
)

// MinPassphraseLength is the shortest passphrase a new or changed keystore
// passphrase may have ([CheckPassphrase]).
const MinPassphraseLength = 12

// CheckPassphrase refuses a passphrase for a new keystore (or a new
// passphrase for an existing one) shorter than [MinPassphraseLength] bytes,
// with [ErrWeakPassphrase]. Opening an existing store never checks length:
// stores made before the rule still open.
func CheckPassphrase(p []byte) error {
	if len(p) < MinPassphraseLength {
		return fmt.Errorf("%w: %d characters, at least %d are needed", ErrWeakPassphrase, len(p), MinPassphraseLength)
	}
	return nil
}

// OpenKeystoreReadOnly opens the existing store at home without its
// passphrase, for commands that only show public records (account and
// service lists, keys, JWTs, cards, the operator's key). Nothing is written
// and no seed is read: every Save* and [Keystore.WriteCreds] returns
// [ErrReadOnly], and loaded keys are public-only (signing with them fails
// with [ErrNoSeed]).
//
// Without the passphrase the public records are not authenticated by the
// keystore's encryption, so each is verified up the chain instead: the
// operator JWT is self-signed by the operator key stored with it, every
// account JWT loaded must be signed by that operator, and every service's
// card and user JWT by a signing key its account JWT lists. Expiry and
// revocation are not checked here (listing an expired service is
// legitimate); an edited record fails with [ErrCorrupt]. A store replaced
// wholesale by someone with write access (another operator) opens: the
// operator key [Keystore.Anchor] reports is the one to compare with the key
// servers and clients trust. A store with no marker is [ErrNotFound].
func OpenKeystoreReadOnly(home string) (*Keystore, error) {
	if home == "" {
		return nil, fmt.Errorf("%w: empty keystore home", ErrInvalidOption)
	}
	k := &Keystore{home: filepath.Clean(home), readOnly: true, keys: map[string][]byte{}}
	if err := k.finishRekey(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(k.Path(KeystoreMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no keystore at %s", ErrNotFound, k.home)
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: read keystore marker: %w", err)
	}
	var m markerFile
	if err := json.Unmarshal(b, &m); err != nil || m.Format != markerFormat {
		return nil, fmt.Errorf("%w: %s is not a sealbus keystore marker", ErrCorrupt, k.Path(KeystoreMarker))
	}
	if m.Version != fileVersion {
		return nil, fmt.Errorf("%w: unsupported keystore version %d", ErrCorrupt, m.Version)
	}
	k.encrypted = m.Encrypted
	op, err := k.LoadOperator()
	if err != nil {
		return nil, err
	}
	k.anchor = op.PublicKey()
	return k, nil
}

// ReadOnly reports whether the store was opened with [OpenKeystoreReadOnly].
func (k *Keystore) ReadOnly() bool { return k.readOnly }

// Anchor returns, for a read-only store, the operator key every loaded
// record was verified up to; "" otherwise.
func (k *Keystore) Anchor() string { return k.anchor }

// verifyAccountRecord checks, in a read-only store, that the account JWT is
// signed by the store's operator.
func (k *Keystore) verifyAccountRecord(a *Account) error {
	if a.Claims.Issuer != k.anchor {
		return fmt.Errorf("%w: account %q: its JWT is signed by %s, not by the keystore's operator %s", ErrCorrupt, a.Name, a.Claims.Issuer, k.anchor)
	}
	return nil
}

// verifyServiceRecord checks, in a read-only store, that the card and the user
// JWT are signed by a signing key of the account (whose JWT is itself verified
// by LoadAccount).
func (k *Keystore) verifyServiceRecord(account string, s *Service) error {
	acct, err := k.LoadAccount(account)
	if err != nil {
		return err
	}
	if s.Account != acct.PublicKey() {
		return fmt.Errorf("%w: service %q names another account", ErrCorrupt, s.Spec.Name)
	}
	uc, err := jwt.DecodeUserClaims(s.UserJWT)
	if err != nil || !signedByAccount(acct.Claims, uc.Issuer) {
		return fmt.Errorf("%w: service %q: user JWT not signed by a key of account %q", ErrCorrupt, s.Spec.Name, account)
	}
	c, err := DecodeCard(s.Card)
	if err != nil || !signedByAccount(acct.Claims, c.Issuer) {
		return fmt.Errorf("%w: service %q: card not signed by a key of account %q", ErrCorrupt, s.Spec.Name, account)
	}
	return nil
}

// accountNotFound turns a missing account file (err matching ErrNotFound)
// into a *NotFoundError listing the accounts that exist; other errors pass.
func (k *Keystore) accountNotFound(name string, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	all, lerr := k.ListAccounts()
	var known []string // tenants: the operator account is sealbus's own, not a suggestion
	if lerr == nil {
		for _, n := range all {
			if !ReservedAccountName(n) {
				known = append(known, n)
			}
		}
	}
	return &NotFoundError{Kind: "account", Name: name, Known: known}
}

// serviceNotFound is accountNotFound for a service (or its account).
func (k *Keystore) serviceNotFound(account, name string, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	known, lerr := k.ListServices(account)
	if lerr != nil {
		return lerr // the account itself is missing: a *NotFoundError for it
	}
	return &NotFoundError{Kind: "service", Name: name, Scope: account, Known: known}
}

// RemoveService deletes a service's entry and its creds files (current and
// previous) from the store. It does not revoke anything: revoke the user key
// in the account JWT first, or the creds keep working on servers. A missing
// service is a *NotFoundError.
func (k *Keystore) RemoveService(account, name string) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot remove a service", ErrReadOnly)
	}
	if err := checkName("account", account); err != nil {
		return err
	}
	if err := checkName("service", name); err != nil {
		return err
	}
	entry := k.Path("accounts", account, "services", name+".json")
	if _, err := os.Stat(entry); errors.Is(err, fs.ErrNotExist) {
		return k.serviceNotFound(account, name, ErrNotFound)
	}
	for _, p := range []string{name + ".creds", name + ".previous.creds", name + ".json"} {
		if err := atomicfile.Remove(k.Path("accounts", account, "services", p)); err != nil {
			return err
		}
	}
	return nil
}

// RemoveAccount deletes an account's directory (its entry, every service
// entry and creds file) from the store. The caller decides whether an
// account with services may go. A missing account is a *NotFoundError.
func (k *Keystore) RemoveAccount(name string) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot remove an account", ErrReadOnly)
	}
	if err := checkName("account", name); err != nil {
		return err
	}
	dir := k.Path("accounts", name)
	if _, err := os.Stat(filepath.Join(dir, "account.json")); errors.Is(err, fs.ErrNotExist) {
		return k.accountNotFound(name, ErrNotFound)
	}
	// The entry goes first: a crash half-way leaves no account, only files to tidy.
	if err := atomicfile.Remove(filepath.Join(dir, "account.json")); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("accounts: remove account %q: %w", name, err)
	}
	return atomicfile.Remove(dir) // fsyncs accounts/ (dir is gone already)
}

// Snapshot is the saved state of one account's files in a store (its entry,
// its services' entries and creds files), taken before a change so that a
// failed step can put everything back ([Snapshot.Restore]).
type Snapshot struct {
	k       *Keystore
	dir     string
	existed bool
	files   map[string]snapFile
}

type snapFile struct {
	data []byte
	mode fs.FileMode
}

// Snapshot records the files of account (which need not exist yet). The
// snapshot holds seeds for unencrypted stores and creds files: call Restore
// or Discard, which wipe it.
func (k *Keystore) Snapshot(account string) (*Snapshot, error) {
	if err := checkName("account", account); err != nil {
		return nil, err
	}
	s := &Snapshot{k: k, dir: k.Path("accounts", account), files: map[string]snapFile{}}
	st, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("accounts: snapshot %q: %w", account, err)
	case !st.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory", ErrCorrupt, s.dir)
	}
	s.existed = true
	err = filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s.files[p] = snapFile{data: b, mode: info.Mode().Perm()}
		return nil
	})
	if err != nil {
		s.Discard()
		return nil, fmt.Errorf("accounts: snapshot %q: %w", account, err)
	}
	return s, nil
}

// Restore puts the account's files back as they were when the snapshot was
// taken: files changed since are rewritten (atomically, with their modes),
// files created since are removed, and an account directory that did not
// exist is removed. The snapshot is wiped afterwards.
func (s *Snapshot) Restore() error {
	defer s.Discard()
	if s.k.readOnly {
		return fmt.Errorf("%w: cannot restore", ErrReadOnly)
	}
	if !s.existed {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("accounts: restore: %w", err)
		}
		return nil
	}
	var extra []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, ok := s.files[p]; !ok && d.Type().IsRegular() {
			extra = append(extra, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("accounts: restore: %w", err)
	}
	for _, p := range extra {
		if err := atomicfile.Remove(p); err != nil {
			return err
		}
	}
	for p, f := range s.files {
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, f.data) {
			wipe(cur)
			continue
		}
		if err := atomicfile.Write(p, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// Discard wipes the snapshot without restoring anything.
func (s *Snapshot) Discard() {
	for p, f := range s.files {
		wipe(f.data)
		delete(s.files, p)
	}
}

// rekeyJournal is written once every entry has been re-encrypted beside the
// current one: from then on the change is committed and is finished (by
// ChangePassphrase, or by the next open after a crash) by renaming each
// staged file over its original.
const (
	rekeyJournal = "keystore.rekey.json"
	rekeySuffix  = ".rekey"
)

type rekeyFile struct {
	Format string   `json:"format"`
	Files  []string `json:"files"` // relative to the home, marker last
}

// ChangePassphrase re-encrypts every entry of the store (operator, accounts,
// services) and the passphrase check under newPass, atomically: every entry is
// first opened with the current passphrase and written re-encrypted beside
// itself; a journal then commits the change, and each re-encrypted file
// replaces its original. A crash before the journal leaves the store under
// the old passphrase (the staged files are removed on the next open); a crash
// after it is finished by the next open. An unencrypted store becomes
// encrypted. newPass must pass [CheckPassphrase]. Creds files are not
// touched (they are not encrypted by the keystore). The Keystore uses newPass
// afterwards.
func (k *Keystore) ChangePassphrase(newPass []byte) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot change the passphrase", ErrReadOnly)
	}
	if err := CheckPassphrase(newPass); err != nil {
		return err
	}
	op, err := k.LoadOperator()
	if err != nil {
		return err
	}
	next := &Keystore{
		home: k.home, passphrase: bytes.Clone(newPass), encrypted: true, params: k.params,
		rand: k.rand, staging: rekeySuffix, keys: map[string][]byte{},
	}
	defer next.Close()
	var staged []string
	stage := func(rel ...string) { staged = append(staged, filepath.Join(rel...)) }
	if err := next.SaveOperator(op); err != nil {
		return k.abortRekey(err)
	}
	stage("operator", op.Name+".json")
	names, err := k.ListAccounts()
	if err != nil {
		return k.abortRekey(err)
	}
	for _, n := range names {
		acct, err := k.LoadAccount(n)
		if err != nil {
			return k.abortRekey(err)
		}
		if err := next.SaveAccount(acct); err != nil {
			return k.abortRekey(err)
		}
		stage("accounts", n, "account.json")
		svcs, err := k.ListServices(n)
		if err != nil {
			return k.abortRekey(err)
		}
		for _, sn := range svcs {
			svc, err := k.LoadService(n, sn)
			if err != nil {
				return k.abortRekey(err)
			}
			if err := next.SaveService(n, svc); err != nil {
				return k.abortRekey(err)
			}
			stage("accounts", n, "services", sn+".json")
		}
	}
	if err := next.writeMarker(); err != nil {
		return k.abortRekey(err)
	}
	stage(KeystoreMarker)
	j, err := json.Marshal(rekeyFile{Format: "sealbus-keystore-rekey", Files: staged})
	if err != nil {
		return k.abortRekey(fmt.Errorf("accounts: encode rekey journal: %w", err))
	}
	if err := atomicfile.Write(k.Path(rekeyJournal), j, FileMode); err != nil {
		return k.abortRekey(err)
	}
	if err := k.finishRekey(); err != nil {
		return err
	}
	k.mu.Lock()
	wipe(k.passphrase)
	k.passphrase = bytes.Clone(newPass)
	k.encrypted = true
	for id, key := range k.keys {
		wipe(key)
		delete(k.keys, id)
	}
	k.mu.Unlock()
	return nil
}

// abortRekey removes every staged file and returns err.
func (k *Keystore) abortRekey(err error) error {
	if cerr := k.removeStaged(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// finishRekey completes a committed passphrase change (journal present) or
// removes the leftovers of an aborted one (staged files, no journal).
func (k *Keystore) finishRekey() error {
	b, err := os.ReadFile(k.Path(rekeyJournal))
	if errors.Is(err, fs.ErrNotExist) {
		if k.readOnly {
			return nil
		}
		return k.removeStaged()
	}
	if err != nil {
		return fmt.Errorf("accounts: read %s: %w", rekeyJournal, err)
	}
	var j rekeyFile
	if err := json.Unmarshal(b, &j); err != nil || j.Format != "sealbus-keystore-rekey" {
		return fmt.Errorf("%w: %s", ErrCorrupt, rekeyJournal)
	}
	for _, rel := range j.Files {
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("%w: %s names %q", ErrCorrupt, rekeyJournal, rel)
		}
		p := k.Path(rel)
		if _, err := os.Stat(p + rekeySuffix); errors.Is(err, fs.ErrNotExist) {
			continue // renamed before a crash
		}
		if err := atomicfile.Rename(p+rekeySuffix, p); err != nil {
			return err
		}
	}
	return atomicfile.Remove(k.Path(rekeyJournal))
}

// removeStaged deletes every "*.rekey" file of the store.
func (k *Keystore) removeStaged() error {
	var found []string
	for _, dir := range []string{k.home, k.Path("operator"), k.Path("accounts")} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() && p != dir && dir == k.home {
				return filepath.SkipDir // only the marker's directory level here
			}
			if d.Type().IsRegular() && strings.HasSuffix(p, rekeySuffix) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("accounts: tidy staged files: %w", err)
		}
	}
	slices.Sort(found)
	found = slices.Compact(found)
	for _, p := range found {
		if err := atomicfile.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// ServiceSpec returns a stored service's spec from its public record, without opening its
// seeds (no key derivation): for checks that only need what a service declares. The record
// is checked as LoadService checks it (its spec matches its user JWT and card).
func (k *Keystore) ServiceSpec(account, name string) (ServiceSpec, error) {
	if err := checkName("account", account); err != nil {
		return ServiceSpec{}, err
	}
	if err := checkName("service", name); err != nil {
		return ServiceSpec{}, err
	}
	var f serviceFile
	if err := readJSON(k.Path("accounts", account, "services", name+".json"), &f); err != nil {
		return ServiceSpec{}, k.serviceNotFound(account, name, err)
	}
	f.entryHeader.wipe()
	if f.Service.Spec.Name != name {
		return ServiceSpec{}, fmt.Errorf("%w: service file %q names %q", ErrCorrupt, name, f.Service.Spec.Name)
	}
	if err := f.Service.check(false); err != nil {
		return ServiceSpec{}, err
	}
	return f.Service.Spec, nil
}
