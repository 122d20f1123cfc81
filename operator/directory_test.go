package operator_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

// assertHardened checks the directory stream settings SetupAccount applies.
func assertHardened(t *testing.T, cfg jetstream.StreamConfig) {
	t.Helper()
	if cfg.AllowRollup || !cfg.DenyPurge || !cfg.DenyDelete || cfg.MaxMsgsPerSubject != operator.DirectoryHistory ||
		operator.DirectoryHistory != jetstream.KeyValueMaxHistory || !cfg.AllowDirect {
		t.Fatalf("directory stream not hardened: rollup %v deny purge %v deny delete %v history %d direct %v",
			cfg.AllowRollup, cfg.DenyPurge, cfg.DenyDelete, cfg.MaxMsgsPerSubject, cfg.AllowDirect)
	}
}

// TestDirectoryRefusesReplayedPurge reproduces the review's reply-subject injection: a service
// sends a Direct Get for an old purge marker of the directory with the reply subject of
// another key, so the server itself publishes the marker (KV-Operation: PURGE, Nats-Rollup:
// sub) into the directory under that key. On a bucket with the KV API's defaults the roll-up
// wipes the key's history. After SetupAccount (which here hardens a bucket created with those
// defaults, as an older setup would have left it) the stream refuses the roll-up, while admin
// card writes and deletes keep working through the ordinary nats.go KV API.
func TestDirectoryRefusesReplayedPurge(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	acct, err := e.op.NewAccount("shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	sys, err := operator.ConnectSystem(c, e.t, e.op)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if err := operator.PushAccount(c, sys, acct.JWT); err != nil {
		t.Fatal(err)
	}
	nc, err := operator.ConnectAdmin(c, e.t, acct)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// A bucket as the KV API makes it, holding a purge marker and a delete marker.
	old, err := js.CreateKeyValue(c, jetstream.KeyValueConfig{Bucket: accounts.DirectoryBucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"card.old", "card.gone"} {
		if _, err := old.PutString(c, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Purge(c, "card.old"); err != nil {
		t.Fatal(err)
	}
	if err := old.Delete(c, "card.gone"); err != nil {
		t.Fatal(err)
	}
	purgeSeq := lastRevision(t, old, "card.old", jetstream.KeyValuePurge)
	delSeq := lastRevision(t, old, "card.gone", jetstream.KeyValueDelete)

	for range 2 { // idempotent over a hardened stream (DenyPurge cannot be turned off again)
		if err := operator.SetupAccount(c, nc, acct, 1); err != nil {
			t.Fatal(err)
		}
	}
	st, err := js.Stream(c, accounts.DirectoryStream)
	if err != nil {
		t.Fatal(err)
	}
	assertHardened(t, st.CachedInfo().Config)

	// nats.go still binds it as a KV bucket; admin writes work.
	kv, err := js.KeyValue(c, accounts.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := acct.NewService(accounts.ServiceSpec{Name: "ledger", Publish: []string{"ledger.>"}})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := acct.RotateService(ledger, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, card := range []string{ledger.Card, rotated.Card} {
		if err := operator.PublishCard(c, nc, "ledger", card); err != nil {
			t.Fatalf("admin card write on the hardened directory: %v", err)
		}
	}
	temp, err := acct.NewService(accounts.ServiceSpec{Name: "temp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.PublishCard(c, nc, "temp", temp.Card); err != nil {
		t.Fatal(err)
	}
	if err := operator.DeleteCard(c, nc, "temp"); err != nil {
		t.Fatalf("admin card delete on the hardened directory: %v", err)
	}
	if _, err := kv.Get(c, accounts.DirectoryCardKey("temp")); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Fatalf("deleted card still readable: %v", err)
	}
	ent, err := kv.Get(c, accounts.DirectoryAccountKey)
	if err != nil || string(ent.Value()) != acct.JWT {
		t.Fatalf("account JWT in the hardened directory: %v", err)
	}

	// Nobody can roll up or purge the directory now, not even the admin.
	if err := kv.Purge(c, accounts.DirectoryCardKey("ledger")); err == nil {
		t.Fatal("a KV purge (roll-up) was accepted")
	}
	if err := st.Purge(c); err == nil {
		t.Fatal("a stream purge was accepted")
	}
	if err := st.DeleteMsg(c, purgeSeq); err == nil {
		t.Fatal("a message delete was accepted")
	}

	// A service may not make direct gets at all (its user JWT denies them), so it cannot aim
	// an old entry back into the bucket through a get's reply subject.
	svc, err := acct.NewService(accounts.ServiceSpec{Name: "billing", Publish: []string{"billing.invoiced"}})
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := svc.UserKey.Seed()
	violations := make(chan error, 4)
	snc, err := nats.Connect(e.srv.URL(), nats.RootCAs(e.srv.CAFile()), nats.UserJWTAndSeed(svc.UserJWT, string(seed)),
		nats.CustomInboxPrefix(accounts.InboxPrefix(svc.UserPublicKey())),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	req, _ := json.Marshal(map[string]uint64{"seq": purgeSeq})
	if err := snc.PublishMsg(&nats.Msg{Subject: "$JS.API.DIRECT.GET." + accounts.DirectoryStream, Reply: "$KV." + accounts.DirectoryBucket + ".card.ledger", Data: req}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("service direct get: %v, want a permissions violation", err)
		}
	case <-c.Done():
		t.Fatal("the server did not refuse a service's direct get")
	}

	// Defence in depth, for anyone who may make gets (here the admin): the stream refuses a
	// replayed purge marker (roll-ups are off). The old purge marker, then the old delete
	// marker, are replayed into card.ledger.
	target := "$KV." + accounts.DirectoryBucket + "." + accounts.DirectoryCardKey("ledger")
	for _, seq := range []uint64{purgeSeq, delSeq} {
		req, _ := json.Marshal(map[string]uint64{"seq": seq})
		if err := nc.PublishMsg(&nats.Msg{Subject: "$JS.API.DIRECT.GET." + accounts.DirectoryStream, Reply: target, Data: req}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// The server answers both in order through one queue. The delete marker has no roll-up
	// header, so its copy is stored (which the SDK ignores: only signed entries count); once it
	// is there, the purge marker before it has been handled.
	var hist []jetstream.KeyValueEntry
	for {
		hist, err = kv.History(c, accounts.DirectoryCardKey("ledger"))
		if err != nil {
			t.Fatal(err)
		}
		if hist[len(hist)-1].Operation() == jetstream.KeyValueDelete {
			break
		}
		if c.Err() != nil {
			t.Fatal("the replayed delete marker never arrived")
		}
	}
	var puts []string
	for _, h := range hist {
		switch h.Operation() {
		case jetstream.KeyValuePurge:
			t.Fatalf("the replayed purge marker was stored at revision %d", h.Revision())
		case jetstream.KeyValuePut:
			puts = append(puts, string(h.Value()))
		}
	}
	if len(puts) != 2 || puts[0] != ledger.Card || puts[1] != rotated.Card {
		t.Fatalf("card history lost revisions: %d puts kept, want both cards", len(puts))
	}
}

// lastRevision returns the revision (stream sequence) of key's last entry, which must be op.
func lastRevision(t *testing.T, kv jetstream.KeyValue, key string, op jetstream.KeyValueOp) uint64 {
	t.Helper()
	h, err := kv.History(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	last := h[len(h)-1]
	if last.Operation() != op {
		t.Fatalf("%s: last operation %v, want %v", key, last.Operation(), op)
	}
	return last.Revision()
}
