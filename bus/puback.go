package bus

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/internal/clientseam"
)

// pubAcks sends envelopes to JetStream and collects their acknowledgements on one
// subscription of the client's private inbox: each attempt publishes with a reply subject
// "<inbox>.<token>", and the server's answer settles the attempt. It does what jetstream's
// PublishMsgAsync does for the acker, without a future, two channels, a lock round and a JSON
// decoding per message; the acker owns every retry and timeout decision.
type pubAcks struct {
	nc     *nats.Conn
	prefix string // "<inbox>."
	sub    *nats.Subscription
	status chan nats.Status

	mu   sync.Mutex
	wait map[uint64]*future // attempts waiting for an answer, by token
	next uint64

	// gen counts connection losses: an attempt sent in an older generation lost its answer
	// (nats.go does not buffer while reconnecting, and the server forgets the reply subject).
	gen    atomic.Uint64
	notify chan struct{} // poked (non-blocking, capacity 1) when an attempt settles or gen moves
	done   chan struct{}
	stream string // the stream named by the last ack (answer's goroutine only)

	// pubMu serializes publishes through one header map and message (publish): nats.go
	// encodes the headers before PublishMsg returns, so a map per envelope is not needed.
	pubMu   sync.Mutex
	hdr     nats.Header
	scratch nats.Msg
}

// Attempt states (future.attempt), guarded by pubAcks.mu.
const (
	attemptNone    = iota // not sent
	attemptPending        // sent, waiting for the answer
	attemptAnswered
)

func newPubAcks(nc *nats.Conn) (*pubAcks, error) {
	p := &pubAcks{
		nc: nc, prefix: nc.NewInbox() + ".", wait: map[uint64]*future{}, hdr: nats.Header{},
		notify: make(chan struct{}, 1), done: make(chan struct{}),
		status: nc.StatusChanged(nats.RECONNECTING, nats.CLOSED),
	}
	sub, err := nc.Subscribe(p.prefix+"*", p.answer)
	if err != nil {
		nc.RemoveStatusListener(p.status)
		return nil, err
	}
	// The acker keeps up with the answers; a slow one must not get the subscription cut.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		nc.RemoveStatusListener(p.status)
		return nil, err
	}
	p.sub = sub
	go p.watch()
	return p, nil
}

// watch moves the generation when the connection drops or closes, so the acker resends (or
// fails) every attempt whose answer was lost.
func (p *pubAcks) watch() {
	for {
		select {
		case _, ok := <-p.status:
			if !ok {
				return
			}
			p.gen.Add(1)
			p.poke()
		case <-p.done:
			return
		}
	}
}

func (p *pubAcks) close() {
	select {
	case <-p.done:
	default:
		close(p.done)
		p.nc.RemoveStatusListener(p.status)
	}
}

func (p *pubAcks) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// send publishes f's envelope as a new attempt. An error means nothing was sent.
func (p *pubAcks) send(f *future, now time.Time) error {
	p.mu.Lock()
	p.next++
	tok := p.next
	f.token, f.gen, f.sentAt, f.attempt, f.aerr, f.probes = tok, p.gen.Load(), now, attemptPending, nil, 0
	f.nmsg.Reply = clientseam.ReplySubject(p.prefix, tok)
	p.wait[tok] = f
	msg := f.nmsg
	p.mu.Unlock()
	if err := p.publish(msg, f); err != nil {
		p.forget(f)
		return err
	}
	return nil
}

// publish sends m, an attempt of f, stored under f's message id (the Nats-Msg-Id header).
func (p *pubAcks) publish(m nats.Msg, f *future) error {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.hdr[jetstream.MsgIDHeader] = f.idHdr[:]
	p.scratch = m
	p.scratch.Header = p.hdr
	err := p.nc.PublishMsg(&p.scratch)
	p.scratch = nats.Msg{}
	return err
}

// forget gives up on f's current attempt: a late answer to it is ignored.
func (p *pubAcks) forget(f *future) {
	p.mu.Lock()
	if p.wait[f.token] == f {
		delete(p.wait, f.token)
	}
	f.attempt = attemptNone
	p.mu.Unlock()
}

// result reports f's attempt: answered (with f.ack or the error), or still pending.
func (p *pubAcks) result(f *future) (answered bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return f.attempt == attemptAnswered, f.aerr
}

// answer handles the server's answer to an attempt (subscription goroutine).
func (p *pubAcks) answer(m *nats.Msg) {
	tok, err := strconv.ParseUint(m.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	var ack PubAck
	var aerr error
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		// No stream (leader) answered: an election, or no stream. Probe again a little
		// later, as jetstream does, before the attempt counts as failed.
		if p.probeAgain(tok) {
			return
		}
		aerr = jetstream.ErrNoStreamResponse
	} else {
		ack, aerr = parsePubAck(m.Data, p.stream)
		p.stream = ack.Stream // answers come on one goroutine
	}
	p.mu.Lock()
	f := p.wait[tok]
	if f != nil && f.token == tok {
		delete(p.wait, tok)
		f.attempt, f.aerr = attemptAnswered, aerr
		if aerr == nil {
			f.ack.Stream, f.ack.Sequence, f.ack.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
		}
	}
	p.mu.Unlock()
	if f != nil {
		p.poke()
	}
}

// Probes of one attempt that no stream answered, as jetstream's async publish makes them:
// noResponderProbes more, noResponderWait apart.
const (
	noResponderProbes = 2
	noResponderWait   = 250 * time.Millisecond
)

// probeAgain schedules another send of the attempt tok after a no-responders answer and
// reports true, or false when its probes are used up (or it is no longer current). Only this
// path arms a timer.
func (p *pubAcks) probeAgain(tok uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.wait[tok]
	if f == nil || f.probes >= noResponderProbes {
		return false
	}
	f.probes++
	time.AfterFunc(noResponderWait, func() {
		p.mu.Lock()
		if p.wait[tok] != f || f.token != tok {
			p.mu.Unlock()
			return // answered, timed out or resent meanwhile
		}
		msg := f.nmsg // a copy: the acker may resend f after this attempt times out
		p.mu.Unlock()
		if err := p.publish(msg, f); err != nil {
			p.mu.Lock()
			if p.wait[tok] == f && f.token == tok {
				delete(p.wait, tok)
				f.attempt, f.aerr = attemptAnswered, err
			}
			p.mu.Unlock()
			p.poke()
		}
	})
	return true
}

// parsePubAck reads JetStream's publish acknowledgement. The usual answer,
// {"stream":"NAME","seq":N} with an optional "duplicate":true (and "domain"), is read
// without reflection; anything else (an error, escapes, another field order) is decoded by
// encoding/json. An error answer becomes its *jetstream.APIError (errors.Is matches
// jetstream's sentinels).
func parsePubAck(b []byte, last string) (PubAck, error) {
	if a, ok := parsePubAckFast(b, last); ok {
		return a, nil
	}
	var r struct {
		Stream    string              `json:"stream"`
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
		Error     *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return PubAck{}, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return PubAck{}, r.Error
	}
	if r.Stream == "" {
		return PubAck{}, jetstream.ErrInvalidJSAck
	}
	return PubAck{Stream: r.Stream, Sequence: r.Sequence, Duplicate: r.Duplicate}, nil
}

// parsePubAckFast reads exactly {"stream":"S","seq":N} followed by any of
// ,"duplicate":true|false and ,"domain":"D", in that order, with S and D free of escapes. A
// stream name equal to last is returned as last (no allocation).
func parsePubAckFast(b []byte, last string) (PubAck, bool) {
	var a PubAck
	rest, ok := bytes.CutPrefix(b, []byte(`{"stream":"`))
	if !ok {
		return a, false
	}
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return a, false
	}
	if string(rest[:i]) == last {
		a.Stream = last
	} else {
		a.Stream = string(rest[:i])
	}
	rest = rest[i+1:]
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return a, false
	}
	n := 0
	var seq uint64
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		d := uint64(rest[n] - '0')
		if seq > (math.MaxUint64-d)/10 {
			return a, false // overflow
		}
		seq = seq*10 + d
		n++
	}
	if n == 0 || n > 1 && rest[0] == '0' {
		return a, false
	}
	a.Sequence, rest = seq, rest[n:]
	if r, ok := bytes.CutPrefix(rest, []byte(`,"duplicate":true`)); ok {
		a.Duplicate, rest = true, r
	} else if r, ok := bytes.CutPrefix(rest, []byte(`,"duplicate":false`)); ok {
		rest = r
	}
	if r, ok := bytes.CutPrefix(rest, []byte(`,"domain":"`)); ok {
		j := bytes.IndexByte(r, '"')
		if j < 0 || bytes.IndexByte(r[:j], '\\') >= 0 {
			return a, false
		}
		rest = r[j+1:]
	}
	return a, string(rest) == "}"
}
