package bus

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
)

// TestPublishCacheFollowsDirectory: the per-subject cache of the publish checks (permission
// and audience) gives way to every verified directory update at once, and the publisher's own
// card is checked on every call, cached or not: a new reader joins the next publish's
// audience, a revocation stops publishing, and an expired card stops it without any update.
func TestPublishCacheFollowsDirectory(t *testing.T) {
	f := newFixture(t)
	alice, err := f.acct.NewService(accounts.ServiceSpec{Name: "alice", Publish: []string{"orders.>"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bob := f.service("bob", nil, []string{"orders.>"})
	carol := f.service("carol", nil, []string{"orders.eu.>"})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var r reports
	d := newDirectory(f.acct.PublicKey(), accounts.Trust{Operators: []string{f.op.PublicKey()}, Now: now}, now, discard(), r.add)
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 1)
	put(d, accounts.DirectoryCardKey("alice", alice.UserPublicKey()), alice.Card, 2)
	put(d, accounts.DirectoryCardKey("bob", bob.UserPublicKey()), bob.Card, 3)
	me := alice.UserPublicKey()

	check := func(subject string, wantRS int, wantMay, wantOK bool) {
		t.Helper()
		for range 2 { // the second call is served from the cache
			rs, may, ok := d.publishable(me, subject)
			if len(rs) != wantRS || may != wantMay || ok != wantOK {
				t.Fatalf("publishable(%q) = %d recipients, may %v, ok %v; want %d, %v, %v", subject, len(rs), may, ok, wantRS, wantMay, wantOK)
			}
		}
	}
	check("orders.eu.new", 1, true, true)
	check("invoices.new", 0, false, true)
	if got := len(d.audience); got != 2 {
		t.Fatalf("%d subjects cached, want 2", got)
	}
	// Another publisher's key is never served alice's cached answer.
	if _, _, ok := d.publishable(bob.UserPublicKey(), "orders.eu.new"); !ok {
		t.Fatal("bob has a current card")
	}
	if _, may, _ := d.publishable(bob.UserPublicKey(), "orders.eu.new"); may {
		t.Fatal("bob, who may not publish, got alice's cached permission")
	}

	// A new card that may read the subject: in the very next publish's audience.
	put(d, accounts.DirectoryCardKey("carol", carol.UserPublicKey()), carol.Card, 4)
	check("orders.eu.new", 2, true, true)
	check("orders.us.new", 1, true, true)

	// The card expires: refused at once, with nothing new in the directory.
	clock.Add(int64(2 * time.Hour))
	check("orders.eu.new", 0, false, false)
	clock.Add(-int64(2 * time.Hour))
	check("orders.eu.new", 2, true, true)

	// Revocation through a newer account JWT: refused at once.
	time.Sleep(1100 * time.Millisecond) // account JWT issue times have second precision
	clock.Store(time.Now().UnixNano())
	f.acct.Revoke(me, time.Now())
	if err := f.op.Reissue(f.acct); err != nil {
		t.Fatal(err)
	}
	put(d, accounts.DirectoryAccountKey, f.acct.JWT, 5)
	check("orders.eu.new", 0, false, false)
	if r.count() != 0 {
		t.Fatalf("valid entries reported: %v", r.events)
	}
}
