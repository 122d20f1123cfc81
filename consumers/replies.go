package consumers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/internal/clientseam"
)

// replies collects the answers to a consumption's requests on one subscription (under the
// service's private inbox), without a context, a timer or a goroutine per request: each
// request gets a reply subject prefix+id, and its callback is called once, with the answer,
// or with nil when no answer came within the timeout (one sweeper for all). The acker and the
// guard store, the hot paths of consuming, use it.
//
// Requests leave through an outbox: send queues the message, and one goroutine publishes
// what is queued in bursts, after letting the goroutines that are ready to run go first
// (runtime.Gosched), so that the requests of many deliveries share a socket write. nats.go
// writes whenever its flusher goroutine runs, and each request published from its own
// goroutine (a delivery's claim from a preparer, its ack from a worker) woke the flusher
// once: 1.4 write system calls per message consumed, where a burst takes one.
type replies struct {
	nc      *nats.Conn
	prefix  string // reply subjects: prefix + id (base 36)
	sub     *nats.Subscription
	timeout time.Duration

	mu      sync.Mutex
	next    uint64
	wait    map[uint64]waiting
	stopped bool

	out      chan outgoing // the outbox (see sender)
	quit     chan struct{}
	stopOnce sync.Once
	swept    chan struct{} // closed when the sweeper has returned
	sent     chan struct{} // closed when the sender has returned
}

// outgoing is a queued request: its message (read when it is published) and its id.
type outgoing struct {
	msg *nats.Msg
	id  uint64
}

// outboxSize bounds the requests queued for the sender; send waits when it is full. The
// requests in flight are bounded before that (MaxInFlight acks, the prepared deliveries'
// claims), so it is a backstop, not a limit anyone reaches.
const outboxSize = 4096

type waiting struct {
	w    waiter
	sent time.Time
}

// waiter is told the answer to one request, once: the reply, or nil when none came within the
// timeout. An interface rather than a closure: the acker's waiters live in their messages and
// request's are pooled, so a request costs no allocation of its own.
// Without an answer (m nil), err says why when the request could not be published, and is
// nil when none came within the timeout or the replies stopped.
type waiter interface{ answered(m *nats.Msg, err error) }

func newReplies(nc *nats.Conn, timeout time.Duration) (*replies, error) {
	r := &replies{
		nc: nc, prefix: nc.NewInbox() + ".", timeout: timeout,
		wait: make(map[uint64]waiting), out: make(chan outgoing, outboxSize),
		quit: make(chan struct{}), swept: make(chan struct{}), sent: make(chan struct{}),
	}
	sub, err := nc.Subscribe(r.prefix+"*", r.reply)
	if err != nil {
		return nil, err
	}
	r.sub = sub
	go r.sweep()
	go r.sender()
	return r, nil
}

// send queues msg for publication (its Reply is set here) and tells w the answer once, or
// nil when none came within the timeout or msg could not be published. msg is read when it
// is published: it must not change until w has been told the answer, or, if the caller gives
// up first (take), ever. It returns the request's id (for take), or errRepliesStopped (w is
// then not told).
func (r *replies) send(msg *nats.Msg, w waiter) (uint64, error) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return 0, errRepliesStopped
	}
	r.next++
	id := r.next
	r.wait[id] = waiting{w: w, sent: time.Now()}
	r.mu.Unlock()
	msg.Reply = clientseam.ReplySubject(r.prefix, id)
	select {
	case r.out <- outgoing{msg: msg, id: id}:
	case <-r.quit: // stop answers it (nil), queued or not
	}
	return id, nil
}

// errRepliesStopped: a request was sent after its consumption's replies were stopped.
var errRepliesStopped = errors.New("consumers: stopped: no more requests")

// sender publishes the outbox until stop: it waits for a request, lets the goroutines that
// are ready to run go first (they may queue more), then publishes everything queued, so
// nats.go's flusher, woken by the first, writes them together once the burst is done.
func (r *replies) sender() {
	defer close(r.sent)
	for {
		select {
		case <-r.quit:
			return
		case o := <-r.out:
			runtime.Gosched()
			r.publish(&o)
			for more := true; more; {
				select {
				case o := <-r.out:
					r.publish(&o)
				default:
					more = false
				}
			}
		}
	}
}

// publish sends one queued request; one that cannot be sent is answered at once, without a
// message and with the reason (the callers treat it as an answer that did not come: retried,
// or the ack's slow path).
func (r *replies) publish(o *outgoing) {
	if err := r.nc.PublishMsg(o.msg); err != nil {
		if w, ok := r.waiterOf(o.id); ok {
			w.answered(nil, err)
		}
	}
}

// take removes request id and reports whether it was waiting (an answer, the sweeper and
// a request whose context ended may race for it; one wins).
func (r *replies) take(id uint64) bool {
	_, ok := r.waiterOf(id)
	return ok
}

// waiterOf removes request id and returns its waiter, if it was waiting.
func (r *replies) waiterOf(id uint64) (waiter, bool) {
	r.mu.Lock()
	w, ok := r.wait[id]
	delete(r.wait, id)
	r.mu.Unlock()
	return w.w, ok
}

func (r *replies) reply(msg *nats.Msg) {
	id, err := strconv.ParseUint(msg.Subject[min(len(r.prefix), len(msg.Subject)):], 36, 64)
	if err != nil {
		return
	}
	if w, ok := r.waiterOf(id); ok {
		w.answered(msg, nil)
	}
}

// sweep answers nil to the requests older than the timeout, until stop.
func (r *replies) sweep() {
	defer close(r.swept)
	tick := time.NewTicker(min(max(r.timeout/4, 10*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	var late []waiter
	for {
		select {
		case <-r.quit:
			return
		case now := <-tick.C:
			late = late[:0]
			r.mu.Lock()
			for id, w := range r.wait {
				if now.Sub(w.sent) >= r.timeout {
					delete(r.wait, id)
					late = append(late, w.w)
				}
			}
			r.mu.Unlock()
			for _, w := range late {
				w.answered(nil, nil)
			}
			clear(late)
		}
	}
}

// stop ends the sweeper, the sender and the subscription; requests still waiting, queued or
// not, are answered nil. It waits for a publish in progress (nats.go bounds one that blocks on
// a full socket by the connection's flush deadline).
func (r *replies) stop() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		close(r.quit)
		<-r.swept
		<-r.sent
		_ = r.sub.Unsubscribe()
		r.mu.Lock()
		left := r.wait
		r.wait = map[uint64]waiting{}
		r.mu.Unlock()
		for _, w := range left {
			w.w.answered(nil, nil)
		}
	})
}

// errNoAnswer: a request was not answered within the timeout (or could not be sent).
var errNoAnswer = errors.New("consumers: no answer from the server")

// unanswered reports whether request's error means no answer came (the request may still be
// queued: its message must not be reused).
func unanswered(err error) bool {
	return errors.Is(err, errNoAnswer) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// request sends msg and waits for its answer, at most the timeout (or until ctx ends). A
// status answer (no responders: no stream or server there) is an error.
func (r *replies) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	w, _ := requests.Get().(*requestWaiter)
	if w == nil {
		w = &requestWaiter{ch: make(chan gotAnswer, 1)}
	}
	id, err := r.send(msg, w)
	if err != nil {
		requests.Put(w)
		return nil, err
	}
	select {
	case a := <-w.ch:
		requests.Put(w)
		if a.m == nil && a.err != nil {
			return nil, fmt.Errorf("%w: not sent: %w", errNoAnswer, a.err)
		}
		return answer(a.m)
	case <-ctx.Done():
		if !r.take(id) {
			<-w.ch // answered meanwhile: the answer is on its way; do not leave it to the next user
		}
		requests.Put(w)
		return nil, ctx.Err()
	}
}

// requestWaiter is request's waiter: its channel holds the one answer.
type requestWaiter struct{ ch chan gotAnswer }

// gotAnswer is what a requestWaiter was told (see waiter).
type gotAnswer struct {
	m   *nats.Msg
	err error
}

func (w *requestWaiter) answered(m *nats.Msg, err error) { w.ch <- gotAnswer{m, err} }

// requests pools request's waiters.
var requests sync.Pool

// answer turns a reply (nil: none) into the message or an error.
func answer(m *nats.Msg) (*nats.Msg, error) {
	switch {
	case m == nil:
		return nil, errNoAnswer
	case len(m.Data) == 0 && len(m.Header) > 0 && m.Header.Get("Status") == "503":
		return nil, nats.ErrNoResponders
	case len(m.Header) > 0 && m.Header.Get("Status") != "":
		return nil, errors.New("consumers: server status " + m.Header.Get("Status") + " " + m.Header.Get("Description"))
	}
	return m, nil
}
