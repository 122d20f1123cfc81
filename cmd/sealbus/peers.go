package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
)

// peerCopy reports one directory updated with a peer account's JWT and cards.
type peerCopy struct {
	Into    string `json:"into"`              // account whose directory was written
	From    string `json:"from"`              // peer account copied into it
	Cards   int    `json:"cards"`             // cards copied
	Skipped string `json:"skipped,omitempty"` // why nothing was written
}

// peerSync copies peer accounts into directories for one command, loading each account, its
// cards and its admin connection once.
type peerSync struct {
	s     *session
	accts map[string]*accounts.Account // by name
	cards map[string]map[string]string // account name -> service name -> card
	js    map[string]jetstream.JetStream
	close []func()
}

// syncPeers makes each directory of a cross-account flow hold the other side: for every named
// account and every account of the keystore it shares a stream with (it imports from it, or
// the other imports from it), the peer's account JWT and service cards go into the named
// account's directory and the named account's into the peer's (bus.PutPeer). Publishers then
// encrypt to the importing services and consumers verify the exporting ones, both checked
// against the account JWTs' exports and imports. Every card of the peer is copied (the
// directory uses only those whose permissions fit the flow), so services of one account can
// read the names, public keys and permissions of the peer account's services. A directory
// that does not exist yet (account never pushed) is skipped and reported; its own push fills
// it.
func (a *app) syncPeers(ctx context.Context, s *session, names ...string) ([]peerCopy, error) {
	ps := &peerSync{s: s, accts: map[string]*accounts.Account{}, cards: map[string]map[string]string{}, js: map[string]jetstream.JetStream{}}
	defer func() {
		for _, f := range ps.close {
			f()
		}
	}()
	all, err := s.loadAccounts()
	if err != nil {
		return nil, err
	}
	for _, acct := range all {
		ps.accts[acct.Name] = acct
	}
	type pair struct{ into, from string }
	var pairs []pair
	seen := map[pair]bool{}
	add := func(p pair) {
		if !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	for _, n := range names {
		x, ok := ps.accts[n]
		if !ok {
			return nil, fmt.Errorf("%w: account %s", accounts.ErrNotFound, n)
		}
		for _, y := range all {
			m := y.Name
			if m == n || !accounts.ImportsStreamFrom(x.Claims, y.PublicKey()) && !accounts.ImportsStreamFrom(y.Claims, x.PublicKey()) {
				continue
			}
			add(pair{into: n, from: m})
			add(pair{into: m, from: n})
		}
	}
	var out []peerCopy
	for _, p := range pairs {
		c, err := ps.copy(ctx, p.into, p.from)
		if err != nil {
			return out, fmt.Errorf("copying %s into the directory of %s: %w", p.from, p.into, err)
		}
		if c.Skipped != "" {
			fmt.Fprintf(a.stderr, "sealbus: note: %s's directory not updated with peer %s (%s); run `sealbus push %s`\n", p.into, p.from, c.Skipped, p.into)
		}
		out = append(out, c)
	}
	return out, nil
}

func (ps *peerSync) copy(ctx context.Context, into, from string) (peerCopy, error) {
	res := peerCopy{Into: into, From: from}
	cards, err := ps.cardsOf(from)
	if err != nil {
		return res, err
	}
	js, err := ps.jetStream(ctx, into)
	if err != nil {
		// The account is not on the server (never pushed) or not reachable as its admin:
		// its own push fills its directory.
		res.Skipped = "no admin connection: " + err.Error()
		return res, nil
	}
	if err := operator.PutPeer(ctx, js, ps.accts[from].JWT, cards); err != nil {
		if errors.Is(err, bus.ErrNoDirectory) {
			res.Skipped = "no directory yet"
			return res, nil
		}
		return res, err
	}
	res.Cards = len(cards)
	return res, nil
}

func (ps *peerSync) cardsOf(account string) (map[string]string, error) {
	if c, ok := ps.cards[account]; ok {
		return c, nil
	}
	names, err := ps.s.ks.ListServices(account)
	if err != nil {
		return nil, err
	}
	cards := map[string]string{}
	for _, n := range names {
		svc, err := ps.s.ks.LoadService(account, n)
		if err != nil {
			return nil, err
		}
		cards[n] = svc.Card
	}
	ps.cards[account] = cards
	return cards, nil
}

func (ps *peerSync) jetStream(ctx context.Context, account string) (jetstream.JetStream, error) {
	if js, ok := ps.js[account]; ok {
		return js, nil
	}
	nc, err := ps.s.prov.Admin(ctx, account)
	if err != nil {
		return nil, err
	}
	ps.close = append(ps.close, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ps.js[account] = js
	return js, nil
}

// printPeers writes one line per directory updated or skipped.
func printPeers(w io.Writer, copies []peerCopy) {
	for _, c := range copies {
		if c.Skipped != "" {
			fmt.Fprintf(w, "  peer %s -> directory of %s: skipped (%s)\n", c.From, c.Into, c.Skipped)
			continue
		}
		fmt.Fprintf(w, "  peer %s -> directory of %s: account JWT and %d card(s)\n", c.From, c.Into, c.Cards)
	}
}
