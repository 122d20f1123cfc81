package bus

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// Audit event types written by the SDK. Types are dot-separated lower-case tokens starting
// with "sealbus.". Every event travels in a record signed by its writer (envelope/RECORD.md) on
// the writer's own audit subject.
const (
	// EventRejected: an envelope failed verification (Data.Reason is the envelope reason
	// code, or "replay"). Nothing the envelope claims about itself is verified: those fields
	// are in Data.Claimed.
	EventRejected = "sealbus.rejected"
	// EventDeadLettered: an envelope was copied to the dead-letter stream and terminated at
	// its source (rejections and max_deliveries).
	EventDeadLettered = "sealbus.deadlettered"
	// EventDirectoryUnverifiable: a directory entry (account JWT or card) did not verify up
	// to a trusted operator and is ignored.
	EventDirectoryUnverifiable = "sealbus.directory.unverifiable"
	// EventEvidenceRefused: the server refused records of this writer because its audit or
	// dead-letter subject is full (its per-writer quota). Written on the writer's overflow
	// subject, at most once per OverflowInterval, with the counts by kind (Data.Refused) and the
	// source positions of the refused dead letters (Data.Refs, at most MaxOverflowRefs).
	EventEvidenceRefused = "sealbus.evidence.refused"
	// EventPublishRefused: a stream refused one of the client's publishes because it is full
	// (Data.Reason "stream_full"); see ErrStreamFull.
	EventPublishRefused = "sealbus.publish.refused"
)

// EventSpecVersion is the CloudEvents spec version events declare.
const EventSpecVersion = "1.0"

// maxEventError bounds the error text carried in an event.
const maxEventError = 512

// Overflow reporting (EventEvidenceRefused).
const (
	// OverflowInterval is the least time between two overflow records of one client.
	OverflowInterval = time.Minute
	// MaxOverflowRefs bounds the dead-letter positions one overflow record lists.
	MaxOverflowRefs = 16
)

var eventTypeRE = regexp.MustCompile(`^sealbus(\.[a-z0-9_]+)+$`)

// Event is one audit event, CloudEvents-style JSON (structured mode), the payload of an audit
// record. It never carries a payload, a key seed or any other secret: only identifiers, reason
// codes and error text that name public things (subjects, public keys, sequence numbers). The
// record around it, not Source, says who wrote it: readers check the two agree.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"` // "sealbus://<account public key>/<service name>" (or "/_admin")
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"` // the NATS subject the event is about
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
}

// EventData is the body of an Event. Empty fields are omitted. Sender and MessageID are set
// only when the envelope verified; what an envelope that did not verify says about itself is in
// Claimed.
type EventData struct {
	Reason    string   `json:"reason,omitempty"`
	Stream    string   `json:"stream,omitempty"`
	Sequence  uint64   `json:"seq,omitempty"`
	Consumer  string   `json:"consumer,omitempty"`
	Sender    string   `json:"sender,omitempty"`     // "U..." key of the verified sender
	MessageID string   `json:"message_id,omitempty"` // verified envelope message id
	Claimed   *Claimed `json:"claimed,omitempty"`    // fields of an envelope that did not verify, as its bytes claim them
	Key       string   `json:"key,omitempty"`        // directory key
	Revision  uint64   `json:"revision,omitempty"`   // directory revision
	Error     string   `json:"error,omitempty"`
	DLQSeq    uint64   `json:"dlq_seq,omitempty"` // sequence of the dead letter in SEALBUS_DLQ

	// Admin events (written by the operator): the key that ordered the action, and what it
	// was about.
	OrderedBy string   `json:"ordered_by,omitempty"` // public key of the key that ordered it ("A..." or "O...")
	Service   string   `json:"service,omitempty"`
	Changes   []string `json:"changes,omitempty"`   // what an account edit changed
	ReplayID  string   `json:"replay_id,omitempty"` // a dead-letter replay's authorization id

	// EventEvidenceRefused.
	Refused map[string]uint64 `json:"refused,omitempty"` // records refused by the writer's quota since the last report, by kind
	Refs    []string          `json:"refs,omitempty"`    // "<stream>/<seq>" of the refused dead letters' envelopes
}

// Claimed are what an envelope that did not verify says about itself, read from its bytes
// (envelope.Inspect) when it parses. Anyone could have written them: never present them as the
// sender or the message.
type Claimed struct {
	Account   string `json:"account,omitempty"`
	Sender    string `json:"sender,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	Subject   string `json:"subject,omitempty"`
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

// Fill completes an event with a writer's defaults: specversion, a random id (from r, or
// crypto/rand when nil), source, time (now) and content type; it bounds the error text and
// validates. The operator's admin events are filled the same way.
func (e *Event) Fill(source string, now time.Time, r io.Reader) error {
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

// EventSource returns the source URI of events written by a service (or, with
// accounts.AdminWriter, by the operator).
func EventSource(account, service string) string {
	return "sealbus://" + account + "/" + service
}

// ParseEvent decodes an audit event and validates it. The bytes are trusted only as far as the
// record that carried them verified.
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

// EvidenceMsgID returns the Nats-Msg-Id of a writer's record: HMAC-SHA256 under the writer's
// secret evidence token of the kind and the record's deduplication key, in hex. JetStream
// deduplicates message ids across the whole stream, so ids any other writer could compute
// would let it occupy them first (its record stored, the genuine one dropped as a duplicate);
// with the token as key only the writer can.
func EvidenceMsgID(token, kind, key string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ErrEvidenceRefused reports a record the server refused because the writer's subject (or its
// stream) is at its limit, or the record exceeds the stream's maximum message size: nothing was
// stored. The client reports such refusals on its overflow subject (EventEvidenceRefused) and
// counts them (Metrics.EvidenceRefused).
var ErrEvidenceRefused = errors.New("bus: evidence record refused by the server's limits")

// errCodeStoreFailed is nats-server's JSStreamStoreFailedF (err_code 10077): with DiscardNew,
// "maximum messages", "maximum bytes" or "maximum messages per subject exceeded".
const errCodeStoreFailed jetstream.ErrorCode = 10077

// refusedByLimits reports whether err is JetStream refusing a message for a stream limit:
// err_code 10077 or 10054 (message larger than the stream's maximum).
func refusedByLimits(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == errCodeStoreFailed || ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum)
}

// evidence is a client's writer of signed records: its subjects, token and overflow state.
type evidence struct {
	token string

	mu        sync.Mutex
	refused   map[string]uint64 // kind -> records refused and not reported yet
	refs      []string
	last      time.Time // when the last overflow record was written (or attempted)
	timer     *time.Timer
	reporting bool
}

// signRecord signs a record of kind as this service, with its current card as credential.
func (c *Client) signRecord(kind envelope.RecordKind, payload, attachment []byte) ([]byte, envelope.RecordID, error) {
	var id envelope.RecordID
	card, ok := c.dir.cardToken(c.userKey)
	if !ok {
		return nil, id, fmt.Errorf("%w: no valid card to sign records with", ErrRevoked)
	}
	r := c.cfg.rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return nil, id, fmt.Errorf("bus: record id: %w", err)
	}
	data, err := c.id.SignRecord(envelope.Record{
		Kind: kind, ID: id, Time: c.cfg.now(), Account: c.account, WriterName: c.name, Credential: card,
		Payload: payload, Attachment: attachment,
	})
	if err != nil {
		return nil, id, fmt.Errorf("bus: sign record: %w", err)
	}
	return data, id, nil
}

// writeRecord publishes a signed record on subject into stream with the given Nats-Msg-Id
// and waits for the ack, waiting for the connection when it is down (nothing is buffered while
// reconnecting) and writing again; the message id makes JetStream store it once. A refusal by
// the stream's limits is ErrEvidenceRefused.
func (c *Client) writeRecord(ctx context.Context, subject, stream, msgID string, data []byte) (*jetstream.PubAck, error) {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	msg.Header.Set("Content-Type", "application/vnd.sealbus.record")
	for {
		ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(stream))
		if err == nil {
			return ack, nil
		}
		if refusedByLimits(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrEvidenceRefused, stream, err)
		}
		if !disconnected(err) || !c.waitUp(ctx) {
			return nil, err
		}
	}
}

// Audit writes an audit event as a record signed by the service (envelope/RECORD.md) on its
// own audit subject ("sealbus.audit.<service>.<token>" in SEALBUS_AUDIT) and waits for the
// ack. Empty fields are filled in: specversion, a random id, the service as source, the time
// and the content type. The event must not carry payloads or secrets. When the service's
// audit subject is full the server refuses the record: Audit returns ErrEvidenceRefused and the
// refusal is reported on the overflow subject.
func (c *Client) Audit(ctx context.Context, e Event) error {
	if err := e.Fill(EventSource(c.account, c.name), c.cfg.now(), c.cfg.rand); err != nil {
		return err
	}
	payload, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("bus: encode event: %w", err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	data, _, err := c.signRecord(envelope.RecordAudit, payload, nil)
	if err != nil {
		c.counters.AuditFailed.Add(1)
		return err
	}
	_, err = c.writeRecord(ctx, accounts.AuditSubject(c.name, c.ev.token), accounts.AuditStream, EvidenceMsgID(c.ev.token, "audit", e.ID), data)
	if err != nil {
		c.counters.AuditFailed.Add(1)
		if errors.Is(err, ErrEvidenceRefused) {
			c.evidenceRefused(envelope.RecordAudit, "")
		}
		return fmt.Errorf("bus: write audit event %s: %w", e.Type, err)
	}
	c.counters.AuditWritten.Add(1)
	return nil
}

// writeDeadLetter writes a dead-letter record (meta, the envelope) on the service's dead-letter
// subject and returns its sequence in SEALBUS_DLQ. key identifies the dead letter for
// deduplication (its source position), see EvidenceMsgID. ref is reported in the overflow
// record when the server refuses it.
func (c *Client) writeDeadLetter(ctx context.Context, key, ref string, meta, env []byte) (uint64, error) {
	data, _, err := c.signRecord(envelope.RecordDeadLetter, meta, env)
	if err != nil {
		return 0, err
	}
	ack, err := c.writeRecord(ctx, accounts.DLQSubject(c.name, c.ev.token), accounts.DLQStream, EvidenceMsgID(c.ev.token, "dlq", key), data)
	if err != nil {
		if errors.Is(err, ErrEvidenceRefused) {
			c.evidenceRefused(envelope.RecordDeadLetter, ref)
		}
		return 0, err
	}
	return ack.Sequence, nil
}

// evidenceRefused counts a record the server refused and reports the refusals on the overflow
// subject: at once if no overflow record was written in the last OverflowInterval, otherwise
// when the interval has passed.
func (c *Client) evidenceRefused(kind envelope.RecordKind, ref string) {
	c.counters.EvidenceRefused.Add(1)
	c.log.Error("sealbus: the server refused an evidence record: this service's quota is full; refusals are reported on its overflow subject",
		"kind", kind.String(), "ref", ref)
	ev := &c.ev
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.refused == nil {
		ev.refused = map[string]uint64{}
	}
	ev.refused[kind.String()]++
	if ref != "" && len(ev.refs) < MaxOverflowRefs {
		ev.refs = append(ev.refs, ref)
	}
	if ev.reporting || ev.timer != nil {
		return
	}
	wait := OverflowInterval - c.cfg.now().Sub(ev.last)
	if ev.last.IsZero() || wait <= 0 {
		wait = 0
	}
	ev.timer = time.AfterFunc(wait, c.reportOverflow)
}

// reportOverflow writes one EventEvidenceRefused record with the refusals counted so far.
func (c *Client) reportOverflow() {
	ev := &c.ev
	ev.mu.Lock()
	ev.timer = nil
	if len(ev.refused) == 0 || ev.reporting {
		ev.mu.Unlock()
		return
	}
	counts, refs := ev.refused, ev.refs
	ev.refused, ev.refs = nil, nil
	ev.reporting, ev.last = true, c.cfg.now()
	ev.mu.Unlock()
	defer func() {
		ev.mu.Lock()
		ev.reporting = false
		ev.mu.Unlock()
	}()
	if c.ctx.Err() != nil {
		return
	}
	e := Event{Type: EventEvidenceRefused, Data: EventData{Reason: "quota", Refused: counts, Refs: refs}}
	err := e.Fill(EventSource(c.account, c.name), c.cfg.now(), c.cfg.rand)
	var payload, data []byte
	if err == nil {
		payload, err = json.Marshal(&e)
	}
	if err == nil {
		data, _, err = c.signRecord(envelope.RecordAudit, payload, nil)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.timeout)
		_, err = c.writeRecord(ctx, accounts.AuditOverflowSubject(c.name, c.ev.token), accounts.AuditStream, EvidenceMsgID(c.ev.token, "overflow", e.ID), data)
		cancel()
	}
	if err != nil {
		c.counters.OverflowFailed.Add(1)
		c.log.Error("sealbus: overflow record not written; the refused records are counted in the metrics only", "refused", counts, "error", err)
		return
	}
	c.counters.OverflowWritten.Add(1)
}

// stopOverflow stops a pending overflow report (Close).
func (c *Client) stopOverflow() {
	c.ev.mu.Lock()
	defer c.ev.mu.Unlock()
	if c.ev.timer != nil {
		c.ev.timer.Stop()
		c.ev.timer = nil
	}
}

// flushOverflow writes a pending overflow report now (Drain) instead of letting the stopped
// timer drop it.
func (c *Client) flushOverflow() {
	c.ev.mu.Lock()
	pending := len(c.ev.refused) > 0
	if c.ev.timer != nil {
		c.ev.timer.Stop()
		c.ev.timer = nil
	}
	c.ev.mu.Unlock()
	if pending {
		c.reportOverflow()
	}
}
