package consumers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// dlqAttempts is how many times a dead letter is written before the message is left for
// redelivery instead.
const dlqAttempts = 3

// MaxDeadLetterEnvelope is the largest envelope a dead-letter record carries. A larger one is
// not copied: the record names its size and SHA-256, and the envelope stays in its stream at
// its sequence (terminated, so never redelivered, but kept by the stream's limits), where
// operator.DeadLetters.Replay finds it and checks it against the hash. The bound keeps every
// writer's dead-letter quota (a count of records per writer, see docs/ARCHITECTURE.md,
// "Streams and subjects") a bound on bytes too.
const MaxDeadLetterEnvelope = 32 << 10

// DeadLetterMeta is the JSON payload of a dead-letter record (envelope/RECORD.md §4.2): why and
// where from. The record around it is signed by the consumer that wrote it and names it; the
// envelope is the record's attachment, byte for byte as received.
type DeadLetterMeta struct {
	Reason    string    `json:"reason"`
	Stream    string    `json:"stream"`               // stream the envelope was consumed from
	Sequence  uint64    `json:"seq"`                  // its sequence there
	Subject   string    `json:"subject"`              // subject it was delivered on
	Consumer  string    `json:"consumer"`             // durable that refused it
	Delivered uint64    `json:"delivered"`            // delivery count when it was dead-lettered
	Stored    time.Time `json:"stored"`               // the server's stored time of the envelope
	Error     string    `json:"error,omitempty"`      // the refusal's error text, bounded; a handler's own text is withheld (evidenceText)
	MessageID string    `json:"message_id,omitempty"` // the envelope's message id, only when it verified
	// Claimed holds what an envelope that did not verify says about itself (sender, account,
	// message id, subject), read from its bytes: unverified.
	Claimed        *bus.Claimed `json:"claimed,omitempty"`
	EnvelopeSize   int          `json:"envelope_size"`
	EnvelopeSHA256 string       `json:"envelope_sha256"`
	// EnvelopeOmitted: the envelope is larger than MaxDeadLetterEnvelope and not in the
	// record; it stays in Stream at Sequence.
	EnvelopeOmitted bool `json:"envelope_omitted,omitempty"`
}

// ErrBadDeadLetter reports a dead-letter payload that does not decode as DeadLetterMeta or
// breaks its rules.
var ErrBadDeadLetter = errors.New("consumers: malformed dead-letter metadata")

// ParseDeadLetterMeta decodes a dead-letter record's payload strictly: unknown fields and
// trailing data are refused, the reason must be a valid reason code and the stream and consumer
// must be set.
func ParseDeadLetterMeta(payload []byte) (*DeadLetterMeta, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var m DeadLetterMeta
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDeadLetter, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrBadDeadLetter)
	}
	if !validReason(m.Reason) || m.Stream == "" || m.Consumer == "" || m.EnvelopeSize < 0 || len(m.EnvelopeSHA256) != 64 {
		return nil, fmt.Errorf("%w: reason, stream, consumer or envelope hash missing or invalid", ErrBadDeadLetter)
	}
	return &m, nil
}

// deadLetterWriter writes a signed dead-letter record and returns its SEALBUS_DLQ sequence
// (clientseam.Link.WriteDeadLetter).
type deadLetterWriter func(ctx context.Context, key, ref string, meta, env []byte) (uint64, error)

// DeadLetter returns middleware that handles rejections (an *envelope.RejectError, a
// *DeadLetterError, including max_deliveries from Retry, and errors made by Reject). It writes a
// dead-letter record signed by this service (envelope/RECORD.md) on the service's own
// dead-letter subject ("sealbus.dlq.<service>.<token>"): the metadata (DeadLetterMeta: reason,
// source stream, sequence, subject, consumer, delivery count, error) and the envelope byte for
// byte (up to MaxDeadLetterEnvelope; a larger one is named by its hash and left in its stream).
// Its Nats-Msg-Id is derived with the service's secret token from the source position, so a
// retried write is stored once and no other service can occupy the id first. Then the envelope
// is terminated at its source, so it is never redelivered and never blocks the messages behind
// it, and an audit event is written (type sealbus.rejected for verification failures,
// sealbus.deadlettered for the others) in which the fields of an envelope that did not verify
// are labelled as claimed. If the dead letter cannot be written, the message is not terminated:
// it is negatively acknowledged for a later redelivery, so it is not lost; on its last allowed
// delivery (which the server would not repeat) the write is retried, with a capped backoff,
// until it succeeds or the consumption stops. If the server refuses the record because this
// service's dead-letter quota is full, the refusal is reported on the service's overflow
// subject and counted (bus.Metrics.DLQRefused), and the message is terminated: it stays in its
// stream at its sequence, named in the overflow report. Other errors pass through.
func DeadLetter(c *bus.Client) Middleware {
	link := clientseam.Of(c)
	return deadLetter(link.WriteDeadLetter, c.Audit, link.Counters, c.Logger())
}

func deadLetter(write deadLetterWriter, audit func(context.Context, bus.Event) error, k *clientseam.Counters, log *slog.Logger) Middleware {
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
			meta, env := deadLetterMeta(m, reason, err)
			payload, merr := json.Marshal(meta)
			if merr != nil {
				return fmt.Errorf("consumers: encode dead letter: %w", merr)
			}
			key := m.Stream + "." + strconv.FormatUint(m.Sequence, 10)
			ref := m.Stream + "/" + strconv.FormatUint(m.Sequence, 10)
			var seq uint64
			var werr error
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
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				seq, werr = write(wctx, key, ref, payload, env)
				cancel()
				if werr == nil || errors.Is(werr, bus.ErrEvidenceRefused) {
					break
				}
			}
			refused := errors.Is(werr, bus.ErrEvidenceRefused)
			if werr != nil && !refused {
				k.DLQFailed.Add(1)
				msg := "sealbus: dead letter not written; message left for redelivery"
				if m.last {
					msg = "sealbus: dead letter not written before the consumption stopped, on the last allowed delivery; the message stays in its stream but the consumer will not deliver it again"
				}
				log.Error(msg, "reason", reason, "stream", m.Stream, "seq", m.Sequence, "error", werr)
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
			if refused {
				// The server refused the record: this service's dead-letter quota is full. The
				// refusal is on the overflow subject (bus), the envelope in its stream.
				k.DLQRefused.Add(1)
				log.Error("sealbus: dead letter refused by this service's quota; the message is terminated and stays in its stream",
					"reason", reason, "stream", m.Stream, "seq", m.Sequence)
			} else {
				k.DeadLetter(reason)
				log.Warn("sealbus: message dead-lettered", "reason", reason, "stream", m.Stream, "seq", m.Sequence,
					"subject", m.LocalSubject, "dlq_seq", seq, "error", err)
			}
			ev := bus.Event{Type: typ, Subject: m.LocalSubject, Data: bus.EventData{
				Reason: reason, Stream: m.Stream, Sequence: m.Sequence, Consumer: m.Consumer,
				MessageID: meta.MessageID, Claimed: meta.Claimed, Error: meta.Error, DLQSeq: seq,
			}}
			if m.verified {
				ev.Data.Sender = m.SenderKey
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

// deadLetterMeta builds the record's metadata and returns the envelope to attach (nil when it
// is larger than MaxDeadLetterEnvelope). Fields the envelope claims are verified only when the
// verify middleware accepted it; otherwise they are labelled claimed.
func deadLetterMeta(m *Message, reason string, err error) (*DeadLetterMeta, []byte) {
	sum := sha256.Sum256(m.envelope)
	meta := &DeadLetterMeta{
		Reason: reason, Stream: m.Stream, Sequence: m.Sequence, Subject: m.LocalSubject, Consumer: m.Consumer,
		Delivered: m.Delivered, Stored: m.Stored.UTC(), Error: headerText(evidenceText(err)),
		EnvelopeSize: len(m.envelope), EnvelopeSHA256: hex.EncodeToString(sum[:]),
	}
	if m.verified {
		meta.MessageID = m.ID
	} else if info, ierr := envelope.Inspect(m.envelope); ierr == nil {
		meta.Claimed = &bus.Claimed{Account: info.Account, Sender: info.Sender, MessageID: info.ID.String(), Subject: info.Subject}
	}
	env := m.envelope
	if len(env) > MaxDeadLetterEnvelope {
		meta.EnvelopeOmitted, env = true, nil
	}
	return meta, env
}

// evidenceText is the error text a dead letter and its audit event carry. Refusals by sealbus
// (verification, replay, the guard) keep their text: it names what failed and holds no payload.
// An error from the application (the handler, its middleware, a panic, Reject) may quote the
// decrypted payload or the service's secrets, and evidence is stored unencrypted and seen by the
// operator: only that the handler failed is recorded, with the reason. The service's own log
// keeps the full text.
func evidenceText(err error) string {
	var app *applicationError
	if !errors.As(err, &app) {
		return err.Error()
	}
	if reason, ok := DeadLetterReason(err); ok && reason == ReasonMaxDeliveries {
		return "consumers: the handler failed on the last allowed delivery (its error text is in the service's log, not in evidence)"
	}
	return "consumers: the handler refused the message (its error text is in the service's log, not in evidence)"
}

// applicationError marks an error that came out of the application's handler or middleware.
type applicationError struct{ err error }

func (e *applicationError) Error() string { return e.err.Error() }
func (e *applicationError) Unwrap() error { return e.err }

// application marks every error h returns as the application's (see evidenceText).
func application(h Handler) Handler {
	return func(ctx context.Context, m *Message) error {
		if err := h(ctx, m); err != nil {
			return &applicationError{err: err}
		}
		return nil
	}
}

// maxErrorText bounds the error text in a dead letter.
const maxErrorText = 512

// headerText makes err text safe as one line: printable, bounded.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	return s
}
