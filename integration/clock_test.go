package integration

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestClockSkew publishes from clients whose clocks are off the server's (injected with
// bus.WithClock) and checks what consumers accept against envelope/SPEC.md §7: an envelope is
// fresh when |stored − created| ≤ the consumer's freshness window, where stored is the
// server's timestamp and created the publisher's signed clock reading; an expiry must lie
// after both the stored time and the consumer's clock. Billing consumes with the default
// 2-minute window, shipping (orders.eu.>) with 20 seconds. docs/TESTING.md tabulates the
// outcomes.
//
// It also checks the replay guard under skew: replays of the accepted envelopes are refused,
// and the guard keeps each id for (created − stored + window, clamped to 0…2 windows) +
// window + AckWait, measured on the server's clock: 5 minutes for a publisher 30 s ahead,
// 4 for one 30 s behind, 4.5 in sync.
func TestClockSkew(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 4*time.Minute)
	w, err := sealbustest.ProvisionWorld(ctx, s.Deployment, nil)
	if err != nil {
		t.Fatal(err)
	}
	skewed := func(d time.Duration) *bus.Client {
		c, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Checkout, bus.WithClock(func() time.Time { return time.Now().Add(d) }))
		if err != nil {
			t.Fatalf("publisher with clock %+v: %v", d, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	type seen struct {
		created, stored time.Time
		subject         string
	}
	var mu sync.Mutex
	handled := map[string]map[string]seen{sealbustest.Billing: {}, sealbustest.Shipping: {}}
	record := func(service string) consumers.Handler {
		return func(_ context.Context, m *consumers.Message) error {
			mu.Lock()
			handled[service][m.ID] = seen{m.Created, m.Stored, m.Subject}
			mu.Unlock()
			return nil
		}
	}
	billing, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	shipping, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Shipping, bus.WithFreshness(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer shipping.Close()
	for _, c := range []struct {
		client  *bus.Client
		durable string
	}{{billing, sealbustest.Billing}, {shipping, sealbustest.Shipping}} {
		cs, err := consumers.Consume(ctx, c.client, sealbustest.OrdersStream, c.durable, record(c.durable))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Stop(); <-cs.Done() })
	}

	cases := []clockCase{
		{"in sync", 0, "orders.eu.sync", 0, "handled", "handled"},
		{"30s ahead", 30 * time.Second, "orders.eu.ahead", 0, "handled", "stale"},
		{"30s behind", -30 * time.Second, "orders.eu.behind", 0, "handled", "stale"},
		{"30s ahead, expires 10s after creation", 30 * time.Second, "orders.us.ahead-ttl", 10 * time.Second, "handled", ""},
		{"30s behind, expires 10s after creation", -30 * time.Second, "orders.us.behind-ttl", 10 * time.Second, "expired", ""},
		{"3m ahead", 3 * time.Minute, "orders.eu.far-ahead", 0, "stale", "stale"},
	}
	ids := map[string]string{} // case name -> message id
	seqs := map[string]uint64{}
	for _, tc := range cases {
		var opts []bus.PublishOption
		if tc.ttl > 0 {
			opts = append(opts, bus.WithTTL(tc.ttl))
		}
		ack, err := skewed(tc.skew).Publish(ctx, tc.subject, []byte(tc.name), opts...)
		if err != nil {
			t.Fatalf("%s: publish: %v", tc.name, err)
		}
		ids[tc.name], seqs[tc.name] = ack.ID, ack.Sequence
	}
	// A publisher 3 minutes behind: its cards are issued "in the future" by its own clock,
	// beyond the 2-minute skew allowance, so it does not seal at all (if it did, the envelope
	// would be stale: |stored − created| = 3 min).
	if c, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Checkout, bus.WithClock(func() time.Time { return time.Now().Add(-3 * time.Minute) })); err != nil {
		t.Logf("3m behind: the publisher does not connect: %v", err)
	} else {
		ack, perr := c.Publish(ctx, "orders.eu.far-behind", []byte("3m behind"))
		c.Close()
		if perr == nil {
			t.Log("3m behind: published; the consumers must refuse it as stale")
			tc := clockCase{name: "3m behind", skew: -3 * time.Minute, subject: "orders.eu.far-behind", billing: "stale", ship: "stale"}
			cases = append(cases, tc)
			ids[tc.name], seqs[tc.name] = ack.ID, ack.Sequence
		} else {
			t.Logf("3m behind: the publisher refuses to seal: %v", perr)
		}
	}

	want := func(service string) (handledN int, reasons map[string]int) {
		reasons = map[string]int{}
		for _, tc := range cases {
			o := tc.billing
			if service == sealbustest.Shipping {
				o = tc.ship
			}
			switch o {
			case "":
			case "handled":
				handledN++
			default:
				reasons[o]++
			}
		}
		return handledN, reasons
	}
	for _, svc := range []struct {
		name   string
		client *bus.Client
	}{{sealbustest.Billing, billing}, {sealbustest.Shipping, shipping}} {
		nh, reasons := want(svc.name)
		if err := poll(ctx, 20*time.Second, func(context.Context) error {
			mu.Lock()
			got := len(handled[svc.name])
			mu.Unlock()
			rej := svc.client.Metrics().Rejected
			for r, n := range reasons {
				if rej[r] != uint64(n) {
					return errors.New(svc.name + ": waiting for " + r)
				}
			}
			if got != nh {
				return errors.New(svc.name + ": waiting for handler calls")
			}
			return nil
		}); err != nil {
			mu.Lock()
			t.Errorf("%s: handled %d (want %d), rejected %v (want %v): %v", svc.name, len(handled[svc.name]), nh, svc.client.Metrics().Rejected, reasons, err)
			mu.Unlock()
		}
	}
	mu.Lock()
	for _, tc := range cases {
		for _, svc := range []string{sealbustest.Billing, sealbustest.Shipping} {
			expect := tc.billing
			if svc == sealbustest.Shipping {
				expect = tc.ship
			}
			m, ok := handled[svc][ids[tc.name]]
			if ok != (expect == "handled") {
				t.Errorf("%s at %s: handled %v, want %s", tc.name, svc, ok, expect)
			}
			if ok {
				t.Logf("%-40s %-8s handled: created − stored = %v", tc.name, svc, m.created.Sub(m.stored).Round(time.Millisecond))
			} else if expect != "" {
				t.Logf("%-40s %-8s refused: %s", tc.name, svc, expect)
			}
		}
	}
	mu.Unlock()

	// Replays of the envelopes billing accepted, under new Nats-Msg-Ids: refused.
	admin, err := s.AdminConn(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	orders, err := ajs.Stream(ctx, sealbustest.OrdersStream)
	if err != nil {
		t.Fatal(err)
	}
	insider, err := sealbustest.InsiderConn(ctx, s.Deployment, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	replays := 0
	for _, tc := range cases {
		if tc.billing != "handled" {
			continue
		}
		orig, err := orders.GetMsg(ctx, seqs[tc.name])
		if err != nil {
			t.Fatal(err)
		}
		republish(t, ctx, ijs, orig, "replay-"+ids[tc.name])
		replays++
	}
	if err := poll(ctx, 20*time.Second, func(context.Context) error {
		if n := billing.Metrics().DeadLettered[consumers.ReasonReplay]; n != uint64(replays) {
			return errors.New("waiting for the replays to be dead-lettered")
		}
		return nil
	}); err != nil {
		t.Errorf("billing dead-lettered %d replays, want %d", billing.Metrics().DeadLettered[consumers.ReasonReplay], replays)
	}

	// The guard's entries, read with admin rights: one TTL per accepted envelope, on the
	// server's clock.
	guard, err := ajs.Stream(ctx, accounts.GuardStream(sealbustest.OrdersStream, sealbustest.Billing))
	if err != nil {
		t.Fatal(err)
	}
	info, err := guard.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ttls := map[string]int{}
	entryPrefix := strings.TrimSuffix(accounts.GuardSubjects(sealbustest.OrdersStream, sealbustest.Billing), ">") + "m."
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := guard.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, entryPrefix) {
			continue
		}
		ttls[ttlOf(t, m.Header.Get("Nats-TTL"))]++
	}
	wantTTLs := map[string]int{"4m30s": 1, "5m0s": 2, "4m0s": 1} // in sync; 30s ahead (twice); 30s behind
	for k, n := range wantTTLs {
		if ttls[k] != n {
			t.Errorf("guard entries by TTL %v, want %v", ttls, wantTTLs)
			break
		}
	}
	t.Logf("guard entries by TTL: %v; replays refused: %d", ttls, replays)
}

// ttlOf reads a Nats-TTL header (whole seconds, or a Go duration, as the server accepts) as a
// duration's text.
func ttlOf(t *testing.T, h string) string {
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		return (time.Duration(n) * time.Second).String()
	}
	d, err := time.ParseDuration(h)
	if err != nil {
		t.Fatalf("guard entry with Nats-TTL %q", h)
	}
	return d.String()
}

// clockCase is one publisher clock of TestClockSkew and what each consumer must do with its
// envelope: "handled", a rejection reason, or "" (the consumer does not read the subject).
type clockCase struct {
	name    string
	skew    time.Duration
	subject string
	ttl     time.Duration // envelope expiry after its creation (by the publisher's clock); 0: none
	billing string        // at billing (2 min window)
	ship    string        // at shipping (20 s window), for orders.eu.> subjects
}
