package consumers

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, m *Message) error {
				order = append(order, name)
				return next(ctx, m)
			}
		}
	}
	h := Chain(func(context.Context, *Message) error { order = append(order, "handler"); return nil }, mw("a"), mw("b"), mw("c"))
	if err := h(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "a,b,c,handler" {
		t.Fatalf("order %s", got)
	}
}

func TestRecoverPanics(t *testing.T) {
	h := recoverPanics(func(context.Context, *Message) error { panic("boom") })
	err := h(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic not turned into an error: %v", err)
	}
	if _, ok := DeadLetterReason(err); ok {
		t.Fatal("a panic must be retried, not rejected")
	}
}

func TestOptions(t *testing.T) {
	if _, err := newConfig([]Option{WithWorkers(4), WithMaxInFlight(2)}); err == nil {
		t.Fatal("max in flight below workers accepted")
	}
	c, err := newConfig([]Option{WithWorkers(100)})
	if err != nil || c.maxInFlight != 100 {
		t.Fatalf("default max in flight not raised to the workers: %v %+v", err, c)
	}
	if c.lease != DefaultClaimLease {
		t.Fatalf("default claim lease %v", c.lease)
	}
	if c, err := newConfig([]Option{WithClaimLease(5 * time.Second)}); err != nil || c.lease != 5*time.Second {
		t.Fatalf("claim lease: %v %+v", err, c)
	}
	for _, o := range []Option{WithWorkers(0), WithMaxInFlight(0), WithBackOff(), WithBackOff(-1), WithReplayCapacity(0), WithMiddleware(nil), WithAckTimeout(0), WithAckTimeout(2 * time.Minute),
		WithClaimLease(time.Second), WithClaimLease(time.Hour), nil} {
		if _, err := newConfig([]Option{o}); err == nil {
			t.Fatal("invalid option accepted")
		}
	}
}
