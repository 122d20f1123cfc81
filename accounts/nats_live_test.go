package accounts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// This file checks the computed permission set against what nats.go's
// jetstream package actually sends: a service connected with its creds and
// accounts.InboxPrefix can read and watch the directory, use its durable
// consumer, publish envelopes, dead letters and audit events, and cannot
// write the directory or administer streams and consumers.

type liveEnv struct {
	url, caFile string
	op          *accounts.Operator
	acc         *accounts.Account
}

func startLive(t *testing.T) *liveEnv {
	t.Helper()
	op, err := accounts.NewOperator("live")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := op.NewAccount("shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	url, ca := accounts.StartServer(t, op, acc)
	return &liveEnv{url: url, caFile: ca, op: op, acc: acc}
}

// adminConn connects as an unrestricted user of the account (what the CLI
// does to create streams and write the directory).
func (e *liveEnv) adminConn(t *testing.T) *nats.Conn {
	t.Helper()
	ukp, err := nkeysUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.IssuerAccount = e.acc.PublicKey()
	uc.Expires = time.Now().Add(time.Hour).Unix()
	tok, err := uc.Encode(e.acc.SigningKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	nc, err := nats.Connect(e.url, nats.RootCAs(e.caFile), nats.UserJWTAndSeed(tok, string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// permErrors collects asynchronous permission violations per subject.
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		p.mu.Lock()
		p.errs = append(p.errs, err.Error())
		p.mu.Unlock()
	}
}

func (p *permErrors) has(subject string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.Contains(e, `"`+subject+`"`) {
			return true
		}
	}
	return false
}

func (p *permErrors) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.errs)
}

func TestServicePermissionsWithJetStream(t *testing.T) {
	e := startLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The operator's setup: directory, DLQ, audit, an application stream and
	// the service's durable.
	anc := e.adminConn(t)
	ajs, err := jetstream.New(anc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := ajs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: accounts.DirectoryBucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryAccountKey, e.acc.JWT); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: accounts.DLQStream, Subjects: []string{accounts.DLQSubjectPrefix + ".>"}},
		{Name: accounts.AuditStream, Subjects: []string{accounts.AuditSubjectPrefix + ".>"}}, // every writer's subject, for this test
		{Name: "ORDERS", Subjects: []string{"orders.>"}, Duplicates: time.Minute},
	} {
		if _, err := ajs.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ajs.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "orders.created"}); err != nil {
		t.Fatal(err)
	}

	svc, err := e.acc.NewService(accounts.ServiceSpec{
		Name:      "billing",
		Publish:   []string{"orders.billed"},
		Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryCardKey("billing"), svc.Card); err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "billing.creds")
	cb, err := svc.Creds()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credsFile, cb, 0o600); err != nil {
		t.Fatal(err)
	}

	var perms permErrors
	snc, err := nats.Connect(e.url, nats.RootCAs(e.caFile), nats.UserCredentials(credsFile),
		nats.CustomInboxPrefix(accounts.InboxPrefix(svc.UserPublicKey())), nats.ErrorHandler(perms.handler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snc.Close)
	sjs, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}

	// Allowed: account info, directory watch.
	if _, err := sjs.AccountInfo(ctx); err != nil {
		t.Fatalf("account info: %v", err)
	}
	skv, err := sjs.KeyValue(ctx, accounts.DirectoryBucket)
	if err != nil {
		t.Fatalf("open directory: %v", err)
	}
	w, err := skv.WatchAll(ctx)
	if err != nil {
		t.Fatalf("watch directory: %v", err)
	}
	seen := map[string]bool{}
	for u := range w.Updates() {
		if u == nil {
			break // initial values delivered
		}
		seen[u.Key()] = true
	}
	if !seen[accounts.DirectoryAccountKey] || !seen[accounts.DirectoryCardKey("billing")] {
		t.Fatalf("watch saw %v", seen)
	}
	// A later admin write reaches the watcher.
	if _, err := kv.PutString(ctx, accounts.DirectoryCardKey("other"), "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-w.Updates():
		if u == nil || u.Key() != accounts.DirectoryCardKey("other") {
			t.Fatalf("watch update %v", u)
		}
	case <-ctx.Done():
		t.Fatal("no watch update")
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("stop watch: %v", err)
	}
	keys, err := skv.Keys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys %v %v", keys, err)
	}

	// Allowed: its durable, acks, publishing envelopes, dead letters and audit events.
	if _, err := ajs.Publish(ctx, "orders.created", []byte("order")); err != nil {
		t.Fatal(err)
	}
	cons, err := sjs.Consumer(ctx, "ORDERS", "billing")
	if err != nil {
		t.Fatalf("look up durable: %v", err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("fetched %d (%v)", n, msgs.Error())
	}
	if _, err := sjs.Stream(ctx, "ORDERS"); err != nil {
		t.Fatalf("stream info: %v", err)
	}
	tok := svc.Spec.EvidenceToken
	for _, subj := range []string{"orders.billed", accounts.DLQSubject("billing", tok), accounts.AuditSubject("billing", tok)} {
		if _, err := sjs.Publish(ctx, subj, []byte("x")); err != nil {
			t.Errorf("publish %s: %v", subj, err)
		}
	}
	if c := perms.count(); c != 0 {
		t.Fatalf("permission violations on allowed operations: %v", perms.errs)
	}

	// Refused: directory writes, stream and consumer administration, other
	// durables, publishing outside its subjects.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*time.Second) }
	refused := []struct {
		subject string
		do      func(context.Context) error
	}{
		// The directory is read through the watch only: a get names its own reply subject,
		// which could aim an old entry back into the bucket.
		{"$JS.API.DIRECT.GET.KV_SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.card.billing", func(c context.Context) error {
			_, err := skv.Get(c, accounts.DirectoryCardKey("billing"))
			return err
		}},
		{"$KV.SEALBUS_DIRECTORY.card.billing", func(c context.Context) error {
			_, err := skv.PutString(c, accounts.DirectoryCardKey("billing"), "forged")
			return err
		}},
		{"$JS.API.STREAM.CREATE.EVIL", func(c context.Context) error {
			_, err := sjs.CreateStream(c, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
			return err
		}},
		{"$JS.API.STREAM.DELETE.ORDERS", func(c context.Context) error { return sjs.DeleteStream(c, "ORDERS") }},
		{"$JS.API.STREAM.PURGE.KV_SEALBUS_DIRECTORY", func(c context.Context) error {
			s, err := sjs.Stream(c, "KV_"+accounts.DirectoryBucket)
			if err != nil {
				return err
			}
			return s.Purge(c)
		}},
		{"$JS.API.CONSUMER.CREATE.ORDERS.mine", func(c context.Context) error {
			_, err := sjs.CreateConsumer(c, "ORDERS", jetstream.ConsumerConfig{Durable: "mine"})
			return err
		}},
		{"$JS.API.CONSUMER.DELETE.ORDERS.billing", func(c context.Context) error { return sjs.DeleteConsumer(c, "ORDERS", "billing") }},
		{"$JS.API.CONSUMER.INFO.ORDERS.other", func(c context.Context) error {
			_, err := sjs.Consumer(c, "ORDERS", "other")
			return err
		}},
		{"orders.created", func(c context.Context) error {
			_, err := sjs.Publish(c, "orders.created", []byte("forged"))
			return err
		}},
	}
	// Each refused request waits for its timeout, so they run concurrently.
	errs := make([]error, len(refused))
	var wg sync.WaitGroup
	for i, r := range refused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := short()
			defer cancel()
			errs[i] = r.do(c)
		}()
	}
	wg.Wait()
	for i, r := range refused {
		if errs[i] == nil {
			t.Errorf("%s: allowed", r.subject)
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for !perms.has(r.subject) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !perms.has(r.subject) {
			t.Errorf("%s: failed (%v) without a permission violation from the server", r.subject, errs[i])
		}
	}
	// The admin's view: nothing was created, deleted or forged.
	if _, err := ajs.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("EVIL stream: %v", err)
	}
	if ent, err := kv.Get(ctx, accounts.DirectoryCardKey("billing")); err != nil || string(ent.Value()) != svc.Card {
		t.Errorf("directory card changed: %v", err)
	}
}
