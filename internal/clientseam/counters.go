package clientseam

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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
	Opened         atomic.Uint64 // envelopes verified and decrypted (Client.Open succeeded)
	Received       atomic.Uint64 // deliveries pulled by a consumption (redeliveries included)
	AckConfirmed   atomic.Uint64 // acks the server confirmed
	// GuardUnavailable counts deliveries left unhandled because the replay guard's store could
	// not be written or read (a server fault, or the store is full): retried later.
	GuardUnavailable atomic.Uint64

	EvidenceRefused atomic.Uint64 // records (audit, dead letter) the server refused for the writer's quota
	OverflowWritten atomic.Uint64 // overflow records reporting such refusals
	OverflowFailed  atomic.Uint64 // overflow records that could not be written either
	ReplaysSkipped  atomic.Uint64 // operator replays authorized for another durable, acknowledged unhandled

	mu           sync.Mutex
	rejected     map[string]uint64
	deadLettered map[string]uint64
	ignored      map[string]uint64
	children     []*Counters // consumptions' counters (Child); their counts add to these in Snapshot

	histOnce        sync.Once
	batchSizes      *Histogram // envelopes per batch signature
	handlerDuration *Histogram // seconds per handler call
}

func (c *Counters) hists() {
	c.histOnce.Do(func() {
		c.batchSizes = NewHistogram(BatchBuckets)
		c.handlerDuration = NewHistogram(DurationBuckets)
	})
}

// BatchSize records the number of envelopes covered by one batch signature.
func (c *Counters) BatchSize(n int) {
	c.hists()
	c.batchSizes.Observe(float64(n))
}

// HandlerDuration records how long one call of the application's handler took.
func (c *Counters) HandlerDuration(d time.Duration) {
	c.hists()
	c.handlerDuration.ObserveDuration(d)
}

// Child returns new counters whose counts also appear in c's [Counters.Snapshot]: one per
// consumption, so that a consumption's own counts can be read apart while the client's
// snapshot still covers everything that ran on it.
func (c *Counters) Child() *Counters {
	k := new(Counters)
	c.mu.Lock()
	c.children = append(c.children, k)
	c.mu.Unlock()
	return k
}

// Snapshot is a copy of counters, children included.
type Snapshot struct {
	Published, PublishFailed, Resent, Batches             uint64
	Delivered, Deduplicated, AckUnconfirmed, AckConfirmed uint64
	HandlerFailed, Retried, Received, Opened              uint64
	AuditWritten, AuditFailed, Unverifiable, DLQFailed    uint64
	DLQRefused, EvidenceRefused, ReplaysSkipped           uint64
	OverflowWritten, OverflowFailed, GuardUnavailable     uint64
	Rejected, DeadLettered, Ignored                       map[string]uint64
	BatchSizes, HandlerDuration                           HistogramSnapshot
}

// Snapshot returns the counts of c plus those of its children (and theirs).
func (c *Counters) Snapshot() Snapshot {
	c.hists()
	s := Snapshot{
		Published: c.Published.Load(), PublishFailed: c.PublishFailed.Load(), Resent: c.Resent.Load(), Batches: c.Batches.Load(),
		Delivered: c.Delivered.Load(), Deduplicated: c.Deduplicated.Load(), AckUnconfirmed: c.AckUnconfirmed.Load(), AckConfirmed: c.AckConfirmed.Load(),
		HandlerFailed: c.HandlerFailed.Load(), Retried: c.Retried.Load(), Received: c.Received.Load(), Opened: c.Opened.Load(),
		AuditWritten: c.AuditWritten.Load(), AuditFailed: c.AuditFailed.Load(), Unverifiable: c.Unverifiable.Load(), DLQFailed: c.DLQFailed.Load(),
		DLQRefused: c.DLQRefused.Load(), EvidenceRefused: c.EvidenceRefused.Load(), ReplaysSkipped: c.ReplaysSkipped.Load(),
		OverflowWritten: c.OverflowWritten.Load(), OverflowFailed: c.OverflowFailed.Load(), GuardUnavailable: c.GuardUnavailable.Load(),
		BatchSizes: c.batchSizes.Snapshot(), HandlerDuration: c.handlerDuration.Snapshot(),
	}
	s.Rejected, s.DeadLettered = c.ByReason()
	s.Ignored = c.IgnoredByReason()
	c.mu.Lock()
	children := slices.Clone(c.children)
	c.mu.Unlock()
	for _, k := range children {
		s = s.add(k.Snapshot())
	}
	return s
}

func (s Snapshot) add(o Snapshot) Snapshot {
	s.Published += o.Published
	s.PublishFailed += o.PublishFailed
	s.Resent += o.Resent
	s.Batches += o.Batches
	s.Delivered += o.Delivered
	s.Deduplicated += o.Deduplicated
	s.AckUnconfirmed += o.AckUnconfirmed
	s.AckConfirmed += o.AckConfirmed
	s.GuardUnavailable += o.GuardUnavailable
	s.HandlerFailed += o.HandlerFailed
	s.Retried += o.Retried
	s.Received += o.Received
	s.Opened += o.Opened
	s.AuditWritten += o.AuditWritten
	s.AuditFailed += o.AuditFailed
	s.Unverifiable += o.Unverifiable
	s.DLQFailed += o.DLQFailed
	s.DLQRefused += o.DLQRefused
	s.EvidenceRefused += o.EvidenceRefused
	s.ReplaysSkipped += o.ReplaysSkipped
	s.OverflowWritten += o.OverflowWritten
	s.OverflowFailed += o.OverflowFailed
	for _, m := range []struct{ dst, src map[string]uint64 }{{s.Rejected, o.Rejected}, {s.DeadLettered, o.DeadLettered}, {s.Ignored, o.Ignored}} {
		for k, v := range m.src {
			m.dst[k] += v
		}
	}
	s.BatchSizes = s.BatchSizes.Add(o.BatchSizes)
	s.HandlerDuration = s.HandlerDuration.Add(o.HandlerDuration)
	return s
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
