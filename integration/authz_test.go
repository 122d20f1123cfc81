package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestServerSideAuthorization shows that each forbidden action is refused by the real
// server itself, not only by the SDK: a service connects with plain nats.go and its
// least-privilege credentials, tries the action, and the server answers with a permissions
// violation while the operator's view shows nothing changed.
func TestServerSideAuthorization(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 3*time.Minute)
	if _, err := s.AddAccount(ctx, "A", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for _, st := range []operator.StreamSpec{
		{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage},
		{Name: "PAYMENTS", Subjects: []string{"payments.>"}, Storage: jetstream.FileStorage},
	} {
		if err := s.AddStream(ctx, "A", st); err != nil {
			t.Fatal(err)
		}
	}
	shippingCreds, err := s.AddService(ctx, "A", accounts.ServiceSpec{
		Name: "shipping", Publish: []string{"orders.shipped"}, Subscribe: []string{"orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "shipping"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddService(ctx, "A", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"payments.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "PAYMENTS", Durable: "billing"}},
	}); err != nil {
		t.Fatal(err)
	}
	adminNC, err := s.AdminConn(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	adminJS, _ := jetstream.New(adminNC)

	nc, errs, err := connectRaw(t, s.Deployment, s.URL, shippingCreds)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("allowed actions work", func(t *testing.T) {
		// The control: the same connection can do what its permissions grant.
		if _, err := js.Publish(ctx, "orders.shipped", []byte("allowed")); err != nil {
			t.Fatalf("publish on an allowed subject: %v", err)
		}
		c, err := js.Consumer(ctx, "ORDERS", "shipping")
		if err != nil {
			t.Fatalf("own consumer: %v", err)
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 {
			t.Fatalf("fetched %d messages from its own consumer, want 1", n)
		}
	})

	t.Run("publish outside permissions", func(t *testing.T) {
		pctx, cancel := contextWithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.Publish(pctx, "payments.refund", []byte("forged")); err == nil {
			t.Fatal("publish outside permissions acknowledged")
		}
		errs.expectViolation(t, "payments.refund")
		st, err := adminJS.Stream(ctx, "PAYMENTS")
		if err != nil {
			t.Fatal(err)
		}
		if n := st.CachedInfo().State.Msgs; n != 0 {
			t.Fatalf("PAYMENTS holds %d messages after a forbidden publish", n)
		}
	})

	t.Run("stream create as a service", func(t *testing.T) {
		pctx, cancel := contextWithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.CreateStream(pctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}}); err == nil {
			t.Fatal("stream created by a service")
		}
		errs.expectViolation(t, "$JS.API.STREAM.CREATE.EVIL")
		if _, err := adminJS.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("stream EVIL: %v, want not found", err)
		}
	})

	t.Run("stream delete and purge as a service", func(t *testing.T) {
		pctx, cancel := contextWithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := js.DeleteStream(pctx, "ORDERS"); err == nil {
			t.Fatal("stream deleted by a service")
		}
		errs.expectViolation(t, "$JS.API.STREAM.DELETE.ORDERS")
		// Purge needs the stream handle (STREAM.INFO is granted for its own consumer's stream).
		st, err := js.Stream(ctx, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		pctx2, cancel2 := contextWithTimeout(ctx, 2*time.Second)
		defer cancel2()
		if err := st.Purge(pctx2); err == nil {
			t.Fatal("stream purged by a service")
		}
		errs.expectViolation(t, "$JS.API.STREAM.PURGE.ORDERS")
		info, err := adminJS.Stream(ctx, "ORDERS")
		if err != nil {
			t.Fatalf("ORDERS after a forbidden delete: %v", err)
		}
		if info.CachedInfo().State.Msgs != 1 {
			t.Fatalf("ORDERS holds %d messages, want 1", info.CachedInfo().State.Msgs)
		}
	})

	t.Run("consumer on another stream", func(t *testing.T) {
		pctx, cancel := contextWithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.Consumer(pctx, "PAYMENTS", "billing"); err == nil {
			t.Fatal("another service's consumer bound")
		}
		errs.expectViolation(t, "$JS.API.CONSUMER.INFO.PAYMENTS.billing")
		// Pulling directly from it, bypassing the info call, is refused too.
		if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.billing", nc.NewRespInbox(), []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
		errs.expectViolation(t, "$JS.API.CONSUMER.MSG.NEXT.PAYMENTS.billing")
		// And creating a new consumer, on that stream or its own, is refused.
		pctx2, cancel2 := contextWithTimeout(ctx, 2*time.Second)
		defer cancel2()
		if _, err := js.CreateConsumer(pctx2, "PAYMENTS", jetstream.ConsumerConfig{Durable: "sneaky"}); err == nil {
			t.Fatal("consumer created on another stream")
		}
		errs.expectViolation(t, "$JS.API.CONSUMER.CREATE.PAYMENTS.sneaky")
		if _, err := adminJS.Consumer(ctx, "PAYMENTS", "sneaky"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("consumer sneaky: %v, want not found", err)
		}
	})

	t.Run("writing, batch-reading or watching the directory", func(t *testing.T) {
		acct, err := s.Account("A")
		if err != nil {
			t.Fatal(err)
		}
		billing, err := s.Service("A", "billing")
		if err != nil {
			t.Fatal(err)
		}
		key := accounts.DirectoryCardKey("billing", billing.UserPublicKey())
		// Allowed: a single-key get on the account's directory view.
		m, err := nc.RequestWithContext(ctx, accounts.DirectoryGetSubject(acct.PublicKey(), key), nil)
		if err != nil || string(m.Data) != billing.Card {
			t.Fatalf("reading a card through the view: %v", err)
		}
		view, err := adminJS.Stream(ctx, accounts.DirectoryView)
		if err != nil {
			t.Fatal(err)
		}
		before := view.CachedInfo().State
		// Refused: a KV write of the directory subject, a batch get of the view, a consumer
		// on the view (the directory needs none), and the operator account's API the tenant
		// imports for its mirror.
		if err := nc.Publish(accounts.DirectorySubject(acct.PublicKey(), key), []byte("forged card")); err != nil {
			t.Fatal(err)
		}
		errs.expectViolation(t, accounts.DirectorySubject(acct.PublicKey(), key))
		if err := nc.PublishRequest("$JS.API.DIRECT.GET."+accounts.DirectoryView, nc.NewRespInbox(), []byte(`{"seq":1,"batch":1000}`)); err != nil {
			t.Fatal(err)
		}
		errs.expectViolation(t, "$JS.API.DIRECT.GET."+accounts.DirectoryView)
		pctx, cancel := contextWithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.CreateConsumer(pctx, accounts.DirectoryView, jetstream.ConsumerConfig{Name: "watch"}); err == nil {
			t.Fatal("a service created a consumer on the directory view")
		}
		errs.expectViolation(t, "$JS.API.CONSUMER.CREATE."+accounts.DirectoryView+".watch")
		create := accounts.OperatorAPIPrefix + ".CONSUMER.CREATE." + accounts.DirectoryStream + ".x." + accounts.DirectoryFilter(acct.PublicKey())
		if err := nc.PublishRequest(create, nc.NewRespInbox(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		errs.expectViolation(t, create)
		after, err := adminJS.Stream(ctx, accounts.DirectoryView)
		if err != nil {
			t.Fatal(err)
		}
		if st := after.CachedInfo().State; st.Msgs != before.Msgs || st.LastSeq != before.LastSeq || st.Consumers != 0 {
			t.Fatalf("the directory view changed after forbidden writes: %+v -> %+v", before, st)
		}
	})

	t.Run("plaintext connection when TLS is required", func(t *testing.T) {
		plaintextRefused(t, s.URL)
	})

	t.Run("mTLS without a client certificate", func(t *testing.T) {
		m := natstest.StartServer(t, natstest.WithMTLS())
		if _, err := m.AddAccount(ctx, "A", accounts.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		creds, err := m.AddService(ctx, "A", accounts.ServiceSpec{Name: "svc", Publish: []string{"a.b"}})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = connectRaw(t, m.Deployment, m.URL, creds)
		if err == nil {
			t.Fatal("connection without a client certificate accepted")
		}
		// The server's TLS alert: it asked for a certificate and got none.
		if !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("refused for another reason: %v", err)
		}
		t.Logf("refused: %v", err)
		cert, key, err := m.ClientCert("svc")
		if err != nil {
			t.Fatal(err)
		}
		ok, _, err := connectRaw(t, m.Deployment, m.URL, creds, nats.ClientCert(cert, key))
		if err != nil {
			t.Fatalf("the same service with a client certificate: %v", err)
		}
		ok.Close()
	})
}

// plaintextRefused speaks the NATS protocol in plaintext to a server that requires TLS: the
// server's INFO says TLS is required, and a plaintext CONNECT never gets a PONG.
func plaintextRefused(t *testing.T, url string) {
	t.Helper()
	if err := sealbustest.RefusesPlaintext(url, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
