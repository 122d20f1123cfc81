package bus_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/demo"
)

// proxied starts a fault proxy in front of the world's server and connects a service through
// it.
func proxied(t *testing.T, w *demo.World, account, service string, extra ...bus.Option) (*bus.Client, *faultProxy) {
	t.Helper()
	u, err := url.Parse(w.SB.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	opts := append([]bus.Option{
		bus.WithURL(p.url()),
		bus.WithRootCA(w.SB.CAFile()),
		bus.WithCredsFile(w.CredsPath(account, service)),
		bus.WithTrustedOperator(w.SB.OperatorKey()),
		bus.WithName(service),
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := bus.Connect(ctx, opts...)
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
	c := connect(t, w, demo.Shop, demo.Checkout)
	if got := c.Conn().Opts.PingInterval; got != bus.DefaultPingInterval {
		t.Fatalf("ping interval %v, want %v", got, bus.DefaultPingInterval)
	}
	if got := c.Conn().Opts.MaxPingsOut; got != bus.DefaultMaxPingsOutstanding {
		t.Fatalf("max pings outstanding %d, want %d", got, bus.DefaultMaxPingsOutstanding)
	}
}

// TestFrozenServerDetected: a server that hangs with the connection open (here a proxy that
// holds every byte, as a paused process does) is detected by the pings, the client reconnects
// when it is back, and publishing works again.
func TestFrozenServerDetected(t *testing.T) {
	w := sharedWorld(t)
	c, p := proxied(t, w, demo.Shop, demo.Checkout, bus.WithPingInterval(200*time.Millisecond, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, "orders.us.frozen", []byte("before")); err != nil {
		t.Fatal(err)
	}
	p.setMode(proxyFreeze)
	// With nats.go's default (2 minutes, 2 outstanding) this would take minutes.
	waitFor(t, 15*time.Second, "the client to find the frozen connection stale", func() bool {
		return c.Conn().Status() != nats.CONNECTED
	})
	p.setMode(proxyPass)
	p.cut()
	waitFor(t, 15*time.Second, "the client to reconnect", c.Conn().IsConnected)
	if _, err := c.Publish(ctx, "orders.us.frozen", []byte("after")); err != nil {
		t.Fatal(err)
	}
}
