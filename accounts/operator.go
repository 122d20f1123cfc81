package accounts

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// SystemAccountName is the name of the operator's system account.
const SystemAccountName = "SYS"

// SystemUserName is the name of the system account's user.
const SystemUserName = "sys"

// nameRE is the rule for operator, account and service names: they become
// file names in the keystore, KV keys in the directory and durable-name-like
// tokens, so they are kept to a conservative alphabet.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidName reports whether s may name an operator, account or service:
// 1 to 64 characters of [A-Za-z0-9_-], starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func checkName(kind, s string) error {
	if !ValidName(s) {
		return fmt.Errorf("%w: %s name %q must be 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit", ErrInvalidOption, kind, s)
	}
	return nil
}

// Operator is the root of trust: its key signs account JWTs. It owns the
// system account (SYS), whose user is used for $SYS requests such as pushing
// account JWTs to a server's resolver.
type Operator struct {
	Name    string
	Key     nkeys.KeyPair // identity key ("O..."); the seed may be absent when loaded public-only
	JWT     string        // self-signed operator JWT naming the system account
	System  *Account      // the system account
	SysUser *Service      // a user of System for $SYS.REQ.* (no card, unrestricted within SYS)
}

// NewOperator creates an operator key, its system account and system user,
// using crypto/rand.
func NewOperator(name string) (*Operator, error) {
	return NewOperatorWithRand(name, rand.Reader)
}

// NewOperatorWithRand is [NewOperator] with an explicit source of randomness
// for every key it creates (for deterministic tests).
func NewOperatorWithRand(name string, r io.Reader) (*Operator, error) {
	if err := checkName("operator", name); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrInvalidOption)
	}
	okp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteOperator, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create operator key: %w", err)
	}
	o := &Operator{Name: name, Key: okp}
	sys, err := o.newAccount(SystemAccountName, systemLimits(), r)
	if err != nil {
		return nil, err
	}
	o.System = sys
	user, err := sys.newSystemUser(r)
	if err != nil {
		return nil, err
	}
	o.SysUser = user
	if err := o.signOperatorJWT(); err != nil {
		return nil, err
	}
	return o, nil
}

// PublicKey returns the operator's public key ("O...").
func (o *Operator) PublicKey() string { return publicKey(o.Key) }

func (o *Operator) signOperatorJWT() error {
	oc := jwt.NewOperatorClaims(o.PublicKey())
	oc.Name = o.Name
	oc.SystemAccount = o.System.PublicKey()
	tok, err := oc.Encode(o.Key)
	if err != nil {
		return fmt.Errorf("accounts: sign operator jwt: %w", err)
	}
	o.JWT = tok
	return nil
}

// Account is a tenant: a NATS account with an identity key, signing keys and
// a JWT signed by the operator. SigningKeys[0] signs service user JWTs and
// identity cards, so the identity key can stay offline; it must be an
// unscoped signing key (ErrScopedSigner otherwise).
type Account struct {
	Name        string
	Key         nkeys.KeyPair   // identity key ("A..."); may be public-only (kept offline)
	SigningKeys []nkeys.KeyPair // signing keys listed in the account JWT; SigningKeys[0] signs users and cards
	Claims      *jwt.AccountClaims
	JWT         string // encoded, signed by the operator

	// Now is the clock used for card and user JWT validity and for
	// revocations; nil means time.Now. It is not stored.
	Now func() time.Time
	// Rand is the randomness used for service keys; nil means crypto/rand.
	// It is not stored.
	Rand io.Reader
}

// NewAccount creates an account with a fresh identity key and one signing
// key, applies lim and signs the account JWT with the operator key.
func (o *Operator) NewAccount(name string, lim Limits) (*Account, error) {
	return o.NewAccountWithRand(name, lim, rand.Reader)
}

// NewAccountWithRand is [Operator.NewAccount] with an explicit source of
// randomness. A reserved name ([ReservedAccountName]) is ErrInvalidOption: the system and
// operator accounts are made by [NewOperator] and [Operator.NewOperatorAccount].
func (o *Operator) NewAccountWithRand(name string, lim Limits, r io.Reader) (*Account, error) {
	if ReservedAccountName(name) {
		return nil, fmt.Errorf("%w: account name %q is reserved for sealbus", ErrInvalidOption, name)
	}
	return o.newAccount(name, lim, r)
}

// NewOperatorAccount creates the operator account ([OperatorAccountName]) with
// [OperatorAccountLimits] and the exports of the operator account's views (see
// [Account.ImportOperatorViews]), signed by the operator.
func (o *Operator) NewOperatorAccount() (*Account, error) {
	a, err := o.newAccount(OperatorAccountName, OperatorAccountLimits(), rand.Reader)
	if err != nil {
		return nil, err
	}
	setOperatorExports(a.Claims)
	if err := o.Reissue(a); err != nil {
		return nil, err
	}
	return a, nil
}

// UpdateOperatorExports brings the operator account's exports to the current set of views
// and reports whether they changed ([Operator.Reissue] and push it then).
func (a *Account) UpdateOperatorExports() bool {
	before := canonicalExports(a.Claims.Exports)
	setOperatorExports(a.Claims)
	return !slices.Equal(before, canonicalExports(a.Claims.Exports))
}

// canonicalExports returns the exports as sorted JSON strings (jwt sorts them when encoding).
func canonicalExports(es jwt.Exports) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		b, _ := json.Marshal(e)
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

func (o *Operator) newAccount(name string, lim Limits, r io.Reader) (*Account, error) {
	if err := checkName("account", name); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrInvalidOption)
	}
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	akp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteAccount, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create account key: %w", err)
	}
	skp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteAccount, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create signing key: %w", err)
	}
	a := &Account{Name: name, Key: akp, SigningKeys: []nkeys.KeyPair{skp}}
	a.Claims = jwt.NewAccountClaims(a.PublicKey())
	a.Claims.Name = name
	a.Claims.SigningKeys.Add(publicKey(skp))
	lim.apply(a.Claims)
	if err := o.Reissue(a); err != nil {
		return nil, err
	}
	return a, nil
}

// Reissue re-signs a.Claims with the operator key after edits (limits,
// signing keys, revocations, exports, imports) and updates a.JWT. The claims
// are validated first; a blocking problem returns ErrInvalidOption and leaves
// a.JWT unchanged. Push the new JWT to servers and the directory afterwards.
func (o *Operator) Reissue(a *Account) error {
	if a == nil || a.Claims == nil {
		return fmt.Errorf("%w: nil account", ErrInvalidOption)
	}
	if a.Claims.Subject != a.PublicKey() {
		return fmt.Errorf("%w: account claims subject %s is not the account key %s", ErrKeyMismatch, a.Claims.Subject, a.PublicKey())
	}
	if !hasSeed(o.Key) {
		return fmt.Errorf("%w: operator key", ErrNoSeed)
	}
	vr := jwt.CreateValidationResults()
	a.Claims.Validate(vr)
	if vr.IsBlocking(false) {
		return fmt.Errorf("%w: account claims: %v", ErrInvalidOption, vr.Errors())
	}
	tok, err := a.Claims.Encode(o.Key)
	if err != nil {
		return fmt.Errorf("accounts: sign account jwt: %w", err)
	}
	a.JWT = tok
	return nil
}

// PublicKey returns the account's public key ("A...").
func (a *Account) PublicKey() string { return publicKey(a.Key) }

// SetLimits writes lim into a.Claims; call [Operator.Reissue] afterwards.
func (a *Account) SetLimits(lim Limits) error {
	if err := lim.Validate(); err != nil {
		return err
	}
	lim.apply(a.Claims)
	return nil
}

// Limits returns the account's current limits (see [LimitsOf]).
func (a *Account) Limits() Limits { return LimitsOf(a.Claims) }

// AddSigningKey creates a signing key, appends it to a.SigningKeys and lists
// it in a.Claims; call [Operator.Reissue] afterwards. The new key does not
// sign anything until it is moved to SigningKeys[0].
func (a *Account) AddSigningKey() (nkeys.KeyPair, error) {
	kp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteAccount, a.rand())
	if err != nil {
		return nil, fmt.Errorf("accounts: create signing key: %w", err)
	}
	a.SigningKeys = append(a.SigningKeys, kp)
	a.Claims.SigningKeys.Add(publicKey(kp))
	return kp, nil
}

// RemoveSigningKey removes the signing key pub from a.SigningKeys and
// a.Claims; call [Operator.Reissue] afterwards. Every card and user JWT the
// key signed stops verifying once the new account JWT is in use.
func (a *Account) RemoveSigningKey(pub string) error {
	if !a.Claims.SigningKeys.Contains(pub) {
		return fmt.Errorf("%w: signing key %s", ErrNotFound, pub)
	}
	a.Claims.SigningKeys.Remove(pub)
	kept := a.SigningKeys[:0]
	for _, kp := range a.SigningKeys {
		if publicKey(kp) != pub {
			kept = append(kept, kp)
		}
	}
	a.SigningKeys = kept
	return nil
}

// Revoke revokes every JWT and card issued to userKey at or before at (use
// "*" to revoke every user of the account). The caller reissues and pushes
// the account.
func (a *Account) Revoke(userKey string, at time.Time) {
	a.Claims.RevokeAt(userKey, at)
}

func (a *Account) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Account) rand() io.Reader {
	if a.Rand != nil {
		return a.Rand
	}
	return rand.Reader
}

// signer returns the key that signs users and cards.
func (a *Account) signer() (nkeys.KeyPair, error) {
	if len(a.SigningKeys) == 0 {
		return nil, fmt.Errorf("%w: account %s has no signing key", ErrNoSeed, a.Name)
	}
	kp := a.SigningKeys[0]
	if !hasSeed(kp) {
		return nil, fmt.Errorf("%w: signing key of account %s", ErrNoSeed, a.Name)
	}
	if !a.Claims.SigningKeys.Contains(publicKey(kp)) {
		return nil, fmt.Errorf("%w: signing key %s is not listed in account %s", ErrUnknownSigner, publicKey(kp), a.Name)
	}
	if scopedSigner(a.Claims, publicKey(kp)) {
		return nil, fmt.Errorf("%w: signing key %s of account %s is scoped; sealbus users and cards need an unscoped key", ErrScopedSigner, publicKey(kp), a.Name)
	}
	return kp, nil
}

// newSystemUser creates the system account's user: no card, no curve key,
// no permission restrictions inside the system account.
func (a *Account) newSystemUser(r io.Reader) (*Service, error) {
	ukp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteUser, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create user key: %w", err)
	}
	sk, err := a.signer()
	if err != nil {
		return nil, err
	}
	uc := jwt.NewUserClaims(publicKey(ukp))
	uc.Name = SystemUserName
	uc.IssuerAccount = a.PublicKey()
	tok, err := uc.Encode(sk)
	if err != nil {
		return nil, fmt.Errorf("accounts: sign user jwt: %w", err)
	}
	return &Service{
		Spec:    ServiceSpec{Name: SystemUserName},
		Account: a.PublicKey(),
		UserKey: ukp,
		UserJWT: tok,
	}, nil
}

func publicKey(kp nkeys.KeyPair) string {
	if kp == nil {
		return ""
	}
	pk, err := kp.PublicKey()
	if err != nil {
		return ""
	}
	return pk
}

func hasSeed(kp nkeys.KeyPair) bool {
	if kp == nil {
		return false
	}
	s, err := kp.Seed()
	return err == nil && len(s) > 0
}
