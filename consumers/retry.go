package consumers

import (
	"context"
	"fmt"
	"time"

	"github.com/sealbus/sealbus/internal/clientseam"
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
//
// Retry assumes a consumer without a BackOff configuration; Consume uses the consumer's
// configuration (see schedule) so that the delays are the ones asked for either way.
func Retry(backoff []time.Duration, maxDeliver int) Middleware {
	return retry(schedule{want: backoff}, maxDeliver, nil)
}

// schedule computes the NakWithDelay argument that makes JetStream redeliver after the wanted
// delay. The server sets a nak'ed message's timestamp to now-AckWait+d and redelivers it when
// the time since then reaches AckWait, or, when the consumer has a BackOff list, the entry for
// its redelivery count (BackOff[Delivered-1], the last repeating). So the delay seen is
// d-AckWait+deadline, and d = want+AckWait-deadline.
type schedule struct {
	want    []time.Duration // delays wanted; empty means server (or DefaultBackOff)
	ackWait time.Duration   // consumer AckWait (BackOff[0] when BackOff is set)
	server  []time.Duration // consumer BackOff
}

func (s schedule) nakDelay(delivered uint64) time.Duration {
	want := s.want
	if len(want) == 0 {
		want = s.server
	}
	if len(want) == 0 {
		want = DefaultBackOff
	}
	i := min(max(int(delivered)-1, 0), len(want)-1)
	d := want[i]
	if len(s.server) > 0 {
		j := min(max(int(delivered)-1, 0), len(s.server)-1)
		d += s.ackWait - s.server[j]
	}
	return max(d, time.Millisecond)
}

func retry(sched schedule, maxDeliver int, k *clientseam.Counters) Middleware {
	if k == nil {
		k = new(clientseam.Counters)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			err := next(ctx, m)
			if err == nil || m.settled {
				return err
			}
			if _, ok := DeadLetterReason(err); ok {
				return err
			}
			k.HandlerFailed.Add(1)
			if maxDeliver > 0 && m.Delivered >= uint64(maxDeliver) {
				return &DeadLetterError{Reason: ReasonMaxDeliveries, Err: fmt.Errorf("delivery %d of %d: %w", m.Delivered, maxDeliver, err)}
			}
			if nerr := m.nak(sched.nakDelay(m.Delivered)); nerr != nil {
				return fmt.Errorf("consumers: nak after handler failure: %w", nerr)
			}
			k.Retried.Add(1)
			return nil
		}
	}
}
