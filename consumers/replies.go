package consumers

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// replies collects the answers to a consumption's requests on one subscription (under the
// service's private inbox), without a context, a timer or a goroutine per request: each
// request gets a reply subject prefix+id, and its callback is called once, with the answer,
// or with nil when no answer came within the timeout (one sweeper for all). The acker and the guard store, the hot paths of consuming, use it.
type replies struct {
	nc      *nats.Conn
	prefix  string // reply subjects: prefix + id (base 36)
	sub     *nats.Subscription
	timeout time.Duration

	mu   sync.Mutex
	next uint64
	wait map[uint64]waiting

	quit     chan struct{}
	stopOnce sync.Once
	swept    chan struct{} // closed when the sweeper has returned
}

type waiting struct {
	w    waiter
	sent time.Time
}

// waiter is told the answer to one request, once: the reply, or nil when none came within the
// timeout. An interface rather than a closure: the acker's waiters live in their messages and
// request's are pooled, so a request costs no allocation of its own.
type waiter interface{ answered(*nats.Msg) }

func newReplies(nc *nats.Conn, timeout time.Duration) (*replies, error) {
	r := &replies{
		nc: nc, prefix: nc.NewInbox() + ".", timeout: timeout,
		wait: make(map[uint64]waiting), quit: make(chan struct{}), swept: make(chan struct{}),
	}
	sub, err := nc.Subscribe(r.prefix+"*", r.reply)
	if err != nil {
		return nil, err
	}
	r.sub = sub
	go r.sweep()
	return r, nil
}

// send publishes msg (its Reply is set here; msg may be reused once send returns) and tells w
// the answer once, or nil when none came within the timeout. It returns the request's id (for
// take), or the error that kept msg from being sent (w is then not told).
func (r *replies) send(msg *nats.Msg, w waiter) (uint64, error) {
	r.mu.Lock()
	r.next++
	id := r.next
	r.wait[id] = waiting{w: w, sent: time.Now()}
	r.mu.Unlock()
	msg.Reply = r.prefix + strconv.FormatUint(id, 36)
	if err := r.nc.PublishMsg(msg); err != nil {
		if r.take(id) {
			return 0, err
		}
		// The sweeper or stop answered it meanwhile.
	}
	return id, nil
}

// take removes request id and reports whether it was waiting (an answer, the sweeper and
// a request whose context ended may race for it; one wins).
func (r *replies) take(id uint64) bool {
	r.mu.Lock()
	_, ok := r.wait[id]
	delete(r.wait, id)
	r.mu.Unlock()
	return ok
}

func (r *replies) reply(msg *nats.Msg) {
	id, err := strconv.ParseUint(msg.Subject[min(len(r.prefix), len(msg.Subject)):], 36, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	w, ok := r.wait[id]
	delete(r.wait, id)
	r.mu.Unlock()
	if ok {
		w.w.answered(msg)
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
				w.answered(nil)
			}
			clear(late)
		}
	}
}

// stop ends the sweeper and the subscription; requests still waiting are answered nil.
func (r *replies) stop() {
	r.stopOnce.Do(func() {
		close(r.quit)
		<-r.swept
		_ = r.sub.Unsubscribe()
		r.mu.Lock()
		left := r.wait
		r.wait = map[uint64]waiting{}
		r.mu.Unlock()
		for _, w := range left {
			w.w.answered(nil)
		}
	})
}

// errNoAnswer: a request was not answered within the timeout (or could not be sent).
var errNoAnswer = errors.New("consumers: no answer from the server")

// request sends msg and waits for its answer, at most the timeout (or until ctx ends). A
// status answer (no responders: no stream or server there) is an error.
func (r *replies) request(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	w, _ := requests.Get().(*requestWaiter)
	if w == nil {
		w = &requestWaiter{ch: make(chan *nats.Msg, 1)}
	}
	id, err := r.send(msg, w)
	if err != nil {
		requests.Put(w)
		return nil, err
	}
	select {
	case m := <-w.ch:
		requests.Put(w)
		return answer(m)
	case <-ctx.Done():
		if !r.take(id) {
			<-w.ch // answered meanwhile: the answer is on its way; do not leave it to the next user
		}
		requests.Put(w)
		return nil, ctx.Err()
	}
}

// requestWaiter is request's waiter: its channel holds the one answer.
type requestWaiter struct{ ch chan *nats.Msg }

func (w *requestWaiter) answered(m *nats.Msg) { w.ch <- m }

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
