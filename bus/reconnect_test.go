package bus_test

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/faultproxy"
	"github.com/sealbus/sealbus/sealbustest"
)

// proxied starts a fault proxy in front of the world's server and connects a service through
// it.
func proxied(t *testing.T, w *sealbustest.World, account, service string, extra ...bus.Option) (*bus.Client, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(w.Harness.URLs()[0])
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(t, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := w.ConnectVia(ctx, p.URL(), account, service, extra...)
	if err != nil {
		t.Fatalf("connect %s through the proxy: %v", service, err)
	}
	t.Cleanup(c.Close)
	return c, p
}

// waitFor polls cond until it holds or the (generous) window ends.
func waitFor(t *testing.T, window time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(window)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", window, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectPingDefaults(t *testing.T) {
	w := sharedWorld(t)
	c := connect(t, w, sealbustest.Shop, sealbustest.Checkout)
	if got := bus.ConnOf(c).Opts.PingInterval; got != bus.DefaultPingInterval {
		t.Fatalf("ping interval %v, want %v", got, bus.DefaultPingInterval)
	}
	if got := bus.ConnOf(c).Opts.MaxPingsOut; got != bus.DefaultMaxPingsOutstanding {
		t.Fatalf("max pings outstanding %d, want %d", got, bus.DefaultMaxPingsOutstanding)
	}
}

// TestFrozenServerDetected: a server that hangs with the connection open (here a proxy that
// holds every byte, as a paused process does) is detected by the pings, the client reconnects
// when it is back, and publishing works again.
func TestFrozenServerDetected(t *testing.T) {
	w := sharedWorld(t)
	c, p := proxied(t, w, sealbustest.Shop, sealbustest.Checkout, bus.WithPingInterval(200*time.Millisecond, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, "orders.us.frozen", []byte("before")); err != nil {
		t.Fatal(err)
	}
	p.SetMode(faultproxy.Freeze)
	// With nats.go's default (2 minutes, 2 outstanding) this would take minutes.
	waitFor(t, 15*time.Second, "the client to find the frozen connection stale", func() bool {
		return !c.Connection().Connected
	})
	p.Restore()
	waitFor(t, 15*time.Second, "the client to reconnect", func() bool { return c.Connection().Connected })
	if _, err := c.Publish(ctx, "orders.us.frozen", []byte("after")); err != nil {
		t.Fatal(err)
	}
}

// shiftClock is a clock that can be moved forward (tests).
type shiftClock struct{ off atomic.Int64 }

func (c *shiftClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *shiftClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// lastOn returns the stream message last stored on subject, or nil.
func lastOn(t *testing.T, w *sealbustest.World, subject string) *jetstream.RawStreamMsg {
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
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPublishExpiredNotResent: envelopes whose acks never came and that are too old to be
// stored within the freshness window are not sent again (a receiver would dead-letter them as
// stale): their publishes fail with ErrPublishExpired, nothing of them is stored, and
// publishing again stores a new message.
func TestPublishExpiredNotResent(t *testing.T) {
	w := sharedWorld(t)
	clk := new(shiftClock)
	c, p := proxied(t, w, sealbustest.Shop, sealbustest.Checkout, bus.WithClock(clk.now))
	const subject = "orders.us.expired"
	p.SetMode(faultproxy.Freeze) // the server never sees these envelopes
	var futures []bus.PubAckFuture
	for i := range 20 {
		f, err := c.PublishAsync(subject, []byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	// Every envelope sealed and sent, waiting for an answer the frozen proxy holds back
	// (OutMsgs would also count other messages, and the last envelope could then be sealed
	// after the clock moves).
	waitFor(t, 10*time.Second, "the envelopes to be sealed and sent", func() bool {
		return bus.AwaitingAnswers(c) >= len(futures)
	})
	clk.advance(c.Freshness()) // they are now as old as the window
	p.Restore()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, f := range futures {
		ack, err := f.Wait(ctx)
		if !errors.Is(err, bus.ErrPublishExpired) {
			t.Fatalf("publish %d: ack %+v, error %v; want ErrPublishExpired", i, ack, err)
		}
	}
	if m := lastOn(t, w, subject); m != nil {
		t.Fatalf("an expired envelope was stored at sequence %d", m.Sequence)
	}
	ack, err := c.Publish(ctx, subject, []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	if m := lastOn(t, w, subject); m == nil || m.Sequence != ack.Sequence {
		t.Fatalf("publishing again: ack %+v, stored %v", ack, m)
	}
}

// storedOn counts the messages the ORDERS stream holds on subject.
func storedOn(t *testing.T, w *sealbustest.World, subject string) uint64 {
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
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// TestPublishResentTogetherAfterReconnect: publishes pending when the connection drops (their
// acks lost; nats.go fails them all with ErrDisconnected), and publishes made while the server
// is unreachable, are all sent again as soon as the connection is back, together rather than
// one after another, and each is stored exactly once.
func TestPublishResentTogetherAfterReconnect(t *testing.T) {
	w := sharedWorld(t)
	c, p := proxied(t, w, sealbustest.Shop, sealbustest.Checkout)
	const subject, n = "orders.us.reconnect", 2000
	var futures []bus.PubAckFuture
	publish := func(count int) {
		for i := range count {
			f, err := c.PublishAsync(subject, []byte{byte(i), byte(i >> 8)})
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
	}
	// Half are sent and lost on the way (the server never sees them) ...
	p.SetMode(faultproxy.Blackhole)
	publish(n / 2)
	waitFor(t, 20*time.Second, "the first half to be sent", func() bool {
		return bus.AwaitingAnswers(c) >= n/2
	})
	// ... then the server goes away, and the other half is published while it is away.
	p.SetMode(faultproxy.Down)
	p.Cut()
	waitFor(t, 10*time.Second, "the client to see the connection drop", func() bool { return !c.Connection().Connected })
	publish(n / 2)
	p.SetMode(faultproxy.Pass)

	// Sent one at a time with a growing pause (as before), 2000 publishes would need minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seqs := map[uint64]bool{}
	for i, f := range futures {
		ack, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("publish %d of %d: %v (metrics %+v)", i, n, err, c.Metrics())
		}
		if seqs[ack.Sequence] {
			t.Fatalf("sequence %d acknowledged twice", ack.Sequence)
		}
		seqs[ack.Sequence] = true
	}
	if got := storedOn(t, w, subject); got != n {
		t.Fatalf("stream holds %d messages on %s, want %d (each exactly once)", got, subject, n)
	}
	m := c.Metrics()
	if m.Resent < n/2 {
		t.Fatalf("%d envelopes sent again, want at least the %d lost ones", m.Resent, n/2)
	}
	if m.PublishFailed != 0 {
		t.Fatalf("%d publishes failed", m.PublishFailed)
	}
	t.Logf("%d publishes across the reconnect: %d sent again, %d reconnects", n, m.Resent, c.Connection().Reconnects)
}
