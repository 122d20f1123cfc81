package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

func newWorld(t testing.TB) *sealbustest.World {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func connect(t testing.TB, w *sealbustest.World, account, service string, extra ...bus.Option) *bus.Client {
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

// handled records handler calls by message id.
type handled struct {
	mu    sync.Mutex
	calls map[string]int
	msgs  []*consumers.Message
}

func newHandled() *handled { return &handled{calls: map[string]int{}} }

func (h *handled) handler(ctx context.Context, m *consumers.Message) error {
	h.mu.Lock()
	h.calls[m.ID]++
	h.msgs = append(h.msgs, m)
	h.mu.Unlock()
	return nil
}

func (h *handled) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func (h *handled) duplicates() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, n := range h.calls {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", id, n))
		}
	}
	return out
}

func (h *handled) callsOf(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func (h *handled) has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id] > 0
}

// eventually polls cond until it holds or the (generous) window ends.
func eventually(t testing.TB, window time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(window)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", window, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func consume(t testing.TB, c *bus.Client, stream, durable string, h consumers.Handler, opts ...consumers.Option) *consumers.Consumption {
	t.Helper()
	cs, err := consumers.Consume(context.Background(), c, stream, durable, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Stop(); <-cs.Done() })
	return cs
}

func TestConsumeRoundTripMultiRecipient(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	shipping := connect(t, w, sealbustest.Shop, sealbustest.Shipping)
	hb, hs := newHandled(), newHandled()
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, hb.handler, consumers.WithWorkers(4))
	consume(t, shipping, sealbustest.OrdersStream, sealbustest.Shipping, hs.handler)

	ctx := context.Background()
	want := map[string]string{}
	for i := range 20 {
		subject := fmt.Sprintf("orders.eu.%d", i)
		if i%2 == 1 {
			subject = fmt.Sprintf("orders.us.%d", i)
		}
		ack, err := checkout.Publish(ctx, subject, []byte("order "+subject), bus.WithContentType("text/plain"))
		if err != nil {
			t.Fatal(err)
		}
		want[ack.ID] = subject
	}
	eventually(t, 20*time.Second, "billing to handle 20 and shipping 10", func() bool { return hb.count() == 20 && hs.count() == 10 })
	for _, m := range hb.msgs {
		if want[m.ID] != m.Subject || string(m.Payload) != "order "+m.Subject || m.Sender != sealbustest.Checkout ||
			m.SenderKey != checkout.UserKey() || m.Account != checkout.Account() || m.ContentType != "text/plain" ||
			m.Stream != sealbustest.OrdersStream || m.Sequence == 0 || m.Delivered != 1 || m.Created.IsZero() || m.Stored.IsZero() {
			t.Fatalf("billing got %+v", m)
		}
	}
	for _, m := range hs.msgs {
		if !strings.HasPrefix(m.Subject, "orders.eu.") {
			t.Fatalf("shipping got %s", m.Subject)
		}
	}
	if d := hb.duplicates(); len(d) > 0 {
		t.Fatalf("duplicate handler calls: %v", d)
	}
	eventually(t, 5*time.Second, "delivered counter", func() bool { return billing.Metrics().Delivered == 20 })
}

// shortRetries gives billing's durable on ORDERS maxDeliver deliveries with a short server
// BackOff (Retry follows it) and returns an admin connection of Shop.
func shortRetries(t *testing.T, w *sealbustest.World, maxDeliver int, backoff ...time.Duration) *nats.Conn {
	t.Helper()
	nc, err := w.Admin(context.Background(), sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := operator.AddConsumer(context.Background(), nc, operator.ConsumerSpec{
		Stream: sealbustest.OrdersStream, Durable: sealbustest.Billing, FilterSubjects: []string{"orders.>"},
		MaxDeliver: maxDeliver, BackOff: backoff,
	}); err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestHandlerFailuresRetryThenDeadLetter(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	ctx := context.Background()
	nc := shortRetries(t, w, 5, 100*time.Millisecond, 150*time.Millisecond, 200*time.Millisecond)
	var mu sync.Mutex
	deliveries := map[string][]uint64{}
	good := newHandled()
	cs := consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, func(ctx context.Context, m *consumers.Message) error {
		if string(m.Payload) == "poison" {
			mu.Lock()
			deliveries[m.ID] = append(deliveries[m.ID], m.Delivered)
			mu.Unlock()
			return errors.New("cannot process card 4111-1111")
		}
		return good.handler(ctx, m)
	})
	if cs.MaxDeliver() != 5 {
		t.Fatalf("max deliver %d", cs.MaxDeliver())
	}
	poison, err := checkout.Publish(ctx, "orders.us.poison", []byte("poison"))
	if err != nil {
		t.Fatal(err)
	}
	// Messages behind the failing one keep flowing.
	var ids []string
	for i := range 5 {
		ack, err := checkout.Publish(ctx, "orders.us.ok", []byte(fmt.Sprint("ok ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	eventually(t, 10*time.Second, "the good messages", func() bool { return good.count() == 5 })

	js, _ := jetstream.New(nc)
	dlq, closeDLQ, err := w.Harness.Provisioner().DeadLetters(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDLQ()
	var entry operator.DeadLetterEntry
	eventually(t, 20*time.Second, "the max_deliveries dead letter", func() bool {
		list, err := dlq.List(ctx, 10)
		if err != nil || len(list) == 0 {
			return false
		}
		entry = list[len(list)-1]
		return true
	})
	mu.Lock()
	got := deliveries[poison.ID]
	mu.Unlock()
	if len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("poison deliveries %v, want 1..5", got)
	}
	svc, err := w.Harness.Provisioner().Keystore.LoadService(sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	if !entry.Verified() || entry.Writer != sealbustest.Billing || entry.Subject != accounts.DLQSubject(sealbustest.Billing, svc.Spec.EvidenceToken) ||
		entry.Reason != consumers.ReasonMaxDeliveries || entry.SourceSequence != poison.Sequence || entry.SourceStream != sealbustest.OrdersStream ||
		entry.SourceSubject != "orders.us.poison" || entry.Consumer != sealbustest.Billing || entry.MessageID != poison.ID || entry.Delivered != 5 ||
		!strings.Contains(entry.Error, "last allowed delivery") || strings.Contains(entry.Error, "4111") {
		t.Fatalf("dead letter %+v", entry)
	}
	// The dead letter is the envelope byte for byte.
	s, _ := js.Stream(ctx, sealbustest.OrdersStream)
	orig, err := s.GetMsg(ctx, poison.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if string(orig.Data) != string(entry.Envelope) {
		t.Fatal("dead letter differs from the stored envelope")
	}
	// And a verified audit event says so.
	audit, closeAudit, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAudit()
	eventually(t, 10*time.Second, "the audit event", func() bool {
		recs, _, err := audit.Tail(ctx, 20)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.Verified() && r.Verification.Writer == sealbustest.Billing && r.Event.Type == bus.EventDeadLettered && r.Event.Data.Reason == consumers.ReasonMaxDeliveries &&
				r.Event.Data.Sequence == poison.Sequence && r.Event.Data.DLQSeq == entry.Sequence && r.Event.Data.MessageID == poison.ID {
				if strings.Contains(r.Event.Data.Error, "4111") {
					t.Fatalf("the handler's error text reached the audit event: %q", r.Event.Data.Error)
				}
				return true
			}
		}
		return false
	})
	if m := billing.Metrics(); m.DeadLettered[consumers.ReasonMaxDeliveries] != 1 || m.HandlerFailed != 5 || m.Retried != 4 {
		t.Fatalf("metrics %+v", m)
	}

	// Replay: re-sent with an authorization into the stream it came from.
	res, err := dlq.Replay(ctx, entry.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stream != sealbustest.OrdersStream || res.Subject != "orders.us.poison" || res.Durable != sealbustest.Billing || res.AuthorizationID == "" {
		t.Fatalf("replayed %+v", res)
	}
}

// TestApplicationErrorsStayOutOfEvidence: what a handler says when it refuses a message (Reject),
// fails on the last delivery or panics may quote the decrypted payload; dead letters and audit
// events are stored unencrypted and read by the operator, so they record only the reason.
func TestApplicationErrorsStayOutOfEvidence(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	ctx := context.Background()
	shortRetries(t, w, 2, 50*time.Millisecond)
	const secret = "PAN-4111111111111111"
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, func(ctx context.Context, m *consumers.Message) error {
		switch string(m.Payload) {
		case "reject":
			return consumers.Reject("bad_order", fmt.Errorf("order for %s refused", secret))
		case "panic":
			panic("no handler for " + secret)
		}
		return nil
	})
	for _, p := range []string{"reject", "panic"} {
		if _, err := checkout.Publish(ctx, "orders.us."+p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	dlq, closeDLQ, err := w.Harness.Provisioner().DeadLetters(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDLQ()
	var list []operator.DeadLetterEntry
	eventually(t, 20*time.Second, "both dead letters", func() bool {
		list, err = dlq.List(ctx, 10)
		return err == nil && len(list) == 2
	})
	reasons := map[string]bool{}
	for _, e := range list {
		reasons[e.Reason] = true
		if !e.Verified() || strings.Contains(e.Error, secret) || !strings.Contains(e.Error, "service's log") {
			t.Fatalf("dead letter %s carries the handler's text or is unverified: %q", e.Reason, e.Error)
		}
	}
	if !reasons["bad_order"] || !reasons[consumers.ReasonMaxDeliveries] {
		t.Fatalf("dead-letter reasons %v, want bad_order and max_deliveries", reasons)
	}
	audit, closeAudit, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAudit()
	eventually(t, 10*time.Second, "both audit events", func() bool {
		recs, _, err := audit.Tail(ctx, 50)
		if err != nil {
			return false
		}
		n := 0
		for _, r := range recs {
			if r.Event.Type != bus.EventDeadLettered {
				continue
			}
			if strings.Contains(r.Event.Data.Error, secret) {
				t.Fatalf("audit event carries the handler's text: %q", r.Event.Data.Error)
			}
			n++
		}
		return n == 2
	})
}

func TestRestartMidStreamNoLossNoDuplicate(t *testing.T) {
	w := newWorld(t)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	const n = 300
	h := newHandled()
	first, err := consumers.Consume(context.Background(), billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithWorkers(4), consumers.WithMaxInFlight(32))
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan string, n)
	go func() {
		defer close(published)
		for i := range n {
			ack, err := checkout.Publish(context.Background(), "orders.us.stream", []byte(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
				return
			}
			published <- ack.ID
		}
	}()
	eventually(t, 20*time.Second, "a third handled", func() bool { return h.count() >= n/3 })
	first.Stop()
	<-first.Done()
	if first.Err() != nil {
		t.Fatalf("stopped consumption reports %v", first.Err())
	}
	stoppedAt := h.count()

	// A new process of the same service on the same durable.
	billing2 := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, billing2, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithWorkers(4))
	var ids []string
	for id := range published {
		ids = append(ids, id)
	}
	if len(ids) != n {
		t.Fatalf("published %d", len(ids))
	}
	eventually(t, 45*time.Second, "every message handled after the restart", func() bool { return h.count() == n })
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("message %s lost", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("handler called more than once for %v", d)
	}
	t.Logf("stopped after %d of %d, resumed without loss or duplicate", stoppedAt, n)
}

func TestRotationMidStreamLosesNothing(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	h := newHandled()
	cs := consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler)

	var mu sync.Mutex
	var acked []string
	publish := func(c *bus.Client, from, to int) {
		for i := from; i < to; i++ {
			ack, err := c.Publish(ctx, "orders.us.rot", []byte(fmt.Sprint(i)))
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			mu.Lock()
			acked = append(acked, ack.ID)
			mu.Unlock()
		}
	}
	publish(checkout, 0, 50)
	// Stop billing (as if it were redeployed) with messages sealed to its current key still
	// in the stream, then rotate it.
	cs.Stop()
	<-cs.Done()
	publish(checkout, 50, 100)
	if _, err := w.Harness.RotateService(ctx, sealbustest.Shop, sealbustest.Billing, time.Hour); err != nil {
		t.Fatal(err)
	}
	// checkout sees the new card and seals to the new key from then on.
	eventually(t, 10*time.Second, "checkout to see billing's new card", func() bool {
		c, ok := checkout.Directory().Card(sealbustest.Billing)
		return ok && c.CurveKey != "" && len(c.PreviousCurveKeys) == 1
	})
	publish(checkout, 100, 150)

	// Rotate the publisher too: what it signed before the rotation is still accepted.
	if _, err := w.Harness.RotateService(ctx, sealbustest.Shop, sealbustest.Checkout, time.Hour); err != nil {
		t.Fatal(err)
	}
	checkout2 := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	publish(checkout2, 150, 200)

	billing2 := connect(t, w, sealbustest.Shop, sealbustest.Billing, bus.WithPreviousCreds(w.Harness.PreviousCredsPath(sealbustest.Shop, sealbustest.Billing)))
	consume(t, billing2, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	eventually(t, 30*time.Second, "all 200 handled", func() bool { return h.count() == 200 })
	for _, id := range acked {
		if !h.has(id) {
			t.Fatalf("message %s lost in the rotation", id)
		}
	}
	if m := billing2.Metrics(); len(m.Rejected) != 0 || len(m.DeadLettered) != 0 {
		t.Fatalf("rejections during rotation: %+v", m)
	}
}

func TestRevocationStopsSenderWithinASecond(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	legacy := connect(t, w, sealbustest.Shop, sealbustest.Legacy)
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	h := newHandled()
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler)

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		sent := 0
		defer func() { done <- sent }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if _, err := legacy.Publish(pctx, "orders.legacy.tick", []byte("tick")); err == nil {
				sent++
			}
			cancel()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	eventually(t, 10*time.Second, "legacy messages flowing", func() bool { return h.count() >= 10 })
	revokedAt := time.Now()
	if err := w.Harness.RevokeService(ctx, sealbustest.Shop, sealbustest.Legacy); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "billing's directory to refuse legacy", func() bool {
		_, ok := billing.Directory().CardByKey(legacy.UserKey())
		return !ok
	})
	t.Logf("revocation seen by the consumer %v after it was pushed", time.Since(revokedAt))
	// Keep the publisher trying for a while, then check what got through.
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	sent := <-done
	h.mu.Lock()
	defer h.mu.Unlock()
	late := 0
	for _, m := range h.msgs {
		if m.Created.After(revokedAt.Add(time.Second)) {
			late++
		}
	}
	if late > 0 {
		t.Fatalf("%d messages from the revoked sender created more than a second after the revocation were handled", late)
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := legacy.Publish(pctx, "orders.legacy.tick", []byte("after")); err == nil {
		t.Fatal("the revoked service can still publish")
	}
	t.Logf("legacy published %d messages; %d handled, none created after revocation+1s", sent, len(h.msgs))
}
