package consumers

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayCapacity is the default number of message ids the replay guard remembers.
const DefaultReplayCapacity = 100_000

// ReplayGuard returns middleware that refuses a replayed envelope: one whose message id was
// already seen at another stream position. The envelope's own freshness check (created vs the
// server's stored time, within window) bounds how late a replay can be stored, so the guard
// only needs ids whose creation time is within window of the newest stored time it has seen;
// older ids are forgotten, and at most capacity ids are kept (the oldest go first). A
// redelivery of the same stream position is not a replay. It must run after Verify: only
// verified envelopes are recorded, so a forged envelope cannot block a genuine id.
//
// The guard is per consumption and in memory. Across processes and restarts, JetStream's
// duplicate window (which covers the freshness window) rejects a replay with the same
// Nats-Msg-Id; a replay under a new Nats-Msg-Id consumed by another instance of the service is
// not detected by this guard.
func ReplayGuard(window time.Duration, capacity int) Middleware {
	g := newReplaySet(window, capacity)
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			if !m.verified {
				return &RejectError{Reason: "unverified", Err: fmt.Errorf("replay guard placed before verification")}
			}
			if prev, ok := g.check(m); !ok {
				return &RejectError{Reason: ReasonReplay, Err: fmt.Errorf("message %s already stored at %s sequence %d", m.ID, prev.stream, prev.seq)}
			}
			return next(ctx, m)
		}
	}
}

type position struct {
	stream string
	seq    uint64
}

type seenEntry struct {
	id      string
	pos     position
	created time.Time
}

type replaySet struct {
	window   time.Duration
	capacity int

	mu    sync.Mutex
	seen  map[string]position
	order []seenEntry // FIFO ring of insertions
	head  int
	high  time.Time // newest stored time seen
}

func newReplaySet(window time.Duration, capacity int) *replaySet {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &replaySet{window: window, capacity: capacity, seen: make(map[string]position)}
}

// check records m's id at its position and reports false (with the first position) if the id
// was recorded at another position.
func (g *replaySet) check(m *Message) (position, bool) {
	pos := position{m.Stream, m.Sequence}
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.Stored.After(g.high) {
		g.high = m.Stored
	}
	g.expire()
	if prev, ok := g.seen[m.ID]; ok {
		return prev, prev == pos
	}
	if len(g.order)-g.head >= g.capacity {
		g.evict()
	}
	g.seen[m.ID] = pos
	g.order = append(g.order, seenEntry{id: m.ID, pos: pos, created: m.Created})
	return pos, true
}

// expire forgets ids that no envelope stored from now on could replay: created more than
// twice the window before the newest stored time (the window either side, plus slack for
// messages handled out of order by concurrent workers).
func (g *replaySet) expire() {
	limit := g.high.Add(-2 * g.window)
	for g.head < len(g.order) && g.order[g.head].created.Before(limit) {
		g.evict()
	}
	if g.head > 1024 && g.head*2 > len(g.order) {
		g.order = append(g.order[:0:0], g.order[g.head:]...)
		g.head = 0
	}
}

func (g *replaySet) evict() {
	e := g.order[g.head]
	g.order[g.head] = seenEntry{}
	g.head++
	if p, ok := g.seen[e.id]; ok && p == e.pos {
		delete(g.seen, e.id)
	}
}

func (g *replaySet) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
