package accounts

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// DefaultSkew is the clock-skew allowance used when [Trust.Skew] is zero:
// a token is accepted up to 2 minutes before its not-before time and up to
// 2 minutes after its expiry.
const DefaultSkew = 2 * time.Minute

// Trust verifies tokens up to a set of trusted operator keys: card → account
// signing key → account JWT → operator. The zero value trusts nobody.
type Trust struct {
	Operators []string         // trusted operator public keys ("O...")
	Skew      time.Duration    // clock-skew allowance; 0 means DefaultSkew, negative means none
	Now       func() time.Time // clock; nil means time.Now
}

func (t Trust) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t Trust) skew() time.Duration {
	switch {
	case t.Skew == 0:
		return DefaultSkew
	case t.Skew < 0:
		return 0
	}
	return t.Skew
}

func (t Trust) trusted(operator string) bool {
	return nkeys.IsValidPublicOperatorKey(operator) && slices.Contains(t.Operators, operator)
}

// checkTimes adds expiry and not-before problems for a token of the given
// kind. Zero unix times mean "not set".
func (t Trust) checkTimes(p *problems, kind string, iat, nbf, exp int64) {
	now, skew := t.now(), t.skew()
	if exp > 0 && now.After(time.Unix(exp, 0).Add(skew)) {
		p.add(fmt.Errorf("%w: %s expired at %s", ErrExpired, kind, time.Unix(exp, 0).UTC().Format(time.RFC3339)))
	}
	if nbf > 0 && time.Unix(nbf, 0).After(now.Add(skew)) {
		p.add(fmt.Errorf("%w: %s is valid from %s", ErrNotYetValid, kind, time.Unix(nbf, 0).UTC().Format(time.RFC3339)))
	}
	if iat > 0 && time.Unix(iat, 0).After(now.Add(skew)) {
		p.add(fmt.Errorf("%w: %s is issued in the future (%s)", ErrNotYetValid, kind, time.Unix(iat, 0).UTC().Format(time.RFC3339)))
	}
}

// decodeError maps a jwt/v2 decoding error to this package's sentinels.
func decodeError(kind string, err error) error {
	if errors.Is(err, jwt.ErrTokenTooLarge) {
		return fmt.Errorf("%w: %s: %v", ErrTooLarge, kind, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrBadToken, kind, err)
}

// decodeGeneric decodes a token jwt.Decode refused, to tell a wrong claim
// type from a bad token; a token refused for its size is not decoded again.
func decodeGeneric(token string, decodeErr error) (*jwt.GenericClaims, error) {
	if errors.Is(decodeErr, jwt.ErrTokenTooLarge) {
		return nil, decodeErr
	}
	return jwt.DecodeGeneric(token)
}

// VerifyAccount decodes an account JWT and checks it: signature, claim type,
// issuer is a trusted operator, times (with skew) and the claims' own
// validation. It returns the claims, or nil and a *ValidationError listing
// every problem.
func (t Trust) VerifyAccount(accountJWT string) (*jwt.AccountClaims, error) {
	var p problems
	claims, err := jwt.Decode(accountJWT)
	if err != nil {
		if g, gerr := decodeGeneric(accountJWT, err); gerr == nil && g.ClaimType() != jwt.AccountClaim {
			p.add(fmt.Errorf("%w: account jwt has claim type %q", ErrWrongType, g.ClaimType()))
		} else {
			p.add(decodeError("account jwt", err))
		}
		return nil, p.err()
	}
	ac, ok := claims.(*jwt.AccountClaims)
	if !ok {
		p.add(fmt.Errorf("%w: claim type %q, want %q", ErrWrongType, claims.ClaimType(), jwt.AccountClaim))
		return nil, p.err()
	}
	if !nkeys.IsValidPublicAccountKey(ac.Subject) {
		p.add(fmt.Errorf("%w: account jwt subject is not an account key", ErrBadToken))
	}
	if !t.trusted(ac.Issuer) {
		p.add(fmt.Errorf("%w: account %s is signed by %s", ErrUntrustedOperator, ac.Subject, ac.Issuer))
	}
	t.checkTimes(&p, "account jwt", ac.IssuedAt, ac.NotBefore, ac.Expires)
	vr := jwt.CreateValidationResults()
	ac.Validate(vr)
	for _, issue := range vr.Issues {
		if issue.Blocking && !issue.TimeCheck {
			p.add(fmt.Errorf("%w: account jwt: %s", ErrBadToken, issue.Description))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return ac, nil
}

// VerifyCard verifies a card against account claims obtained from
// [Trust.VerifyAccount]. It checks the whole chain and collects every
// problem: card signature, claim type, size and contents, including
// application-only subjects (ErrBadToken, ErrWrongType, ErrTooLarge; these
// stop verification); the account claims are issued by a trusted operator
// (ErrUntrustedOperator) and not expired; the card names this account
// (ErrWrongAccount); its issuer is the account identity key or a signing key
// listed in the claims (ErrUnknownSigner) and that key is not scoped
// (ErrScopedSigner: a scoped key may only issue users with its template's
// permissions, so it may not vouch for a card's); its times, with skew
// (ErrExpired, ErrNotYetValid); its user key is not revoked at its issue
// time, including "*" revocations (ErrRevoked). It returns the card, or nil
// and a *ValidationError.
func (t Trust) VerifyCard(cardToken string, acct *jwt.AccountClaims) (*Card, error) {
	c, p := t.verifyCard(cardToken, acct)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (t Trust) verifyCard(cardToken string, acct *jwt.AccountClaims) (*Card, problems) {
	var p problems
	if acct == nil {
		p.add(fmt.Errorf("%w: nil account claims", ErrInvalidOption))
		return nil, p
	}
	c, err := DecodeCard(cardToken)
	if err != nil {
		p.add(err)
		return nil, p
	}
	if !t.trusted(acct.Issuer) {
		p.add(fmt.Errorf("%w: account %s is signed by %s", ErrUntrustedOperator, acct.Subject, acct.Issuer))
	}
	t.checkTimes(&p, "account jwt", 0, acct.NotBefore, acct.Expires)
	if c.Account != acct.Subject {
		p.add(fmt.Errorf("%w: card of %s names account %s, not %s", ErrWrongAccount, c.Name, c.Account, acct.Subject))
	}
	if !signedByAccount(acct, c.Issuer) {
		p.add(fmt.Errorf("%w: card of %s is signed by %s, not a signing key of account %s", ErrUnknownSigner, c.Name, c.Issuer, acct.Subject))
	} else if scopedSigner(acct, c.Issuer) {
		p.add(fmt.Errorf("%w: card of %s is signed by %s, a scoped signing key of account %s; cards must come from an unscoped key", ErrScopedSigner, c.Name, c.Issuer, acct.Subject))
	}
	t.checkTimes(&p, "card of "+c.Name, c.IssuedAt.Unix(), c.NotBefore.Unix(), c.Expires.Unix())
	if IsRevoked(acct, c.UserKey, c.IssuedAt) {
		p.add(fmt.Errorf("%w: user %s of card %s", ErrRevoked, c.UserKey, c.Name))
	}
	return c, p
}

// VerifyService is [Trust.VerifyCard] plus the consistency of the card with
// the service's user JWT: the user JWT's signature, its subject equals the
// card's user key and its name the card's name (ErrKeyMismatch); it belongs
// to the same account (ErrWrongAccount) and is signed by the account or a
// listed, unscoped signing key (ErrUnknownSigner; a scoped key is
// ErrPermissionMismatch, since the server would apply the scope's
// permissions); its times and revocation; and its whole permission set is
// exactly what sealbus issues for the card (ErrPermissionMismatch otherwise):
// publish and subscribe allow and deny lists equal, as sets,
// [ServicePermissions] of a spec with the card's Publish and Subscribe and
// the consumers and the evidence token the user JWT names, for the user JWT's subject — so no extra
// infrastructure subject ("$JS.API.>", "$KV.>", "$SYS.>", "_INBOX.>"), no
// missing deny entry, no response permission — its per-service limits are
// finite and stated once ([ServiceLimitsOf]), and its connection types and
// bearer flag are the ones [Account.NewService] sets.
func (t Trust) VerifyService(cardToken, userJWT string, acct *jwt.AccountClaims) (*Card, error) {
	c, p := t.verifyCard(cardToken, acct)
	if c == nil {
		return nil, p.err()
	}
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		if g, gerr := decodeGeneric(userJWT, err); gerr == nil && g.ClaimType() != jwt.UserClaim {
			p.add(fmt.Errorf("%w: user jwt has claim type %q", ErrWrongType, g.ClaimType()))
		} else {
			p.add(decodeError("user jwt", err))
		}
		return nil, p.err()
	}
	if uc.Subject != c.UserKey {
		p.add(fmt.Errorf("%w: user jwt subject %s, card user key %s", ErrKeyMismatch, uc.Subject, c.UserKey))
	}
	if uc.Name != c.Name {
		p.add(fmt.Errorf("%w: user jwt names %q, card names %q", ErrKeyMismatch, uc.Name, c.Name))
	}
	issAcct := uc.IssuerAccount
	if issAcct == "" {
		issAcct = uc.Issuer
	}
	if issAcct != acct.Subject {
		p.add(fmt.Errorf("%w: user jwt of %s belongs to account %s, not %s", ErrWrongAccount, c.Name, issAcct, acct.Subject))
	}
	if !signedByAccount(acct, uc.Issuer) {
		p.add(fmt.Errorf("%w: user jwt of %s is signed by %s, not a signing key of account %s", ErrUnknownSigner, c.Name, uc.Issuer, acct.Subject))
	} else if scope, ok := acct.SigningKeys.GetScope(uc.Issuer); ok && scope != nil {
		p.add(fmt.Errorf("%w: user jwt of %s is issued by a scoped signing key; the server applies the scope's permissions", ErrPermissionMismatch, c.Name))
	}
	t.checkTimes(&p, "user jwt of "+c.Name, uc.IssuedAt, uc.NotBefore, uc.Expires)
	if acct.IsClaimRevoked(uc) {
		p.add(fmt.Errorf("%w: user jwt of %s", ErrRevoked, c.Name))
	}
	tok, _ := EvidenceTokenOf(uc.Pub.Allow, c.Name)
	lim, ok := ServiceLimitsOf(uc)
	if !ok {
		p.add(fmt.Errorf("%w: user jwt of %s carries no per-service limits (finite subscriptions and payload, one connection quota tag)", ErrPermissionMismatch, c.Name))
	}
	spec := ServiceSpec{
		Name:          c.Name,
		Publish:       c.Publish,
		Subscribe:     c.Subscribe,
		Consumers:     consumersIn(uc.Pub.Allow),
		Limits:        lim,
		EvidenceToken: tok,
	}
	for _, d := range serviceUserDiff(uc, spec, uc.Subject) {
		p.add(fmt.Errorf("%w: user jwt of %s: %s", ErrPermissionMismatch, c.Name, d))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// IsRevoked reports whether the account revoked userKey for tokens issued at
// issuedAt: a revocation of userKey, or of "*", with a timestamp at or after
// issuedAt (jwt/v2 semantics, second precision). Nil claims count as revoked.
func IsRevoked(acct *jwt.AccountClaims, userKey string, issuedAt time.Time) bool {
	if acct == nil {
		return true
	}
	return acct.Revocations.IsRevoked(userKey, issuedAt)
}

func signedByAccount(acct *jwt.AccountClaims, issuer string) bool {
	return issuer != "" && (issuer == acct.Subject || acct.SigningKeys.Contains(issuer))
}

// scopedSigner reports whether issuer is a scoped signing key of acct.
func scopedSigner(acct *jwt.AccountClaims, issuer string) bool {
	scope, ok := acct.SigningKeys.GetScope(issuer)
	return ok && scope != nil
}
