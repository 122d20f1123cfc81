package consumers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// GuardRun runs one verified message (id at stream sequence seq) through a replay guard on the
// durable's store, as Consume does: the claim, a handler that returns nil, and the record of
// the outcome the ack waits for. It reports whether the handler was called. Benchmarks use it
// to measure the guard alone.
type GuardRun func(ctx context.Context, id string, seq uint64) (handled bool, err error)

// NewGuardRun starts a replay guard for durable on stream with c's connection; stop ends it.
func NewGuardRun(ctx context.Context, c *bus.Client, stream, durable string) (run GuardRun, stop func(), err error) {
	link := clientseam.Of(c)
	cons, err := link.JS.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := newConfig(nil)
	if err != nil {
		return nil, nil, err
	}
	g, err := startGuard(ctx, c, link, stream, durable, cons.CachedInfo().Config, cfg)
	if err != nil {
		return nil, nil, err
	}
	h := g.middleware(func(context.Context, *Message) error { return nil })
	run = func(ctx context.Context, id string, seq uint64) (bool, error) {
		now := time.Now()
		m := &Message{ID: id, Stream: stream, Sequence: seq, Delivered: 1, Created: now, Stored: now, verified: true}
		if err := h(ctx, m); err != nil {
			return false, err
		}
		if c := m.toRecord; c != nil {
			return !m.duplicate, c.record(ctx, m.Sequence)
		}
		return !m.duplicate, nil
	}
	return run, g.stop, nil
}

// LoseAcks makes Consume count the acks of the messages lose reports as confirmed without
// sending them: acks the server confirmed and then lost.
func LoseAcks(lose func(seq uint64) bool) (restore func()) {
	loseAck = lose
	return func() { loseAck = nil }
}

// ShortGuardStoreWait makes the replay guards of consumptions started afterwards give a
// delivery up after d of store errors instead of 30 s.
func ShortGuardStoreWait(d time.Duration) (restore func()) {
	old := defaultStoreWait
	defaultStoreWait = d
	return func() { defaultStoreWait = old }
}

// Requester is the reply subscription's request on its own (tests of its pooled waiters).
type Requester struct{ r *replies }

// NewRequester collects answers on nc, each waited for at most timeout.
func NewRequester(nc *nats.Conn, timeout time.Duration) (*Requester, error) {
	r, err := newReplies(nc, timeout)
	if err != nil {
		return nil, err
	}
	return &Requester{r: r}, nil
}

// Request sends data to subject and returns the answer's body.
func (q *Requester) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	m, err := q.r.request(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Stop ends the subscription.
func (q *Requester) Stop() { q.r.stop() }

// The requester's errors: no answer came (or the request could not be published), and a
// request made after Stop.
var (
	ErrNoAnswer       = errNoAnswer
	ErrRepliesStopped = errRepliesStopped
)
