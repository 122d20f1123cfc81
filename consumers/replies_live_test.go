package consumers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestLateAnswerNotGivenToTheNextRequest: the guard store's requests share one reply
// subscription and reuse their waiters. A request whose context ends before its answer comes
// must not leave that answer to the next request that reuses the waiter: each request here is
// answered late on purpose, after the next one was sent, and every request must get its own
// answer or none.
func TestLateAnswerNotGivenToTheNextRequest(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := w.Admin(ctx, sealbustest.Shop) // answers to itself: services may not
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A responder: "<delay>|<answer>".
	subject := nc.NewInbox()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		delay, answer, _ := bytes.Cut(m.Data, []byte("|"))
		d, _ := time.ParseDuration(string(delay))
		time.AfterFunc(d, func() { _ = m.Respond(answer) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	q, err := consumers.NewRequester(nc, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	for i := range 5 {
		// Abandoned: answered 100ms after it gave up waiting.
		short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
		got, err := q.Request(short, subject, fmt.Appendf(nil, "120ms|stale-%d", i))
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: abandoned request: answer %q, error %v; want the deadline", i, got, err)
		}
		// The next one is answered after the stale answer has come.
		want := fmt.Sprintf("fresh-%d", i)
		got, err = q.Request(ctx, subject, []byte("300ms|"+want))
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if string(got) != want {
			t.Fatalf("round %d: request answered %q, want %q: an abandoned request's answer reached it", i, got, want)
		}
	}
}
