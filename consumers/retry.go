package consumers

import (
	"context"
	"fmt"
	"time"

	"github.com/sealbus/sealbus/internal/metrics"
)

// DefaultBackOff is the retry schedule used when neither WithBackOff nor the consumer's
// BackOff configuration gives one.
var DefaultBackOff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 10 * time.Second}

// Retry returns middleware for handler failures. When the handler returns an error that is
// not a rejection, the delivery is negatively acknowledged with a delay taken from backoff
// (the n-th delivery waits backoff[n-1], the last entry repeating), so JetStream redelivers it
// later without blocking the messages behind it. On the last delivery (Delivered >=
// maxDeliver; maxDeliver <= 0 means unlimited) the failure becomes a rejection with reason
// max_deliveries, which the dead-letter middleware moves to the dead-letter stream.
func Retry(backoff []time.Duration, maxDeliver int) Middleware {
	return retry(backoff, maxDeliver, nil)
}

func retry(backoff []time.Duration, maxDeliver int, k *metrics.Counters) Middleware {
	if len(backoff) == 0 {
		backoff = DefaultBackOff
	}
	if k == nil {
		k = new(metrics.Counters)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			err := next(ctx, m)
			if err == nil || m.settled {
				return err
			}
			if _, ok := ReasonOf(err); ok {
				return err
			}
			k.HandlerFailed.Add(1)
			if maxDeliver > 0 && m.Delivered >= uint64(maxDeliver) {
				return &RejectError{Reason: ReasonMaxDeliveries, Err: fmt.Errorf("delivery %d of %d: %w", m.Delivered, maxDeliver, err)}
			}
			i := int(m.Delivered) - 1
			if i < 0 {
				i = 0
			}
			if i >= len(backoff) {
				i = len(backoff) - 1
			}
			if nerr := m.nak(backoff[i]); nerr != nil {
				return fmt.Errorf("consumers: nak after handler failure: %w", nerr)
			}
			k.Retried.Add(1)
			return nil
		}
	}
}
