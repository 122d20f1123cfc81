package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// AuditLog reads an account's SEALBUS_AUDIT stream. Reading needs a connection allowed to
// create consumers on that stream, normally an admin connection: services only write events.
type AuditLog struct {
	js jetstream.JetStream
}

// NewAuditLog returns a reader of the audit stream of the account js is connected to.
func NewAuditLog(js jetstream.JetStream) *AuditLog { return &AuditLog{js: js} }

// AuditRecord is one stored audit event. Event is nil (and Err set) for a stored message that
// does not decode as an event.
type AuditRecord struct {
	Sequence uint64
	Subject  string
	Stored   time.Time
	Event    *bus.Event
	Err      error
	Raw      []byte
}

func record(m jetstream.Msg) (AuditRecord, error) {
	md, err := m.Metadata()
	if err != nil {
		return AuditRecord{}, err
	}
	r := AuditRecord{Sequence: md.Sequence.Stream, Subject: m.Subject(), Stored: md.Timestamp, Raw: m.Data()}
	r.Event, r.Err = bus.ParseEvent(m.Data())
	return r, nil
}

// Tail returns the last n events (all when n <= 0), oldest first, and the stream's last
// sequence, from which Follow can continue.
func (a *AuditLog) Tail(ctx context.Context, n int) ([]AuditRecord, uint64, error) {
	var out []AuditRecord
	last, err := readLast(ctx, a.js, accounts.AuditStream, n, func(m jetstream.Msg) error {
		r, err := record(m)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("operator: audit tail: %w", err)
	}
	return out, last, nil
}

// Follow calls fn for every event stored with a sequence greater than after, in order, until
// ctx ends (it then returns nil) or fn returns an error. Pass the last sequence from Tail to
// continue after it (0, an empty stream's last sequence, follows from the first event).
func (a *AuditLog) Follow(ctx context.Context, after uint64, fn func(AuditRecord) error) error {
	err := follow(ctx, a.js, accounts.AuditStream, after+1, func(m jetstream.Msg) error {
		r, err := record(m)
		if err != nil {
			return err
		}
		return fn(r)
	})
	if err != nil {
		return fmt.Errorf("operator: audit follow: %w", err)
	}
	return nil
}
