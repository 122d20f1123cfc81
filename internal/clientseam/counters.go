package clientseam

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Counters are monotonically increasing counts. Safe for concurrent use. The zero value is
// ready.
type Counters struct {
	Published      atomic.Uint64 // envelopes acknowledged by JetStream
	PublishFailed  atomic.Uint64 // publishes that returned an error after sealing started
	Resent         atomic.Uint64 // envelopes sent again (same bytes, same Nats-Msg-Id) after a failed or unanswered attempt
	Batches        atomic.Uint64 // signatures made (one per batch)
	Delivered      atomic.Uint64 // handler calls that returned nil (then acknowledged)
	Deduplicated   atomic.Uint64 // redeliveries of messages already handled, acknowledged without a handler call
	AckUnconfirmed atomic.Uint64 // acks the server did not confirm after every attempt (a redelivery is deduplicated)
	HandlerFailed  atomic.Uint64 // handler calls that returned an error
	Retried        atomic.Uint64 // deliveries negatively acknowledged for a later retry
	AuditWritten   atomic.Uint64 // audit events acknowledged by JetStream
	AuditFailed    atomic.Uint64 // audit events that could not be written
	Unverifiable   atomic.Uint64 // directory entries ignored (markers, junk, rollbacks); see Ignore
	DLQFailed      atomic.Uint64 // dead letters that could not be written (message redelivered)
	DLQRefused     atomic.Uint64 // dead letters the server refused because the writer's quota is full (message terminated, reported)

	EvidenceRefused atomic.Uint64 // records (audit, dead letter) the server refused for the writer's quota
	OverflowWritten atomic.Uint64 // overflow records reporting such refusals
	OverflowFailed  atomic.Uint64 // overflow records that could not be written either
	ReplaysSkipped  atomic.Uint64 // operator replays authorized for another durable, acknowledged unhandled

	mu           sync.Mutex
	rejected     map[string]uint64
	deadLettered map[string]uint64
	ignored      map[string]uint64
}

// Ignore counts one directory entry ignored with its reason (and in Unverifiable).
func (c *Counters) Ignore(reason string) {
	c.Unverifiable.Add(1)
	c.add(&c.ignored, reason)
}

// IgnoredByReason returns a copy of the ignored directory entries by reason.
func (c *Counters) IgnoredByReason() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ignored == nil {
		return map[string]uint64{}
	}
	return maps.Clone(c.ignored)
}

// Reject counts one rejected envelope with its reason.
func (c *Counters) Reject(reason string) { c.add(&c.rejected, reason) }

// DeadLetter counts one envelope copied to the dead-letter stream with its reason.
func (c *Counters) DeadLetter(reason string) { c.add(&c.deadLettered, reason) }

func (c *Counters) add(m *map[string]uint64, k string) {
	c.mu.Lock()
	if *m == nil {
		*m = make(map[string]uint64)
	}
	(*m)[k]++
	c.mu.Unlock()
}

// ByReason returns copies of the rejected and dead-lettered counts by reason.
func (c *Counters) ByReason() (rejected, deadLettered map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rejected, deadLettered = maps.Clone(c.rejected), maps.Clone(c.deadLettered)
	if rejected == nil {
		rejected = map[string]uint64{}
	}
	if deadLettered == nil {
		deadLettered = map[string]uint64{}
	}
	return rejected, deadLettered
}
