package accounts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/internal/atomicfile"
)

// Keystore file names and permissions.
const (
	// KeystoreMarker is the file at the root of a keystore recording whether
	// it is encrypted (and, if so, a passphrase check).
	KeystoreMarker = "keystore.json"
	// DirMode is the permission of every keystore directory.
	DirMode fs.FileMode = 0o700
	// FileMode is the permission of every keystore file.
	FileMode fs.FileMode = 0o600

	entryFormat  = "sealbus-keystore-entry"
	markerFormat = "sealbus-keystore"
	// fileVersion is the version of the marker and entry files. Version 2
	// binds each entry's public record into its sealed secrets (see
	// sealFormat); version 1 stores are refused (ErrCorrupt).
	fileVersion = 2
	checkText   = "sealbus keystore passphrase check"
)

// HomeDir returns the keystore location: $SEALBUS_HOME if set, else
// $XDG_DATA_HOME/sealbus, else ~/.local/share/sealbus. It returns "" when
// none can be determined (no home directory).
func HomeDir() string {
	if h := os.Getenv("SEALBUS_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "sealbus")
	}
	if u, err := os.UserHomeDir(); err == nil && u != "" {
		return filepath.Join(u, ".local", "share", "sealbus")
	}
	return ""
}

// Keystore stores operator, account and service keys on disk (layout in the
// package documentation). Private keys are encrypted with the passphrase
// unless the store was created with [WithUnencrypted]. A Keystore is safe
// for concurrent use; writes are atomic (temporary file, fsync, rename,
// directory fsync), so a crash leaves either the old or the new file.
type Keystore struct {
	home       string
	passphrase []byte
	encrypted  bool
	params     scryptParams
	rand       io.Reader

	// readOnly: opened with OpenKeystoreReadOnly; anchor is the operator key
	// every public record is verified up to in that mode.
	readOnly bool
	anchor   string
	// staging is appended to the path of every file written (ChangePassphrase
	// writes the re-encrypted store beside the current one first).
	staging string

	mu   sync.Mutex
	keys map[string][]byte
}

type keystoreConfig struct {
	unencrypted bool
	params      scryptParams
	rand        io.Reader
}

// KeystoreOption configures [OpenKeystore].
type KeystoreOption func(*keystoreConfig) error

// WithUnencrypted opens (or creates) a store whose private keys are written
// in the clear, for local development only. The store records the mode
// ("encrypted": false); printing a warning is the caller's job.
func WithUnencrypted() KeystoreOption {
	return func(c *keystoreConfig) error {
		c.unencrypted = true
		return nil
	}
}

// WithScrypt sets the scrypt cost for files written by this Keystore
// (N = 2^logN). The default is logN 15, r 8, p 1 (32 MiB); tests may lower
// logN to 10. Allowed: logN 10..22, r 1..32, p 1..4, and at most 256 MiB of
// scrypt memory (128·r·N bytes), the same bounds a file read from disk must
// respect. Files record their own parameters, so a store may mix costs.
func WithScrypt(logN, r, p int) KeystoreOption {
	return func(c *keystoreConfig) error {
		sp := scryptParams{LogN: logN, R: r, P: p}
		if err := sp.check(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidOption, err)
		}
		c.params = sp
		return nil
	}
}

// WithKeystoreRand sets the randomness for salts and nonces (default crypto/rand).
func WithKeystoreRand(r io.Reader) KeystoreOption {
	return func(c *keystoreConfig) error {
		if r == nil {
			return fmt.Errorf("%w: nil random source", ErrInvalidOption)
		}
		c.rand = r
		return nil
	}
}

type markerFile struct {
	Format    string     `json:"format"`
	Version   int        `json:"version"`
	Encrypted bool       `json:"encrypted"`
	Check     *sealedBox `json:"check,omitempty"`
}

// OpenKeystore opens the store at home, creating it (directories 0700,
// marker file 0600) if it does not exist. A home that already holds
// operator/ or accounts/ entries but no marker is refused with ErrCorrupt
// rather than given a new marker (whose passphrase check would be whatever
// passphrase was typed). A passphrase is required unless
// [WithUnencrypted] is given, and must be empty with it. Opening an existing
// store checks the mode and the passphrase before anything is written:
// a wrong passphrase, a passphrase for an unencrypted store or none for an
// encrypted store returns ErrWrongPassphrase and leaves every file untouched.
// The Keystore keeps a copy of the passphrase; [Keystore.Close] wipes it.
func OpenKeystore(home string, passphrase []byte, opts ...KeystoreOption) (*Keystore, error) {
	if home == "" {
		return nil, fmt.Errorf("%w: empty keystore home", ErrInvalidOption)
	}
	cfg := keystoreConfig{
		params: scryptParams{LogN: defaultLogN, R: defaultScryptR, P: defaultScryptP},
		rand:   rand.Reader,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.unencrypted && len(passphrase) > 0 {
		return nil, fmt.Errorf("%w: a passphrase was given for an unencrypted keystore", ErrInvalidOption)
	}
	if !cfg.unencrypted && len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: a passphrase is required (WithUnencrypted is for development only)", ErrInvalidOption)
	}
	k := &Keystore{
		home:       filepath.Clean(home),
		passphrase: bytes.Clone(passphrase),
		encrypted:  !cfg.unencrypted,
		params:     cfg.params,
		rand:       cfg.rand,
		keys:       map[string][]byte{},
	}
	if err := k.finishRekey(); err != nil {
		k.Close()
		return nil, err
	}
	b, err := os.ReadFile(k.Path(KeystoreMarker))
	switch {
	case err == nil:
		if err := k.checkMarker(b); err != nil {
			k.Close()
			return nil, err
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		if err := k.checkNoEntries(); err != nil {
			k.Close()
			return nil, err
		}
		if err := k.create(); err != nil {
			k.Close()
			return nil, err
		}
		return k, nil
	default:
		k.Close()
		return nil, fmt.Errorf("accounts: read keystore marker: %w", err)
	}
}

func (k *Keystore) checkMarker(b []byte) error {
	var m markerFile
	if err := json.Unmarshal(b, &m); err != nil || m.Format != markerFormat {
		return fmt.Errorf("%w: %s is not a sealbus keystore marker", ErrCorrupt, k.Path(KeystoreMarker))
	}
	if m.Version != fileVersion {
		return fmt.Errorf("%w: unsupported keystore version %d", ErrCorrupt, m.Version)
	}
	switch {
	case m.Encrypted && !k.encrypted:
		return fmt.Errorf("%w: keystore at %s is encrypted; a passphrase is required", ErrWrongPassphrase, k.home)
	case !m.Encrypted && k.encrypted:
		return fmt.Errorf("%w: keystore at %s is not encrypted; open it without a passphrase", ErrWrongPassphrase, k.home)
	case !m.Encrypted:
		return nil
	}
	pt, err := k.open(m.Check, "keystore", "check", nil)
	if err != nil {
		if errors.Is(err, ErrWrongPassphrase) {
			return fmt.Errorf("%w: keystore at %s", ErrWrongPassphrase, k.home)
		}
		return err
	}
	if !constantTimeEqual(string(pt), checkText) {
		return fmt.Errorf("%w: keystore passphrase check has unexpected contents", ErrCorrupt)
	}
	return nil
}

// checkNoEntries refuses a home without a marker that holds entries.
func (k *Keystore) checkNoEntries() error {
	for _, dir := range []string{"operator", "accounts"} {
		ents, err := k.entries(dir)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return fmt.Errorf("%w: %s holds keystore entries (%s/) but no %s; restore the marker from a backup, a new one is not created over existing keys",
				ErrCorrupt, k.home, dir, KeystoreMarker)
		}
	}
	return nil
}

func (k *Keystore) create() error {
	if err := atomicfile.MkdirPrivate(k.home); err != nil {
		return err
	}
	return k.writeMarker()
}

// writeMarker writes the marker (with a fresh passphrase check when
// encrypted) at its place plus k.staging.
func (k *Keystore) writeMarker() error {
	m := markerFile{Format: markerFormat, Version: fileVersion, Encrypted: k.encrypted}
	if k.encrypted {
		box, err := k.seal([]byte(checkText), "keystore", "check", nil)
		if err != nil {
			return err
		}
		m.Check = box
	}
	b, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return fmt.Errorf("accounts: encode keystore marker: %w", err)
	}
	return atomicfile.Write(k.Path(KeystoreMarker)+k.staging, append(b, '\n'), FileMode)
}

// Close wipes the passphrase and derived keys held in memory. The Keystore
// must not be used afterwards.
func (k *Keystore) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	wipe(k.passphrase)
	for id, key := range k.keys {
		wipe(key)
		delete(k.keys, id)
	}
}

// Home returns the keystore's root directory.
func (k *Keystore) Home() string { return k.home }

// Encrypted reports whether private keys are encrypted at rest.
func (k *Keystore) Encrypted() bool { return k.encrypted }

// Path joins parts under the keystore home. Other packages (the CLI) may keep
// their own files under the home; they should use [DirMode] and [FileMode].
func (k *Keystore) Path(parts ...string) string {
	return filepath.Join(append([]string{k.home}, parts...)...)
}

// entryHeader is common to every entry file.
type entryHeader struct {
	Format    string                     `json:"format"`
	Version   int                        `json:"version"`
	Kind      string                     `json:"kind"`
	Name      string                     `json:"name"`
	Encrypted bool                       `json:"encrypted"`
	Sealed    *sealedBox                 `json:"sealed,omitempty"`
	Secrets   map[string]json.RawMessage `json:"secrets,omitempty"` // public key -> seed (a JSON string); unencrypted stores only
}

type accountRecord struct {
	Name        string   `json:"name"`
	PublicKey   string   `json:"public_key"`
	SigningKeys []string `json:"signing_keys"`
	JWT         string   `json:"jwt"`
}

type previousRecord struct {
	CurveKey string    `json:"curve_key"`
	Until    time.Time `json:"until"`
}

type serviceRecord struct {
	Spec           ServiceSpec      `json:"spec"`
	Account        string           `json:"account"`
	UserPublicKey  string           `json:"user_public_key"`
	CurvePublicKey string           `json:"curve_public_key,omitempty"`
	UserJWT        string           `json:"user_jwt"`
	Card           string           `json:"card,omitempty"`
	Previous       []previousRecord `json:"previous_curve_keys,omitempty"`
}

type operatorFile struct {
	entryHeader
	operatorRecord
}

type operatorRecord struct {
	PublicKey string        `json:"public_key"`
	JWT       string        `json:"jwt"`
	System    accountRecord `json:"system"`
	SysUser   serviceRecord `json:"sys_user"`
}

type accountFile struct {
	entryHeader
	Account accountRecord `json:"account"`
}

type serviceFile struct {
	entryHeader
	Service serviceRecord `json:"service"`
}

// secrets collects seeds keyed by public key. Seeds are byte slices owned by
// the map, so [secrets.wipe] can zero them; nkeys copies a seed it is given.
type secrets map[string][]byte

func (s secrets) add(kp nkeys.KeyPair) {
	if kp == nil {
		return
	}
	seed, err := kp.Seed()
	if err != nil || len(seed) == 0 {
		return // public-only key: nothing to store
	}
	// kp.Seed may return the key pair's own slice: keep a copy, wipe only that.
	s[publicKey(kp)] = bytes.Clone(seed)
}

// encode writes the secrets as a JSON object {"<public key>":"<seed>",...},
// keys sorted, without going through encoding/json's pooled buffers. Keys
// and seeds are base32 ([A-Z2-7]), so no escaping is needed; anything else
// is refused. The caller wipes the result.
func (s secrets) encode() ([]byte, error) {
	keys := make([]string, 0, len(s))
	size := 2
	for pub, seed := range s {
		if !base32Text([]byte(pub)) || !base32Text(seed) {
			return nil, fmt.Errorf("%w: a key or seed is not nkeys text", ErrInvalidOption)
		}
		keys = append(keys, pub)
		size += len(pub) + len(seed) + 6
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, pub := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, pub...)
		b = append(b, '"', ':', '"')
		b = append(b, s[pub]...)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// decodeSecrets reads what encode wrote (or the "secrets" object of an
// unencrypted entry): every value must be a JSON string of nkeys text.
func decodeSecrets(raw map[string]json.RawMessage) (secrets, error) {
	sec := secrets{}
	for pub, v := range raw {
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || !base32Text(v[1:len(v)-1]) {
			sec.wipe()
			return nil, errors.New("a stored seed is not nkeys text")
		}
		sec[pub] = bytes.Clone(v[1 : len(v)-1])
	}
	return sec, nil
}

// base32Text reports whether b is non-empty nkeys text (RFC 4648 base32
// alphabet, no padding).
func base32Text(b []byte) bool {
	for _, c := range b {
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return len(b) > 0
}

// keyPair returns the key for pub: from its seed if stored (checking that
// the seed matches pub), else public-only. A returned seed is removed from s,
// so that seeds left over at the end reveal a file whose public part was
// edited (see unused).
func (s secrets) keyPair(pub string) (nkeys.KeyPair, error) {
	if seed, ok := s[pub]; ok {
		delete(s, pub)
		kp, err := nkeys.FromSeed(seed) // copies the seed
		wipe(seed)
		if err != nil {
			return nil, fmt.Errorf("%w: stored seed for %s is invalid", ErrCorrupt, pub)
		}
		if publicKey(kp) != pub {
			return nil, fmt.Errorf("%w: stored seed does not belong to %s", ErrKeyMismatch, pub)
		}
		return kp, nil
	}
	if nkeys.IsValidPublicCurveKey(pub) {
		// nkeys.FromPublicKey does not accept curve keys; keep the public key only.
		return curvePublic(pub), nil
	}
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid public key %q", ErrCorrupt, pub)
	}
	return kp, nil
}

// unused fails if seeds were stored that no public key of the entry claims.
func (s secrets) unused(kind, name string) error {
	if len(s) > 0 {
		return fmt.Errorf("%w: %s %q holds seeds for keys it does not list", ErrKeyMismatch, kind, name)
	}
	return nil
}

func (s secrets) wipe() {
	for k, seed := range s {
		wipe(seed)
		delete(s, k)
	}
}

// wipe zeroes the clear-text seeds of an unencrypted entry once it is written.
func (h *entryHeader) wipe() {
	for _, v := range h.Secrets {
		wipe(v)
	}
}

// header builds an entry's header: the seeds in the clear for an unencrypted
// store, else sealed with the entry's public record bound into the
// associated data (see publicDigest).
func (k *Keystore) header(kind, name string, sec secrets, public any) (entryHeader, error) {
	h := entryHeader{Format: entryFormat, Version: fileVersion, Kind: kind, Name: name, Encrypted: k.encrypted}
	pt, err := sec.encode()
	if err != nil {
		return h, err
	}
	defer wipe(pt)
	if !k.encrypted {
		raw := map[string]json.RawMessage{}
		if err := json.Unmarshal(pt, &raw); err != nil {
			return h, fmt.Errorf("accounts: encode secrets: %w", err)
		}
		h.Secrets = raw
		return h, nil
	}
	digest, err := publicDigest(kind, name, public)
	if err != nil {
		return h, err
	}
	box, err := k.seal(pt, kind, name, digest)
	if err != nil {
		return h, err
	}
	h.Sealed = box
	return h, nil
}

// secretsOf checks an entry's header and returns its seeds. In an encrypted
// store the seeds open only if the entry's public record is the one they
// were sealed with; any edit of it is ErrWrongPassphrase (indistinguishable
// from a wrong passphrase or a modified ciphertext).
func (k *Keystore) secretsOf(h entryHeader, kind, name string, public any) (secrets, error) {
	if h.Format != entryFormat || h.Version != fileVersion || h.Kind != kind || h.Name != name {
		return nil, fmt.Errorf("%w: %s %q: unexpected header (format %q version %d)", ErrCorrupt, kind, name, h.Format, h.Version)
	}
	if h.Encrypted != k.encrypted {
		return nil, fmt.Errorf("%w: %s %q is stored encrypted=%v, the keystore is encrypted=%v", ErrWrongPassphrase, kind, name, h.Encrypted, k.encrypted)
	}
	if k.readOnly {
		// Public records only: no seed is opened (or, unencrypted, kept).
		h.wipe()
		return secrets{}, nil
	}
	if !k.encrypted {
		if h.Sealed != nil {
			return nil, fmt.Errorf("%w: %s %q", ErrCorrupt, kind, name)
		}
		sec, err := decodeSecrets(h.Secrets)
		h.wipe()
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", ErrCorrupt, kind, name, err)
		}
		return sec, nil
	}
	if len(h.Secrets) > 0 {
		return nil, fmt.Errorf("%w: %s %q has clear-text secrets in an encrypted keystore", ErrCorrupt, kind, name)
	}
	digest, err := publicDigest(kind, name, public)
	if err != nil {
		return nil, err
	}
	pt, err := k.open(h.Sealed, kind, name, digest)
	if err != nil {
		return nil, err
	}
	defer wipe(pt)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(pt, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s %q: secrets", ErrCorrupt, kind, name)
	}
	sec, err := decodeSecrets(raw)
	for _, v := range raw {
		wipe(v)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %v", ErrCorrupt, kind, name, err)
	}
	return sec, nil
}

// publicDigest is the SHA-256 of an entry's public record (the JSON of the
// record as stored: spec, JWTs, card, public keys, previous keys), bound into
// the associated data of its sealed secrets. The record is re-encoded from
// the decoded file, so whitespace and field order in the file do not
// matter; every value does.
func publicDigest(kind, name string, public any) ([]byte, error) {
	j, err := json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("accounts: encode %s %q: %w", kind, name, err)
	}
	h := sha256.New()
	h.Write([]byte(sealFormat + " public record\x00" + kind + "\x00" + name + "\x00"))
	h.Write(j)
	return h.Sum(nil), nil
}

func accountRecordOf(a *Account, sec secrets) accountRecord {
	r := accountRecord{Name: a.Name, PublicKey: a.PublicKey(), JWT: a.JWT}
	sec.add(a.Key)
	for _, sk := range a.SigningKeys {
		r.SigningKeys = append(r.SigningKeys, publicKey(sk))
		sec.add(sk)
	}
	return r
}

func (r accountRecord) account(sec secrets) (*Account, error) {
	key, err := sec.keyPair(r.PublicKey)
	if err != nil {
		return nil, err
	}
	claims, err := jwt.DecodeAccountClaims(r.JWT)
	if err != nil {
		return nil, fmt.Errorf("%w: account %q jwt: %v", ErrCorrupt, r.Name, err)
	}
	if claims.Subject != r.PublicKey {
		return nil, fmt.Errorf("%w: account %q jwt subject differs from its key", ErrKeyMismatch, r.Name)
	}
	a := &Account{Name: r.Name, Key: key, Claims: claims, JWT: r.JWT}
	for _, pub := range r.SigningKeys {
		sk, err := sec.keyPair(pub)
		if err != nil {
			return nil, err
		}
		a.SigningKeys = append(a.SigningKeys, sk)
	}
	return a, nil
}

func serviceRecordOf(s *Service, sec secrets) serviceRecord {
	r := serviceRecord{
		Spec:           s.Spec,
		Account:        s.Account,
		UserPublicKey:  s.UserPublicKey(),
		CurvePublicKey: s.CurvePublicKey(),
		UserJWT:        s.UserJWT,
		Card:           s.Card,
	}
	sec.add(s.UserKey)
	sec.add(s.CurveKey)
	for _, p := range s.PreviousCurveKeys {
		r.Previous = append(r.Previous, previousRecord{CurveKey: publicKey(p.Key), Until: p.Until.UTC()})
		sec.add(p.Key)
	}
	return r
}

// check verifies a service record's public part. For a service (not the
// operator's system user) the record must be what [Account.NewService]
// issued: a valid spec, a card, a user JWT whose permissions and limits are
// exactly those computed from the spec, and a card listing the spec's
// subjects. A stored spec edited by someone without the signing key (who
// cannot re-sign the JWT and card) is ErrCorrupt, so a later rotation never
// signs a widened spec. It runs before the seeds are opened.
func (r serviceRecord) check(system bool) error {
	uc, err := jwt.DecodeUserClaims(r.UserJWT)
	if err != nil {
		return fmt.Errorf("%w: service %q user jwt: %v", ErrCorrupt, r.Spec.Name, err)
	}
	if uc.Subject != r.UserPublicKey {
		return fmt.Errorf("%w: service %q user jwt names another user key", ErrKeyMismatch, r.Spec.Name)
	}
	if uc.IssuerAccount != r.Account || uc.Name != r.Spec.Name {
		return fmt.Errorf("%w: service %q user jwt names another account or service", ErrKeyMismatch, r.Spec.Name)
	}
	if !system && r.Card == "" {
		return fmt.Errorf("%w: service %q has no card", ErrCorrupt, r.Spec.Name)
	}
	if r.Card != "" {
		c, err := DecodeCard(r.Card)
		if err != nil {
			return fmt.Errorf("%w: service %q card: %v", ErrCorrupt, r.Spec.Name, err)
		}
		if c.UserKey != r.UserPublicKey || c.CurveKey != r.CurvePublicKey || c.Account != r.Account || c.Name != r.Spec.Name {
			return fmt.Errorf("%w: service %q card names other keys", ErrKeyMismatch, r.Spec.Name)
		}
		if len(missingFrom(c.Publish, r.Spec.Publish))+len(missingFrom(r.Spec.Publish, c.Publish))+
			len(missingFrom(c.Subscribe, r.Spec.Subscribe))+len(missingFrom(r.Spec.Subscribe, c.Subscribe)) > 0 {
			return fmt.Errorf("%w: service %q: the stored spec's subjects differ from its card's", ErrCorrupt, r.Spec.Name)
		}
	}
	if !system {
		if err := r.Spec.Validate(); err != nil {
			return fmt.Errorf("%w: service %q spec: %v", ErrCorrupt, r.Spec.Name, err)
		}
		if d := serviceUserDiff(uc, r.Spec, r.UserPublicKey); len(d) > 0 {
			return fmt.Errorf("%w: service %q: the stored spec does not match its user jwt: %s", ErrCorrupt, r.Spec.Name, strings.Join(d, "; "))
		}
	}
	return nil
}

// service rebuilds a service from a record that passed check.
func (r serviceRecord) service(sec secrets) (*Service, error) {
	s := &Service{Spec: r.Spec, Account: r.Account, UserJWT: r.UserJWT, Card: r.Card}
	var err error
	if s.UserKey, err = sec.keyPair(r.UserPublicKey); err != nil {
		return nil, err
	}
	if r.CurvePublicKey != "" {
		if s.CurveKey, err = sec.keyPair(r.CurvePublicKey); err != nil {
			return nil, err
		}
	}
	for _, p := range r.Previous {
		kp, err := sec.keyPair(p.CurveKey)
		if err != nil {
			return nil, err
		}
		s.PreviousCurveKeys = append(s.PreviousCurveKeys, PreviousCurveKey{Key: kp, Until: p.Until})
	}
	return s, nil
}

// SaveOperator writes the operator, its system account and system user to
// operator/<name>.json. A store holds one operator: saving a different
// operator (another key or name) returns ErrExists.
func (k *Keystore) SaveOperator(o *Operator) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot save the operator", ErrReadOnly)
	}
	if o == nil || o.System == nil || o.SysUser == nil {
		return fmt.Errorf("%w: incomplete operator", ErrInvalidOption)
	}
	if err := checkName("operator", o.Name); err != nil {
		return err
	}
	existing, err := k.jsonNames("operator")
	if err != nil {
		return err
	}
	for _, name := range existing {
		if name != o.Name {
			return fmt.Errorf("%w: keystore already holds operator %q", ErrExists, name)
		}
		var f operatorFile
		if err := readJSON(k.Path("operator", name+".json"), &f); err != nil {
			return err
		}
		if f.PublicKey != o.PublicKey() {
			return fmt.Errorf("%w: keystore holds operator %q with another key", ErrExists, name)
		}
	}
	sec := secrets{}
	defer sec.wipe()
	sec.add(o.Key)
	f := operatorFile{operatorRecord: operatorRecord{
		PublicKey: o.PublicKey(),
		JWT:       o.JWT,
		System:    accountRecordOf(o.System, sec),
		SysUser:   serviceRecordOf(o.SysUser, sec),
	}}
	defer f.entryHeader.wipe()
	if f.entryHeader, err = k.header("operator", o.Name, sec, &f.operatorRecord); err != nil {
		return err
	}
	return writeJSON(k.Path("operator", o.Name+".json")+k.staging, &f)
}

// LoadOperator reads the store's operator. ErrNotFound if there is none.
func (k *Keystore) LoadOperator() (*Operator, error) {
	names, err := k.jsonNames("operator")
	if err != nil {
		return nil, err
	}
	switch len(names) {
	case 0:
		return nil, fmt.Errorf("%w: no operator in keystore %s", ErrNotFound, k.home)
	case 1:
	default:
		return nil, fmt.Errorf("%w: keystore %s holds several operators %v", ErrCorrupt, k.home, names)
	}
	name := names[0]
	var f operatorFile
	if err := readJSON(k.Path("operator", name+".json"), &f); err != nil {
		return nil, err
	}
	if err := f.SysUser.check(true); err != nil {
		return nil, err
	}
	sec, err := k.secretsOf(f.entryHeader, "operator", name, &f.operatorRecord)
	if err != nil {
		return nil, err
	}
	defer sec.wipe()
	key, err := sec.keyPair(f.PublicKey)
	if err != nil {
		return nil, err
	}
	oc, err := jwt.DecodeOperatorClaims(f.JWT)
	if err != nil || oc.Subject != f.PublicKey {
		return nil, fmt.Errorf("%w: operator %q jwt", ErrCorrupt, name)
	}
	sys, err := f.System.account(sec)
	if err != nil {
		return nil, err
	}
	user, err := f.SysUser.service(sec)
	if err != nil {
		return nil, err
	}
	if err := sec.unused("operator", name); err != nil {
		return nil, err
	}
	if oc.SystemAccount != sys.PublicKey() || user.Account != sys.PublicKey() {
		return nil, fmt.Errorf("%w: operator %q system account does not match its jwt", ErrKeyMismatch, name)
	}
	return &Operator{Name: name, Key: key, JWT: f.JWT, System: sys, SysUser: user}, nil
}

// entries lists the keystore directory at elem; a directory that does not exist has none.
func (k *Keystore) entries(elem ...string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(k.Path(elem...))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: read keystore: %w", err)
	}
	return ents, nil
}

// jsonNames returns the valid entry names of the regular NAME.json files in the keystore
// directory at elem, in directory order.
func (k *Keystore) jsonNames(elem ...string) ([]string, error) {
	ents, err := k.entries(elem...)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() && ValidName(n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// SaveAccount writes accounts/<name>/account.json: the account JWT (save
// after [Operator.Reissue]; edits to Claims that were not reissued are not
// stored) and the identity and signing seeds held. Overwriting an account of
// the same name with another identity key returns ErrExists.
func (k *Keystore) SaveAccount(a *Account) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot save account %q", ErrReadOnly, a.Name)
	}
	if a == nil || a.Key == nil {
		return fmt.Errorf("%w: nil account", ErrInvalidOption)
	}
	if err := checkName("account", a.Name); err != nil {
		return err
	}
	path := k.Path("accounts", a.Name, "account.json")
	var old accountFile
	switch err := readJSON(path, &old); {
	case err == nil:
		if old.Account.PublicKey != a.PublicKey() {
			return fmt.Errorf("%w: account %q exists with another key", ErrExists, a.Name)
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	sec := secrets{}
	defer sec.wipe()
	f := accountFile{Account: accountRecordOf(a, sec)}
	defer f.entryHeader.wipe()
	var err error
	if f.entryHeader, err = k.header("account", a.Name, sec, &f.Account); err != nil {
		return err
	}
	return writeJSON(path+k.staging, &f)
}

// LoadAccount reads an account. Keys whose seeds are not stored (kept
// offline) are returned public-only. ErrNotFound if it does not exist.
func (k *Keystore) LoadAccount(name string) (*Account, error) {
	if err := checkName("account", name); err != nil {
		return nil, err
	}
	var f accountFile
	if err := readJSON(k.Path("accounts", name, "account.json"), &f); err != nil {
		return nil, k.accountNotFound(name, err)
	}
	sec, err := k.secretsOf(f.entryHeader, "account", name, &f.Account)
	if err != nil {
		return nil, err
	}
	defer sec.wipe()
	if f.Account.Name != name {
		return nil, fmt.Errorf("%w: account file %q names %q", ErrCorrupt, name, f.Account.Name)
	}
	a, err := f.Account.account(sec)
	if err != nil {
		return nil, err
	}
	if err := sec.unused("account", name); err != nil {
		return nil, err
	}
	if k.readOnly {
		if err := k.verifyAccountRecord(a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// ListAccounts returns the names of stored accounts, sorted.
func (k *Keystore) ListAccounts() ([]string, error) {
	ents, err := k.entries("accounts")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || !ValidName(e.Name()) {
			continue
		}
		if _, err := os.Stat(k.Path("accounts", e.Name(), "account.json")); err == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// SaveService writes accounts/<account>/services/<name>.json: spec, user JWT,
// card and the user, curve and previous curve seeds. The account must be
// stored and must be the service's account (ErrNotFound, ErrWrongAccount).
// An existing service of that name is replaced (rotation).
func (k *Keystore) SaveService(account string, s *Service) error {
	if k.readOnly {
		return fmt.Errorf("%w: cannot save a service", ErrReadOnly)
	}
	if s == nil {
		return fmt.Errorf("%w: nil service", ErrInvalidOption)
	}
	if err := checkName("account", account); err != nil {
		return err
	}
	if err := checkName("service", s.Spec.Name); err != nil {
		return err
	}
	var af accountFile
	if err := readJSON(k.Path("accounts", account, "account.json"), &af); err != nil {
		return k.accountNotFound(account, err)
	}
	if af.Account.PublicKey != s.Account {
		return fmt.Errorf("%w: service %q belongs to %s, not account %q", ErrWrongAccount, s.Spec.Name, s.Account, account)
	}
	sec := secrets{}
	defer sec.wipe()
	f := serviceFile{Service: serviceRecordOf(s, sec)}
	defer f.entryHeader.wipe()
	var err error
	if f.entryHeader, err = k.header("service", account+"/"+s.Spec.Name, sec, &f.Service); err != nil {
		return err
	}
	return writeJSON(k.Path("accounts", account, "services", s.Spec.Name+".json")+k.staging, &f)
}

// LoadService reads a service. ErrNotFound if it does not exist.
func (k *Keystore) LoadService(account, name string) (*Service, error) {
	if err := checkName("account", account); err != nil {
		return nil, err
	}
	if err := checkName("service", name); err != nil {
		return nil, err
	}
	var f serviceFile
	if err := readJSON(k.Path("accounts", account, "services", name+".json"), &f); err != nil {
		return nil, k.serviceNotFound(account, name, err)
	}
	if f.Service.Spec.Name != name {
		return nil, fmt.Errorf("%w: service file %q names %q", ErrCorrupt, name, f.Service.Spec.Name)
	}
	if err := f.Service.check(false); err != nil {
		return nil, err
	}
	sec, err := k.secretsOf(f.entryHeader, "service", account+"/"+name, &f.Service)
	if err != nil {
		return nil, err
	}
	defer sec.wipe()
	svc, err := f.Service.service(sec)
	if err != nil {
		return nil, err
	}
	if err := sec.unused("service", account+"/"+name); err != nil {
		return nil, err
	}
	if k.readOnly {
		if err := k.verifyServiceRecord(account, svc); err != nil {
			return nil, err
		}
	}
	return svc, nil
}

// ListServices returns the names of an account's stored services, sorted.
func (k *Keystore) ListServices(account string) ([]string, error) {
	if err := checkName("account", account); err != nil {
		return nil, err
	}
	if _, err := os.Stat(k.Path("accounts", account, "account.json")); err != nil {
		return nil, k.accountNotFound(account, fmt.Errorf("%w", ErrNotFound))
	}
	names, err := k.jsonNames("accounts", account, "services")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// WriteCreds writes the service's .creds file to
// accounts/<account>/services/<name>.creds (mode 0600, atomically) and
// returns its path.
func (k *Keystore) WriteCreds(account, name string) (string, error) {
	if k.readOnly {
		return "", fmt.Errorf("%w: creds hold seeds", ErrReadOnly)
	}
	s, err := k.LoadService(account, name)
	if err != nil {
		return "", err
	}
	creds, err := s.Creds()
	if err != nil {
		return "", err
	}
	defer wipe(creds)
	path := k.Path("accounts", account, "services", name+".creds")
	if err := atomicfile.Write(path, creds, FileMode); err != nil {
		return "", err
	}
	return path, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, filepath.Base(path))
	}
	if err != nil {
		return fmt.Errorf("accounts: read %s: %w", path, err)
	}
	defer wipe(b) // unencrypted entries hold seeds in the clear
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("accounts: encode %s: %w", filepath.Base(path), err)
	}
	b = append(b, '\n')
	defer wipe(b)
	return atomicfile.Write(path, b, FileMode)
}
