package accounts

import (
	"bytes"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Card token format.
const (
	// CardType is the claim type of an identity card ("nats.type" in the JWT).
	CardType = "sealbus-card"
	// CardVersion is the card format version ("nats.card_version"); other
	// versions are rejected.
	CardVersion = 1
	// MaxCardSize is the largest card token accepted or issued, in bytes. It
	// is checked before any parsing.
	MaxCardSize = 16 << 10

	cardHeader     = `{"typ":"JWT","alg":"ed25519-nkey"}`
	jwtFormatV2    = 2 // jwt/v2 encoding version: the signature covers header.payload
	maxCardSubject = 256
)

var (
	b64             = base64.RawURLEncoding.Strict()
	cardHeaderB64   = b64.EncodeToString([]byte(cardHeader))
	hashIDEncoding  = base32.StdEncoding.WithPadding(base32.NoPadding)
	errCardTooLarge = fmt.Errorf("%w: card exceeds %d bytes", ErrTooLarge, MaxCardSize)
)

// Card is a service's identity card (docs/ARCHITECTURE.md, "Trust model"): it binds the service's name,
// user key and curve key to its account and permissions for a validity
// period. The token is a JWT in jwt/v2's encoding (header
// {"typ":"JWT","alg":"ed25519-nkey"}, Ed25519 signature by an account signing
// key over header.payload) whose claim type is [CardType], so NATS tooling
// can decode it as a generic claim.
type Card struct {
	ID                string // hash of the claims (as jwt/v2 computes "jti")
	Name              string // service name
	Account           string // "A..." account public key
	Issuer            string // signing key that signed it ("A...")
	UserKey           string // "U..."
	CurveKey          string // "X..."
	PreviousCurveKeys []PreviousKey
	Publish           []string
	Subscribe         []string
	IssuedAt          time.Time
	NotBefore         time.Time
	Expires           time.Time
}

// PreviousKey is a curve key replaced by a rotation and still usable to open
// envelopes sealed to it until Until.
type PreviousKey struct {
	CurveKey string
	Until    time.Time
}

type cardClaims struct {
	ID        string   `json:"jti"`
	IssuedAt  int64    `json:"iat"`
	Issuer    string   `json:"iss"`
	Name      string   `json:"name"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	Subject   string   `json:"sub"`
	Nats      cardBody `json:"nats"`
}

type cardBody struct {
	Type        string        `json:"type"`
	Version     int           `json:"version"`
	CardVersion int           `json:"card_version"`
	Account     string        `json:"account"`
	CurveKey    string        `json:"curve_key"`
	Previous    []previousKey `json:"previous_curve_keys,omitempty"`
	Pub         []string      `json:"pub,omitempty"`
	Sub         []string      `json:"sub,omitempty"`
}

type previousKey struct {
	Key   string `json:"key"`
	Until int64  `json:"until"`
}

// IssueCard signs c with signer, which must be an account key ("A...") with
// its seed: the account identity key or one of its unscoped signing keys (a
// card from a scoped signing key fails verification with [ErrScopedSigner];
// IssueCard cannot tell, it does not see the account claims). c.Issuer and
// c.ID are set from the signer and the contents. A zero IssuedAt means now, a
// zero NotBefore means IssuedAt; Expires is required (a card never lives
// forever). Times are kept to the second. Publish and Subscribe subjects must
// be application subjects, as in [ServiceSpec]: a literal first token, not
// "$...", "_..." or "sealbus..." (ErrInvalidOption otherwise).
func IssueCard(signer nkeys.KeyPair, c Card) (string, error) {
	if signer == nil || !hasSeed(signer) {
		return "", fmt.Errorf("%w: card signer", ErrNoSeed)
	}
	iss := publicKey(signer)
	if !nkeys.IsValidPublicAccountKey(iss) {
		return "", fmt.Errorf("%w: card signer must be an account key", ErrInvalidOption)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	if c.Expires.IsZero() {
		return "", fmt.Errorf("%w: card needs an expiry", ErrInvalidOption)
	}
	if !c.Expires.After(c.NotBefore) {
		return "", fmt.Errorf("%w: card expires before it is valid", ErrInvalidOption)
	}
	cc := cardClaims{
		IssuedAt:  c.IssuedAt.Unix(),
		Issuer:    iss,
		Name:      c.Name,
		NotBefore: c.NotBefore.Unix(),
		Expires:   c.Expires.Unix(),
		Subject:   c.UserKey,
		Nats: cardBody{
			Type:        CardType,
			Version:     jwtFormatV2,
			CardVersion: CardVersion,
			Account:     c.Account,
			CurveKey:    c.CurveKey,
			Pub:         c.Publish,
			Sub:         c.Subscribe,
		},
	}
	for _, p := range c.PreviousCurveKeys {
		cc.Nats.Previous = append(cc.Nats.Previous, previousKey{Key: p.CurveKey, Until: p.Until.Unix()})
	}
	if err := cc.check(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	id, err := cc.hash()
	if err != nil {
		return "", err
	}
	cc.ID = id
	payload, err := json.Marshal(&cc)
	if err != nil {
		return "", fmt.Errorf("accounts: encode card: %w", err)
	}
	signed := cardHeaderB64 + "." + b64.EncodeToString(payload)
	sig, err := signer.Sign([]byte(signed))
	if err != nil {
		return "", fmt.Errorf("accounts: sign card: %w", err)
	}
	tok := signed + "." + b64.EncodeToString(sig)
	if len(tok) > MaxCardSize {
		return "", errCardTooLarge
	}
	return tok, nil
}

// hash is the card ID: SHA-512/256 of the claims JSON with an empty ID,
// base32 without padding (the way jwt/v2 computes "jti").
func (cc cardClaims) hash() (string, error) {
	cc.ID = ""
	j, err := json.Marshal(&cc)
	if err != nil {
		return "", fmt.Errorf("accounts: encode card: %w", err)
	}
	h := sha512.Sum512_256(j)
	return hashIDEncoding.EncodeToString(h[:]), nil
}

// check validates the contents of a card (keys, names, subjects).
func (cc *cardClaims) check() error {
	switch {
	case !ValidName(cc.Name):
		return fmt.Errorf("card name %q is not a valid service name", cc.Name)
	case !nkeys.IsValidPublicUserKey(cc.Subject):
		return fmt.Errorf("card user key is not a user public key")
	case !nkeys.IsValidPublicAccountKey(cc.Nats.Account):
		return fmt.Errorf("card account is not an account public key")
	case !nkeys.IsValidPublicAccountKey(cc.Issuer):
		return fmt.Errorf("card issuer is not an account public key")
	case !nkeys.IsValidPublicCurveKey(cc.Nats.CurveKey):
		return fmt.Errorf("card curve key is not a curve public key")
	case cc.IssuedAt <= 0 || cc.NotBefore <= 0:
		return fmt.Errorf("card has no issue or not-before time")
	case cc.Expires <= cc.NotBefore:
		return fmt.Errorf("card has no expiry after its not-before time")
	}
	for _, p := range cc.Nats.Previous {
		if !nkeys.IsValidPublicCurveKey(p.Key) {
			return fmt.Errorf("card previous key is not a curve public key")
		}
		if p.Key == cc.Nats.CurveKey {
			return fmt.Errorf("card previous key repeats the current curve key")
		}
	}
	for i, list := range [][]string{cc.Nats.Pub, cc.Nats.Sub} {
		kind := [...]string{"publish", "subscribe"}[i]
		for _, s := range list {
			if len(s) > maxCardSubject {
				return fmt.Errorf("card %s subject is longer than %d bytes", kind, maxCardSubject)
			}
			// The application-subject rule of ServiceSpec: no wildcard first
			// token, nothing under "$...", "_..." or "sealbus...".
			if why := appSubjectProblem(s); why != "" {
				return fmt.Errorf("card %s subject %q %s", kind, s, why)
			}
		}
	}
	return nil
}

// DecodeCard parses a card token and checks its signature against the key
// named as its issuer, and nothing more: it does not check that the issuer
// belongs to the account, times or revocations (use [Trust.VerifyCard]).
// Errors: ErrTooLarge (checked first, before parsing), ErrBadToken (syntax,
// signature, contents — including a subject that is not an application
// subject —, unknown card version), ErrWrongType (a valid JWT of another
// claim type).
func DecodeCard(token string) (*Card, error) {
	if len(token) > MaxCardSize {
		return nil, errCardTooLarge
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: card is not a three-part JWT", ErrBadToken)
	}
	hdr, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: card header encoding", ErrBadToken)
	}
	var h struct {
		Type string `json:"typ"`
		Alg  string `json:"alg"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil || !strings.EqualFold(h.Type, "JWT") || h.Alg != "ed25519-nkey" {
		return nil, fmt.Errorf("%w: card header is not an ed25519-nkey JWT header", ErrBadToken)
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: card payload encoding", ErrBadToken)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: card signature encoding", ErrBadToken)
	}
	// Lenient first pass: find the issuer and the type.
	var loose struct {
		Issuer string `json:"iss"`
		Nats   struct {
			Type string `json:"type"`
		} `json:"nats"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(payload, &loose); err != nil {
		return nil, fmt.Errorf("%w: card payload is not JSON", ErrBadToken)
	}
	issuer, err := nkeys.FromPublicKey(loose.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: card issuer is not a public key", ErrBadToken)
	}
	if err := issuer.Verify([]byte(token[:len(parts[0])+1+len(parts[1])]), sig); err != nil {
		return nil, fmt.Errorf("%w: card signature does not verify", ErrBadToken)
	}
	if typ := loose.Nats.Type; typ != CardType {
		if typ == "" {
			typ = loose.Type
		}
		return nil, fmt.Errorf("%w: claim type %q, want %q", ErrWrongType, typ, CardType)
	}
	var cc cardClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cc); err != nil {
		return nil, fmt.Errorf("%w: card claims: %v", ErrBadToken, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after card claims", ErrBadToken)
	}
	if cc.Nats.CardVersion != CardVersion || cc.Nats.Version != jwtFormatV2 {
		return nil, fmt.Errorf("%w: unsupported card version %d (format %d)", ErrBadToken, cc.Nats.CardVersion, cc.Nats.Version)
	}
	if err := cc.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if id, err := cc.hash(); err != nil || id != cc.ID {
		return nil, fmt.Errorf("%w: card id does not match its contents", ErrBadToken)
	}
	if !nkeys.IsValidPublicAccountKey(cc.Issuer) {
		return nil, fmt.Errorf("%w: card issuer is not an account key", ErrBadToken)
	}
	c := &Card{
		ID:        cc.ID,
		Name:      cc.Name,
		Account:   cc.Nats.Account,
		Issuer:    cc.Issuer,
		UserKey:   cc.Subject,
		CurveKey:  cc.Nats.CurveKey,
		Publish:   cc.Nats.Pub,
		Subscribe: cc.Nats.Sub,
		IssuedAt:  time.Unix(cc.IssuedAt, 0).UTC(),
		NotBefore: time.Unix(cc.NotBefore, 0).UTC(),
		Expires:   time.Unix(cc.Expires, 0).UTC(),
	}
	for _, p := range cc.Nats.Previous {
		c.PreviousCurveKeys = append(c.PreviousCurveKeys, PreviousKey{CurveKey: p.Key, Until: time.Unix(p.Until, 0).UTC()})
	}
	return c, nil
}

// MayPublish reports whether the card allows publishing on the literal
// subject, under NATS wildcard rules (see [SubjectMatches]).
func (c *Card) MayPublish(subject string) bool { return anyMatch(c.Publish, subject) }

// MaySubscribe reports whether the card allows reading the literal subject;
// a publisher on subject encrypts to exactly the cards for which this holds.
func (c *Card) MaySubscribe(subject string) bool { return anyMatch(c.Subscribe, subject) }

// CurveKeyAt reports whether curveKey may be used to open an envelope for
// this card at time at: it is the current curve key, or a previous one whose
// grace period has not ended.
func (c *Card) CurveKeyAt(curveKey string, at time.Time) bool {
	if curveKey == c.CurveKey {
		return true
	}
	for _, p := range c.PreviousCurveKeys {
		if p.CurveKey == curveKey && at.Before(p.Until) {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, subject string) bool {
	for _, p := range patterns {
		if SubjectMatches(p, subject) {
			return true
		}
	}
	return false
}
