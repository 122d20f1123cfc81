package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/internal/clientseam"
)

// ErrPermission reports a consumer the service's permissions do not let it use: the
// server refused the lookup (wrong durable or stream name, or another service's durable). It
// comes wrapped with ErrNoConsumer and nats.ErrPermissionViolation, with the server's reason.
var ErrPermission = errors.New("consumers: not permitted by the service's permissions")

// lookupConsumer looks the durable up and returns as soon as the server refuses the request
// with a permission error, instead of waiting for ctx's deadline (the server answers a refused
// publish with an asynchronous error, not a reply).
func lookupConsumer(ctx context.Context, link *clientseam.Link, stream, durable string) (jetstream.Consumer, error) {
	lookup := func(ctx context.Context) (jetstream.Consumer, error) { return link.JS.Consumer(ctx, stream, durable) }
	if link.Violations == nil {
		return retryNotFound(ctx, notFoundWait, lookup)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	denied := make(chan error, 1)
	subject := "$JS.API.CONSUMER.INFO." + stream + "." + durable
	stop := link.Violations.Watch(func(s string, err error) {
		if s == subject {
			select {
			case denied <- err:
			default:
			}
			cancel()
		}
	})
	defer stop()
	cons, err := retryNotFound(ctx, notFoundWait, lookup)
	if err != nil {
		select {
		case perr := <-denied:
			return nil, fmt.Errorf("%w: %w", ErrPermission, perr)
		default:
		}
	}
	return cons, err
}

// notFoundWait is how long a lookup answered "consumer not found" is tried again.
const notFoundWait = 2 * time.Second

// retryNotFound calls lookup until it finds the consumer, fails otherwise, or has been answered
// "consumer not found" for wait (or ctx ends). In a cluster, a server assigned a durable just
// created, which has not started its part of it yet, answers not found after a short delay when
// the durable's leader has not answered first (it may still be elected): a durable the operator
// has just made must not look missing. A durable that does not exist fails after wait.
func retryNotFound(ctx context.Context, wait time.Duration, lookup func(context.Context) (jetstream.Consumer, error)) (jetstream.Consumer, error) {
	deadline := time.Now().Add(wait)
	delay := 50 * time.Millisecond
	for {
		cons, err := lookup(ctx)
		if err == nil || !errors.Is(err, jetstream.ErrConsumerNotFound) || !time.Now().Before(deadline) {
			return cons, err
		}
		t := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}
