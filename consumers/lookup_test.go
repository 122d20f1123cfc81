package consumers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestLookupRetriesConsumerNotFound: a lookup answered "consumer not found" (as a clustered
// server that has not started its part of a just-created durable answers) is tried again and
// finds the durable; a durable that stays missing fails with not found after the wait; other
// errors are not retried.
func TestLookupRetriesConsumerNotFound(t *testing.T) {
	ctx := context.Background()
	var found jetstream.Consumer = &fakeLookupConsumer{}
	calls := 0
	cons, err := retryNotFound(ctx, 5*time.Second, func(context.Context) (jetstream.Consumer, error) {
		calls++
		if calls < 3 {
			return nil, jetstream.ErrConsumerNotFound
		}
		return found, nil
	})
	if err != nil || cons != found || calls != 3 {
		t.Fatalf("found after two not-found answers: cons %v, err %v, %d calls", cons, err, calls)
	}

	calls = 0
	start := time.Now()
	_, err = retryNotFound(ctx, 300*time.Millisecond, func(context.Context) (jetstream.Consumer, error) {
		calls++
		return nil, jetstream.ErrConsumerNotFound
	})
	if !errors.Is(err, jetstream.ErrConsumerNotFound) || calls < 2 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("missing durable: err %v after %d calls in %v", err, calls, time.Since(start))
	}

	calls = 0
	_, err = retryNotFound(ctx, 5*time.Second, func(context.Context) (jetstream.Consumer, error) {
		calls++
		return nil, jetstream.ErrStreamNotFound
	})
	if !errors.Is(err, jetstream.ErrStreamNotFound) || calls != 1 {
		t.Fatalf("other errors: err %v after %d calls", err, calls)
	}

	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	_, err = retryNotFound(cctx, time.Minute, func(context.Context) (jetstream.Consumer, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil, jetstream.ErrConsumerNotFound
	})
	if !errors.Is(err, jetstream.ErrConsumerNotFound) || calls != 2 {
		t.Fatalf("cancelled: err %v after %d calls", err, calls)
	}
}

type fakeLookupConsumer struct{ jetstream.Consumer }
