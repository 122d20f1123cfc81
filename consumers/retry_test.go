package consumers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealbus/sealbus/internal/clientseam"
)

func TestRetryBackoffThenMaxDeliveries(t *testing.T) {
	backoff := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	failing := func(context.Context, *Message) error { return errors.New("database down") }
	k := new(clientseam.Counters)
	h := retry(schedule{want: backoff}, 5, k)(failing)
	for delivered, want := range map[uint64]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 4 * time.Second} {
		f := newFakeMsg("orders.new", nil, 1, delivered)
		if err := h(context.Background(), message(f)); err != nil {
			t.Fatalf("delivery %d: %v", delivered, err)
		}
		if _, naks, _ := f.settlements(); naks != 1 || f.nakDelay != want {
			t.Fatalf("delivery %d: %d naks with delay %v, want one with %v", delivered, naks, f.nakDelay, want)
		}
	}
	f := newFakeMsg("orders.new", nil, 1, 5)
	err := h(context.Background(), message(f))
	if r, ok := DeadLetterReason(err); !ok || r != ReasonMaxDeliveries {
		t.Fatalf("last delivery: %v, want a max_deliveries rejection", err)
	}
	if a, n, tm := f.settlements(); a+n+tm != 0 {
		t.Fatal("the last delivery was settled by Retry; the dead-letter middleware must do it")
	}
	if k.HandlerFailed.Load() != 5 || k.Retried.Load() != 4 {
		t.Fatalf("counters: failed %d, retried %d", k.HandlerFailed.Load(), k.Retried.Load())
	}
}

func TestRetryPassesSuccessAndRejections(t *testing.T) {
	ok := retry(schedule{}, 3, nil)(func(context.Context, *Message) error { return nil })
	f := newFakeMsg("s", nil, 1, 1)
	if err := ok(context.Background(), message(f)); err != nil {
		t.Fatal(err)
	}
	if a, n, tm := f.settlements(); a+n+tm != 0 {
		t.Fatal("Retry settled a successful message; the loop acks it")
	}
	rej := retry(schedule{}, 3, nil)(func(context.Context, *Message) error { return Reject("poison", errors.New("bad")) })
	f = newFakeMsg("s", nil, 1, 1)
	if r, _ := DeadLetterReason(rej(context.Background(), message(f))); r != "poison" {
		t.Fatalf("rejection not passed through: %q", r)
	}
	if _, n, _ := f.settlements(); n != 0 {
		t.Fatal("a rejection was retried")
	}
}

func TestRetryUnlimited(t *testing.T) {
	h := Retry([]time.Duration{time.Millisecond}, 0)(func(context.Context, *Message) error { return errors.New("x") })
	f := newFakeMsg("s", nil, 1, 1000)
	if err := h(context.Background(), message(f)); err != nil {
		t.Fatalf("unlimited deliveries: %v", err)
	}
	if _, n, _ := f.settlements(); n != 1 {
		t.Fatal("not retried")
	}
}

func TestScheduleNakDelay(t *testing.T) {
	ms := time.Millisecond
	server := []time.Duration{100 * ms, 500 * ms, 2000 * ms}
	for _, tc := range []struct {
		name      string
		s         schedule
		delivered uint64
		want      time.Duration
	}{
		{"no server backoff: as asked", schedule{want: []time.Duration{20 * ms, 40 * ms}, ackWait: 30 * time.Second}, 1, 20 * ms},
		{"no server backoff: last repeats", schedule{want: []time.Duration{20 * ms, 40 * ms}, ackWait: 30 * time.Second}, 9, 40 * ms},
		// With a server BackOff the delay seen is d-AckWait+BackOff[Delivered-1]: asking for
		// AckWait follows the server's schedule exactly.
		{"server schedule, first", schedule{ackWait: 100 * ms, server: server}, 1, 100 * ms},
		{"server schedule, third", schedule{ackWait: 100 * ms, server: server}, 3, 100 * ms},
		{"own schedule over server", schedule{want: []time.Duration{1000 * ms}, ackWait: 100 * ms, server: server}, 2, 600 * ms},
		{"never below a millisecond", schedule{want: []time.Duration{10 * ms}, ackWait: 100 * ms, server: server}, 3, ms},
	} {
		if got := tc.s.nakDelay(tc.delivered); got != tc.want {
			t.Errorf("%s: nakDelay(%d) = %v, want %v", tc.name, tc.delivered, got, tc.want)
		}
	}
}
