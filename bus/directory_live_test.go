package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

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

// TestDirectoryKeepsVerifiedEntriesAgainstTampering stores in a live directory what only a
// compromised broker (or a holder of the operator account's credentials) can: a delete
// marker for a card, a purge marker, and junk under the account and card keys, each listed in
// the index. Services cannot (TestInsiderCannotTouchTheDirectory). Running clients keep the
// verified card and account JWT and audit each entry with its reason; a client that starts
// afterwards reads only what the tampering left, so it misses the card until the operator
// writes it again, and then finds it.
func TestDirectoryKeepsVerifiedEntriesAgainstTampering(t *testing.T) {
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
	svc, err := w.Harness.Provisioner().Keystore.LoadService(sealbustest.Shop, victim)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := w.Harness.Provisioner().Keystore.LoadAccount(sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	tp := newTamperer(t, ctx, w, sealbustest.Shop)
	restore := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dir, err := w.Harness.Provisioner().DirectoryAdmin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		// The junk is a new value of each key; writing the genuine ones back replaces it.
		if err := operator.PutAccountJWT(ctx, dir, acct.JWT); err != nil {
			t.Fatal(err)
		}
		if err := operator.PublishCard(ctx, dir, victim, svc.Card); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)

	key := accounts.DirectoryCardKey(victim, svc.UserPublicKey())
	before := billing.Metrics().Unverifiable
	junk := []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"KV_SEALBUS_DIRECTORY"}}`)
	tp.write(ctx, key, nil, jetstream.KeyValueDelete)
	waitUntil(t, 10*time.Second, "the delete marker", func() bool { return billing.Metrics().Unverifiable > before })
	tp.write(ctx, accounts.DirectoryAccountKey, junk, jetstream.KeyValuePut)
	waitUntil(t, 10*time.Second, "the junk account JWT", func() bool { return billing.Metrics().Unverifiable > before+1 })
	tp.write(ctx, key, junk, jetstream.KeyValuePut)
	waitUntil(t, 10*time.Second, "three unverifiable entries", func() bool { return billing.Metrics().Unverifiable >= before+3 })
	if n := billing.Metrics().UnverifiableByReason[bus.DirectoryUnsignedDelete]; n == 0 {
		t.Fatalf("delete marker not counted by reason: %v", billing.Metrics().UnverifiableByReason)
	}
	if _, ok := billing.Directory().Card(victim); !ok {
		t.Fatal("a delete marker or junk took a verified card out of use")
	}
	if billing.Directory().AccountClaims() != claims {
		t.Fatal("junk under the account key changed the account JWT in use")
	}
	tp.write(ctx, key, nil, jetstream.KeyValuePurge)
	waitUntil(t, 10*time.Second, "the purge marker", func() bool { return billing.Metrics().Unverifiable >= before+4 })
	if _, ok := billing.Directory().Card(victim); !ok {
		t.Fatal("a purge marker took a verified card out of use")
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
			if e := r.Event; r.Verified() && e.Type == bus.EventDirectoryUnverifiable && e.Data.Key == key &&
				e.Data.Reason == bus.DirectoryUnsignedDelete && e.Source == bus.EventSource(billing.Account(), sealbustest.Billing) {
				return true
			}
		}
		return false
	})

	// A fresh client reads the last value of each key only: with junk in place of the account
	// JWT it cannot start (the broker can always deny service), and it starts again once the
	// operator has written the genuine entries back.
	if c, err := w.Connect(ctx, sealbustest.Shop, victim); err == nil {
		c.Close()
		t.Fatal("a fresh client started on a directory whose account JWT is junk")
	} else if !errors.Is(err, bus.ErrNoDirectory) {
		t.Fatalf("fresh client: %v, want ErrNoDirectory", err)
	}
	restore()
	v := connect(t, w, sealbustest.Shop, victim)
	if _, ok := v.Directory().Card(victim); !ok {
		t.Fatal("the restored card is not in use")
	}
}

func mustJS(t *testing.T, ctx context.Context, w *sealbustest.World) jetstream.JetStream {
	t.Helper()
	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}
