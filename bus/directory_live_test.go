package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDirectoryKeepsVerifiedEntriesAgainstMarkers stores in a live directory what a service
// can get the server to store there (JetStream API replies go to a subject the requester
// picks): a delete marker for a card, a purge marker, and API responses under the account and
// card keys. Running clients keep the verified card and account JWT, a client that starts
// afterwards finds them in the retained history, and each marker is audited with its reason.
func TestDirectoryKeepsVerifiedEntriesAgainstMarkers(t *testing.T) {
	w := sharedWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const victim = "victim"
	if _, err := w.Harness.AddService(ctx, sealbustest.Shop, accounts.ServiceSpec{Name: victim, Publish: []string{"victim.news"}}); err != nil {
		t.Fatal(err)
	}
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	waitUntil(t, 10*time.Second, "the victim's card", func() bool { _, ok := billing.Directory().Card(victim); return ok })
	claims := billing.Directory().AccountClaims()

	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if acct, err := w.Harness.Provisioner().Keystore.LoadAccount(sealbustest.Shop); err == nil {
			_ = operator.PutAccountJWT(ctx, nc, acct.JWT)
		}
	})

	before := billing.Metrics().Unverifiable
	junk := `{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"KV_SEALBUS_DIRECTORY"}}`
	if err := kv.Delete(ctx, accounts.DirectoryCardKey(victim)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryAccountKey, junk); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryCardKey(victim), junk); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "three unverifiable entries", func() bool { return billing.Metrics().Unverifiable >= before+3 })
	if n := billing.Metrics().UnverifiableByReason[bus.DirectoryUnsignedDelete]; n == 0 {
		t.Fatalf("delete marker not counted by reason: %v", billing.Metrics().UnverifiableByReason)
	}
	if _, ok := billing.Directory().Card(victim); !ok {
		t.Fatal("a delete marker took a verified card out of use")
	}
	if billing.Directory().AccountClaims() != claims {
		t.Fatal("junk under the account key changed the account JWT in use")
	}

	// A client that starts now reads the retained history: the victim itself connects (its
	// own card must verify) and sees its card.
	v := connect(t, w, sealbustest.Shop, victim)
	if _, ok := v.Directory().Card(victim); !ok {
		t.Fatal("a fresh client lost the card behind the delete marker")
	}

	log, done, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	waitUntil(t, 10*time.Second, "an unsigned_delete audit event", func() bool {
		recs, _, err := log.Tail(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if e := r.Event; r.Verified() && e.Type == bus.EventDirectoryUnverifiable && e.Data.Key == accounts.DirectoryCardKey(victim) &&
				e.Data.Reason == bus.DirectoryUnsignedDelete && e.Source == bus.EventSource(billing.Account(), sealbustest.Billing) {
				return true
			}
		}
		return false
	})

	// A purge marker (as a replayed one is stored: the KV-Operation header; the directory
	// stream may refuse the roll-up header of a real purge): every client keeps the card.
	before = billing.Metrics().Unverifiable
	marker := nats.NewMsg("$KV." + accounts.DirectoryBucket + "." + accounts.DirectoryCardKey(victim))
	marker.Header.Set("KV-Operation", "PURGE")
	if _, err := js.PublishMsg(ctx, marker); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the purge marker", func() bool { return billing.Metrics().Unverifiable > before })
	for _, c := range []*bus.Client{billing, v} {
		if _, ok := c.Directory().Card(victim); !ok {
			t.Fatalf("%s dropped the card after a purge marker", c.Name())
		}
	}
}
