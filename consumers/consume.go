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
	prepare    Handler // verification and the claim, ahead of the workers (see job)
	handler    Handler // the handler and what follows it, on the workers
	it         jetstream.MessagesContext
	work       chan *job // prepared messages, in delivery order
	toPrepare  chan *job // to the preparers (at most maxPrepare, started as needed)
	preparers  int       // started (dispatch only)
	maxPrepare int
	mode       atomic.Int32
	hctx       context.Context
	hcancel    context.CancelFunc
	k          *clientseam.Counters
	firstDelay time.Duration
	ackTimeout time.Duration
	ackSlots   chan struct{}  // bounds the acks awaiting confirmation
	acks       sync.WaitGroup // acks awaiting confirmation
	acker      *acker         // sends the acks and collects their confirmations
	aside      sync.WaitGroup // deliveries waiting for another delivery of their message
	guard      *guard

	done    chan struct{}
	errMu   sync.Mutex
	err     error
	endOnce sync.Once
}

// Consume handles the messages of a durable pull consumer with h and returns at once; the
// consumption runs until Stop, Drain, ctx's end, or the consumer's deletion.
//
// The durable consumer is created by the operator (services have no right to create one) with
// explicit acks and its replay guard store; Consume only looks it up (ErrNoConsumer if it is
// missing, not usable or has no guard; a durable answered missing is looked up again for two
// seconds, since a cluster may answer so for a durable just created) and reads its MaxDeliver, BackOff and guard key, then
// writes this consumption's first heartbeat to the guard store (ErrGuardUnavailable if that
// fails). Every message goes through DeadLetter, Verify, the replay guard and Retry, then the
// WithMiddleware middleware and h, on WithWorkers workers, with at most WithMaxInFlight
// messages pulled and not yet settled. A message is acknowledged only after h returns nil,
// with an ack the server confirms (in the background, WithAckTimeout; an ack not confirmed at
// once has that outcome recorded in the guard store before it is retried a few times); a
// failure is retried with backoff and
// dead-lettered after the last delivery; a rejected envelope is dead-lettered at once and
// never reaches h. A redelivery of a message h already handled (its ack was lost), in this
// process or another one on the durable, is acknowledged without calling h again, and a
// replay (the same envelope at another stream position) is dead-lettered: see the package
// documentation.
//
// Messages are prepared as they are pulled, concurrently: verified, then their id claimed in
// the guard store, so that the claim's round trip to the server overlaps the handling of the
// messages before them; the workers then call h in delivery order (with one worker, one
// message at a time, in order). A redelivery of a message already being handled in this
// process waits for that call's outcome aside, out of the order.
//
// Stop ends the consumption promptly: handlers in progress finish (their context is
// cancelled), messages pulled but not started are returned to the server for immediate
// redelivery, their claims given back (on their last allowed delivery they are handled
// instead, so none is lost).
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
	defer cancel()
	link := clientseam.Of(c)
	cons, err := lookupConsumer(lctx, link, stream, durable)
	if err != nil {
		return nil, fmt.Errorf("%w: %s on %s: %w", ErrNoConsumer, durable, stream, err)
	}
	info := cons.CachedInfo()
	if info == nil || info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("%w: %s on %s must use explicit acks", ErrNoConsumer, durable, stream)
	}
	g, err := startGuard(lctx, c, link, stream, durable, info.Config, cfg)
	if err != nil {
		return nil, err
	}
	cancel()
	sched := schedule{want: cfg.backoff, ackWait: info.Config.AckWait, server: info.Config.BackOff}
	k := link.Counters.Child() // this consumption's counts, also in the client's Metrics
	// Of the messages in flight, up to half of those beyond the workers wait prepared (verified
	// and claimed) for a worker; the rest wait in the pull buffer.
	ahead := max(1, (cfg.maxInFlight-cfg.workers)/2)
	cs := &Consumption{
		c: c, nc: link.Conn, log: c.Logger().With("stream", stream, "consumer", durable),
		stream: stream, durable: durable, maxDeliver: info.Config.MaxDeliver,
		work: make(chan *job, ahead), toPrepare: make(chan *job), maxPrepare: ahead + cfg.workers,
		k: k, firstDelay: sched.nakDelay(1), done: make(chan struct{}),
		ackTimeout: cfg.ackTimeout, ackSlots: make(chan struct{}, cfg.maxInFlight),
	}
	cs.guard = g
	cs.acker, err = startAcker(cs)
	if err != nil {
		g.stop()
		return nil, fmt.Errorf("consumers: %s on %s: acknowledgement replies: %w", durable, stream, err)
	}
	dl := deadLetter(link.WriteDeadLetter, c.Audit, k, c.Logger())
	cs.prepare = Chain(func(context.Context, *Message) error { return nil }, dl, Verify(c), g.claimStage)
	app := application(Chain(timed(recoverPanics(h), k), cfg.middleware...))
	cs.handler = Chain(app, dl, g.handlerStage, retry(sched, cs.maxDeliver, k))
	cs.hctx, cs.hcancel = context.WithCancel(context.WithoutCancel(ctx))

	buffer := max(1, cfg.maxInFlight-cfg.workers-ahead)
	cs.it, err = cons.Messages(jetstream.PullMaxMessages(buffer), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		cs.acker.stop()
		cs.hcancel()
		g.stop()
		return nil, fmt.Errorf("%w: %s on %s: %w", ErrNoConsumer, durable, stream, err)
	}

	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Go(cs.worker)
	}
	go cs.dispatch()
	go func() {
		wg.Wait()
		cs.aside.Wait()
		cs.acks.Wait()
		cs.acker.stop()
		g.stop()
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
	defer close(cs.toPrepare)
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
		j := &job{raw: msg}
		j.ready.Add(1)
		select {
		case cs.toPrepare <- j:
		default:
			if cs.preparers < cs.maxPrepare {
				cs.preparers++
				go cs.preparer(j)
			} else {
				cs.toPrepare <- j
			}
		}
		cs.work <- j
	}
}

// job is one pulled message on its way through the consumption. Messages are prepared as
// they are pulled, concurrently (verification, then the replay guard's claim in the durable's
// store, whose round trip is so overlapped with the handling of the messages before it), and
// handled by the workers in delivery order once prepared.
type job struct {
	raw   jetstream.Msg
	m     *Message // nil: no JetStream metadata (terminated); else &msg
	msg   Message
	err   error          // the prepare stage's error: not settled, retried
	ready sync.WaitGroup // done once prepared
}

// preparer prepares first, then the jobs dispatch hands it, until dispatch returns. Preparers
// live as long as the consumption (a goroutine per message would grow a new stack for the
// verification's crypto each time); dispatch starts them as the messages in flight need them.
func (cs *Consumption) preparer(first *job) {
	cs.prepareJob(first)
	for j := range cs.toPrepare {
		cs.prepareJob(j)
	}
}

func (cs *Consumption) prepareJob(j *job) {
	defer j.ready.Done()
	m := &j.msg
	if err := fillMessage(m, j.raw, cs.c.Account()); err != nil {
		cs.log.Error("sealbus: message without JetStream metadata; terminated", "subject", j.raw.Subject(), "error", err)
		_ = j.raw.Term()
		return
	}
	m.last = cs.lastOf(m.Delivered)
	cs.k.Received.Add(1)
	m.noWait = true
	j.m = m
	j.err = cs.prepare(cs.hctx, m)
	m.noWait = false
}

func (cs *Consumption) lastDelivery(msg jetstream.Msg) bool {
	if cs.maxDeliver <= 0 {
		return false
	}
	md, err := msg.Metadata()
	return err == nil && cs.lastOf(md.NumDelivered)
}

// lastOf reports whether a message's delivered-th delivery is the last the durable allows.
func (cs *Consumption) lastOf(delivered uint64) bool {
	return cs.maxDeliver > 0 && delivered >= uint64(cs.maxDeliver)
}

func (cs *Consumption) worker() {
	for j := range cs.work {
		j.ready.Wait()
		cs.handle(j)
	}
}

func (cs *Consumption) handle(j *job) {
	m, err := j.m, j.err
	if m == nil || m.settled {
		return
	}
	if errors.Is(err, errBusyHere) {
		// Another delivery of this message is in progress here, possibly queued behind this
		// one: wait for it off the ordered path.
		cs.aside.Go(func() {
			if err := cs.prepare(cs.hctx, m); err != nil || m.settled {
				cs.finish(m, err)
				return
			}
			cs.handleJob(m, nil)
		})
		return
	}
	cs.handleJob(m, err)
}

// handleJob calls the handler for a prepared message (unless preparing failed or found a
// duplicate) and settles it.
func (cs *Consumption) handleJob(m *Message, err error) {
	switch {
	case err != nil, m.duplicate:
	case cs.mode.Load() == stopping && !m.last:
		// Prepared but not started when Stop came: give the claim back, return the message.
		cs.guard.abandon(m)
		if err := m.nak(0); err != nil {
			cs.log.Debug("sealbus: returning a prepared message failed; it is redelivered after AckWait", "error", err)
		}
		return
	default:
		err = cs.handler(cs.hctx, m)
	}
	cs.finish(m, err)
}

// finish settles m after its handling: an ack after success, a retry after an unsettled
// failure.
func (cs *Consumption) finish(m *Message, err error) {
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
	if errors.Is(err, ErrGuardUnavailable) {
		cs.k.GuardUnavailable.Add(1)
	}
	if errors.Is(err, errClaimHeld) {
		cs.log.Info("sealbus: returning a message another process holds; it may reach that process", "seq", m.Sequence, "error", err)
	} else {
		cs.log.Warn("sealbus: message not settled by middleware; retrying", "seq", m.Sequence, "error", err)
	}
	_ = m.nak(cs.firstDelay)
}

// ackAttempts bounds the attempts to get one ack confirmed.
const ackAttempts = 5

// ack settles m in the background, so the worker goes on at once; at most MaxInFlight acks
// wait for confirmation. The ack goes to the consumption's acker (acker.go), which asks the
// server to confirm it; only an ack the server does not confirm in time costs more: the
// message's handled state is then recorded in the replay guard's store, and the ack sent
// again until confirmed (slowAck).
func (cs *Consumption) ack(m *Message) {
	m.settled = true
	cs.ackSlots <- struct{}{}
	cs.acks.Add(1)
	cs.acker.send(m)
}

func (cs *Consumption) ackDone() {
	<-cs.ackSlots
	cs.acks.Done()
}

// recordTimeout bounds the time an ack waits for the handled state to be written to the
// replay guard's store (a server fault); the ack is sent after it either way.
const recordTimeout = 30 * time.Second

// slowAck settles an ack the server did not confirm at its first attempt: it may or may not
// have been applied. Before it is sent again, the replay guard records that m was handled
// (when the guard holds its claim), so that if the ack is lost after all, the redelivery, in
// any process, is acknowledged without a handler call; then the ack is confirmed on its own.
func (cs *Consumption) slowAck(m *Message) {
	defer cs.ackDone()
	if c := m.toRecord; c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		err := c.record(ctx, m.Sequence)
		cancel()
		if err != nil {
			cs.log.Warn("sealbus: handled state not recorded in the replay guard; acknowledging with a confirmation", "seq", m.Sequence, "id", m.ID, "error", err)
		}
	}
	cs.confirm(m)
}

// confirm sends m's ack until the server confirms it with a reply, at most ackAttempts times,
// each waiting ackTimeout for the confirmation; between attempts it waits for the connection
// when it is down, or a short pause. An ack left unconfirmed may or may not have been applied:
// if not, JetStream redelivers the message after AckWait, and the replay guard, if it recorded
// the id as handled, lets Consume acknowledge it again without calling the handler.
func (cs *Consumption) confirm(m *Message) {
	nc := cs.nc
	reply := m.raw.Reply()
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), cs.ackTimeout)
		_, err = nc.RequestWithContext(ctx, reply, ackBody)
		cancel()
		if err == nil {
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

// ackBody is JetStream's ack.
var ackBody = []byte("+ACK")

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

// Drain stops pulling, handles every message already pulled and waits until everything has
// settled (Done is closed), like bus.Client.Drain. It returns why the consumption ended on its
// own if it did (Err), else nil. Do not call it from a handler (it would wait for itself);
// use Stop or cancel Consume's context there.
func (cs *Consumption) Drain() error {
	if cs.mode.CompareAndSwap(running, draining) {
		cs.it.Drain()
	}
	<-cs.done
	return cs.Err()
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
