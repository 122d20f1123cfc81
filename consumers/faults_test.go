package consumers_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/internal/faultproxy"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// proxied connects a service through p, a fault proxy in front of the world's server.
func proxied(t *testing.T, w *sealbustest.World, p *faultproxy.Proxy, account, service string, extra ...bus.Option) *bus.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := w.ConnectVia(ctx, p.URL(), account, service, extra...)
	if err != nil {
		t.Fatalf("connect %s through the proxy: %v", service, err)
	}
	t.Cleanup(c.Close)
	return c
}

func proxyFor(t *testing.T, w *sealbustest.World) *faultproxy.Proxy {
	t.Helper()
	u, err := url.Parse(w.Harness.URLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return faultproxy.Start(t, u.Host)
}

// billingDurable reconfigures the billing durable with a short AckWait, so that a message
// whose ack is lost comes back quickly, and returns an admin view of it.
func billingDurable(t *testing.T, w *sealbustest.World, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	return billingDurableDeliveries(t, w, ackWait, operator.DefaultMaxDeliver)
}

func billingDurableDeliveries(t *testing.T, w *sealbustest.World, ackWait time.Duration, maxDeliver int) jetstream.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := operator.AddConsumer(ctx, nc, operator.ConsumerSpec{
		Stream: sealbustest.OrdersStream, Durable: sealbustest.Billing, FilterSubjects: []string{"orders.>"},
		MaxDeliver: maxDeliver, AckWait: ackWait,
	}); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cons, err := js.Consumer(ctx, sealbustest.OrdersStream, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// settled reports whether the durable has nothing pending and nothing unacknowledged.
func settled(cons jetstream.Consumer) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// TestLostAckNotHandledAgain: the handler returns nil but the ack never reaches the server
// (here the consumer's traffic to the server is lost; in production a server stops or a
// leader moves with acks in flight). JetStream redelivers the message after AckWait; the
// consumer acknowledges the redelivery without calling the handler a second time.
func TestLostAckNotHandledAgain(t *testing.T) {
	w := newWorld(t)
	cons := billingDurable(t, w, 2*time.Second)
	p := proxyFor(t, w)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := proxied(t, w, p, sealbustest.Shop, sealbustest.Billing)
	h := newHandled()
	var once sync.Once
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, func(ctx context.Context, m *consumers.Message) error {
		once.Do(func() { p.SetMode(faultproxy.Blackhole) }) // from now on the consumer's acks are lost
		return h.handler(ctx, m)
	}, consumers.WithAckTimeout(100*time.Millisecond))

	ctx := context.Background()
	first, err := checkout.Publish(ctx, "orders.us.lostack", []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the ack to be given up as unconfirmed", func() bool { return billing.Metrics().AckUnconfirmed >= 1 })
	if p.Dropped() == 0 {
		t.Fatal("no ack was lost")
	}
	p.Restore() // the consumer reconnects; the message comes back after AckWait
	ids := []string{first.ID}
	for i := range 9 {
		ack, err := checkout.Publish(ctx, "orders.us.lostack", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	eventually(t, 30*time.Second, "every message handled and the redelivery acknowledged", func() bool {
		return h.count() == len(ids) && billing.Metrics().Deduplicated >= 1 && settled(cons)
	})
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("message %s lost", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("handler called more than once for %v", d)
	}
	m := billing.Metrics()
	if m.Delivered != uint64(len(ids)) {
		t.Fatalf("delivered %d, want %d", m.Delivered, len(ids))
	}
	t.Logf("acks unconfirmed %d, redeliveries acknowledged without a handler call %d", m.AckUnconfirmed, m.Deduplicated)
}

// TestConfirmedAckLostNotHandledAgain: an ack the server confirmed is lost after all (a single
// server that crashes before writing its consumer state), and nothing recorded the message as
// handled, because a confirmed ack needs no record. Every third message's ack is lost once, across
// two processes: the server redelivers them after AckWait; a redelivery that reaches the process
// that did not handle it finds the owner's live claim and goes back to the server after a claim
// lease; the one that reaches the owner is acknowledged without a second handler call.
func TestConfirmedAckLostNotHandledAgain(t *testing.T) {
	w := newWorld(t)
	// A redelivery that reaches the other process goes back to the server: enough deliveries
	// that every one reaches its owner before the last (at 5, 1 in 16 would not, with two
	// processes, and would be dead-lettered instead, see TestGuardLastDeliveryWhileClaimHeld).
	cons := billingDurableDeliveries(t, w, time.Second, 30)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	var mu sync.Mutex
	lost := map[uint64]bool{}
	restore := consumers.LoseAcks(func(seq uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		if seq%3 != 0 || lost[seq] {
			return false
		}
		lost[seq] = true
		return true
	})
	defer restore()
	h := newHandled()
	var procs []*bus.Client
	for range 2 {
		c := connect(t, w, sealbustest.Shop, sealbustest.Billing)
		consume(t, c, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithWorkers(2), consumers.WithClaimLease(2*time.Second))
		procs = append(procs, c)
	}
	ctx := context.Background()
	var ids []string
	for i := range 60 {
		ack, err := checkout.Publish(ctx, "orders.us.lostack", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	eventually(t, 60*time.Second, "every message handled and every lost ack's redelivery acknowledged", func() bool {
		var dedup uint64
		for _, c := range procs {
			dedup += c.Metrics().Deduplicated
		}
		mu.Lock()
		n := len(lost)
		mu.Unlock()
		return h.count() == len(ids) && dedup >= uint64(n) && settled(cons)
	})
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("message %s lost", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("handler called again after a lost ack for %v", d)
	}
	for _, c := range procs {
		if dl := c.Metrics().DeadLettered; len(dl) > 0 {
			t.Fatalf("dead letters %v", dl)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) < 15 {
		t.Fatalf("only %d acks lost", len(lost))
	}
	t.Logf("%d confirmed acks lost; their redeliveries acknowledged without a handler call", len(lost))
}

// TestWorkloadAcrossConnectionLoss publishes and consumes at full speed through one proxy
// while it cuts every connection (acks of both sides in flight are lost) and refuses new ones
// for a moment: every publish is acknowledged and every message handled exactly once.
func TestWorkloadAcrossConnectionLoss(t *testing.T) {
	w := newWorld(t)
	cons := billingDurable(t, w, 3*time.Second)
	p := proxyFor(t, w)
	checkout := proxied(t, w, p, sealbustest.Shop, sealbustest.Checkout)
	billing := proxied(t, w, p, sealbustest.Shop, sealbustest.Billing)
	h := newHandled()
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithWorkers(4), consumers.WithMaxInFlight(256))

	const n = 3000
	futures := make([]bus.PubAckFuture, 0, n)
	for i := range n {
		if i == n/3 {
			p.SetMode(faultproxy.Down)
			p.Cut()
			eventually(t, 10*time.Second, "both clients to see the connection drop", func() bool {
				return !checkout.Connection().Connected && !billing.Connection().Connected
			})
		}
		if i == n/2 {
			p.SetMode(faultproxy.Pass)
		}
		f, err := checkout.PublishAsync("orders.us.workload", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids := make([]string, 0, n)
	for i, f := range futures {
		ack, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		ids = append(ids, ack.ID)
	}
	eventually(t, 60*time.Second, "every message handled and acknowledged", func() bool {
		return h.count() == n && settled(cons)
	})
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("message %s lost", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("%d messages handled more than once: %v", len(d), d[:min(len(d), 5)])
	}
	pm, cm := checkout.Metrics(), billing.Metrics()
	t.Logf("%d messages; publisher: %d resent, %d reconnects; consumer: %d handled, %d deduplicated, %d acks unconfirmed, %d reconnects",
		n, pm.Resent, checkout.Connection().Reconnects, cm.Delivered, cm.Deduplicated, cm.AckUnconfirmed, billing.Connection().Reconnects)
}

// TestReplayOfHandledMessageIsRejected: the same envelope stored again under a new
// Nats-Msg-Id (a new stream position) after its handler succeeded is a replay, not a
// redelivery: it is dead-lettered with reason replay and the handler is not called.
func TestReplayOfHandledMessageIsRejected(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	h := newHandled()
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	ctx := context.Background()
	ack, err := checkout.Publish(ctx, "orders.us.replayed", []byte("once"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the message handled", func() bool { return h.has(ack.ID) && billing.Metrics().Delivered == 1 })

	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	republish(t, js, capture(t, w, ack.Sequence), "replay-"+ack.ID)
	eventually(t, 10*time.Second, "the replay dead-lettered", func() bool {
		return billing.Metrics().DeadLettered[consumers.ReasonReplay] == 1
	})
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("the replay reached the handler: %v", d)
	}
	if m := billing.Metrics(); m.Deduplicated != 0 || m.Delivered != 1 {
		t.Fatalf("replay taken for a redelivery: %+v", m)
	}
}
