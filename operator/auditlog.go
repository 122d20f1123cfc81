package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// AuditLog reads an account's SEALBUS_AUDIT stream and verifies every record before it is
// reported. Reading needs a connection allowed to create consumers on that stream, normally an
// admin connection: services only write records.
type AuditLog struct {
	js jetstream.JetStream
	v  *RecordVerifier
}

// NewAuditLog returns a reader of the audit stream of the account js is connected to, which
// verifies records with v (a verifier of that account; [Provisioner.AuditLog] makes both).
func NewAuditLog(js jetstream.JetStream, v *RecordVerifier) (*AuditLog, error) {
	if js == nil || v == nil {
		return nil, errNoVerifier
	}
	return &AuditLog{js: js, v: v}, nil
}

// AuditRecord is one stored message of the audit stream with its verification.
//
// Event is what the record's payload (or, for an unsigned message, the message itself)
// decodes to; it is evidence only when Verification.Verified(). An unverified one is a claim by
// whoever could publish there — print it as such, escaped, and never as genuine.
type AuditRecord struct {
	Sequence     uint64
	Subject      string
	Stored       time.Time
	Verification Verification
	Event        *bus.Event // nil when nothing decodes as an event
	Err          error      // why the event does not decode, when Event is nil
	Raw          []byte
}

// Verified reports whether the record is evidence.
func (r AuditRecord) Verified() bool { return r.Verification.Verified() }

func (a *AuditLog) record(m jetstream.Msg) (AuditRecord, error) { return auditRecordOf(a.v, m) }

// auditRecordOf verifies one stored message of an audit stream (or of a view stream holding an
// audit stream's records under their subjects) with v.
func auditRecordOf(v *RecordVerifier, m jetstream.Msg) (AuditRecord, error) {
	md, err := m.Metadata()
	if err != nil {
		return AuditRecord{}, err
	}
	r := AuditRecord{Sequence: md.Sequence.Stream, Subject: m.Subject(), Stored: md.Timestamp, Raw: m.Data()}
	r.Verification = v.Verify(r.Subject, r.Raw)
	payload := r.Raw
	if rec := r.Verification.Record; rec != nil {
		payload = rec.Payload
	}
	r.Event, r.Err = bus.ParseEvent(payload)
	return r, nil
}

// Tail returns the last n records (all when n <= 0), oldest first, and the stream's last
// sequence, from which Follow can continue.
func (a *AuditLog) Tail(ctx context.Context, n int) ([]AuditRecord, uint64, error) {
	var out []AuditRecord
	last, err := readLast(ctx, a.js, accounts.AuditStream, n, func(m jetstream.Msg) error {
		r, err := a.record(m)
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

// Follow calls fn for every record stored with a sequence greater than after, in order, until
// ctx ends (it then returns nil) or fn returns an error. Pass the last sequence from Tail to
// continue after it (0, an empty stream's last sequence, follows from the first record).
func (a *AuditLog) Follow(ctx context.Context, after uint64, fn func(AuditRecord) error) error {
	err := follow(ctx, a.js, accounts.AuditStream, after+1, func(m jetstream.Msg) error {
		r, err := a.record(m)
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
