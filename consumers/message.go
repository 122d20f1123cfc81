package consumers

import (
	"math"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one delivery of an envelope. Before the verify middleware runs only the delivery
// fields are set (Subject, Account, Stream, Consumer, Sequence, Delivered, Stored,
// UnverifiedHeaders); handlers behind it see a verified, decrypted message: Payload is the
// plaintext and Sender, SenderKey, ID, ContentType, Created and Expires come from the signed
// header. Decide on signed fields only: UnverifiedHeaders are not part of the envelope.
//
// Replay is set when the message is an operator's replay of a dead letter, delivered after the
// freshness window under a verified replay authorization (see Verify): Created is then still
// the envelope's original creation time and Stored the replay's.
type Message struct {
	ID           string // envelope message id (32 hex digits), also its Nats-Msg-Id
	Subject      string // subject it was published on (signed)
	LocalSubject string // subject it was delivered on in this account; differs from Subject for a stream import
	Account      string // account it was published in ("A...") (signed)
	Sender       string // service name of the sender, from its verified card
	SenderKey    string // sender's user public key ("U...") (signed)
	ContentType  string // signed content type; may be empty
	Created      time.Time
	Expires      time.Time // zero when the envelope has no expiry
	Stored       time.Time // JetStream's stored timestamp
	Payload      []byte    // verified plaintext
	// UnverifiedHeaders are the NATS headers the message was stored with. They are NOT
	// signed, encrypted or checked: whoever could publish on the subject (or replay the
	// envelope) chose them. Use them for tracing at most, never for a decision.
	UnverifiedHeaders nats.Header
	Stream            string
	Consumer          string
	Sequence          uint64      // stream sequence
	Delivered         uint64      // delivery count, starting at 1
	Replay            *ReplayInfo // non-nil for an authorized replay of a dead letter

	raw       jetstream.Msg
	envelope  []byte
	verified  bool
	settled   bool
	last      bool // the consumer's last allowed delivery of this message (MaxDeliver reached)
	duplicate bool // a redelivery of a message already handled: acknowledged, not handled again
	// guardKey, when set by the verifier, is what the replay guard lets through once instead
	// of the envelope's message id (an operator-authorized replay, by its authorization id).
	guardKey *deliveryKey
	// toRecord, set by the replay guard after a handler call returned nil, is the claim whose
	// outcome slowAck writes to the durable's guard store (claimState.record) before the ack
	// is sent again.
	toRecord *claimState
	// claim is the replay guard's claim, from the prepare stage to the handler stage; it
	// points to claimed.
	claim      *claimState
	claimed    claimState
	claimEntry [entryLen]byte // the claim's guard store entry (guard.claim)
	ack        ackRequest     // the ack, once sent (acker.go)
	// noWait makes the replay guard return errBusyHere instead of waiting for another
	// delivery of the same message in progress in this process (set while preparing).
	noWait bool
}

// InProgress tells the server that the handler is still working on the message, resetting its
// redelivery timer (AckWait). Long handlers call it periodically.
func (m *Message) InProgress() error { return m.raw.InProgress() }

// Envelope returns the envelope bytes as received (do not modify them).
func (m *Message) Envelope() []byte { return m.envelope }

// Verified reports whether the verify middleware has accepted the envelope.
func (m *Message) Verified() bool { return m.verified }

// guardTime is the time the replay guard remembers m's key by: the signed creation time, or
// for an authorized replay (keyed by its authorization id, see guard.keyOf) its stored time:
// the authorization only holds within the freshness window of its issue time, so the guard
// need not remember it longer.
func (m *Message) guardTime() time.Time {
	if m.Replay != nil {
		return m.Stored
	}
	return m.Created
}

// nak and term settle the message once; later calls are ignored. Consumption.ack settles it
// with a confirmed ack.
func (m *Message) nak(delay time.Duration) error {
	if m.settled {
		return nil
	}
	m.settled = true
	if delay <= 0 {
		return m.raw.Nak()
	}
	return m.raw.NakWithDelay(delay)
}

func (m *Message) term(reason string) error {
	if m.settled {
		return nil
	}
	m.settled = true
	return m.raw.TermWithReason(reason)
}

// fillMessage sets m's delivery fields from a JetStream message.
func fillMessage(m *Message, raw jetstream.Msg, account string) error {
	d, ok := parseAckSubject(raw.Reply())
	if !ok {
		md, err := raw.Metadata() // says what is wrong with it
		if err != nil {
			return err
		}
		d = ackSubject{stream: md.Stream, consumer: md.Consumer, delivered: md.NumDelivered, seq: md.Sequence.Stream, stored: md.Timestamp}
	}
	*m = Message{
		Subject:           raw.Subject(),
		LocalSubject:      raw.Subject(),
		Account:           account,
		Stored:            d.stored,
		UnverifiedHeaders: raw.Headers(),
		Stream:            d.stream,
		Consumer:          d.consumer,
		Sequence:          d.seq,
		Delivered:         d.delivered,
		raw:               raw,
		envelope:          raw.Data(),
	}
	return nil
}

// ackSubject is what a delivery's reply subject says about it.
type ackSubject struct {
	stream, consumer string
	delivered, seq   uint64
	stored           time.Time
}

// parseAckSubject reads a JetStream delivery's reply subject, in either of the server's forms
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>[.<token>...]
//
// without allocating (jetstream's Msg.Metadata allocates its result for every delivery). It
// reports false for anything else, or for a number that is empty, not decimal or too long;
// the caller then asks Msg.Metadata, which says what is wrong.
func parseAckSubject(s string) (ackSubject, bool) {
	const prefix = "$JS.ACK."
	var d ackSubject
	if !strings.HasPrefix(s, prefix) {
		return d, false
	}
	// The first ten tokens after the prefix; n counts them (up to 10).
	var tok [10]string
	n := 0
	for rest, more := s[len(prefix):], true; more && n < len(tok); n++ {
		tok[n], rest, more = strings.Cut(rest, ".")
	}
	var f []string // stream, consumer, delivered, stream seq, consumer seq, time, pending
	switch {
	case n == 7:
		f = tok[:7]
	case n >= 9:
		f = tok[2:9]
	default:
		return d, false
	}
	for _, t := range f {
		if t == "" {
			return d, false
		}
	}
	var ts uint64
	var ok1, ok2, ok3 bool
	d.stream, d.consumer = f[0], f[1]
	d.delivered, ok1 = decimal(f[2])
	d.seq, ok2 = decimal(f[3])
	ts, ok3 = decimal(f[5])
	if !ok1 || !ok2 || !ok3 || ts > math.MaxInt64 {
		return d, false
	}
	d.stored = time.Unix(0, int64(ts))
	return d, true
}

// decimal parses a non-empty unsigned decimal of at most 19 digits (no overflow).
func decimal(t string) (uint64, bool) {
	if t == "" || len(t) > 19 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
