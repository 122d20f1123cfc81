package bus_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

var (
	worldOnce sync.Once
	world     *sealbustest.World
	worldErr  error
)

// sharedWorld starts one sandbox world for the package's tests.
func sharedWorld(t *testing.T) *sealbustest.World {
	t.Helper()
	worldOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		world, worldErr = sealbustest.NewWorld(ctx, nil)
	})
	if worldErr != nil {
		t.Fatalf("world: %v", worldErr)
	}
	return world
}

func TestMain(m *testing.M) {
	code := m.Run()
	if world != nil {
		world.Close()
	}
	os.Exit(code)
}

func connect(t *testing.T, w *sealbustest.World, account, service string, extra ...bus.Option) *bus.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := w.Connect(ctx, account, service, extra...)
	if err != nil {
		t.Fatalf("connect %s: %v", service, err)
	}
	t.Cleanup(c.Close)
	return c
}

// stored reads the envelope at seq from a stream through an admin connection.
func stored(t *testing.T, w *sealbustest.World, account, stream string, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := w.Admin(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishRoundTripAndAudience(t *testing.T) {
	w := sharedWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	shipping := connect(t, w, sealbustest.Shop, sealbustest.Shipping)
	support := connect(t, w, sealbustest.Shop, sealbustest.Support)
	ctx := context.Background()

	if got := checkout.Directory().Audience("orders.eu.42"); len(got) != 2 || got[0].Name != sealbustest.Billing || got[1].Name != sealbustest.Shipping {
		t.Fatalf("audience of orders.eu.42: %v", got)
	}
	ack, err := checkout.Publish(ctx, "orders.eu.42", []byte(`{"total":42}`), bus.WithContentType("application/json"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != sealbustest.OrdersStream || len(ack.ID) != 32 || ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
	m := stored(t, w, sealbustest.Shop, sealbustest.OrdersStream, ack.Sequence)
	if m.Header.Get("Nats-Msg-Id") != ack.ID {
		t.Fatalf("Nats-Msg-Id %q, want the envelope id %q", m.Header.Get("Nats-Msg-Id"), ack.ID)
	}
	d := envelope.Delivery{Account: checkout.Account(), Subject: m.Subject, Stored: m.Time}
	for _, c := range []*bus.Client{billing, shipping} {
		op, err := c.Open(m.Data, d)
		if err != nil {
			t.Fatalf("%s cannot open: %v", c.Name(), err)
		}
		if string(op.Payload) != `{"total":42}` || op.Sender != checkout.UserKey() || op.ContentType != "application/json" || op.ID.String() != ack.ID {
			t.Fatalf("%s opened %+v", c.Name(), op)
		}
	}
	if _, err := support.Open(m.Data, d); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonNotRecipient}) {
		t.Fatalf("support (not in the audience) opened it: %v", err)
	}

	// orders.us.* is for billing only.
	ack, err = checkout.Publish(ctx, "orders.us.7", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	m = stored(t, w, sealbustest.Shop, sealbustest.OrdersStream, ack.Sequence)
	d.Subject, d.Stored = m.Subject, m.Time
	if _, err := billing.Open(m.Data, d); err != nil {
		t.Fatal(err)
	}
	if _, err := shipping.Open(m.Data, d); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonNotRecipient}) {
		t.Fatalf("shipping opened orders.us: %v", err)
	}
}

func TestPublishChecksBeforeSending(t *testing.T) {
	w := sharedWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	intern := connect(t, w, sealbustest.Shop, sealbustest.Intern)
	ctx := context.Background()
	before := checkout.Metrics().Published
	if _, err := checkout.Publish(ctx, "invoices.1", []byte("x")); !errors.Is(err, bus.ErrForbidden) {
		t.Fatalf("publish outside own card: %v", err)
	}
	if _, err := checkout.Publish(ctx, "orders.*", []byte("x")); !errors.Is(err, bus.ErrInvalidSubject) {
		t.Fatalf("wildcard publish: %v", err)
	}
	// tickets.> is allowed for intern but nobody may read it except support, so it has an
	// audience; a subject with no reader has none.
	if _, err := intern.Publish(ctx, "tickets.1", []byte("x")); err != nil {
		t.Fatalf("tickets publish: %v", err)
	}
	if _, err := checkout.Publish(ctx, "drafts.1", []byte("x")); !errors.Is(err, bus.ErrNoAudience) {
		t.Fatalf("publish with no audience: %v", err)
	}
	if got := checkout.Metrics().Published; got != before {
		t.Fatalf("refused publishes were counted as published: %d -> %d", before, got)
	}
}

func TestPublishAsyncAndBatches(t *testing.T) {
	w := sharedWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout, bus.WithMaxPending(64))
	const n = 500
	futures := make([]bus.PubAckFuture, 0, n)
	for range n {
		f, err := checkout.PublishAsync("orders.us.batch", []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[uint64]bool{}
	var last uint64
	for _, f := range futures {
		ack, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[ack.Sequence] {
			t.Fatalf("sequence %d twice", ack.Sequence)
		}
		if ack.Sequence < last {
			t.Fatalf("publishes from one goroutine stored out of order: %d after %d", ack.Sequence, last)
		}
		seen[ack.Sequence], last = true, ack.Sequence
	}
	m := checkout.Metrics()
	if m.Published < n || m.Signatures >= m.Published {
		t.Fatalf("published %d with %d signatures: async publishes were not batched", m.Published, m.Signatures)
	}
	t.Logf("%d envelopes, %d signatures", m.Published, m.Signatures)
}

func TestPublishJSON(t *testing.T) {
	w := sharedWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	type order struct {
		ID    string `json:"id"`
		Total int    `json:"total"`
	}
	ack, err := bus.PublishJSON(context.Background(), checkout, "orders.eu.json", order{"o-1", 12}, bus.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m := stored(t, w, sealbustest.Shop, sealbustest.OrdersStream, ack.Sequence)
	op, err := billing.Open(m.Data, envelope.Delivery{Account: billing.Account(), Subject: m.Subject, Stored: m.Time})
	if err != nil {
		t.Fatal(err)
	}
	if string(op.Payload) != `{"id":"o-1","total":12}` || op.ContentType != "application/json" || op.Expires.IsZero() {
		t.Fatalf("opened %+v", op)
	}
}

func TestConnectRefusals(t *testing.T) {
	w := sharedWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Another operator's key: the directory cannot be verified.
	other, err := accounts.NewOperator("other")
	if err != nil {
		t.Fatal(err)
	}
	opts := []bus.Option{bus.WithURL(w.Harness.URLs()[0]), bus.WithRootCA(w.Harness.CAFile()), bus.WithCredsFile(w.CredsPath(sealbustest.Shop, sealbustest.Billing)), bus.WithTrustedOperator(other.PublicKey())}
	if _, err := bus.Connect(ctx, opts...); !errors.Is(err, bus.ErrNoDirectory) {
		t.Fatalf("untrusted operator: %v", err)
	}
	// Plaintext is refused before connecting.
	if _, err := bus.Connect(ctx, bus.WithURL("nats://127.0.0.1:1"), bus.WithCredsFile(w.CredsPath(sealbustest.Shop, sealbustest.Billing)), bus.WithTrustedOperator(w.Harness.OperatorKey())); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("plaintext URL: %v", err)
	}
}

func TestUnverifiableDirectoryEntryIsIgnoredAndAudited(t *testing.T) {
	w := sharedWorld(t)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Storage is not trusted: someone with write access to the operator account's directory
	// plants a card.
	ghost := accounts.DirectoryCardKey("ghost", billing.UserKey())
	tp := newTamperer(t, ctx, w, sealbustest.Shop)
	tp.write(ctx, ghost, []byte("eyJhbGciOiJub25lIn0.e30."), jetstream.KeyValuePut)
	defer tp.unlist(context.Background(), ghost)
	deadline := time.Now().Add(10 * time.Second)
	for billing.Metrics().Unverifiable == 0 {
		if time.Now().After(deadline) {
			t.Fatal("unverifiable entry not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := billing.Directory().Card("ghost"); ok {
		t.Fatal("planted card used")
	}
	log, done, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for {
		recs, _, err := log.Tail(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			if r.Verified() && r.Event.Type == bus.EventDirectoryUnverifiable && r.Event.Data.Key == ghost && r.Event.Source == bus.EventSource(billing.Account(), sealbustest.Billing) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no audit event for the planted card")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishRateLimit(t *testing.T) {
	w := sharedWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout, bus.WithPublishRate(0.001, 1))
	if _, err := checkout.Publish(context.Background(), "orders.us.rate", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// The burst is spent and the next token is ~17 minutes away: a publish whose context
	// ends sooner is refused at once, before anything is sealed or sent.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := checkout.Metrics().Signatures
	if _, err := checkout.Publish(ctx, "orders.us.rate", []byte("2")); err == nil {
		t.Fatal("publish above the rate limit succeeded")
	}
	if checkout.Metrics().Signatures != before {
		t.Fatal("a rate-limited publish was sealed")
	}
}

func TestAuditFollow(t *testing.T) {
	w := sharedWorld(t)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log, closeLog, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	_, last, err := log.Tail(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := billing.Audit(ctx, bus.Event{Type: "sealbus.test.follow", Subject: "orders.x", Data: bus.EventData{Reason: "testing"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan operator.AuditRecord, 1)
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- log.Follow(fctx, last, func(r operator.AuditRecord) error {
			if r.Event != nil && r.Event.Type == "sealbus.test.follow" {
				got <- r
			}
			return nil
		})
	}()
	select {
	case r := <-got:
		svc, err := w.Harness.Provisioner().Keystore.LoadService(sealbustest.Shop, sealbustest.Billing)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Verified() || r.Verification.Writer != sealbustest.Billing || r.Subject != accounts.AuditSubject(sealbustest.Billing, svc.Spec.EvidenceToken) || r.Event.Source != bus.EventSource(billing.Account(), sealbustest.Billing) || r.Event.Data.Reason != "testing" || r.Sequence <= last {
			t.Fatalf("record %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("event not followed")
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow after cancel: %v", err)
	}
}
