package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
)

// PutPeer writes a peer account's JWT and cards into the directory of account into ("A..."),
// under [accounts.PeerAccountKey] and [accounts.PeerCardKey], keeping at most [CardsKept] cards
// per peer service in the index. nc is an admin connection of the operator account (services
// cannot write the directory). The operator calls it for each account that imports from, or
// exports to, this one, and again after the peer's JWT or cards change (revocation, rotation);
// [Provisioner.SyncPeers] does it for every flow of an account. Receivers verify everything up
// to their trusted operators, so the copy needs no protection beyond the directory's. A
// missing directory is [ErrNoDirectory].
func PutPeer(ctx context.Context, nc *nats.Conn, into, accountJWT string, cards map[string]string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: peer account JWT does not decode", ErrInvalidSpec)
	}
	if !nkeys.IsValidPublicAccountKey(into) || into == ac.Subject {
		return fmt.Errorf("%w: directory account %q", ErrInvalidSpec, into)
	}
	decoded := map[string]*accounts.Card{}
	for name, tok := range cards {
		if !accounts.ValidName(name) {
			return fmt.Errorf("%w: service name %q", ErrInvalidSpec, name)
		}
		c, err := accounts.DecodeCard(tok)
		if err != nil || c.Name != name || c.Account != ac.Subject {
			return fmt.Errorf("%w: card of peer service %s", ErrInvalidSpec, name)
		}
		decoded[name] = c
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	w, err := openDirectory(ctx, nc, into)
	if err != nil {
		return err
	}
	if err := w.put(ctx, accounts.PeerAccountKey(ac.Subject), accountJWT); err != nil {
		return fmt.Errorf("operator: put peer account: %w", err)
	}
	names := make([]string, 0, len(cards))
	for name := range cards {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := w.put(ctx, accounts.PeerCardKey(ac.Subject, name, decoded[name].UserKey), cards[name]); err != nil {
			return fmt.Errorf("operator: put peer card %s: %w", name, err)
		}
		if err := w.keepNewest(ctx, accounts.PeerCardPrefix(ac.Subject, name)); err != nil {
			return err
		}
	}
	return w.commit(ctx)
}

// PeerCopy reports one directory updated with a peer account's JWT and cards.
type PeerCopy struct {
	Into    string `json:"into"`              // account whose directory was written
	From    string `json:"from"`              // peer account copied into it
	Cards   int    `json:"cards"`             // cards copied
	Skipped string `json:"skipped,omitempty"` // why nothing was written
}

// SyncPeers makes each directory of a cross-account flow hold the other side: for every named
// account and every account of the keystore it shares a stream with (it imports from it, or
// the other imports from it), the peer's account JWT and service cards go into the named
// account's directory and the named account's into the peer's ([PutPeer]). Publishers then
// encrypt to the importing services and consumers verify the exporting ones, both checked
// against the account JWTs' exports and imports. Every card of the peer is copied (the
// directory uses only those whose permissions fit the flow), so services of one account can
// read the names, public keys and permissions of the peer account's services. A directory
// that does not exist yet (account never pushed) is skipped and reported in Skipped; its own
// push fills it.
func (p *Provisioner) SyncPeers(ctx context.Context, names ...string) ([]PeerCopy, error) {
	ps := &peerSync{p: p, accts: map[string]*accounts.Account{}, cards: map[string]map[string]string{}, conns: map[string]*nats.Conn{}}
	defer ps.close()
	all, err := p.loadAccounts()
	if err != nil {
		return nil, err
	}
	// The operator account is linked to every tenant by its views, not by a flow between
	// tenants: it has no directory of its own and no cards.
	all = slices.DeleteFunc(all, func(a *accounts.Account) bool { return accounts.ReservedAccountName(a.Name) })
	for _, acct := range all {
		ps.accts[acct.Name] = acct
	}
	type pair struct{ into, from string }
	var pairs []pair
	seen := map[pair]bool{}
	add := func(x pair) {
		if !seen[x] {
			seen[x] = true
			pairs = append(pairs, x)
		}
	}
	for _, n := range names {
		if accounts.ReservedAccountName(n) {
			continue
		}
		x, ok := ps.accts[n]
		if !ok {
			return nil, fmt.Errorf("%w: account %s", accounts.ErrNotFound, n)
		}
		for _, y := range all {
			if y.Name == n || !accounts.ImportsStreamFrom(x.Claims, y.PublicKey()) && !accounts.ImportsStreamFrom(y.Claims, x.PublicKey()) {
				continue
			}
			add(pair{into: n, from: y.Name})
			add(pair{into: y.Name, from: n})
		}
	}
	var out []PeerCopy
	for _, x := range pairs {
		c, err := ps.copy(ctx, x.into, x.from)
		if err != nil {
			return out, fmt.Errorf("operator: copying %s into the directory of %s: %w", x.from, x.into, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// peerSync loads each account, its cards and its admin connection once per SyncPeers.
type peerSync struct {
	p     *Provisioner
	accts map[string]*accounts.Account // by name
	cards map[string]map[string]string // account name -> service name -> card
	conns map[string]*nats.Conn
	dir   *nats.Conn // admin connection of the operator account
}

func (ps *peerSync) close() {
	for _, nc := range ps.conns {
		nc.Close()
	}
	if ps.dir != nil {
		ps.dir.Close()
	}
}

func (ps *peerSync) copy(ctx context.Context, into, from string) (PeerCopy, error) {
	res := PeerCopy{Into: into, From: from}
	cards, err := ps.cardsOf(from)
	if err != nil {
		return res, err
	}
	nc, ok := ps.conns[into]
	if !ok {
		if nc, err = ConnectAdmin(ctx, ps.p.Target, ps.accts[into]); err != nil {
			// The account is not on the server (never pushed) or not reachable as its admin:
			// its own push fills its directory.
			res.Skipped = "no admin connection: " + err.Error()
			return res, nil
		}
		ps.conns[into] = nc
	}
	if ps.dir == nil {
		if ps.dir, err = ps.p.DirectoryAdmin(ctx); err != nil {
			return res, err
		}
	}
	if err := PutPeer(ctx, ps.dir, ps.accts[into].PublicKey(), ps.accts[from].JWT, cards); err != nil {
		if errors.Is(err, ErrNoDirectory) {
			res.Skipped = "no directory yet"
			return res, nil
		}
		return res, err
	}
	if err := WaitView(ctx, ps.dir, nc, ps.accts[into].PublicKey()); err != nil {
		return res, err
	}
	res.Cards = len(cards)
	return res, nil
}

func (ps *peerSync) cardsOf(account string) (map[string]string, error) {
	if c, ok := ps.cards[account]; ok {
		return c, nil
	}
	names, err := ps.p.Keystore.ListServices(account)
	if err != nil {
		return nil, err
	}
	cards := map[string]string{}
	for _, n := range names {
		svc, err := ps.p.Keystore.LoadService(account, n)
		if err != nil {
			return nil, err
		}
		cards[n] = svc.Card
	}
	ps.cards[account] = cards
	return cards, nil
}

// loadAccounts loads every account of the keystore, in name order.
func (p *Provisioner) loadAccounts() ([]*accounts.Account, error) {
	names, err := p.Keystore.ListAccounts()
	if err != nil {
		return nil, err
	}
	out := make([]*accounts.Account, 0, len(names))
	for _, n := range names {
		acct, err := p.Keystore.LoadAccount(n)
		if err != nil {
			return nil, err
		}
		out = append(out, acct)
	}
	return out, nil
}

// ApplyRotation puts on the server a rotation [Provisioner.RotateService] made in the keystore:
// it publishes svc's new card (durables on missing streams skipped), pushes acct, whose JWT
// revokes the old user key, and updates the directories of the accounts that share a stream
// with it ([Provisioner.SyncPeers]). The error says which step failed; the keystore keeps the
// rotation either way, and a later push finishes it.
func (p *Provisioner) ApplyRotation(ctx context.Context, acct *accounts.Account, svc *accounts.Service) ([]PeerCopy, error) {
	if _, err := p.PublishService(ctx, acct.Name, svc, nil, true); err != nil {
		return nil, fmt.Errorf("rotated but not published: %w", err)
	}
	return p.pushAndSync(ctx, acct, "rotated but account not pushed", "rotated but peer directories not updated")
}

// pushAndSync pushes acct and updates the peer directories, each failure with its own words.
func (p *Provisioner) pushAndSync(ctx context.Context, acct *accounts.Account, notPushed, notSynced string) ([]PeerCopy, error) {
	if err := p.PushAccount(ctx, acct); err != nil {
		return nil, fmt.Errorf("%s: %w", notPushed, err)
	}
	peers, err := p.SyncPeers(ctx, acct.Name)
	if err != nil {
		return peers, fmt.Errorf("%s: %w", notSynced, err)
	}
	return peers, nil
}

// ApplyRevocation puts on the server a revocation [Provisioner.RevokeService] made in the
// keystore: it pushes acct (the server disconnects the revoked key and refuses it from then on)
// and updates the directories of the accounts that share a stream with it. The error says
// which step failed.
func (p *Provisioner) ApplyRevocation(ctx context.Context, acct *accounts.Account) ([]PeerCopy, error) {
	return p.pushAndSync(ctx, acct, "revoked in the keystore but not pushed", "revoked and pushed, but peer directories not updated")
}
