package bus

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// fixture is an operator, one account and some services, made with the accounts API.
type fixture struct {
	t    *testing.T
	op   *accounts.Operator
	acct *accounts.Account
	svcs map[string]*accounts.Service
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	op, err := accounts.NewOperator("op")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := op.NewAccount("tenant", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, op: op, acct: acct, svcs: map[string]*accounts.Service{}, now: time.Now()}
}

func (f *fixture) service(name string, pub, sub []string) *accounts.Service {
	f.t.Helper()
	s, err := f.acct.NewService(accounts.ServiceSpec{Name: name, Publish: pub, Subscribe: sub})
	if err != nil {
		f.t.Fatal(err)
	}
	f.svcs[name] = s
	return s
}

type reports struct {
	mu     sync.Mutex
	events []Event
}

func (r *reports) add(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
func (r *reports) count() int  { r.mu.Lock(); defer r.mu.Unlock(); return len(r.events) }

func (f *fixture) directory(r *reports) *Directory {
	trust := accounts.Trust{Operators: []string{f.op.PublicKey()}}
	return newDirectory(f.acct.PublicKey(), trust, time.Now, discard(), r.add)
}

func put(d *Directory, key, val string, rev uint64) {
	d.apply(key, []byte(val), rev, jetstream.KeyValuePut)
}

func TestDirectoryVerifiesAndBuildsAudience(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, nil)
	bob := f.service("bob", nil, []string{"orders.*"})
	carol := f.service("carol", nil, []string{"orders.eu.>"})
	var r reports
	d := f.directory(&r)
	// A card before the account JWT waits for it.
	put(d, accounts.DirectoryCardKey("alice"), alice.Card, 1)
	if _, ok := d.Card("alice"); ok {
		t.Fatal("card used before the account JWT verified it")
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 2)
	put(d, accounts.DirectoryCardKey("bob"), bob.Card, 3)
	put(d, accounts.DirectoryCardKey("carol"), carol.Card, 4)

	if c, ok := d.Card("alice"); !ok || c.UserKey != alice.UserPublicKey() {
		t.Fatalf("alice: %v %v", c, ok)
	}
	if c, ok := d.CardByKey(bob.UserPublicKey()); !ok || c.Name != "bob" {
		t.Fatalf("bob by key: %v %v", c, ok)
	}
	names := func(cs []accounts.Card) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for _, tc := range []struct {
		subject string
		want    []string
	}{
		{"orders.new", []string{"bob"}},
		{"orders.eu.new", []string{"carol"}},
		{"orders.eu", []string{"bob"}},
		{"invoices.new", nil},
	} {
		got := names(d.Audience(tc.subject))
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("Audience(%q) = %v, want %v", tc.subject, got, tc.want)
		}
		rs, _ := d.recipients(tc.subject)
		if len(rs) != len(tc.want) {
			t.Errorf("recipients(%q) = %d, want %d", tc.subject, len(rs), len(tc.want))
		}
	}
	if r.count() != 0 {
		t.Fatalf("valid entries reported as unverifiable: %v", r.events)
	}
}

func TestDirectoryIgnoresUnverifiable(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	other, err := accounts.NewOperator("evil")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.NewAccount("tenant", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := foreign.NewService(accounts.ServiceSpec{Name: "mallory", Subscribe: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var r reports
	d := f.directory(&r)
	put(d, accounts.DirectoryAccountKey, foreign.JWT, 1) // untrusted operator
	if d.AccountClaims() != nil {
		t.Fatal("account JWT of an untrusted operator accepted")
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 2)
	put(d, accounts.DirectoryCardKey("alice"), alice.Card, 3)
	put(d, accounts.DirectoryCardKey("mallory"), mallory.Card, 4) // card of another account
	put(d, accounts.DirectoryCardKey("bob"), alice.Card, 5)       // stored under another name
	put(d, accounts.DirectoryCardKey("alice"), alice.Card+"x", 6) // tampered
	put(d, accounts.DirectoryCardKey("carol"), "not a token", 7)  // garbage
	if _, ok := d.Card("mallory"); ok {
		t.Fatal("card of a foreign account used")
	}
	if _, ok := d.Card("bob"); ok {
		t.Fatal("card stored under another name used")
	}
	if c, ok := d.Card("alice"); !ok || c.UserKey != alice.UserPublicKey() {
		t.Fatal("a tampered entry replaced a verified card")
	}
	if got := len(d.Audience("orders.x")); got != 1 {
		t.Fatalf("audience has %d cards, want only alice", got)
	}
	if r.count() != 5 {
		t.Fatalf("%d unverifiable reports, want 5: %v", r.count(), r.events)
	}
	for _, e := range r.events {
		if e.Type != EventDirectoryUnverifiable || e.Data.Key == "" || e.Data.Error == "" {
			t.Fatalf("bad report %+v", e)
		}
	}
}

func TestDirectoryRevocationAndRollback(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	before := f.acct.JWT
	var r reports
	d := f.directory(&r)
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(d, accounts.DirectoryCardKey("alice"), alice.Card, 2)
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", time.Now()); err != nil {
		t.Fatalf("valid sender refused: %v", err)
	}
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "invoices.new", time.Now()); !errors.Is(err, envelope.ErrSenderForbidden) {
		t.Fatalf("publish outside permissions: %v", err)
	}

	// Account JWT issue times have second precision (jwt/v2 uses the wall clock): the
	// reissued JWT must be strictly newer for the rollback check below to mean something.
	time.Sleep(1100 * time.Millisecond)
	f.acct.Revoke(alice.UserPublicKey(), time.Now())
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 3)
	if _, ok := d.Card("alice"); ok {
		t.Fatal("revoked card still used")
	}
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", time.Now()); !errors.Is(err, envelope.ErrSenderRevoked) {
		t.Fatalf("revoked sender: %v", err)
	}
	// Replaying the older account JWT must not undo the revocation.
	put(d, accounts.DirectoryAccountKey, before, 4)
	if _, ok := d.Card("alice"); ok {
		t.Fatal("rollback to an older account JWT restored a revoked card")
	}
	if r.count() != 1 {
		t.Fatalf("rollback not reported: %v", r.events)
	}
}

func TestDirectoryRotationGrace(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	d := f.directory(new(reports))
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(d, accounts.DirectoryCardKey("alice"), alice.Card, 2)
	sentBefore := time.Now().Add(-time.Second)
	rotatedAt := time.Now().Add(2 * time.Second) // card times have second precision
	f.acct.Now = func() time.Time { return rotatedAt }
	rotated, err := f.acct.RotateService(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	// The account JWT (revoking the old key) arrives before the new card.
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 3)
	put(d, accounts.DirectoryCardKey("alice"), rotated.Card, 4)

	acct := f.acct.PublicKey()
	if err := d.CheckSender(acct, rotated.UserPublicKey(), "orders.new", time.Now()); err != nil {
		t.Fatalf("new key refused: %v", err)
	}
	if err := d.CheckSender(acct, alice.UserPublicKey(), "orders.new", sentBefore); err != nil {
		t.Fatalf("old key refused for an envelope created before the rotation: %v", err)
	}
	if err := d.CheckSender(acct, alice.UserPublicKey(), "orders.new", rotatedAt.Add(2*time.Second)); !errors.Is(err, envelope.ErrSenderRevoked) {
		t.Fatalf("old key accepted for an envelope created after the rotation: %v", err)
	}
	aud := d.Audience("orders.new")
	if len(aud) != 1 || aud[0].CurveKey != rotated.CurvePublicKey() {
		t.Fatalf("audience after rotation: %+v", aud)
	}
}

func TestDirectoryDelete(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	d := f.directory(new(reports))
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(d, accounts.DirectoryCardKey("alice"), alice.Card, 2)
	ch := d.changedCh()
	d.apply(accounts.DirectoryCardKey("alice"), nil, 3, jetstream.KeyValueDelete)
	select {
	case <-ch:
	default:
		t.Fatal("delete did not signal a change")
	}
	if _, ok := d.Card("alice"); ok {
		t.Fatal("deleted card still used")
	}
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", time.Now()); !errors.Is(err, envelope.ErrSenderUnknown) {
		t.Fatalf("deleted sender: %v", err)
	}
}
