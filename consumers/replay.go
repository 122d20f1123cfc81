package consumers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayCapacity is the default number of message ids the replay guard remembers
// (about 125 bytes each: 64 MiB when full). It covers the guard's horizon (twice the
// freshness window, 4 minutes by default) up to about 2,000 messages/s, and the time in which
// redeliveries of lost acks come (AckWait, a server restart) at much higher rates.
const DefaultReplayCapacity = 1 << 19

// ReplayGuard returns middleware that refuses a replayed envelope and keeps a message whose
// handler has already succeeded from reaching it again. It must run after Verify: only
// verified envelopes are recorded, so a forged envelope can neither block nor borrow a genuine
// id. For each verified delivery of message id X at stream position P (stream, sequence):
//
//   - X not remembered: X is recorded at P and the delivery goes on to the handler.
//   - X remembered at P, the same position: a redelivery (JetStream sends a message again
//     when its ack was lost or late, for example when a server stops or a leader moves). If a
//     handler call for X has returned nil, the guard returns nil without calling the handler,
//     and the caller acknowledges the delivery again (Consume counts it in
//     bus.Metrics.Deduplicated). If a handler call for X is in progress, the guard waits for
//     its outcome and then decides. Otherwise (earlier calls failed) the handler is called:
//     that is a retry.
//   - X remembered at another position P': a replay, the same envelope stored again under a
//     new Nats-Msg-Id. It is refused with reason replay (dead-lettered by Consume), whether or
//     not X was handled.
//
// The guard remembers an id while its envelope's creation time is within twice window of the
// newest stored time it has seen (the envelope's freshness check bounds how late a copy can be
// stored, so an older id can be neither replayed nor usefully redelivered), and at most
// capacity ids (the oldest go first); an id forgotten early (capacity) is treated as new.
//
// The guard is per consumption and in memory. Across processes and restarts, JetStream's
// duplicate window (which covers the freshness window) rejects a replay with the same
// Nats-Msg-Id; a replay under a new Nats-Msg-Id consumed by another instance of the service is
// not detected by this guard, and a message whose ack was lost is handled again by another
// process that receives its redelivery.
func ReplayGuard(window time.Duration, capacity int) Middleware {
	return newReplaySet(window, capacity).middleware
}

// msgKey is a message id in 16 bytes.
type msgKey [16]byte

func keyOf(id string) msgKey {
	var k msgKey
	if len(id) == 2*len(k) {
		if _, err := hex.Decode(k[:], []byte(id)); err == nil {
			return k
		}
	}
	sum := sha256.Sum256([]byte(id)) // not an envelope id (tests): any fixed mapping will do
	copy(k[:], sum[:])
	return k
}

type position struct {
	stream string
	seq    uint64
}

// seenEntry is one remembered id. pos and created never change; handled and busy are guarded
// by the set's mutex.
type seenEntry struct {
	key     msgKey
	pos     position
	created int64         // unix nanoseconds
	handled bool          // a handler call returned nil
	busy    chan struct{} // non-nil while a handler call is in progress; closed when it ends
}

type replaySet struct {
	window   time.Duration
	capacity int

	mu     sync.Mutex
	seen   map[msgKey]*seenEntry
	order  []*seenEntry // FIFO of insertions
	head   int
	high   time.Time // newest stored time seen
	stream string    // last stream name, shared by the entries
}

func newReplaySet(window time.Duration, capacity int) *replaySet {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &replaySet{window: window, capacity: capacity, seen: make(map[msgKey]*seenEntry)}
}

// verdict is what the guard does with a delivery.
type verdict int

const (
	deliver   verdict = iota // call the handler (the caller must call leave)
	duplicate                // already handled: acknowledge again, no handler call
	replayed                 // the id is recorded at another position
)

func (g *replaySet) middleware(next Handler) Handler {
	return func(ctx context.Context, m *Message) error {
		if !m.verified {
			return &DeadLetterError{Reason: "unverified", Err: fmt.Errorf("replay guard placed before verification")}
		}
		e, v, err := g.enter(ctx, m)
		switch {
		case err != nil:
			return fmt.Errorf("consumers: waiting for the handler call in progress for %s: %w", m.ID, err)
		case v == replayed:
			return &DeadLetterError{Reason: ReasonReplay, Err: fmt.Errorf("message %s already stored at %s sequence %d", m.ID, e.pos.stream, e.pos.seq)}
		case v == duplicate:
			m.duplicate = true
			return nil
		}
		err = next(ctx, m)
		g.leave(e, err == nil && !m.settled)
		return err
	}
}

// enter applies the rule of ReplayGuard to m. With deliver, the entry is marked busy until
// leave. With replayed, the entry returned is the first one recorded.
func (g *replaySet) enter(ctx context.Context, m *Message) (*seenEntry, verdict, error) {
	k := keyOf(m.guardID())
	for {
		g.mu.Lock()
		e, v, wait := g.decide(k, m)
		g.mu.Unlock()
		if wait == nil {
			return e, v, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return e, v, ctx.Err()
		}
	}
}

// decide is enter under the lock; a non-nil wait means: wait for it, then decide again.
func (g *replaySet) decide(k msgKey, m *Message) (*seenEntry, verdict, <-chan struct{}) {
	if m.Stored.After(g.high) {
		g.high = m.Stored
	}
	g.expire()
	if m.Stream != g.stream {
		g.stream = m.Stream
	}
	pos := position{g.stream, m.Sequence}
	if e, ok := g.seen[k]; ok {
		switch {
		case e.pos != pos:
			return e, replayed, nil
		case e.handled:
			return e, duplicate, nil
		case e.busy != nil:
			return e, deliver, e.busy
		}
		e.busy = make(chan struct{})
		return e, deliver, nil
	}
	if len(g.order)-g.head >= g.capacity {
		g.evict()
	}
	e := &seenEntry{key: k, pos: pos, created: m.guardTime().UnixNano(), busy: make(chan struct{})}
	g.seen[k] = e
	g.order = append(g.order, e)
	return e, deliver, nil
}

// leave ends the handler call entered for e; handled records that it returned nil.
func (g *replaySet) leave(e *seenEntry, handled bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if handled {
		e.handled = true
	}
	if e.busy != nil {
		close(e.busy)
		e.busy = nil
	}
}

// check records m's id at its position and reports false (with the first position) if the id
// was recorded at another position. It does not track handler calls (tests of the set).
func (g *replaySet) check(m *Message) (position, bool) {
	e, v, _ := g.enter(context.Background(), m)
	if v == deliver {
		g.leave(e, false)
	}
	return e.pos, v != replayed
}

// expire forgets ids that no envelope stored from now on could replay: created more than
// twice the window before the newest stored time (the window either side, plus slack for
// messages handled out of order by concurrent workers).
func (g *replaySet) expire() {
	limit := g.high.Add(-2 * g.window).UnixNano()
	for g.head < len(g.order) && g.order[g.head].created < limit {
		g.evict()
	}
	if g.head > 1024 && g.head*2 > len(g.order) {
		g.order = append(g.order[:0:0], g.order[g.head:]...)
		g.head = 0
	}
}

// evict forgets the oldest entry. An entry with a handler call in progress stays reachable by
// its waiters (they hold it), and leave still wakes them.
func (g *replaySet) evict() {
	e := g.order[g.head]
	g.order[g.head] = nil
	g.head++
	if g.seen[e.key] == e {
		delete(g.seen, e.key)
	}
}

func (g *replaySet) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
