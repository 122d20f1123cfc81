package operator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
)

// DeadLetters reads and replays an account's SEALBUS_DLQ stream (for `sealbus dlq`). It needs a
// connection allowed to read that stream and to publish on the source subjects, normally an
// admin connection.
type DeadLetters struct {
	js jetstream.JetStream
}

// NewDeadLetters returns a reader of the dead-letter stream of the account js is connected to.
func NewDeadLetters(js jetstream.JetStream) *DeadLetters { return &DeadLetters{js: js} }

// DeadLetterEntry is one stored dead letter.
type DeadLetterEntry struct {
	Sequence       uint64 // in SEALBUS_DLQ
	Subject        string // sealbus.dlq.<reason>
	Stored         time.Time
	Reason         string
	SourceStream   string
	SourceSequence uint64
	SourceSubject  string
	Consumer       string
	Time           time.Time // when it was dead-lettered
	Error          string
	MessageID      string
	Delivered      uint64
	Envelope       []byte // the envelope bytes, exactly as received
}

func deadLetterOf(seq uint64, subject string, stored time.Time, h nats.Header, data []byte) DeadLetterEntry {
	d := DeadLetterEntry{
		Sequence: seq, Subject: subject, Stored: stored, Envelope: data,
		Reason: h.Get(consumers.HeaderReason), SourceStream: h.Get(consumers.HeaderSourceStream),
		SourceSubject: h.Get(consumers.HeaderSourceSubject), Consumer: h.Get(consumers.HeaderConsumer),
		Error: h.Get(consumers.HeaderError), MessageID: h.Get(consumers.HeaderMessageID),
	}
	d.SourceSequence, _ = strconv.ParseUint(h.Get(consumers.HeaderSourceSequence), 10, 64)
	d.Delivered, _ = strconv.ParseUint(h.Get(consumers.HeaderDelivered), 10, 64)
	d.Time, _ = time.Parse(time.RFC3339Nano, h.Get(consumers.HeaderTime))
	return d
}

// List returns the last n dead letters (all when n <= 0), oldest first.
func (d *DeadLetters) List(ctx context.Context, n int) ([]DeadLetterEntry, error) {
	var out []DeadLetterEntry
	_, err := readLast(ctx, d.js, accounts.DLQStream, n, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		out = append(out, deadLetterOf(md.Sequence.Stream, m.Subject(), md.Timestamp, m.Headers(), m.Data()))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("operator: list dead letters: %w", err)
	}
	return out, nil
}

// Get returns the dead letter at seq, or an error wrapping ErrNotFound.
func (d *DeadLetters) Get(ctx context.Context, seq uint64) (*DeadLetterEntry, error) {
	s, err := d.js.Stream(ctx, accounts.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("operator: dead letters: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: dead letter %d", ErrNotFound, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("operator: dead letter %d: %w", seq, err)
	}
	dl := deadLetterOf(raw.Sequence, raw.Subject, raw.Time, raw.Header, raw.Data)
	return &dl, nil
}

// Replay republishes the dead letter's envelope, unchanged, on its source subject, and returns
// the new position. The envelope is checked again like any other: it still opens only if it
// is within the freshness window of its new stored time (so in practice replay is for recent
// dead letters, e.g. after fixing a handler bug behind max_deliveries), and it gets a new
// Nats-Msg-Id so JetStream's duplicate window does not drop it.
func (d *DeadLetters) Replay(ctx context.Context, seq uint64) (*jetstream.PubAck, error) {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return nil, err
	}
	if dl.SourceSubject == "" {
		return nil, fmt.Errorf("%w: dead letter %d has no source subject", ErrInvalidSpec, seq)
	}
	msg := &nats.Msg{Subject: dl.SourceSubject, Data: dl.Envelope, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "replay."+strconv.FormatUint(seq, 10)+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	var opts []jetstream.PublishOpt
	if dl.SourceStream != "" {
		opts = append(opts, jetstream.WithExpectStream(dl.SourceStream))
	}
	ack, err := d.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return nil, fmt.Errorf("operator: replay dead letter %d: %w", seq, err)
	}
	return ack, nil
}
