package operator_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestGuardSize: the operator sizes a durable's replay guard store for its rate (a full store
// stalls the durable, fail-closed); the size survives provisioning the durable again; bad
// sizes and names are refused with a reason; and the service that consumes the durable, with
// its own creds and raw JetStream requests, can neither shrink its store (to stall itself or
// its peers on the durable) nor grow it (to take the account's disk), nor delete it.
func TestGuardSize(t *testing.T) {
	w := newWorld(t)
	p := w.Harness.Provisioner()
	stream, durable := sealbustest.OrdersStream, sealbustest.Billing

	before, err := p.GuardSize(ctx(t), sealbustest.Shop, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	if before.Store != accounts.GuardStream(stream, durable) || before.MaxBytes <= 0 || before.Horizon <= 0 || before.Rate <= 0 {
		t.Fatalf("default guard store: %+v", before)
	}
	const size = 96 << 20
	got, err := p.SetGuardSize(ctx(t), sealbustest.Shop, stream, durable, size)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxBytes != size || got.Rate != size/operator.GuardEntryBytes/int64(got.Horizon/time.Second) {
		t.Fatalf("resized guard store: %+v", got)
	}
	// Recorded in the account's audit stream.
	admin, err := w.Admin(ctx(t), sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	audit, err := js.Stream(ctx(t), accounts.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for seq := audit.CachedInfo().State.LastSeq; seq > 0 && !found; seq-- {
		m, err := audit.GetMsg(ctx(t), seq)
		if err == nil && containsAll(string(m.Data), operator.EventGuardResized, strconv.Itoa(size)) {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit event for the resize")
	}

	// Provisioning the durable again (AddConsumer without a size) keeps it.
	if err := w.Harness.AddConsumer(ctx(t), sealbustest.Shop, operator.ConsumerSpec{
		Stream: stream, Durable: durable, FilterSubjects: []string{"orders.>"},
		MaxDeliver: operator.DefaultMaxDeliver, AckWait: 30 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	if again, err := p.GuardSize(ctx(t), sealbustest.Shop, stream, durable); err != nil || again.MaxBytes != size {
		t.Fatalf("after provisioning again: %+v, %v", again, err)
	}

	for _, c := range []struct {
		stream, durable string
		size            int64
	}{
		{stream, durable, operator.MinGuardBytes - 1},
		{stream, "no-such-durable", 64 << 20},
		{"orders.>", durable, 64 << 20},
	} {
		if _, err := p.SetGuardSize(ctx(t), sealbustest.Shop, c.stream, c.durable, c.size); err == nil {
			t.Errorf("SetGuardSize(%q, %q, %d) was accepted", c.stream, c.durable, c.size)
		}
	}
	if _, err := p.SetGuardSize(ctx(t), sealbustest.Shop, stream, durable, 1); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Errorf("a 1-byte store: %v, want ErrInvalidSpec", err)
	}

	// The consuming service, hostile: raw JetStream API requests on its guard store. The
	// server refuses them (a permissions violation: no answer comes, so each waits briefly).
	var mu sync.Mutex
	var violations []string
	nc, err := sealbustest.InsiderConn(ctx(t), w.Harness, sealbustest.Shop, sealbustest.Billing, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		violations = append(violations, err.Error())
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ijs, _ := jetstream.New(nc)
	name := accounts.GuardStream(stream, durable)
	brief := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx(t), 2*time.Second) }
	for _, s := range []int64{operator.MinGuardBytes, 1 << 40} {
		cfg := jetstream.StreamConfig{Name: name, Subjects: []string{accounts.GuardSubjects(stream, durable)}, Storage: jetstream.FileStorage, MaxBytes: s,
			MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, AllowMsgTTL: true, MaxAge: got.Horizon, Duplicates: time.Minute}
		c, cancel := brief()
		_, err := ijs.UpdateStream(c, cfg)
		cancel()
		if err == nil {
			t.Errorf("the service resized its guard store to %d bytes", s)
		}
	}
	c, cancel := brief()
	err = ijs.DeleteStream(c, name)
	cancel()
	if err == nil {
		t.Error("the service deleted its guard store")
	}
	mu.Lock()
	seen := strings.Join(violations, "\n")
	mu.Unlock()
	for _, api := range []string{"$JS.API.STREAM.UPDATE." + name, "$JS.API.STREAM.DELETE." + name} {
		if !strings.Contains(seen, api) {
			t.Errorf("no permissions violation reported for %s; errors: %s", api, seen)
		}
	}
	if after, err := p.GuardSize(ctx(t), sealbustest.Shop, stream, durable); err != nil || after.MaxBytes != size {
		t.Fatalf("after the service's attempts: %+v, %v", after, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
