package consumers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func verifiedMessage(id string, seq uint64, created, stored time.Time) *Message {
	f := newFakeMsg("orders.new", nil, seq, 1)
	m := message(f)
	m.ID, m.Created, m.Stored, m.verified = id, created, stored, true
	return m
}

func TestReplayGuard(t *testing.T) {
	calls := map[string]int{}
	fail := map[string]bool{"b": true}
	h := ReplayGuard(time.Minute, 100)(func(_ context.Context, m *Message) error {
		calls[m.ID]++
		if fail[m.ID] {
			return errors.New("handler failed")
		}
		return nil
	})
	ctx, now := context.Background(), time.Now()
	if err := h(ctx, verifiedMessage("a", 1, now, now)); err != nil {
		t.Fatal(err)
	}
	// A redelivery of the same stream position (its ack was lost) is not a replay, and the
	// handler, which returned nil, is not called again: the caller acknowledges it again.
	m := verifiedMessage("a", 1, now, now)
	m.Delivered = 2
	if err := h(ctx, m); err != nil {
		t.Fatalf("redelivery refused: %v", err)
	}
	if !m.duplicate || calls["a"] != 1 {
		t.Fatalf("redelivery of a handled message: duplicate %v, %d handler calls", m.duplicate, calls["a"])
	}
	// The same envelope at another position (republished under a new Nats-Msg-Id) is a
	// replay, although it was handled.
	err := h(ctx, verifiedMessage("a", 2, now, now.Add(time.Second)))
	if r, ok := DeadLetterReason(err); !ok || r != ReasonReplay {
		t.Fatalf("replay: %v", err)
	}
	// A message whose handler failed is handled again on its redelivery (a retry), and its
	// replay is refused too.
	if err := h(ctx, verifiedMessage("b", 3, now, now)); err == nil {
		t.Fatal("handler error lost")
	}
	m = verifiedMessage("b", 3, now, now)
	m.Delivered = 2
	if err := h(ctx, m); err == nil || m.duplicate || calls["b"] != 2 {
		t.Fatalf("retry after a failure: %v, duplicate %v, %d calls", err, m.duplicate, calls["b"])
	}
	if r, _ := DeadLetterReason(h(ctx, verifiedMessage("b", 4, now, now))); r != ReasonReplay {
		t.Fatal("replay of a failed message accepted")
	}
	if calls["a"] != 1 || calls["b"] != 2 {
		t.Fatalf("handler calls %v", calls)
	}
	// An unverified message never reaches the guard's set.
	f := newFakeMsg("orders.new", nil, 5, 1)
	if err := h(ctx, message(f)); err == nil {
		t.Fatal("unverified message accepted")
	}
}

// TestReplayGuardWaitsForCallInProgress: a redelivery that arrives while the handler is still
// working on the first delivery (AckWait passed) waits for its outcome and is not handled
// twice.
func TestReplayGuardWaitsForCallInProgress(t *testing.T) {
	var calls atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	h := ReplayGuard(time.Minute, 100)(func(context.Context, *Message) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	})
	now := time.Now()
	first := make(chan error, 1)
	go func() { first <- h(context.Background(), verifiedMessage("a", 1, now, now)) }()
	<-entered
	second := make(chan error, 1)
	redelivery := verifiedMessage("a", 1, now, now)
	redelivery.Delivered = 2
	go func() { second <- h(context.Background(), redelivery) }()
	select {
	case err := <-second:
		t.Fatalf("the redelivery finished while the first call was in progress: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil || !redelivery.duplicate || calls.Load() != 1 {
		t.Fatalf("redelivery: %v, duplicate %v, %d handler calls", err, redelivery.duplicate, calls.Load())
	}
	// A waiting redelivery gives up when its context ends.
	entered2, release2 := make(chan struct{}), make(chan struct{})
	h2 := ReplayGuard(time.Minute, 100)(func(context.Context, *Message) error { close(entered2); <-release2; return nil })
	go func() { _ = h2(context.Background(), verifiedMessage("c", 1, now, now)) }()
	<-entered2
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h2(ctx, verifiedMessage("c", 1, now, now)); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting redelivery with an ended context: %v", err)
	}
	close(release2)
}

func TestReplaySetForgetsOutsideWindow(t *testing.T) {
	g := newReplaySet(time.Minute, 1000)
	t0 := time.Now()
	for i := range 10 {
		g.check(verifiedMessage(fmt.Sprint(i), uint64(i+1), t0, t0))
	}
	if g.size() != 10 {
		t.Fatalf("size %d", g.size())
	}
	// Once the stream has moved more than twice the window past their creation, no
	// envelope that fresh could be a replay of them (it would be stale): they are forgotten.
	later := t0.Add(3 * time.Minute)
	g.check(verifiedMessage("new", 100, later, later))
	if g.size() != 1 {
		t.Fatalf("size %d after the window moved, want 1", g.size())
	}
}

func TestReplaySetCapacity(t *testing.T) {
	g := newReplaySet(time.Hour, 5)
	now := time.Now()
	for i := range 20 {
		g.check(verifiedMessage(fmt.Sprint(i), uint64(i+1), now, now))
	}
	if g.size() != 5 {
		t.Fatalf("size %d, want capacity 5", g.size())
	}
	if _, ok := g.check(verifiedMessage("19", 99, now, now)); ok {
		t.Fatal("a recent id was forgotten")
	}
}
