package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// dlqAttempts is how many times a dead letter is written before the message is left for
// redelivery instead.
const dlqAttempts = 3

// publisher is the part of jetstream.JetStream the dead-letter middleware uses.
type publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// DeadLetter returns middleware that handles rejections (an *envelope.RejectError, a
// *DeadLetterError, including max_deliveries from Retry, and errors made by Reject). The envelope
// is copied byte for byte to the account's dead-letter stream on subject
// "sealbus.dlq.<reason>" with the Sealbus-* headers (reason, source stream, sequence, subject,
// consumer, time, error), then terminated at its source so it is never redelivered and never
// blocks the messages behind it; an audit event is written (type sealbus.rejected for
// verification failures, sealbus.deadlettered for the others). If the dead letter cannot be
// written, the message is not terminated: it is negatively acknowledged for a later
// redelivery, so it is not lost; on its last allowed delivery (which the server would not
// repeat) the write is retried, with a capped backoff, until it succeeds or the consumption
// stops. Other errors pass through.
func DeadLetter(c *bus.Client) Middleware {
	link := clientseam.Of(c)
	return deadLetter(link.JS, c.Audit, link.Counters, c.Now, c.Logger())
}

func deadLetter(js publisher, audit func(context.Context, bus.Event) error, k *clientseam.Counters, now func() time.Time, log *slog.Logger) Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			err := next(ctx, m)
			if err == nil || m.settled {
				return err
			}
			reason, ok := DeadLetterReason(err)
			if !ok {
				return err
			}
			if !validReason(reason) {
				reason = "rejected"
			}
			dl := deadLetterMsg(m, reason, err, now())
			var ack *jetstream.PubAck
			var perr error
			// On the message's last allowed delivery the server will not redeliver it, so the
			// dead letter is retried until it is written or the consumption stops, rather than
			// dlqAttempts times: nothing is lost to a DLQ that is briefly unavailable.
			for attempt := 0; attempt < dlqAttempts || m.last; attempt++ {
				if attempt > 0 {
					if m.last {
						_ = m.InProgress() // harmless; keeps the server from counting it as abandoned
					}
					select {
					case <-time.After(min(time.Duration(attempt)*250*time.Millisecond, 2*time.Second)):
					case <-ctx.Done():
					}
					if ctx.Err() != nil && attempt >= dlqAttempts {
						break
					}
				}
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				ack, perr = js.PublishMsg(pctx, dl, jetstream.WithExpectStream(accounts.DLQStream))
				cancel()
				if perr == nil {
					break
				}
			}
			if perr != nil {
				k.DLQFailed.Add(1)
				msg := "sealbus: dead letter not written; message left for redelivery"
				if m.last {
					msg = "sealbus: dead letter not written before the consumption stopped, on the last allowed delivery; the message stays in its stream but the consumer will not deliver it again"
				}
				log.Error(msg, "reason", reason, "stream", m.Stream, "seq", m.Sequence, "error", perr)
				if nerr := m.nak(time.Second); nerr != nil {
					return fmt.Errorf("consumers: nak after failed dead letter: %w", nerr)
				}
				return nil
			}
			if terr := m.term("sealbus: " + reason); terr != nil {
				log.Warn("sealbus: term after dead letter failed; the copy may be duplicated", "stream", m.Stream, "seq", m.Sequence, "error", terr)
			}
			typ := bus.EventDeadLettered
			if _, isEnvelope := envelope.ReasonOf(err); isEnvelope || reason == ReasonReplay {
				typ = bus.EventRejected
				k.Reject(reason)
			}
			k.DeadLetter(reason)
			log.Warn("sealbus: message dead-lettered", "reason", reason, "stream", m.Stream, "seq", m.Sequence,
				"subject", m.LocalSubject, "dlq_seq", ack.Sequence, "error", err)
			ev := bus.Event{Type: typ, Subject: m.LocalSubject, Data: bus.EventData{
				Reason: reason, Stream: m.Stream, Sequence: m.Sequence, Consumer: m.Consumer,
				Sender: m.SenderKey, MessageID: m.ID, Error: err.Error(), DLQSeq: ack.Sequence,
			}}
			if ev.Data.MessageID == "" || ev.Data.Sender == "" {
				// Not verified: name what the envelope claims, if it parses (unverified).
				if info, ierr := envelope.Inspect(m.envelope); ierr == nil {
					ev.Data.MessageID, ev.Data.Sender = info.ID.String(), info.Sender
				}
			}
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if aerr := audit(actx, ev); aerr != nil {
				log.Warn("sealbus: audit event for dead letter not written", "error", aerr)
			}
			return nil
		}
	}
}

// deadLetterMsg builds the dead letter: the envelope bytes unchanged, the Sealbus-* headers,
// and a Nats-Msg-Id naming the source position so a retried write is stored once.
func deadLetterMsg(m *Message, reason string, err error, at time.Time) *nats.Msg {
	h := nats.Header{}
	h.Set(HeaderReason, reason)
	h.Set(HeaderSourceStream, m.Stream)
	h.Set(HeaderSourceSequence, strconv.FormatUint(m.Sequence, 10))
	h.Set(HeaderSourceSubject, m.LocalSubject)
	h.Set(HeaderConsumer, m.Consumer)
	h.Set(HeaderTime, at.UTC().Format(time.RFC3339Nano))
	h.Set(HeaderError, headerText(err.Error()))
	h.Set(HeaderDelivered, strconv.FormatUint(m.Delivered, 10))
	if m.ID != "" {
		h.Set(HeaderMessageID, m.ID)
	}
	h.Set(jetstream.MsgIDHeader, "dlq."+m.Stream+"."+strconv.FormatUint(m.Sequence, 10))
	return &nats.Msg{Subject: accounts.DLQSubject(reason), Data: m.envelope, Header: h}
}

// headerText makes err text safe as one header value: printable, one line, bounded.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxHeaderError {
		s = s[:maxHeaderError] + "..."
	}
	return s
}
