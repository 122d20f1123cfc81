package consumers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
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
	ctx, nc := adminConn(t)
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

// TestOutboxRequestsKeepTheirAnswers: requests leave through one outbox, published in bursts
// from one goroutine; sent from many goroutines at once, each must still get its own answer
// (an echo of what it sent), none lost, none swapped.
func TestOutboxRequestsKeepTheirAnswers(t *testing.T) {
	ctx, nc := adminConn(t)
	subject := nc.NewInbox()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	q, err := consumers.NewRequester(nc, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	const senders, each = 32, 200
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				want := fmt.Sprintf("%d/%d", g, i)
				got, err := q.Request(ctx, subject, []byte(want))
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("request %s: answer %q, error %v", want, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestUnsentRequestAnsweredAtOnce: a request the outbox cannot publish (the connection is
// closed) is answered "no answer" as soon as the publish fails, not after the requester's
// timeout (an hour here: the context's minute would end first).
func TestUnsentRequestAnsweredAtOnce(t *testing.T) {
	ctx, nc := adminConn(t)
	q, err := consumers.NewRequester(nc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	nc.Close()
	got, err := q.Request(ctx, nc.NewInbox(), []byte("x"))
	if !errors.Is(err, consumers.ErrNoAnswer) || !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("request on a closed connection: answer %q, error %v; want no answer at once", got, err)
	}
}

// TestRequestAfterStopRefused: once stopped, the requester refuses new requests instead of
// queueing them where no one would publish or answer them.
func TestRequestAfterStopRefused(t *testing.T) {
	ctx, nc := adminConn(t)
	q, err := consumers.NewRequester(nc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	q.Stop()
	got, err := q.Request(ctx, nc.NewInbox(), []byte("x"))
	if !errors.Is(err, consumers.ErrRepliesStopped) {
		t.Fatalf("request after Stop: answer %q, error %v; want ErrRepliesStopped", got, err)
	}
}

// adminConn is an admin connection to a new world's shop account (it answers to itself:
// services may not) and a context of a minute, both ended with the test.
func adminConn(t *testing.T) (context.Context, *nats.Conn) {
	t.Helper()
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	nc, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ctx, nc
}
