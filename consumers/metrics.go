package consumers

import (
	"context"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// Metrics is a snapshot of one consumption's counters. The client's bus.Metrics includes
// them (summed over every consumption that ran on it).
type Metrics struct {
	Received       uint64            // deliveries pulled, redeliveries included
	Delivered      uint64            // handler calls that returned nil, then acknowledged
	Deduplicated   uint64            // redeliveries of messages already handled, acknowledged without a handler call
	HandlerFailed  uint64            // handler calls that returned an error (retried, or dead-lettered after the last delivery)
	Retried        uint64            // deliveries scheduled for a retry with backoff
	Rejected       map[string]uint64 // envelopes that failed verification, by reason (also in DeadLettered)
	DeadLettered   map[string]uint64 // dead letters written, by reason
	DLQFailed      uint64            // dead letters that could not be written (left for redelivery)
	AckConfirmed   uint64            // acks the server confirmed
	AckUnconfirmed uint64            // acks left unconfirmed after every attempt
	// GuardUnavailable counts deliveries left unhandled (returned for a later redelivery)
	// because the replay guard's store could not be written or read (ErrGuardUnavailable).
	GuardUnavailable uint64
	// HandlerDuration is the distribution of the time, in seconds, the handler took per call.
	HandlerDuration bus.Histogram
}

// Metrics returns a snapshot of the consumption's counters.
func (cs *Consumption) Metrics() Metrics {
	k := cs.k.Snapshot()
	return Metrics{
		Received: k.Received, Delivered: k.Delivered, Deduplicated: k.Deduplicated,
		HandlerFailed: k.HandlerFailed, Retried: k.Retried,
		Rejected: k.Rejected, DeadLettered: k.DeadLettered, DLQFailed: k.DLQFailed,
		AckConfirmed: k.AckConfirmed, AckUnconfirmed: k.AckUnconfirmed, GuardUnavailable: k.GuardUnavailable,
		HandlerDuration: bus.Histogram{Bounds: k.HandlerDuration.Bounds, Counts: k.HandlerDuration.Counts,
			Count: k.HandlerDuration.Count, Sum: k.HandlerDuration.Sum},
	}
}

// Stream returns the name of the stream the consumption reads.
func (cs *Consumption) Stream() string { return cs.stream }

// Durable returns the name of the durable consumer the consumption reads.
func (cs *Consumption) Durable() string { return cs.durable }

// Client returns the client the consumption runs on.
func (cs *Consumption) Client() *bus.Client { return cs.c }

// timed records the duration of every call of h (the application's handler) in k.
func timed(h Handler, k *clientseam.Counters) Handler {
	return func(ctx context.Context, m *Message) error {
		start := time.Now()
		err := h(ctx, m)
		k.HandlerDuration(time.Since(start))
		return err
	}
}
