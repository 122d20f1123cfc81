package bus

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

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

// cardKey is the directory key of a service's card.
func cardKey(s *accounts.Service) string {
	return accounts.DirectoryCardKey(s.Spec.Name, s.UserPublicKey())
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
	put(d, cardKey(alice), alice.Card, 1)
	if _, ok := d.Card("alice"); ok {
		t.Fatal("card used before the account JWT verified it")
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 2)
	put(d, cardKey(bob), bob.Card, 3)
	put(d, cardKey(carol), carol.Card, 4)

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
	put(d, cardKey(alice), alice.Card, 3)
	put(d, cardKey(mallory), mallory.Card, 4)                                           // card of another account
	put(d, accounts.DirectoryCardKey("bob", alice.UserPublicKey()), alice.Card, 5)      // stored under another name
	put(d, cardKey(alice), alice.Card+"x", 6)                                           // tampered
	put(d, accounts.DirectoryCardKey("carol", alice.UserPublicKey()), "not a token", 7) // garbage
	put(d, accounts.DirectoryCardKey("alice", mallory.UserPublicKey()), alice.Card, 8)  // under another user key
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
	if r.count() != 6 {
		t.Fatalf("%d unverifiable reports, want 6: %v", r.count(), r.events)
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
	put(d, cardKey(alice), alice.Card, 2)
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
	put(d, cardKey(alice), alice.Card, 2)
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
	put(d, cardKey(rotated), rotated.Card, 4)

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

// TestDirectoryMarkersAndJunkKeepVerified: what a service can get the server to store under
// directory keys (copies of delete and purge markers, JetStream API responses) never removes or
// hides a verified entry; each is reported with its reason.
func TestDirectoryMarkersAndJunkKeepVerified(t *testing.T) {
	f := newFixture(t)
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	var r reports
	d := f.directory(&r)
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(d, cardKey(alice), alice.Card, 2)
	claims := d.AccountClaims()
	ch := d.changedCh()

	junk := `{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"KV_SEALBUS_DIRECTORY"}}`
	card := cardKey(alice)
	d.apply(card, nil, 3, jetstream.KeyValueDelete)
	d.apply(card, nil, 4, jetstream.KeyValuePurge)
	d.apply(accounts.DirectoryAccountKey, nil, 5, jetstream.KeyValueDelete)
	d.apply(accounts.DirectoryAccountKey, nil, 6, jetstream.KeyValuePurge)
	put(d, accounts.DirectoryAccountKey, junk, 7)
	put(d, card, junk, 8)
	put(d, card, "", 9)
	d.apply(accounts.PeerCardKey(f.acct.PublicKey(), "alice", alice.UserPublicKey()), nil, 10, jetstream.KeyValueDelete) // own account as a peer

	select {
	case <-ch:
		t.Fatal("markers or junk changed the directory")
	default:
	}
	if d.AccountClaims() != claims {
		t.Fatal("the account JWT in use changed")
	}
	if c, ok := d.Card("alice"); !ok || c.UserKey != alice.UserPublicKey() {
		t.Fatal("verified card removed or replaced")
	}
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", time.Now()); err != nil {
		t.Fatalf("sender refused after markers: %v", err)
	}
	if got := d.Audience("orders.new"); len(got) != 1 || got[0].Name != "alice" {
		t.Fatalf("audience after markers: %+v", got)
	}
	want := []string{
		DirectoryUnsignedDelete, DirectoryUnsignedPurge, DirectoryUnsignedDelete, DirectoryUnsignedPurge,
		DirectoryUnverifiable, DirectoryUnverifiable, DirectoryUnverifiable, DirectoryBadKey,
	}
	if len(r.events) != len(want) {
		t.Fatalf("%d reports, want %d: %+v", len(r.events), len(want), r.events)
	}
	for i, e := range r.events {
		if e.Type != EventDirectoryUnverifiable || e.Data.Reason != want[i] || e.Data.Revision != uint64(i+3) || e.Data.Error == "" {
			t.Errorf("report %d = %+v, want reason %s", i, e, want[i])
		}
	}
}

// TestDirectoryHistoryNewestWins replays a retained history in an order an attacker can make
// (copies of old values stored after newer ones, cards before the account JWT): the newest
// verified account JWT and the newest verified card of each name win, whatever their revision.
func TestDirectoryHistoryNewestWins(t *testing.T) {
	f := newFixture(t)
	base := time.Now().Truncate(time.Second)
	f.acct.Now = func() time.Time { return base }
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	j1 := f.acct.JWT
	f.acct.Now = func() time.Time { return base.Add(10 * time.Second) }
	rotated, err := f.acct.RotateService(alice, time.Hour) // revokes alice's first key
	if err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	j2 := f.acct.JWT

	var r reports
	d := f.directory(&r)
	put(d, cardKey(rotated), rotated.Card, 1)
	put(d, cardKey(alice), alice.Card, 2) // the older card, before any account JWT
	put(d, accounts.DirectoryAccountKey, j1, 3)
	put(d, accounts.DirectoryAccountKey, j2, 4)
	put(d, accounts.DirectoryAccountKey, j1, 5) // copy of the JWT from before the revocation
	put(d, cardKey(alice), alice.Card, 6)       // and of the older card again

	if d.AccountClaims() == nil || !accounts.IsRevoked(d.AccountClaims(), alice.UserPublicKey(), base) {
		t.Fatal("the account JWT that revokes the old key is not the one in use")
	}
	c, ok := d.Card("alice")
	if !ok || c.UserKey != rotated.UserPublicKey() {
		t.Fatalf("current card of alice: %v %v, want the rotated one", c.UserKey, ok)
	}
	// The rotation is recognised whatever the order: the old key signs only what it sent
	// before the rotation, within the grace period.
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", base.Add(time.Second)); err != nil {
		t.Fatalf("old key, envelope from before the rotation: %v", err)
	}
	if err := d.CheckSender(f.acct.PublicKey(), alice.UserPublicKey(), "orders.new", base.Add(20*time.Second)); !errors.Is(err, envelope.ErrSenderRevoked) {
		t.Fatalf("old key, envelope from after the rotation: %v", err)
	}
	for _, e := range r.events {
		if e.Data.Reason != DirectoryRollback {
			t.Errorf("report %+v, want only rollbacks", e)
		}
	}
	if len(r.events) == 0 {
		t.Error("replays not reported")
	}
}

// TestDirectorySignersDecide: a card signed by a key the account JWT does not list never
// replaces the verified one, however new it claims to be, and a flood of them does not push
// it out; a card signed by a signing key the next account JWT adds waits for that JWT, and a
// signing key dropped from the account JWT takes its cards out of use.
func TestDirectorySignersDecide(t *testing.T) {
	f := newFixture(t)
	base := time.Now().Truncate(time.Second)
	f.acct.Now = func() time.Time { return base }
	alice := f.service("alice", []string{"orders.>"}, []string{"orders.>"})
	var r reports
	d := f.directory(&r)
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	card := cardKey(alice)
	put(d, card, alice.Card, 2)
	orig, err := accounts.DecodeCard(alice.Card)
	if err != nil {
		t.Fatal(err)
	}
	reissue := func(signer nkeys.KeyPair, at time.Time) string {
		t.Helper()
		c := *orig
		c.IssuedAt, c.NotBefore, c.Expires = at, at, at.Add(time.Hour)
		tok, err := accounts.IssueCard(signer, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	rev := uint64(3)
	for i := range 3 * maxCandidates {
		forger, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		put(d, card, reissue(forger, base.Add(time.Duration(i+1)*time.Second)), rev)
		rev++
	}
	if c, ok := d.Card("alice"); !ok || c.ID != orig.ID {
		t.Fatal("a card from an unknown signer replaced the verified one")
	}
	if n := len(d.own.cands["alice"]); n > maxCandidates {
		t.Fatalf("%d candidates kept, bound is %d", n, maxCandidates)
	}
	for _, e := range r.events {
		if e.Data.Reason != DirectoryUnverifiable || !strings.Contains(e.Data.Error, "signed by") {
			t.Fatalf("report %+v", e)
		}
	}

	// A new signing key: its card arrives before the account JWT that lists it.
	sk, err := f.acct.AddSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	newer := reissue(sk, base.Add(time.Minute))
	put(d, card, newer, rev)
	if c, _ := d.Card("alice"); c.ID != orig.ID {
		t.Fatal("card of a signing key not yet listed used")
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, rev+1)
	newCard, _ := accounts.DecodeCard(newer)
	if c, ok := d.Card("alice"); !ok || c.ID != newCard.ID {
		t.Fatal("card of the newly listed signing key not used once the account JWT lists it")
	}

	// The signing key is dropped (compromised): its card stops verifying, and the card it
	// had replaced, signed by a key still listed, is the newest verified one again.
	skPub, _ := sk.PublicKey()
	if err := f.acct.RemoveSigningKey(skPub); err != nil {
		t.Fatal(err)
	}
	// Issue times have second precision and the claims would otherwise be those of the
	// first JWT again, which the directory rightly takes for a replay within the same second.
	f.acct.Claims.Tags.Add("signing-key-dropped")
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, rev+2)
	if c, ok := d.Card("alice"); !ok || c.ID != orig.ID {
		t.Fatalf("after the signing key was dropped: current %v %v, want %v", c.ID, ok, orig.ID)
	}
}
