package consumers

import (
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// acker sends a consumption's acks and collects the server's confirmations, without a
// goroutine, a timer or a context per ack: every ack is published with a reply subject under
// one subscription of the consumption (in the service's private inbox), and the server's
// empty reply settles it. An ack whose reply does not come within the ack timeout (or that
// could not be sent, or whose reply is a status such as "no responders") goes to slowAck: its
// fate is unknown, so the replay guard records the message as handled before it is sent again.
//
// A confirmed ack is applied: on a clustered consumer the server replies once the ack is
// replicated. So the replay guard's store is written for an ack only when it is needed, and
// the steady state costs the server one ack and one empty reply per message.
type acker struct {
	cs      *Consumption
	nc      *nats.Conn
	prefix  string // reply subjects: prefix + id (base 36)
	sub     *nats.Subscription
	timeout time.Duration

	mu   sync.Mutex
	next uint64
	wait map[uint64]pendingAck

	quit     chan struct{}
	stopOnce sync.Once
	swept    chan struct{} // closed when the sweeper has returned
}

type pendingAck struct {
	m    *Message
	sent time.Time
}

func startAcker(cs *Consumption) (*acker, error) {
	a := &acker{
		cs: cs, nc: cs.nc, prefix: cs.nc.NewInbox() + ".", timeout: cs.ackTimeout,
		wait: make(map[uint64]pendingAck), quit: make(chan struct{}), swept: make(chan struct{}),
	}
	sub, err := a.nc.Subscribe(a.prefix+"*", a.reply)
	if err != nil {
		return nil, err
	}
	a.sub = sub
	go a.sweep()
	return a, nil
}

// send publishes m's ack, asking for a confirmation.
func (a *acker) send(m *Message) {
	if lose := loseAck; lose != nil && lose(m.Sequence) {
		// Tests: an ack the server confirmed and then lost (a single server's crash before it
		// wrote its consumer state): nothing recorded it, the redelivery must still not reach
		// the handler twice.
		a.cs.k.AckConfirmed.Add(1)
		a.cs.ackDone()
		return
	}
	a.mu.Lock()
	a.next++
	id := a.next
	a.wait[id] = pendingAck{m: m, sent: time.Now()}
	a.mu.Unlock()
	if err := a.nc.PublishRequest(m.raw.Reply(), a.prefix+strconv.FormatUint(id, 36), ackBody); err != nil {
		if a.take(id) {
			go a.cs.slowAck(m)
		}
	}
}

// take removes the ack id from the waiting set and reports whether it was there (a reply and
// the sweeper may race for it; one wins).
func (a *acker) take(id uint64) bool {
	a.mu.Lock()
	_, ok := a.wait[id]
	delete(a.wait, id)
	a.mu.Unlock()
	return ok
}

// reply settles the ack the reply names.
func (a *acker) reply(msg *nats.Msg) {
	id, err := strconv.ParseUint(msg.Subject[min(len(a.prefix), len(msg.Subject)):], 36, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	p, ok := a.wait[id]
	delete(a.wait, id)
	a.mu.Unlock()
	if !ok {
		return // already given to slowAck
	}
	if len(msg.Header) > 0 && msg.Header.Get("Status") != "" {
		// "503 no responders" (the consumer is gone or moving) or another status: not applied.
		go a.cs.slowAck(p.m)
		return
	}
	a.cs.k.AckConfirmed.Add(1)
	a.cs.ackDone()
}

// sweep hands the acks not confirmed within the timeout to slowAck, until stop.
func (a *acker) sweep() {
	defer close(a.swept)
	every := min(max(a.timeout/4, 10*time.Millisecond), 250*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var late []*Message
	for {
		select {
		case <-a.quit:
			return
		case now := <-tick.C:
			late = late[:0]
			a.mu.Lock()
			for id, p := range a.wait {
				if now.Sub(p.sent) >= a.timeout {
					delete(a.wait, id)
					late = append(late, p.m)
				}
			}
			a.mu.Unlock()
			for _, m := range late {
				go a.cs.slowAck(m)
			}
		}
	}
}

// stop ends the sweeper and the reply subscription; called once every ack has settled.
func (a *acker) stop() {
	a.stopOnce.Do(func() {
		close(a.quit)
		<-a.swept
		_ = a.sub.Unsubscribe()
	})
}

// loseAck, set by tests only, makes the acks of the sequences it reports count as confirmed
// without being sent.
var loseAck func(seq uint64) bool
