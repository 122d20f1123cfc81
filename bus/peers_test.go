package bus

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// peerFixture: account shop exports orders.public.> ; account bank imports it as shop.orders.>.
func peerFixture(t *testing.T) (f *fixture, bank *accounts.Account, ledger, checkout *accounts.Service) {
	f = newFixture(t)
	var err error
	bank, err = f.op.NewAccount("bank", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	f.acct.Claims.Exports.Add(&jwt.Export{Name: "public orders", Subject: "orders.public.>", Type: jwt.Stream})
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	bank.Claims.Imports.Add(&jwt.Import{Name: "shop orders", Subject: "orders.public.>", Account: f.acct.PublicKey(), LocalSubject: "shop.orders.>", Type: jwt.Stream})
	if err := f.op.Reissue(bank); err != nil {
		t.Fatal(err)
	}
	checkout = f.service("checkout", []string{"orders.>"}, nil)
	ledger, err = bank.NewService(accounts.ServiceSpec{Name: "ledger", Subscribe: []string{"shop.orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return f, bank, ledger, checkout
}

func TestDirectoryPeerAudienceAndSenders(t *testing.T) {
	f, bank, ledger, checkout := peerFixture(t)
	billing := f.service("billing", nil, []string{"orders.>"})

	// Shop's directory: its own cards plus bank as a peer.
	shop := f.directory(new(reports))
	put(shop, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(shop, cardKey(checkout), checkout.Card, 2)
	put(shop, cardKey(billing), billing.Card, 3)
	put(shop, accounts.PeerAccountKey(bank.PublicKey()), bank.JWT, 4)
	put(shop, accounts.PeerCardKey(bank.PublicKey(), "ledger", ledger.UserPublicKey()), ledger.Card, 5)

	aud := shop.Audience("orders.public.eu.1")
	if len(aud) != 2 || aud[0].Name != "billing" || aud[1].Name != "ledger" || aud[1].Account != bank.PublicKey() {
		t.Fatalf("audience of an exported subject: %+v", aud)
	}
	if aud := shop.Audience("orders.internal.1"); len(aud) != 1 || aud[0].Name != "billing" {
		t.Fatalf("a subject that is not exported reached the peer: %+v", aud)
	}

	// Bank's directory: its own cards plus shop as a peer.
	trust := accounts.Trust{Operators: []string{f.op.PublicKey()}}
	bd := newDirectory(bank.PublicKey(), trust, time.Now, discard(), nil)
	put(bd, accounts.DirectoryAccountKey, bank.JWT, 1)
	put(bd, cardKey(ledger), ledger.Card, 2)
	put(bd, accounts.PeerAccountKey(f.acct.PublicKey()), f.acct.JWT, 3)
	put(bd, accounts.PeerCardKey(f.acct.PublicKey(), "checkout", checkout.UserPublicKey()), checkout.Card, 4)

	acct, subj := bd.Origin("shop.orders.eu.1")
	if acct != f.acct.PublicKey() || subj != "orders.public.eu.1" {
		t.Fatalf("origin of an imported subject: %s %s", acct, subj)
	}
	if acct, subj := bd.Origin("bank.internal"); acct != bank.PublicKey() || subj != "bank.internal" {
		t.Fatalf("origin of a local subject: %s %s", acct, subj)
	}
	// Origin is cached per subject for the verified account JWT: a JWT without the import
	// maps the subject to bank itself.
	time.Sleep(1100 * time.Millisecond) // a later issue time (JWT times are in seconds)
	bank.Claims.Imports = nil
	if err := f.op.Reissue(bank); err != nil {
		t.Fatal(err)
	}
	put(bd, accounts.DirectoryAccountKey, bank.JWT, 5)
	if acct, subj := bd.Origin("shop.orders.eu.1"); acct != bank.PublicKey() || subj != "shop.orders.eu.1" {
		t.Fatalf("origin after the import was dropped: %s %s", acct, subj)
	}
	bank.Claims.Imports.Add(&jwt.Import{Name: "shop orders", Subject: "orders.public.>", Account: f.acct.PublicKey(), LocalSubject: "shop.orders.>", Type: jwt.Stream})
	time.Sleep(1100 * time.Millisecond)
	if err := f.op.Reissue(bank); err != nil {
		t.Fatal(err)
	}
	put(bd, accounts.DirectoryAccountKey, bank.JWT, 6)
	if err := bd.CheckSender(f.acct.PublicKey(), checkout.UserPublicKey(), "orders.public.eu.1", time.Now()); err != nil {
		t.Fatalf("peer sender on an exported, imported subject: %v", err)
	}
	if err := bd.CheckSender(f.acct.PublicKey(), checkout.UserPublicKey(), "orders.internal.1", time.Now()); !errors.Is(err, envelope.ErrSenderForbidden) {
		t.Fatalf("peer sender on a subject that is not exported: %v", err)
	}
	other, err := f.op.NewAccount("other", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if err := bd.CheckSender(other.PublicKey(), checkout.UserPublicKey(), "orders.public.eu.1", time.Now()); !errors.Is(err, envelope.ErrSenderUnknown) {
		t.Fatalf("sender of an unknown account: %v", err)
	}
	// A peer entry whose JWT names another account is ignored.
	var r reports
	bd2 := newDirectory(bank.PublicKey(), trust, time.Now, discard(), r.add)
	put(bd2, accounts.PeerAccountKey(other.PublicKey()), f.acct.JWT, 1)
	put(bd2, accounts.PeerAccountKey(bank.PublicKey()), bank.JWT, 2)
	if r.count() != 2 {
		t.Fatalf("misplaced peer entries not reported: %v", r.events)
	}
}
