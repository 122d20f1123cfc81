package consumers

import (
	"github.com/nats-io/nats.go"
)

// acker sends a consumption's acks and collects the server's confirmations on one reply
// subscription (replies), without a goroutine, a timer or a context per ack. An ack whose
// confirmation does not come within the ack timeout (or that could not be sent, or whose
// answer is a status such as "no responders") goes to slowAck: its fate is unknown, so the
// replay guard records the message as handled before the ack is sent again.
//
// A confirmed ack is applied: on a clustered consumer the server replies once the ack is
// replicated. So the replay guard's store is written for an ack only when it is needed, and
// the steady state costs the server one ack and one empty reply per message.
type acker struct {
	cs *Consumption
	r  *replies
}

func startAcker(cs *Consumption) (*acker, error) {
	r, err := newReplies(cs.nc, cs.ackTimeout)
	if err != nil {
		return nil, err
	}
	return &acker{cs: cs, r: r}, nil
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
	m.ack = ackRequest{a: a, m: m, msg: nats.Msg{Subject: m.raw.Reply(), Data: ackBody}}
	if _, err := a.r.send(&m.ack.msg, &m.ack); err != nil {
		go a.cs.slowAck(m)
	}
}

// ackRequest is one ack on its way, kept in its Message (no allocation per ack): the message
// published and the waiter of its confirmation.
type ackRequest struct {
	a   *acker
	m   *Message
	msg nats.Msg
}

func (q *ackRequest) answered(reply *nats.Msg, _ error) {
	if _, err := answer(reply); err != nil {
		go q.a.cs.slowAck(q.m)
		return
	}
	q.a.cs.k.AckConfirmed.Add(1)
	q.a.cs.ackDone()
}

// stop ends the reply subscription; called once every ack has settled.
func (a *acker) stop() { a.r.stop() }

// loseAck, set by tests only, makes the acks of the sequences it reports count as confirmed
// without being sent.
var loseAck func(seq uint64) bool
