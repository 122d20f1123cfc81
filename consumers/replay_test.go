package consumers

import (
	"context"
	"fmt"
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
	calls := 0
	h := ReplayGuard(time.Minute, 100)(func(context.Context, *Message) error { calls++; return nil })
	now := time.Now()
	if err := h(context.Background(), verifiedMessage("a", 1, now, now)); err != nil {
		t.Fatal(err)
	}
	// A redelivery of the same stream position is not a replay.
	if err := h(context.Background(), verifiedMessage("a", 1, now, now)); err != nil {
		t.Fatalf("redelivery refused: %v", err)
	}
	// The same envelope at another position (republished under a new Nats-Msg-Id) is.
	err := h(context.Background(), verifiedMessage("a", 2, now, now.Add(time.Second)))
	if r, ok := ReasonOf(err); !ok || r != ReasonReplay {
		t.Fatalf("replay: %v", err)
	}
	if calls != 2 {
		t.Fatalf("handler called %d times, want 2", calls)
	}
	// An unverified message never reaches the guard's set.
	f := newFakeMsg("orders.new", nil, 3, 1)
	if err := h(context.Background(), message(f)); err == nil {
		t.Fatal("unverified message accepted")
	}
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
