package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/internal/faultproxy"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestExactlyOnceAcrossProcesses runs three processes of billing on its durable (each its
// own SDK client) while one of them is frozen for seven seconds, from inside its 20th handler
// call, longer than the durable's AckWait and its pull requests' expiry: its acks and its writes to the guard store are held
// and then lost, and the server redelivers its messages to the other two. They wait for the frozen process's outcome
// instead of handling the messages again, and once it is back it records them. Every
// published message is handled exactly once across the three.
func TestExactlyOnceAcrossProcesses(t *testing.T) {
	w := newWorld(t)
	cons := billingDurable(t, w, 2*time.Second)
	p := proxyFor(t, w)
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	h := newHandled()
	const n = 2000
	// The first process freezes in its 20th handler call: the call returns nil, but its handled
	// record and its ack are held, then lost when the proxy cuts the connections 7 s later.
	// Redeliveries go to whichever pull request the server picks; once the frozen process's
	// requests expire (5 s), they reach the other two, which must wait for its outcome.
	frozen := make(chan struct{})
	var calls atomic.Int32
	freezer := func(ctx context.Context, m *consumers.Message) error {
		if calls.Add(1) == 20 {
			p.SetMode(faultproxy.Freeze)
			go func() {
				defer close(frozen)
				time.Sleep(7 * time.Second)
				p.Restore()
			}()
		}
		return h.handler(ctx, m)
	}
	var procs []*bus.Client
	for i := range 3 {
		var c *bus.Client
		handler := h.handler
		if i == 0 {
			c, handler = proxied(t, w, p, sealbustest.Shop, sealbustest.Billing), freezer
		} else {
			c = connect(t, w, sealbustest.Shop, sealbustest.Billing)
		}
		consume(t, c, sealbustest.OrdersStream, sealbustest.Billing, handler,
			consumers.WithWorkers(4), consumers.WithMaxInFlight(64), consumers.WithAckTimeout(200*time.Millisecond))
		procs = append(procs, c)
	}
	futures := make([]bus.PubAckFuture, 0, n)
	for i := range n {
		f, err := checkout.PublishAsync("orders.us.processes", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]string, 0, n)
	for i, f := range futures {
		ack, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		ids = append(ids, ack.ID)
	}
	select {
	case <-frozen:
	case <-time.After(time.Minute):
		t.Fatal("the first process never reached its 20th handler call")
	}
	// The others' deliveries of the frozen process's messages end when they see its outcome
	// (their next look at the store after it is back), which may come after the server has its
	// acks: those are counted as acknowledged without a handler call.
	dedup := func() (d uint64) {
		for _, c := range procs {
			d += c.Metrics().Deduplicated
		}
		return d
	}
	eventually(t, 90*time.Second, "every message handled and acknowledged, and a redelivery of a handled message acknowledged without a handler call",
		func() bool { return h.count() == n && settled(cons) && dedup() > 0 })
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("message %s lost", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("%d messages handled more than once across the processes: %v", len(d), d[:min(len(d), 5)])
	}
	var delivered uint64
	for i, c := range procs {
		m := c.Metrics()
		delivered += m.Delivered
		t.Logf("process %d: handled %d, redeliveries acknowledged without a handler call %d, acks unconfirmed %d, reconnects %d",
			i, m.Delivered, m.Deduplicated, m.AckUnconfirmed, c.Connection().Reconnects)
	}
	if delivered != n {
		t.Fatalf("handler calls that returned nil: %d, want %d", delivered, n)
	}
}

// capture reads the stored bytes of a published envelope with admin rights, as an insider
// who captured them would hold them.
func capture(t *testing.T, w *sealbustest.World, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, sealbustest.OrdersStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// republish stores captured envelope bytes again under a new Nats-Msg-Id, with the
// publisher's own creds and plain nats.go.
func republish(t *testing.T, js jetstream.JetStream, orig *jetstream.RawStreamMsg, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: orig.Subject, Data: orig.Data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil || ack.Duplicate {
		t.Fatalf("replay not stored: %v %+v", err, ack)
	}
}

// handledThenGone publishes one envelope on subject, has a billing process handle it with h,
// then stops that process and closes its client: what it remembered in memory is gone with it.
func handledThenGone(t *testing.T, w *sealbustest.World, h *handled, subject string) *bus.PubAck {
	t.Helper()
	ctx := context.Background()
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	first := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	cs, err := consumers.Consume(ctx, first, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := checkout.Publish(ctx, subject, []byte("once"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the message handled", func() bool { return h.has(ack.ID) })
	cs.Stop()
	<-cs.Done()
	first.Close()
	return ack
}

// TestReplayRefusedAcrossRestartsAndProcesses: the publisher, with raw NATS access, republishes
// a captured envelope under a new Nats-Msg-Id after the process that handled it has stopped
// and another has started, then four more times after yet another process has taken over the
// durable. Every copy is dead-lettered as a replay, whichever process it reaches; the handler
// ran once.
func TestReplayRefusedAcrossRestartsAndProcesses(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	h := newHandled()
	ack := handledThenGone(t, w, h, "orders.us.replayed")

	orig := capture(t, w, ack.Sequence)
	insider, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)

	second := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	secondCS := consume(t, second, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	republish(t, ijs, orig, "replay-after-restart")
	eventually(t, 10*time.Second, "the replay after a restart dead-lettered", func() bool {
		return second.Metrics().DeadLettered[consumers.ReasonReplay] == 1
	})

	// Another process takes over the durable (the restarted one stops).
	third := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, third, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	secondCS.Stop()
	<-secondCS.Done()
	for i := range 4 {
		republish(t, ijs, orig, fmt.Sprintf("replay-%d", i))
	}
	replays := func() uint64 {
		return second.Metrics().DeadLettered[consumers.ReasonReplay] + third.Metrics().DeadLettered[consumers.ReasonReplay]
	}
	eventually(t, 20*time.Second, "five replays dead-lettered across the processes", func() bool { return replays() == 5 })
	if n := third.Metrics().DeadLettered[consumers.ReasonReplay]; n != 4 {
		t.Fatalf("the other process dead-lettered %d replays, want 4", n)
	}
	if calls := h.callsOf(ack.ID); calls != 1 {
		t.Fatalf("handler called %d times for the replayed envelope", calls)
	}
	t.Logf("replays dead-lettered: %d by the restarted process, %d by the other",
		second.Metrics().DeadLettered[consumers.ReasonReplay], third.Metrics().DeadLettered[consumers.ReasonReplay])
}

// TestCopyRefusedAfterTheGuardForgot: the guard store's entries expire (about two freshness
// windows and the AckWait after their write), but a copy stored inside the freshness window
// can wait in the stream longer than that, while the durable is stopped or lags. Here the
// store has forgotten the handled envelope (the operator purged it, as expiry would after a
// long stop), the process is new, and the insider stores a captured envelope again: under a
// new Nats-Msg-Id it is refused as a replay all the same (publishers store envelopes under
// their own id); under its own id JetStream does not store it (the duplicate window covers the
// freshness window). One handler call.
func TestCopyRefusedAfterTheGuardForgot(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	h := newHandled()
	ack := handledThenGone(t, w, h, "orders.us.forgotten")

	admin, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	guard, err := ajs.Stream(ctx, accounts.GuardStream(sealbustest.OrdersStream, sealbustest.Billing))
	if err != nil {
		t.Fatal(err)
	}
	if err := guard.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	orig := capture(t, w, ack.Sequence)
	insider, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	same := &nats.Msg{Subject: orig.Subject, Data: orig.Data, Header: nats.Header{}}
	same.Header.Set(jetstream.MsgIDHeader, ack.ID)
	if pa, err := ijs.PublishMsg(ctx, same); err != nil || !pa.Duplicate {
		t.Fatalf("a copy under the envelope's own id was stored: %v %+v", err, pa)
	}
	republish(t, ijs, orig, "copy-after-the-guard-forgot")

	second := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, second, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	eventually(t, 10*time.Second, "the copy dead-lettered as a replay", func() bool {
		return second.Metrics().DeadLettered[consumers.ReasonReplay] == 1
	})
	if calls := h.callsOf(ack.ID); calls != 1 {
		t.Fatalf("handler called %d times for the copied envelope", calls)
	}
}

// TestCrashAfterClaimLosesNothing: a process claims a message and dies before its handler
// returns (here its connection closes while the handler hangs). Once its heartbeat in the
// guard store expires (the claim lease, 2 s here) and the server redelivers the message, the
// other process takes the claim over and handles it.
func TestCrashAfterClaimLosesNothing(t *testing.T) {
	w := newWorld(t)
	billingDurable(t, w, 2*time.Second)
	ctx := context.Background()
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	entered, hang := make(chan struct{}), make(chan struct{})
	var once sync.Once
	crashed := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	cs, err := consumers.Consume(ctx, crashed, sealbustest.OrdersStream, sealbustest.Billing, func(context.Context, *consumers.Message) error {
		once.Do(func() { close(entered) })
		<-hang // a process that never gets to return
		return nil
	}, consumers.WithClaimLease(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(hang); <-cs.Done() })
	ack, err := checkout.Publish(ctx, "orders.us.crash", []byte("claimed, then the process died"))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	crashed.Close()

	h := newHandled()
	survivor := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, survivor, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithClaimLease(2*time.Second))
	start := time.Now()
	eventually(t, 30*time.Second, "the survivor to handle the crashed process's message", func() bool { return h.has(ack.ID) })
	t.Logf("taken over and handled %v after the crash", time.Since(start).Round(time.Millisecond))
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("duplicates %v", d)
	}
}

// TestInsiderCannotTouchTheGuard plays a hostile service of the account (shipping: it reads
// orders.eu.> through its own durable, so it sees the ids of the envelopes billing handles)
// against billing's replay guard, with raw NATS and its own creds.
func TestInsiderCannotTouchTheGuard(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	store := accounts.GuardStream(sealbustest.OrdersStream, sealbustest.Billing)
	storeSubject := strings.TrimSuffix(accounts.GuardSubjects(sealbustest.OrdersStream, sealbustest.Billing), ">")
	admin, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	storeMsgs := func() uint64 {
		s, err := ajs.Stream(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}

	errs := make(chan error, 64)
	insider, err := sealbustest.InsiderConn(ctx, w.Harness, sealbustest.Shop, sealbustest.Shipping, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	violation := func(subject string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case err := <-errs:
				if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
					return
				}
			case <-deadline:
				t.Fatalf("no permissions violation for %s", subject)
			}
		}
	}

	// A message billing will handle, whose id the insider knows (it is in the envelope
	// header of every copy of the envelope).
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	ack, err := checkout.Publish(ctx, "orders.eu.target", []byte("to billing and shipping"))
	if err != nil {
		t.Fatal(err)
	}
	guesses := []string{ack.ID, "m." + ack.ID, "m." + strings.ToUpper(ack.ID)}

	// 1. Pre-claim the id, or overwrite its entry, by publishing into the store: refused.
	for _, g := range guesses {
		if err := insider.Publish(storeSubject+g, []byte("claimed by the insider")); err != nil {
			t.Fatal(err)
		}
		violation(storeSubject + g)
	}
	// 2. Read, purge, delete from, direct-get or watch billing's store: refused.
	for _, subj := range []string{
		"$JS.API.STREAM.MSG.GET." + store,
		"$JS.API.STREAM.PURGE." + store,
		"$JS.API.STREAM.MSG.DELETE." + store,
		"$JS.API.DIRECT.GET." + store,
		"$JS.API.CONSUMER.CREATE." + store + ".watch",
		"$JS.API.STREAM.INFO." + store,
	} {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := insider.RequestWithContext(rctx, subj, []byte(`{"last_by_subj":"`+storeSubject+`m.x"}`))
		cancel()
		if err == nil {
			t.Fatalf("%s answered", subj)
		}
		violation(subj)
	}
	// 3. Make the server write into the store for it (a JetStream API request whose reply
	// subject is a store subject): the answer is stored, but under a key the insider chose,
	// never the key of the id, which is a keyed hash it cannot compute.
	before := storeMsgs()
	for _, g := range guesses {
		if err := insider.PublishRequest("$JS.API.INFO", storeSubject+g, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := insider.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the injected answers stored", func() bool { return storeMsgs() >= before+uint64(len(guesses)) })

	h := newHandled()
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler)
	eventually(t, 10*time.Second, "billing to handle the message despite the injected entries", func() bool { return h.has(ack.ID) })
	// Its replay is still refused: the genuine entry was not displaced.
	orig := capture(t, w, ack.Sequence)
	pub, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pjs, _ := jetstream.New(pub)
	republish(t, pjs, orig, "replay-after-injection")
	eventually(t, 10*time.Second, "the replay dead-lettered", func() bool { return billing.Metrics().DeadLettered[consumers.ReasonReplay] == 1 })
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("duplicates %v", d)
	}
	t.Logf("keys tried by the insider: %v; none is the entry of the id", guesses)
}

// TestGuardStoreFilledFailsClosed: a hostile service fills billing's guard store through the
// reply-subject path. Billing's guard then cannot claim: the handler is not called (no
// message is handled unchecked), nothing is lost, and once the operator clears the store the
// message is handled exactly once.
func TestGuardStoreFilledFailsClosed(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	admin, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const storeBytes = 32 << 10
	if err := operator.AddConsumer(ctx, admin, operator.ConsumerSpec{
		Stream: sealbustest.OrdersStream, Durable: sealbustest.Billing, FilterSubjects: []string{"orders.>"},
		AckWait: 5 * time.Second, GuardMaxBytes: storeBytes,
	}); err != nil {
		t.Fatal(err)
	}
	ajs, _ := jetstream.New(admin)
	store := accounts.GuardStream(sealbustest.OrdersStream, sealbustest.Billing)
	h := newHandled()
	defer consumers.ShortGuardStoreWait(time.Second)()
	logs := &lockedLog{}
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing, bus.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler)

	insider, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Shipping)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	prefix := strings.TrimSuffix(accounts.GuardSubjects(sealbustest.OrdersStream, sealbustest.Billing), ">")
	full := func() bool {
		s, err := ajs.Stream(ctx, store)
		return err == nil && s.CachedInfo().State.Bytes+1024 > storeBytes
	}
	for i := 0; !full(); i++ {
		if i > 10000 {
			t.Fatal("the store did not fill")
		}
		for j := range 10 {
			_ = insider.PublishRequest("$JS.API.INFO", fmt.Sprintf("%sjunk.%d.%d", prefix, i, j), nil)
		}
		_ = insider.Flush()
	}
	// What is left may still hold a claim (the size of an API answer varies with what the
	// account holds): top it up with answers smaller than a claim (a directory get that finds
	// nothing) until nothing more fits.
	miss := accounts.DirectoryGetSubject(w.Accounts[sealbustest.Shop].PublicKey(), "nothing")
	for i, same := 0, 0; same < 3; i++ {
		if i > 10000 {
			t.Fatal("the store did not fill")
		}
		s, err := ajs.Stream(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		before := s.CachedInfo().State.Bytes
		for j := range 10 {
			_ = insider.PublishRequest(miss, fmt.Sprintf("%smiss.%d.%d", prefix, i, j), nil)
		}
		_ = insider.Flush()
		time.Sleep(20 * time.Millisecond)
		if s, err = ajs.Stream(ctx, store); err != nil {
			t.Fatal(err)
		}
		if s.CachedInfo().State.Bytes == before {
			same++
		} else {
			same = 0
		}
	}

	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	ack, err := checkout.Publish(ctx, "orders.us.filled", []byte("waits for the store"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if h.has(ack.ID) {
		t.Fatal("handled without a claim in the guard store")
	}
	// The stall is visible: deliveries given up for the guard (sealbus_consumer_guard_unavailable_total).
	if n := billing.Metrics().GuardUnavailable; n == 0 {
		t.Fatal("deliveries left unhandled for the full guard store are not counted")
	}
	// And the log says what it is and how to fix it.
	if l := logs.String(); !strings.Contains(l, "replay guard store is full") || !strings.Contains(l, "guard-size") {
		t.Fatalf("the log does not say the guard store is full:\n%s", l)
	}
	st, err := ajs.Stream(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil { // the operator clears the junk
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the message handled once the store has room", func() bool { return h.has(ack.ID) })
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("duplicates %v", d)
	}
}

// TestReplaysPreparedTogether: envelopes and their replays stored back to back reach one
// process at once; with one worker, the copies are prepared concurrently and handled in
// order. Whichever copy claims the id first, the other is refused as a replay and nothing
// stalls (a copy never waits in the ordered path for one queued behind it).
func TestReplaysPreparedTogether(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	checkout := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	insider, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	const pairs = 50
	var ids []string
	for i := range pairs {
		ack, err := checkout.Publish(ctx, "orders.us.pair", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		republish(t, ijs, capture(t, w, ack.Sequence), fmt.Sprintf("copy-%d", i))
		ids = append(ids, ack.ID)
	}
	h := newHandled()
	billing := connect(t, w, sealbustest.Shop, sealbustest.Billing)
	consume(t, billing, sealbustest.OrdersStream, sealbustest.Billing, h.handler, consumers.WithWorkers(1), consumers.WithMaxInFlight(64))
	eventually(t, 30*time.Second, "every envelope handled once and every copy refused", func() bool {
		return h.count() == pairs && billing.Metrics().DeadLettered[consumers.ReasonReplay] == pairs
	})
	for _, id := range ids {
		if !h.has(id) {
			t.Fatalf("envelope %s not handled", id)
		}
	}
	if d := h.duplicates(); len(d) > 0 {
		t.Fatalf("duplicates %v", d)
	}
}

// lockedLog is a log destination several goroutines write to.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
