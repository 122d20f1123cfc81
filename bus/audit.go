package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// Audit event types written by the SDK. Types are dot-separated lower-case tokens starting
// with "sealbus."; an event of type "sealbus.x.y" goes to subject "sealbus.audit.x.y".
const (
	// EventRejected: an envelope failed verification (Data.Reason is the envelope reason
	// code, or "replay").
	EventRejected = "sealbus.rejected"
	// EventDeadLettered: an envelope was copied to the dead-letter stream and terminated at
	// its source (rejections and max_deliveries).
	EventDeadLettered = "sealbus.deadlettered"
	// EventDirectoryUnverifiable: a directory entry (account JWT or card) did not verify up
	// to a trusted operator and is ignored.
	EventDirectoryUnverifiable = "sealbus.directory.unverifiable"
	// EventPublishRefused: a stream refused one of the client's publishes because it is full
	// (Data.Reason "stream_full"); see ErrStreamFull.
	EventPublishRefused = "sealbus.publish.refused"
)

// EventSpecVersion is the CloudEvents spec version events declare.
const EventSpecVersion = "1.0"

// maxEventError bounds the error text carried in an event.
const maxEventError = 512

var eventTypeRE = regexp.MustCompile(`^sealbus(\.[a-z0-9_]+)+$`)

// Event is one audit record, CloudEvents-style JSON (structured mode). It never carries a
// payload, a key seed or any other secret: only identifiers, reason codes and error text that
// name public things (subjects, public keys, sequence numbers).
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"` // "sealbus://<account public key>/<service name>"
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"` // the NATS subject the event is about
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
}

// EventData is the body of an Event. Empty fields are omitted.
type EventData struct {
	Reason    string `json:"reason,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Sequence  uint64 `json:"seq,omitempty"`
	Consumer  string `json:"consumer,omitempty"`
	Sender    string `json:"sender,omitempty"`     // "U..." key named by the envelope
	MessageID string `json:"message_id,omitempty"` // envelope message id
	Key       string `json:"key,omitempty"`        // directory key
	Revision  uint64 `json:"revision,omitempty"`   // directory revision
	Error     string `json:"error,omitempty"`
	DLQSeq    uint64 `json:"dlq_seq,omitempty"` // sequence of the dead letter in SEALBUS_DLQ
}

// Validate checks the fields a reader relies on.
func (e *Event) Validate() error {
	switch {
	case e.SpecVersion != EventSpecVersion:
		return fmt.Errorf("%w: event specversion %q", ErrInvalidOption, e.SpecVersion)
	case e.ID == "" || len(e.ID) > 128:
		return fmt.Errorf("%w: event id missing or too long", ErrInvalidOption)
	case e.Source == "":
		return fmt.Errorf("%w: event source missing", ErrInvalidOption)
	case !eventTypeRE.MatchString(e.Type):
		return fmt.Errorf("%w: event type %q (want sealbus.<token>...)", ErrInvalidOption, e.Type)
	case e.Time.IsZero():
		return fmt.Errorf("%w: event time missing", ErrInvalidOption)
	}
	return nil
}

// fill completes an event with the client's defaults.
func (e *Event) fill(source string, now time.Time, r io.Reader) error {
	if e.SpecVersion == "" {
		e.SpecVersion = EventSpecVersion
	}
	if e.ID == "" {
		var b [16]byte
		if r == nil {
			r = rand.Reader
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("bus: event id: %w", err)
		}
		e.ID = hex.EncodeToString(b[:])
	}
	if e.Source == "" {
		e.Source = source
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.DataContentType == "" {
		e.DataContentType = "application/json"
	}
	if len(e.Data.Error) > maxEventError {
		e.Data.Error = e.Data.Error[:maxEventError] + "..."
	}
	return e.Validate()
}

// EventSource returns the source URI of events written by a service.
func EventSource(account, service string) string {
	return "sealbus://" + account + "/" + service
}

// publishEvent writes e (already filled) to the audit stream and waits for the ack. The event
// id is the Nats-Msg-Id, so a retried write is stored once.
func publishEvent(ctx context.Context, js jetstream.JetStream, e *Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bus: encode event: %w", err)
	}
	msg := &nats.Msg{Subject: accounts.AuditSubject(e.Type), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, e.ID)
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(accounts.AuditStream)); err != nil {
		return fmt.Errorf("bus: write audit event %s: %w", e.Type, err)
	}
	return nil
}

// ParseEvent decodes an audit event and validates it.
func ParseEvent(data []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: audit event does not decode: %v", ErrInvalidOption, err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
