package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
)

// TestIsolationInContainers runs the example publisher and consumer as two containers that
// share nothing but the server: the consumer's output shows every message the publisher sent,
// verified. A container holding account B's creds cannot read account A's stream, and nothing
// published in A reaches B's subjects.
func TestIsolationInContainers(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 4*time.Minute)
	if _, err := natstest.ExamplesImage(ctx); err != nil { // built before any timing below
		t.Fatal(err)
	}
	for _, a := range []string{"shop", "bank"} {
		if _, err := s.AddAccount(ctx, a, accounts.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	// Account B has a stream on the very same subjects, in its own subject space.
	if err := s.AddStream(ctx, "bank", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	checkout, err := s.AddService(ctx, "shop", accounts.ServiceSpec{Name: "checkout", Publish: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	billing, err := s.AddService(ctx, "shop", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	auditor, err := s.AddService(ctx, "bank", accounts.ServiceSpec{
		Name: "auditor", Subscribe: []string{"orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "auditor"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	const count = 10
	pub, err := natstest.RunService(t, ctx, s.Deployment, natstest.ServiceSpec{
		Example: "publisher", Creds: checkout,
		Env: map[string]string{"COUNT": fmt.Sprint(count), "SUBJECT": "orders.eu.new"},
	})
	if err != nil {
		t.Fatal(err)
	}
	pubOut := waitExit(t, ctx, pub, 0)
	published := regexp.MustCompile(`published ([0-9a-f]{32}) on orders\.eu\.new seq (\d+)`).FindAllStringSubmatch(pubOut, -1)
	if len(published) != count {
		t.Fatalf("publisher printed %d publishes, want %d:\n%s", len(published), count, pubOut)
	}

	con, err := natstest.RunService(t, ctx, s.Deployment, natstest.ServiceSpec{
		Example: "consumer", Creds: billing,
		Env: map[string]string{"COUNT": fmt.Sprint(count), "SEALBUS_STREAM": "ORDERS", "SEALBUS_DURABLE": "billing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	conOut := waitExit(t, ctx, con, 0)
	for _, p := range published {
		want := fmt.Sprintf("verified %s from checkout on orders.eu.new", p[1])
		if !strings.Contains(conOut, want) {
			t.Errorf("consumer output lacks %q", want)
		}
	}
	if n := strings.Count(conOut, "verified "); n != count {
		t.Errorf("consumer verified %d messages, want %d:\n%s", n, count, conOut)
	}

	// A container with account B's creds asking for A's stream and durable: B's creds only
	// ever address B's account, where that durable does not exist; the service fails.
	b1, err := natstest.RunService(t, ctx, s.Deployment, natstest.ServiceSpec{
		Example: "consumer", Creds: auditor,
		Env: map[string]string{"COUNT": "1", "SEALBUS_STREAM": "ORDERS", "SEALBUS_DURABLE": "billing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b1Out := waitExit(t, ctx, b1, 1)
	if strings.Contains(b1Out, "verified ") || !strings.Contains(b1Out, "consumer: error:") {
		t.Errorf("B's consumer on A's durable:\n%s", b1Out)
	}
	t.Logf("B's creds on A's durable: %s", strings.TrimSpace(b1Out))

	// The same creds on B's own stream of the same subjects: the service connects and pulls,
	// and nothing published in A is there.
	b2, err := natstest.RunService(t, ctx, s.Deployment, natstest.ServiceSpec{
		Example: "consumer", Creds: auditor,
		Env: map[string]string{"COUNT": "1", "SEALBUS_STREAM": "ORDERS", "SEALBUS_DURABLE": "auditor"},
	})
	if err != nil {
		t.Fatal(err)
	}
	bankNC, err := s.AdminConn(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	defer bankNC.Close()
	bankJS, _ := jetstream.New(bankNC)
	cons, err := bankJS.Consumer(ctx, "ORDERS", "auditor")
	if err != nil {
		t.Fatal(err)
	}
	// Poll until the container's pull request is waiting at the server: it is connected,
	// verified its card and asks for messages.
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting == 0 {
			return fmt.Errorf("no pull request from B's container yet")
		}
		if info.Delivered.Stream != 0 || info.NumPending != 0 {
			return fmt.Errorf("B's durable delivered %d, %d pending", info.Delivered.Stream, info.NumPending)
		}
		return nil
	}); err != nil {
		out, _ := b2.Logs(ctx)
		t.Fatalf("%v\n%s", err, out)
	}
	st, err := bankJS.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("account B's stream on orders.> holds %d messages published in A", n)
	}
	if out, _ := b2.Logs(ctx); strings.Contains(out, "verified ") {
		t.Errorf("B's consumer read a message:\n%s", out)
	}
	if err := b2.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for a service container to exit with want and returns its output.
func waitExit(t *testing.T, ctx context.Context, s *natstest.ServiceContainer, want int) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	code, err := s.Wait(wctx)
	out, lerr := s.Logs(ctx)
	if err != nil || code != want {
		t.Fatalf("%s: exit %d (err %v, logs err %v), want %d:\n%s", s.Example, code, err, lerr, want, out)
	}
	return out
}
