package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// consumeTimeout bounds the consumer lookup when ctx has no deadline.
const consumeTimeout = 10 * time.Second

// Pull requests live pullExpiry and ask the server for an idle heartbeat every pullHeartbeat.
// A pull request lost with its server (the consumer leader stopped or moved while this client
// stayed connected to another node) is noticed after two missed heartbeats and made again, so
// delivery resumes within seconds; nats.go's defaults (30s, 15s) leave it stalled for 30s.
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)

const (
	running int32 = iota
	stopping
	draining
)

// Consumption is a running Consume. Its methods are safe for concurrent use.
type Consumption struct {
	c          *bus.Client
	nc         *nats.Conn // the client's connection (acks are confirmed on it)
	log        *slog.Logger
	stream     string
	durable    string
	maxDeliver int
	handler    Handler
	it         jetstream.MessagesContext
	work       chan jetstream.Msg
	mode       atomic.Int32
	hctx       context.Context
	hcancel    context.CancelFunc
	k          *clientseam.Counters
	firstDelay time.Duration
	ackTimeout time.Duration
	ackSlots   chan struct{}  // bounds the acks awaiting confirmation
	acks       sync.WaitGroup // acks awaiting confirmation

	done    chan struct{}
	errMu   sync.Mutex
	err     error
	endOnce sync.Once
}

// Consume handles the messages of a durable pull consumer with h and returns at once; the
// consumption runs until Stop, Drain, ctx's end, or the consumer's deletion.
//
// The durable consumer is created by the operator (services have no right to create one) with
// explicit acks; Consume only looks it up (ErrNoConsumer if it is missing or not usable) and
// reads its MaxDeliver and BackOff. Every message goes through DeadLetter, Verify,
// ReplayGuard and Retry, then the WithMiddleware middleware and h, on WithWorkers workers,
// with at most WithMaxInFlight messages pulled and not yet settled. A message is acknowledged
// only after h returns nil, with an ack the server confirms (in the background, retried a few
// times, WithAckTimeout); a failure is retried with backoff and dead-lettered after the last
// delivery; a rejected envelope is dead-lettered at once and never reaches h. A redelivery of
// a message h already handled (its ack was lost) is acknowledged without calling h again,
// and a replay (the same envelope at another stream position) is dead-lettered: see
// ReplayGuard.
//
// Stop ends the consumption promptly: handlers in progress finish (their context is
// cancelled), messages pulled but not started are returned to the server for immediate
// redelivery (on their last allowed delivery they are handled instead, so none is lost).
// Drain handles every message already pulled first. Both wait for acknowledgements to be
// confirmed by the server (or given up after their attempts) before Done is closed, so a
// consumer restarted on the same durable neither loses nor repeats a message.
func Consume(ctx context.Context, c *bus.Client, stream, durable string, h Handler, opts ...Option) (*Consumption, error) {
	if c == nil || h == nil {
		return nil, fmt.Errorf("%w: nil client or handler", ErrInvalidOption)
	}
	if stream == "" || durable == "" {
		return nil, fmt.Errorf("%w: stream and durable names are required", ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		lctx, cancel = context.WithTimeout(ctx, consumeTimeout)
	}
	link := clientseam.Of(c)
	cons, err := link.JS.Consumer(lctx, stream, durable)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %s on %s: %w", ErrNoConsumer, durable, stream, err)
	}
	info := cons.CachedInfo()
	if info == nil || info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("%w: %s on %s must use explicit acks", ErrNoConsumer, durable, stream)
	}
	sched := schedule{want: cfg.backoff, ackWait: info.Config.AckWait, server: info.Config.BackOff}
	k := link.Counters.Child() // this consumption's counts, also in the client's Metrics
	cs := &Consumption{
		c: c, nc: link.Conn, log: c.Logger().With("stream", stream, "consumer", durable),
		stream: stream, durable: durable, maxDeliver: info.Config.MaxDeliver,
		work: make(chan jetstream.Msg), k: k, firstDelay: sched.nakDelay(1), done: make(chan struct{}),
		ackTimeout: cfg.ackTimeout, ackSlots: make(chan struct{}, cfg.maxInFlight),
	}
	chain := []Middleware{
		deadLetter(link.JS, c.Audit, k, c.Now, c.Logger()),
		Verify(c),
		ReplayGuard(c.Freshness(), cfg.replayCap),
		retry(sched, cs.maxDeliver, k),
	}
	chain = append(chain, cfg.middleware...)
	cs.handler = Chain(timed(recoverPanics(h), k), chain...)
	cs.hctx, cs.hcancel = context.WithCancel(context.WithoutCancel(ctx))

	buffer := max(1, cfg.maxInFlight-cfg.workers)
	cs.it, err = cons.Messages(jetstream.PullMaxMessages(buffer), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		cs.hcancel()
		return nil, fmt.Errorf("%w: %s on %s: %w", ErrNoConsumer, durable, stream, err)
	}

	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Go(cs.worker)
	}
	go cs.dispatch()
	go func() {
		wg.Wait()
		cs.acks.Wait()
		cs.hcancel()
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := link.Conn.FlushWithContext(fctx); err != nil && !link.Conn.IsClosed() {
			cs.log.Warn("sealbus: flushing acks failed", "error", err)
		}
		cancel()
		close(cs.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			cs.Stop()
		case <-cs.done:
		}
	}()
	return cs, nil
}

// dispatch moves pulled messages to the workers.
func (cs *Consumption) dispatch() {
	defer close(cs.work)
	for {
		msg, err := cs.it.Next()
		if err != nil {
			switch {
			case errors.Is(err, jetstream.ErrMsgIteratorClosed):
				if errors.Is(err, jetstream.ErrConnectionClosed) && cs.mode.Load() == running {
					cs.setErr(fmt.Errorf("%w: connection closed", ErrStopped))
				}
				return
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrBadRequest):
				cs.setErr(fmt.Errorf("%w: %w", ErrStopped, err))
				cs.it.Stop()
				return
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				cs.log.Debug("sealbus: missed heartbeat; pulling again")
			default:
				cs.log.Warn("sealbus: pulling messages", "error", err)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		if cs.mode.Load() == stopping && !cs.lastDelivery(msg) {
			if err := msg.Nak(); err != nil {
				cs.log.Debug("sealbus: returning a buffered message failed; it is redelivered after AckWait", "error", err)
			}
			continue
		}
		cs.work <- msg
	}
}

func (cs *Consumption) lastDelivery(msg jetstream.Msg) bool {
	if cs.maxDeliver <= 0 {
		return false
	}
	md, err := msg.Metadata()
	return err == nil && md.NumDelivered >= uint64(cs.maxDeliver)
}

func (cs *Consumption) worker() {
	for raw := range cs.work {
		cs.handle(raw)
	}
}

func (cs *Consumption) handle(raw jetstream.Msg) {
	m, err := newMessage(raw, cs.c.Account())
	if err != nil {
		cs.log.Error("sealbus: message without JetStream metadata; terminated", "subject", raw.Subject(), "error", err)
		_ = raw.Term()
		return
	}
	m.last = cs.lastDelivery(raw)
	cs.k.Received.Add(1)
	err = cs.handler(cs.hctx, m)
	if m.settled {
		return
	}
	if err == nil {
		if m.duplicate {
			cs.k.Deduplicated.Add(1)
		} else if m.verified {
			cs.k.Delivered.Add(1)
		}
		cs.ack(m)
		return
	}
	cs.log.Warn("sealbus: message not settled by middleware; retrying", "seq", m.Sequence, "error", err)
	_ = m.nak(cs.firstDelay)
}

// ackAttempts bounds the attempts to get one ack confirmed.
const ackAttempts = 5

// ack acknowledges m and has the server confirm it (JetStream's double ack) in the
// background, so the worker goes on at once; at most MaxInFlight acks wait for confirmation.
func (cs *Consumption) ack(m *Message) {
	m.settled = true
	cs.ackSlots <- struct{}{}
	cs.acks.Add(1)
	go func() {
		defer cs.acks.Done()
		defer func() { <-cs.ackSlots }()
		cs.confirm(m)
	}()
}

// confirm sends m's ack until the server confirms it, at most ackAttempts times, each waiting
// ackTimeout for the confirmation; between attempts it waits for the connection when it is
// down, or a short pause. An ack left unconfirmed may or may not have been applied: if not,
// JetStream redelivers the message after AckWait, and the replay guard, which has recorded the
// id as handled, lets Consume acknowledge it again without calling the handler.
func (cs *Consumption) confirm(m *Message) {
	nc := cs.nc
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), cs.ackTimeout)
		err = m.raw.DoubleAck(ctx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			cs.k.AckConfirmed.Add(1)
			return
		}
		if attempt >= ackAttempts || nc.IsClosed() {
			break
		}
		pause := time.NewTimer(min(time.Duration(attempt)*100*time.Millisecond, cs.ackTimeout))
		deadline := time.Now().Add(cs.ackTimeout)
		for !nc.IsConnected() && !nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		<-pause.C
	}
	cs.k.AckUnconfirmed.Add(1)
	cs.log.Warn("sealbus: ack not confirmed; a redelivery will be acknowledged without calling the handler again",
		"seq", m.Sequence, "id", m.ID, "error", err)
}

func (cs *Consumption) setErr(err error) {
	cs.errMu.Lock()
	if cs.err == nil {
		cs.err = err
	}
	cs.errMu.Unlock()
}

// Stop ends the consumption promptly (see Consume). It returns at once; Done is closed when
// everything has settled.
func (cs *Consumption) Stop() {
	if cs.mode.CompareAndSwap(running, stopping) {
		cs.hcancel()
		cs.it.Drain()
		return
	}
	cs.hcancel() // Stop during a Drain: handlers (and dead-letter retries) are asked to end now
}

// Drain stops pulling and handles every message already pulled before ending. It returns at
// once; Done is closed when everything has settled.
func (cs *Consumption) Drain() {
	if cs.mode.CompareAndSwap(running, draining) {
		cs.it.Drain()
	}
}

// Done is closed when the consumption has ended and its acknowledgements are flushed.
func (cs *Consumption) Done() <-chan struct{} { return cs.done }

// Err returns why the consumption ended on its own (the consumer was deleted, the connection
// closed), or nil after Stop, Drain or the end of Consume's context.
func (cs *Consumption) Err() error {
	cs.errMu.Lock()
	defer cs.errMu.Unlock()
	return cs.err
}

// MaxDeliver returns the consumer's MaxDeliver (0 or negative: unlimited).
func (cs *Consumption) MaxDeliver() int { return cs.maxDeliver }
