package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// Directory is the client's verified view of its account's directory: the account JWT and the
// identity cards of its services, and those of peer accounts.
//
// The directory is kept in the operator account and only the operator writes it; the client
// reads the account's part through the account's directory view (accounts.DirectoryView), a
// mirror no service can write, create consumers on or fill. Storage is still not trusted (a
// broker operator can edit it), so the directory is monotonic and decided only by signatures:
//
//   - An account JWT is used only if it verifies up to a trusted operator, names the expected
//     account and is not older (issue time) than the one in use: no rollback to a JWT from
//     before a revocation.
//   - A card is used only if it verifies up to that account JWT (signing key listed, times,
//     not revoked) and is stored under its own name and user key. Of all the cards seen for a
//     name, the one with the highest issue time signed by the account is the current one; an
//     older card never comes back.
//   - A verified card stops being used only on verified grounds: a revocation in the current
//     account JWT, its expiry, a signing key dropped from the account JWT, or a newer card of
//     the same name. KV delete and purge markers never remove anything, and a value that does
//     not verify never hides the last verified one.
//
// Everything ignored is logged and reported as an audit event of type
// EventDirectoryUnverifiable, with a reason (DirectoryUnsignedDelete, DirectoryRollback, ...),
// and counted in the client's metrics. To take a service out of use, revoke its key in the
// account JWT (`sealbus service revoke`); deleting its card does nothing to running clients.
//
// The client polls its view (WithDirectoryPoll, default every 500 ms), so a revocation (a new
// account JWT) or a rotation (a new card) takes effect within about that long.
//
// Rotation: when a service's card is replaced by a newer card that lists the old curve key as
// a previous key, the old card is retired rather than forgotten (the directory keeps the cards
// of a service's earlier key pairs beside the current one). Envelopes its old user key
// signed before the rotation (by their signed creation time, second precision) are still
// accepted until the previous key's grace period ends, so nothing in flight is lost. A card
// revoked without such a replacement is refused for every envelope.
//
// Cross-account flows: a peer account (keys "peer.<account>.account" and
// "peer.<account>.card.<name>.<user key>") contributes to the audience of a subject S of this
// account when the peer's account JWT imports S as a stream from this account and this
// account's JWT exports it; its cards are matched against the subject the import maps S to.
// Envelopes from a peer account are accepted when the peer exports the subject and this
// account imports it. The server enforces the same exports and imports.
//
// Directory is safe for concurrent use. It implements envelope.SenderPolicy.
type Directory struct {
	account string
	trust   accounts.Trust
	now     func() time.Time
	log     *slog.Logger
	report  func(Event) // receives unverifiable entries; must not block

	mu       sync.RWMutex
	own      *cardSet
	peers    map[string]*cardSet
	gen      uint64
	audience map[string]*pubEntry // subject -> publish checks, valid for audGen until audUntil
	audGen   uint64
	audUntil time.Time
	changed  chan struct{}

	omu     sync.Mutex
	origins map[string]originEntry // subject -> Origin's answer under the claims it was computed for
}

// originEntry is Origin's answer for one subject under one verified account JWT.
type originEntry struct {
	claims          *jwt.AccountClaims
	account, origin string
}

// cardSet is the verified state of one account: its claims and cards.
//
// For each service name it keeps the candidate card tokens seen under that name (every value
// that decodes as a card of this account and name, bounded), and derives from them, under the
// current claims, the current card: the candidate with the highest issue time whose signer the
// claims list. Only the claims (a revocation, a dropped signing key), the card's own times and a
// newer candidate change which card is current; deletions of keys and values that do not
// verify never do.
type cardSet struct {
	account   string
	claims    *jwt.AccountClaims
	claimsTok string                    // the account JWT of claims
	acctSeen  map[string]struct{}       // account JWTs seen with the issue time of claims
	cands     map[string][]*candidate   // name -> candidate card tokens
	cards     map[string]*accounts.Card // name -> verified current card
	byKey     map[string]*accounts.Card // user key -> verified current card
	revoked   map[string]*accounts.Card // user key -> card refused because its key is revoked
	retired   map[string]retiredCard    // user key -> card replaced by a rotation
	nextOrder uint64                    // order of the next new candidate
}

// candidate is one card token seen in the directory, decoded (its signature checks against
// the key it names as issuer; whether that key belongs to the account is decided under the
// claims).
type candidate struct {
	token string
	card  *accounts.Card
	order uint64 // when it was first seen; replays keep it (tie-break between equal issue times)
}

// maxCandidates bounds the candidate tokens kept per service name; the current card is never
// the one dropped.
const maxCandidates = 8

func newCardSet(account string) *cardSet {
	return &cardSet{
		account:  account,
		acctSeen: map[string]struct{}{},
		cands:    map[string][]*candidate{},
		cards:    map[string]*accounts.Card{},
		byKey:    map[string]*accounts.Card{},
		revoked:  map[string]*accounts.Card{},
		retired:  map[string]retiredCard{},
	}
}

type retiredCard struct {
	card      *accounts.Card
	replaced  time.Time // issue time of the card that replaced it
	graceEnds time.Time
}

func newDirectory(account string, trust accounts.Trust, now func() time.Time, log *slog.Logger, report func(Event)) *Directory {
	if report == nil {
		report = func(Event) {}
	}
	return &Directory{
		account: account,
		trust:   trust,
		now:     now,
		log:     log,
		report:  report,
		own:     newCardSet(account),
		peers:   map[string]*cardSet{},
		changed: make(chan struct{}),
	}
}

// Account returns the account public key ("A...") the directory belongs to.
func (d *Directory) Account() string { return d.account }

// AccountClaims returns the verified account claims in use, or nil before the first one.
// The claims must not be modified.
func (d *Directory) AccountClaims() *jwt.AccountClaims {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.own.claims
}

// Card returns the verified, current card of the named service of this account.
func (d *Directory) Card(name string) (accounts.Card, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.own.cards[name]
	if !ok || !d.validNow(c) {
		return accounts.Card{}, false
	}
	return cloneCard(c), true
}

// CardByKey returns the verified, current card of this account whose user key is userKey.
func (d *Directory) CardByKey(userKey string) (accounts.Card, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.own.byKey[userKey]
	if !ok || !d.validNow(c) {
		return accounts.Card{}, false
	}
	return cloneCard(c), true
}

// NameOf returns the service name of a user key of this account or of a peer account: of a
// current card, or of a card retired by a rotation or refused as revoked (for logs and dead
// letters).
func (d *Directory) NameOf(userKey string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	// Called for every message received: look in the own account first, without building a
	// list of the sets.
	if name, ok := nameIn(d.own, userKey); ok {
		return name, true
	}
	for _, s := range d.peers {
		if name, ok := nameIn(s, userKey); ok {
			return name, true
		}
	}
	return "", false
}

func nameIn(s *cardSet, userKey string) (string, bool) {
	if c, ok := s.byKey[userKey]; ok {
		return c.Name, true
	}
	if r, ok := s.retired[userKey]; ok {
		return r.card.Name, true
	}
	if c, ok := s.revoked[userKey]; ok {
		return c.Name, true
	}
	return "", false
}

// Cards returns every verified, current card of this account, sorted by service name.
func (d *Directory) Cards() []accounts.Card {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cardsOf(d.own)
}

// PeerCards returns the verified, current cards of a peer account, sorted by name.
func (d *Directory) PeerCards(account string) []accounts.Card {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if p, ok := d.peers[account]; ok {
		return d.cardsOf(p)
	}
	return nil
}

func (d *Directory) cardsOf(s *cardSet) []accounts.Card {
	out := make([]accounts.Card, 0, len(s.cards))
	for _, c := range s.cards {
		if d.validNow(c) {
			out = append(out, cloneCard(c))
		}
	}
	slices.SortFunc(out, func(a, b accounts.Card) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Audience returns the cards that may read subject: every verified, current, non-revoked card
// of this account whose subscribe permissions match it under NATS wildcard rules, then the
// cards of peer accounts that import the subject (see Directory), sorted by account and name.
// A publisher encrypts to exactly these cards' curve keys.
func (d *Directory) Audience(subject string) []accounts.Card {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := []accounts.Card{}
	for _, c := range d.cardsOf(d.own) {
		if c.MaySubscribe(subject) {
			out = append(out, c)
		}
	}
	if d.own.claims == nil || !accounts.ExportsStream(d.own.claims, subject) {
		return out
	}
	peers := make([]string, 0, len(d.peers))
	for a := range d.peers {
		peers = append(peers, a)
	}
	slices.Sort(peers)
	for _, a := range peers {
		p := d.peers[a]
		if p.claims == nil {
			continue
		}
		for _, imp := range p.claims.Imports {
			if imp.Type != jwt.Stream || imp.Account != d.account || !accounts.SubjectMatches(string(imp.Subject), subject) {
				continue
			}
			local, ok := accounts.ImportedAs(imp, subject)
			if !ok {
				continue
			}
			for _, c := range d.cardsOf(p) {
				if c.MaySubscribe(local) && !slices.ContainsFunc(out, func(o accounts.Card) bool { return o.UserKey == c.UserKey }) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// Origin maps a subject a message was delivered on in this account to the account and subject
// it was published on: for a subject brought in by a stream import of this account's verified
// JWT, the exporting account and the exporter's subject; otherwise this account and the same
// subject. Consumers open envelopes against the origin.
//
// It is called for every message received: the answer is cached per subject for as long as
// the account JWT it was computed from is the verified one (a new JWT is a new claims value).
func (d *Directory) Origin(subject string) (account, origin string) {
	d.mu.RLock()
	claims := d.own.claims
	d.mu.RUnlock()
	if claims == nil {
		return d.account, subject
	}
	d.omu.Lock()
	e, ok := d.origins[subject]
	d.omu.Unlock()
	if ok && e.claims == claims {
		return e.account, e.origin
	}
	account, origin = d.account, subject
	for _, imp := range claims.Imports {
		if imp.Type != jwt.Stream || imp.Account == "" || imp.Account == d.account {
			continue
		}
		if s, ok := accounts.ImportOrigin(imp, subject); ok {
			account, origin = imp.Account, s
			break
		}
	}
	d.omu.Lock()
	if d.origins == nil || len(d.origins) >= maxCachedSubjects {
		d.origins = make(map[string]originEntry)
	}
	d.origins[subject] = originEntry{claims: claims, account: account, origin: origin}
	d.omu.Unlock()
	return account, origin
}

// audienceTTL bounds how long a cached audience is used, so cards that expire drop out of it
// even when the directory does not change.
const audienceTTL = 10 * time.Second

// maxCachedSubjects bounds the subjects whose publish check is cached per directory
// generation; past it, publishes on further subjects are checked without the cache.
const maxCachedSubjects = 4096

// pubEntry is the cached outcome of the publish checks on one subject for one publisher:
// whether its card may publish there, and the audience as envelope recipients.
type pubEntry struct {
	userKey string
	may     bool
	rs      []envelope.Recipient
}

// publishable returns what a publish by the service with user key userKey on subject needs:
// ok is false when the service has no current card (revoked, expired, replaced); may reports
// whether its card may publish on subject; rs is the audience (Audience) as recipients. The
// permission and the audience are cached per subject until the directory changes (any
// verified update) or audienceTTL passes; the card's presence and validity period are checked
// on every call. The caller must not modify rs.
func (d *Directory) publishable(userKey, subject string) (rs []envelope.Recipient, may, ok bool) {
	now := d.now()
	d.mu.RLock()
	card, ok := d.own.byKey[userKey]
	if !ok || !d.validAt(card, now) {
		d.mu.RUnlock()
		return nil, false, false
	}
	if d.audGen == d.gen && d.audience != nil && now.Before(d.audUntil) {
		if e, hit := d.audience[subject]; hit && e.userKey == userKey {
			d.mu.RUnlock()
			return e.rs, e.may, true
		}
	}
	gen := d.gen
	may = card.MayPublish(subject)
	d.mu.RUnlock()

	if may {
		rs = d.audienceRecipients(subject)
	}
	d.mu.Lock()
	if d.gen == gen {
		if d.audGen != gen || d.audience == nil || !now.Before(d.audUntil) {
			d.audience, d.audGen, d.audUntil = map[string]*pubEntry{}, gen, now.Add(audienceTTL)
		}
		if len(d.audience) < maxCachedSubjects {
			d.audience[subject] = &pubEntry{userKey: userKey, may: may, rs: rs}
		}
	}
	d.mu.Unlock()
	return rs, may, true
}

// audienceRecipients is Audience as envelope recipients; a card whose curve key does not
// parse is left out and logged.
func (d *Directory) audienceRecipients(subject string) []envelope.Recipient {
	cards := d.Audience(subject)
	rs := make([]envelope.Recipient, 0, len(cards))
	for _, c := range cards {
		r, err := envelope.ParseRecipient(c.CurveKey)
		if err != nil {
			d.log.Warn("sealbus: card has an unusable curve key; left out of the audience", "service", c.Name, "error", err)
			continue
		}
		rs = append(rs, r)
	}
	return rs
}

// CheckSender implements envelope.SenderPolicy: sender must be the user key of a verified,
// current card that may publish on subject (ErrSenderForbidden otherwise), or of a card retired
// by a rotation, for envelopes created before the rotation and while the grace period lasts.
// A sender of a peer account is accepted only for a subject the peer exports and this account
// imports from it. A revoked key gives ErrSenderRevoked, anything else ErrSenderUnknown.
func (d *Directory) CheckSender(account, sender, subject string, created time.Time) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	set := d.own
	if account != d.account {
		p, ok := d.peers[account]
		if !ok || p.claims == nil || d.own.claims == nil {
			return fmt.Errorf("%w: account %s is not a known peer of this account", envelope.ErrSenderUnknown, account)
		}
		if !accounts.ExportsStream(p.claims, subject) || !accounts.ImportsStream(d.own.claims, account, subject) {
			return fmt.Errorf("%w: %s is not exported by %s to this account", envelope.ErrSenderForbidden, subject, account)
		}
		set = p
	}
	if c, ok := set.byKey[sender]; ok {
		if !d.validNow(c) {
			return fmt.Errorf("%w: card of %s has expired", envelope.ErrSenderRevoked, c.Name)
		}
		if !c.MayPublish(subject) {
			return fmt.Errorf("%w: %s may not publish on %s", envelope.ErrSenderForbidden, c.Name, subject)
		}
		return nil
	}
	if r, ok := set.retired[sender]; ok {
		switch {
		case !d.now().Before(r.graceEnds):
			return fmt.Errorf("%w: key of %s was rotated and its grace period has ended", envelope.ErrSenderRevoked, r.card.Name)
		case created.Truncate(time.Second).After(r.replaced):
			return fmt.Errorf("%w: key of %s was rotated before this envelope was created", envelope.ErrSenderRevoked, r.card.Name)
		case !r.card.MayPublish(subject):
			return fmt.Errorf("%w: %s may not publish on %s", envelope.ErrSenderForbidden, r.card.Name, subject)
		}
		return nil
	}
	if c, ok := set.revoked[sender]; ok {
		return fmt.Errorf("%w: key of %s is revoked", envelope.ErrSenderRevoked, c.Name)
	}
	return fmt.Errorf("%w: no verified card for key %s", envelope.ErrSenderUnknown, sender)
}

// expired reports whether the account claims are past their expiry (with the trust's skew).
func (d *Directory) expired(ac *jwt.AccountClaims) bool {
	return ac.Expires > 0 && d.now().After(time.Unix(ac.Expires, 0).Add(d.skew()))
}

func (d *Directory) skew() time.Duration {
	switch {
	case d.trust.Skew == 0:
		return accounts.DefaultSkew
	case d.trust.Skew < 0:
		return 0
	}
	return d.trust.Skew
}

// validNow reports whether the card is inside its validity period (with the trust's skew).
// The caller holds d.mu.
func (d *Directory) validNow(c *accounts.Card) bool { return d.validAt(c, d.now()) }

// validAt is validNow at now. The caller holds d.mu.
func (d *Directory) validAt(c *accounts.Card, now time.Time) bool {
	skew := d.skew()
	return now.Before(c.Expires.Add(skew)) && !c.NotBefore.After(now.Add(skew))
}

// changedCh returns a channel closed at the next change.
func (d *Directory) changedCh() <-chan struct{} {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.changed
}

// bump records a change; the caller holds d.mu for writing.
func (d *Directory) bump() {
	d.gen++
	close(d.changed)
	d.changed = make(chan struct{})
}

// Reasons carried by EventDirectoryUnverifiable events (EventData.Reason).
const (
	// DirectoryUnsignedDelete: a KV delete marker. Deleting a key proves nothing (anyone who
	// can get a marker stored can delete); the verified entry stays in use.
	DirectoryUnsignedDelete = "unsigned_delete"
	// DirectoryUnsignedPurge: a KV purge marker; the verified entry stays in use.
	DirectoryUnsignedPurge = "unsigned_purge"
	// DirectoryUnverifiable: a value that does not verify up to a trusted operator (bad
	// token, unknown signer, untrusted operator, another account's token).
	DirectoryUnverifiable = "unverifiable"
	// DirectoryMisplaced: a valid token stored under a key it does not belong to.
	DirectoryMisplaced = "misplaced"
	// DirectoryRollback: a valid token older than the one in use.
	DirectoryRollback = "rollback"
	// DirectoryBadKey: a key of the peer namespace that does not name a peer account.
	DirectoryBadKey = "bad_key"
)

// apply processes one directory entry (in stream order). op is
// jetstream.KeyValuePut, Delete or Purge. Delete and purge markers change nothing: only a
// verified value can retire a verified one.
func (d *Directory) apply(key string, value []byte, rev uint64, op jetstream.KeyValueOp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dk, known := accounts.ParseDirectoryKey(key)
	switch {
	case !known && strings.HasPrefix(key, "peer."):
		d.unverifiable(key, rev, DirectoryBadKey, errors.New("malformed peer key"))
		return
	case !known:
		d.log.Debug("sealbus: ignoring unknown directory key", "key", key)
		return
	case dk.Peer == d.account:
		d.unverifiable(key, rev, DirectoryBadKey, errors.New("peer key naming the account itself"))
		return
	}
	set := d.own
	if dk.Peer != "" {
		p, ok := d.peers[dk.Peer]
		if !ok {
			p = newCardSet(dk.Peer)
			d.peers[dk.Peer] = p
		}
		set = p
	}
	switch op {
	case jetstream.KeyValuePut:
	case jetstream.KeyValuePurge:
		d.unverifiable(key, rev, DirectoryUnsignedPurge, errors.New("purge marker; only a revocation in the account JWT, expiry or a newer card retires a verified entry"))
		return
	default:
		d.unverifiable(key, rev, DirectoryUnsignedDelete, errors.New("delete marker; only a revocation in the account JWT, expiry or a newer card retires a verified entry"))
		return
	}
	if dk.Account {
		d.applyAccount(set, key, string(value), rev)
		return
	}
	d.applyCard(set, key, dk.Card, dk.User, string(value), rev)
}

func (d *Directory) applyAccount(set *cardSet, key, token string, rev uint64) {
	ac, err := d.trust.VerifyAccount(token)
	if err != nil {
		d.unverifiable(key, rev, DirectoryUnverifiable, err)
		return
	}
	if ac.Subject != set.account {
		d.unverifiable(key, rev, DirectoryMisplaced, fmt.Errorf("account JWT of %s stored as the JWT of %s", ac.Subject, set.account))
		return
	}
	if set.claims != nil {
		switch {
		case ac.IssuedAt < set.claims.IssuedAt:
			d.unverifiable(key, rev, DirectoryRollback, fmt.Errorf("account JWT issued at %d is older than the one in use (%d); refusing a rollback", ac.IssuedAt, set.claims.IssuedAt))
			return
		case ac.IssuedAt == set.claims.IssuedAt:
			// Issue times have second precision: two JWTs of the same second are told apart
			// by the order they were first stored in, so a replay of the earlier one does
			// not win.
			if _, seen := set.acctSeen[token]; seen {
				if token != set.claimsTok {
					d.unverifiable(key, rev, DirectoryRollback, errors.New("replay of an account JWT already replaced"))
				}
				return
			}
		default:
			clear(set.acctSeen)
		}
	}
	set.acctSeen[token] = struct{}{}
	set.claims, set.claimsTok = ac, token
	d.reselectAll(set)
	d.bump()
}

func (d *Directory) applyCard(set *cardSet, key, name, userKey, token string, rev uint64) {
	c, err := accounts.DecodeCard(token)
	if err != nil {
		d.unverifiable(key, rev, DirectoryUnverifiable, err)
		return
	}
	if c.Account != set.account {
		d.unverifiable(key, rev, DirectoryUnverifiable, fmt.Errorf("%w: card of %s names account %s, not %s", accounts.ErrWrongAccount, c.Name, c.Account, set.account))
		return
	}
	if c.Name != name || c.UserKey != userKey {
		d.unverifiable(key, rev, DirectoryMisplaced, fmt.Errorf("card of %q (%s) stored under %q", c.Name, c.UserKey, key))
		return
	}
	list := set.cands[name]
	known := slices.ContainsFunc(list, func(k *candidate) bool { return k.token == token })
	if !known {
		set.nextOrder++
		list = append(list, &candidate{token: token, card: c, order: set.nextOrder})
	}
	set.cands[name] = list
	if set.claims == nil {
		// The account JWT comes first in a directory written by sealbus; the card is judged
		// when it arrives.
		return
	}
	if !signedBy(set.claims, c.Issuer) {
		d.unverifiable(key, rev, DirectoryUnverifiable, fmt.Errorf("%w: card of %s is signed by %s, not a signing key of account %s", accounts.ErrUnknownSigner, c.Name, c.Issuer, set.account))
	} else if cur, ok := set.cards[name]; ok && (c.IssuedAt.Before(cur.IssuedAt) || known && c.ID != cur.ID && !c.IssuedAt.After(cur.IssuedAt)) {
		d.unverifiable(key, rev, DirectoryRollback, fmt.Errorf("card issued at %s is older than the one in use; refusing a rollback", c.IssuedAt.UTC().Format(time.RFC3339)))
	}
	if d.reselect(set, name) {
		d.bump()
	}
	d.prune(set, name)
}

// cardToken returns the token of the current card of userKey in the directory's own account
// (a client signs its records with its own card as credential).
func (d *Directory) cardToken(userKey string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.own.byKey[userKey]
	if !ok {
		return "", false
	}
	for _, k := range d.own.cands[c.Name] {
		if k.card.ID == c.ID {
			return k.token, true
		}
	}
	return "", false
}

// signedBy reports whether issuer is the account identity key or one of its signing keys.
func signedBy(ac *jwt.AccountClaims, issuer string) bool {
	return issuer != "" && (issuer == ac.Subject || ac.SigningKeys.Contains(issuer))
}

// newest returns the candidate of name signed by a key the claims list with the highest issue
// time (between equal times, the one first stored last), or nil. The caller holds d.mu.
func newest(set *cardSet, name string) *candidate {
	var best *candidate
	for _, k := range set.cands[name] {
		if !signedBy(set.claims, k.card.Issuer) {
			continue
		}
		if best == nil || k.card.IssuedAt.After(best.card.IssuedAt) || k.card.IssuedAt.Equal(best.card.IssuedAt) && k.order > best.order {
			best = k
		}
	}
	return best
}

// reselect recomputes the current card of name under the claims and reports whether it
// changed. The newest candidate signed by the account is the only one that can be current: an
// older card it replaced never comes back, and a revoked or expired newest card leaves the
// name without a current card. The caller holds d.mu.
func (d *Directory) reselect(set *cardSet, name string) bool {
	var next *accounts.Card
	if k := newest(set, name); k != nil {
		c, err := d.trust.VerifyCard(k.token, set.claims)
		switch {
		case err == nil:
			next = c
		case errors.Is(err, accounts.ErrRevoked):
			if _, done := set.revoked[k.card.UserKey]; !done {
				set.revoked[k.card.UserKey] = k.card
				d.log.Info("sealbus: service key revoked", "account", set.account, "service", name, "user_key", k.card.UserKey)
			}
		case onlyTimeProblems(err) && !d.expired(set.claims):
			// Not yet valid or expired: it is still the newest card; reads check its times
			// (validNow), so it becomes usable, or stops being, without another update.
			next = k.card
		default:
			d.log.Warn("sealbus: directory card does not verify", "account", set.account, "service", name, "error", err)
		}
	}
	for _, k := range set.cands[name] {
		if k.card.UserKey != userKeyOf(next) && signedBy(set.claims, k.card.Issuer) && accounts.IsRevoked(set.claims, k.card.UserKey, k.card.IssuedAt) {
			if _, done := set.revoked[k.card.UserKey]; !done {
				set.revoked[k.card.UserKey] = k.card
			}
		}
	}
	cur, had := set.cards[name]
	if next == nil {
		if !had {
			return false
		}
		delete(set.cards, name)
		delete(set.byKey, cur.UserKey)
		return true
	}
	if had && cur.ID == next.ID {
		return false
	}
	if had && cur.UserKey != next.UserKey {
		delete(set.byKey, cur.UserKey)
	}
	d.retire(set, next)
	delete(set.revoked, next.UserKey)
	set.cards[name], set.byKey[next.UserKey] = next, next
	return true
}

func userKeyOf(c *accounts.Card) string {
	if c == nil {
		return ""
	}
	return c.UserKey
}

// reselectAll recomputes every current card (new claims may revoke keys, add or drop signing
// keys). The caller holds d.mu.
func (d *Directory) reselectAll(set *cardSet) {
	names := make([]string, 0, len(set.cands))
	for name := range set.cands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		d.reselect(set, name)
		d.prune(set, name)
	}
}

// prune keeps at most maxCandidates candidates of name: the current card first, then the
// cards signed by a key the claims list, then the others (cards that may wait for a signing key
// the next account JWT adds, or forgeries), newest first in each group. The caller holds d.mu.
func (d *Directory) prune(set *cardSet, name string) {
	list := set.cands[name]
	if len(list) <= maxCandidates {
		return
	}
	cur := set.cards[name]
	rank := func(k *candidate) int {
		switch {
		case cur != nil && k.card.ID == cur.ID:
			return 0
		case set.claims != nil && signedBy(set.claims, k.card.Issuer):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(list, func(a, b *candidate) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		if c := b.card.IssuedAt.Compare(a.card.IssuedAt); c != 0 {
			return c
		}
		return cmpUint(b.order, a.order)
	})
	clear(list[maxCandidates:])
	set.cands[name] = list[:maxCandidates]
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// onlyTimeProblems reports whether every problem of a card verification is about its times.
func onlyTimeProblems(err error) bool {
	var ve *accounts.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 {
		return false
	}
	for _, p := range ve.Problems {
		if !errors.Is(p, accounts.ErrExpired) && !errors.Is(p, accounts.ErrNotYetValid) {
			return false
		}
	}
	return true
}

// retire records the cards that c replaces by a rotation: earlier cards of the same service
// signed by the account (current, refused as revoked, or seen in the directory) whose curve
// key c lists as a previous key. The caller holds d.mu.
func (d *Directory) retire(set *cardSet, c *accounts.Card) {
	var olds []*accounts.Card
	if cur, ok := set.cards[c.Name]; ok {
		olds = append(olds, cur)
	}
	for _, r := range set.revoked {
		olds = append(olds, r)
	}
	for _, k := range set.cands[c.Name] {
		if signedBy(set.claims, k.card.Issuer) {
			olds = append(olds, k.card)
		}
	}
	for _, p := range c.PreviousCurveKeys {
		for _, old := range olds {
			if old.Name != c.Name || old.CurveKey != p.CurveKey || old.UserKey == c.UserKey || old.IssuedAt.After(c.IssuedAt) {
				continue
			}
			if _, done := set.retired[old.UserKey]; done {
				continue
			}
			set.retired[old.UserKey] = retiredCard{card: old, replaced: c.IssuedAt, graceEnds: p.Until}
			d.log.Info("sealbus: service key rotated", "account", set.account, "service", c.Name, "old_user_key", old.UserKey, "user_key", c.UserKey, "grace_until", p.Until)
		}
	}
}

// unverifiable logs and reports an entry that is ignored, with its reason (Directory*
// constants). The caller holds d.mu.
func (d *Directory) unverifiable(key string, rev uint64, reason string, err error) {
	d.log.Warn("sealbus: ignoring unverifiable directory entry", "key", key, "revision", rev, "reason", reason, "error", err)
	d.report(Event{
		Type:    EventDirectoryUnverifiable,
		Subject: accounts.DirectorySubject(d.account, key),
		Data:    EventData{Key: key, Revision: rev, Reason: reason, Error: err.Error()},
	})
}

// The directory view (docs/ARCHITECTURE.md, "The directory"): the account's part of the
// operator account's directory, mirrored into the account as accounts.DirectoryView. Services
// may only make single-key direct gets on it; the client reads the index
// (accounts.DirectoryIndexKey: each key and the stream sequence of its value), gets the keys
// whose sequence moved, and polls the newest message of the view to learn of changes. Every
// answer comes to the client's private inbox, and only answers that carry the view's own
// stream, subject and sequence headers are used.

// viewReader is the client's position in its account's directory view.
type viewReader struct {
	nc      *nats.Conn
	account string
	applied map[string]uint64 // key -> stream sequence of the value applied
	newest  uint64            // sequence of the view's newest message when last fully read
}

func newViewReader(nc *nats.Conn, account string) *viewReader {
	return &viewReader{nc: nc, account: account, applied: map[string]uint64{}}
}

// viewEntry is one direct get answer of the view.
type viewEntry struct {
	key   string
	value []byte
	seq   uint64
	op    jetstream.KeyValueOp
	found bool
}

// maxIndexKeys bounds the keys of an index the client reads.
const maxIndexKeys = 1 << 16

// getConcurrency bounds the direct gets in flight while the client reads the directory.
const getConcurrency = 32

// get makes a direct get of key ("account", "card.<name>.<user key>", ..., or ">" for the
// newest message of the view). An answer without exactly one stream, subject and sequence
// header naming the view and the key is an error.
func (r *viewReader) get(ctx context.Context, key string) (viewEntry, error) {
	e := viewEntry{key: key}
	m, err := r.nc.RequestWithContext(ctx, accounts.DirectoryGetSubject(r.account, key), nil)
	if err != nil {
		return e, err
	}
	if st := m.Header.Get("Status"); st != "" {
		if st == "404" {
			return e, nil
		}
		return e, fmt.Errorf("direct get of %s: status %s", key, st)
	}
	one := func(h string) (string, bool) {
		v := m.Header.Values(h)
		return firstOf(v), len(v) == 1
	}
	stream, ok1 := one(jetstream.StreamHeader)
	subject, ok2 := one(jetstream.SubjectHeader)
	seqStr, ok3 := one(jetstream.SequenceHeader)
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	switch {
	case !ok1 || !ok2 || !ok3 || err != nil || seq == 0:
		return e, fmt.Errorf("direct get of %s: answer without the view's headers", key)
	case stream != accounts.DirectoryView:
		return e, fmt.Errorf("direct get of %s: answer from stream %q", key, stream)
	case key == ">" && !strings.HasPrefix(subject, accounts.DirectorySubject(r.account, "")):
		return e, fmt.Errorf("direct get of the newest entry: answer for subject %q", subject)
	case key != ">" && subject != accounts.DirectorySubject(r.account, key):
		return e, fmt.Errorf("direct get of %s: answer for subject %q", key, subject)
	}
	e.value, e.seq, e.found = m.Data, seq, true
	switch m.Header.Get("KV-Operation") {
	case "DEL":
		e.op = jetstream.KeyValueDelete
	case "PURGE":
		e.op = jetstream.KeyValuePurge
	default:
		e.op = jetstream.KeyValuePut
	}
	return e, nil
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// sync reads what changed in the view since the last sync and applies it to d: when the
// view's newest message moved, the index, then every key whose sequence in the index is above
// the one applied, in stream order. Keys whose answer is older than the index says (a replica
// that has not caught up) are read again at the next sync.
func (d *Directory) sync(ctx context.Context, r *viewReader) error {
	newest, err := r.get(ctx, ">")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDirectory, err)
	}
	if !newest.found {
		return fmt.Errorf("%w: the directory view is empty (account not set up)", ErrNoDirectory)
	}
	if newest.seq == r.newest {
		return nil
	}
	ie, err := r.get(ctx, accounts.DirectoryIndexKey)
	if err != nil {
		return fmt.Errorf("%w: index: %v", ErrNoDirectory, err)
	}
	if !ie.found {
		return fmt.Errorf("%w: the directory has no index (account not set up)", ErrNoDirectory)
	}
	var idx struct {
		Keys map[string]uint64 `json:"keys"`
	}
	if err := json.Unmarshal(ie.value, &idx); err != nil || len(idx.Keys) > maxIndexKeys {
		return fmt.Errorf("%w: the directory index does not parse", ErrNoDirectory)
	}
	var want []string
	for k, seq := range idx.Keys {
		if seq > r.applied[k] {
			if _, ok := accounts.ParseDirectoryKey(k); ok || strings.HasPrefix(k, "peer.") {
				want = append(want, k)
			}
		}
	}
	entries := make([]viewEntry, len(want))
	errs := make([]error, len(want))
	sem := make(chan struct{}, getConcurrency)
	var wg sync.WaitGroup
	for i, k := range want {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			entries[i], errs[i] = r.get(ctx, k)
		})
	}
	wg.Wait()
	complete := true
	var got []viewEntry
	for i, e := range entries {
		switch {
		case errs[i] != nil:
			d.log.Debug("sealbus: directory entry not read", "key", e.key, "error", errs[i])
			complete = false
		case !e.found || e.seq < idx.Keys[e.key]:
			complete = false // a replica behind the index; read again next time
		default:
			got = append(got, e)
		}
	}
	slices.SortFunc(got, func(a, b viewEntry) int { return cmpUint(a.seq, b.seq) })
	for _, e := range got {
		if e.seq <= r.applied[e.key] {
			continue
		}
		d.apply(e.key, e.value, e.seq, e.op)
		r.applied[e.key] = e.seq
	}
	if complete && ie.seq <= newest.seq {
		r.newest = newest.seq
	}
	return nil
}

// follow syncs the directory every interval until ctx ends.
func (d *Directory) follow(ctx context.Context, r *viewReader, every, timeout time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		if err := d.sync(sctx, r); err != nil && ctx.Err() == nil {
			d.log.Debug("sealbus: directory sync failed; retrying", "error", err)
		}
		cancel()
	}
}

func cloneCard(c *accounts.Card) accounts.Card {
	out := *c
	out.Publish = slices.Clone(c.Publish)
	out.Subscribe = slices.Clone(c.Subscribe)
	out.PreviousCurveKeys = slices.Clone(c.PreviousCurveKeys)
	return out
}
