package operator

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// DeadLetters reads an account's SEALBUS_DLQ stream, verifying every record, and replays dead
// letters (for `sealbus dlq`). Reading needs a connection allowed to read that stream, normally
// an admin connection; replaying needs the account's signing key, which only a DeadLetters made
// by [Provisioner.DeadLetters] holds.
type DeadLetters struct {
	js jetstream.JetStream
	v  *RecordVerifier
	r  *replayer // nil: read-only
}

// NewDeadLetters returns a read-only reader of the dead-letter stream of the account js is
// connected to, verifying records with v (a verifier of that account). Replay refuses with
// ErrInvalidSpec; use [Provisioner.DeadLetters] to replay.
func NewDeadLetters(js jetstream.JetStream, v *RecordVerifier) (*DeadLetters, error) {
	if js == nil || v == nil {
		return nil, errNoVerifier
	}
	return &DeadLetters{js: js, v: v}, nil
}

// DeadLetterEntry is one stored message of the dead-letter stream with its verification. The
// fields after Verification come from the record's metadata (consumers.DeadLetterMeta) and are
// evidence only when Verification.Verified(): otherwise they are claims, to be printed as such.
type DeadLetterEntry struct {
	Sequence     uint64 // in SEALBUS_DLQ
	Subject      string // the writer's dead-letter subject
	Stored       time.Time
	Verification Verification
	Writer       string    // the consumer service that wrote it (verified records only)
	Time         time.Time // when it was dead-lettered (the record's time)

	Reason         string
	SourceStream   string
	SourceSequence uint64
	SourceSubject  string
	Consumer       string
	Error          string
	MessageID      string       // the envelope's message id, when it verified before it was refused
	Claimed        *bus.Claimed // what an envelope that did not verify says about itself
	Delivered      uint64
	EnvelopeSize   int
	EnvelopeSHA256 string
	// EnvelopeOmitted: the envelope was too large to copy; it stays in SourceStream at
	// SourceSequence.
	EnvelopeOmitted bool
	Envelope        []byte // the envelope bytes exactly as received (nil when omitted)
	Raw             []byte // the stored message
}

// Verified reports whether the dead letter is evidence.
func (d DeadLetterEntry) Verified() bool { return d.Verification.Verified() }

func (d *DeadLetters) entry(seq uint64, subject string, stored time.Time, data []byte) DeadLetterEntry {
	return deadLetterOf(d.v, seq, subject, stored, data)
}

// deadLetterOf verifies one stored message of a dead-letter stream (or of a view stream holding
// a dead-letter stream's records under their subjects) with v.
func deadLetterOf(v *RecordVerifier, seq uint64, subject string, stored time.Time, data []byte) DeadLetterEntry {
	e := DeadLetterEntry{Sequence: seq, Subject: subject, Stored: stored, Raw: data}
	e.Verification = v.Verify(subject, data)
	rec := e.Verification.Record
	if rec == nil {
		return e
	}
	e.Time, e.Envelope = rec.Time, rec.Attachment
	if e.Verification.Verified() {
		e.Writer = e.Verification.Writer
	}
	if m, err := consumers.ParseDeadLetterMeta(rec.Payload); err == nil {
		e.Reason, e.SourceStream, e.SourceSequence, e.SourceSubject = m.Reason, m.Stream, m.Sequence, m.Subject
		e.Consumer, e.Error, e.MessageID, e.Claimed, e.Delivered = m.Consumer, m.Error, m.MessageID, m.Claimed, m.Delivered
		e.EnvelopeSize, e.EnvelopeSHA256, e.EnvelopeOmitted = m.EnvelopeSize, m.EnvelopeSHA256, m.EnvelopeOmitted
	}
	return e
}

// List returns the last n dead letters (all when n <= 0), oldest first.
func (d *DeadLetters) List(ctx context.Context, n int) ([]DeadLetterEntry, error) {
	var out []DeadLetterEntry
	_, err := readLast(ctx, d.js, accounts.DLQStream, n, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		out = append(out, d.entry(md.Sequence.Stream, m.Subject(), md.Timestamp, m.Data()))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("operator: list dead letters: %w", err)
	}
	return out, nil
}

// Get returns the dead letter at seq, or an error wrapping ErrNotFound.
func (d *DeadLetters) Get(ctx context.Context, seq uint64) (*DeadLetterEntry, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
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
	dl := d.entry(raw.Sequence, raw.Subject, raw.Time, raw.Data)
	return &dl, nil
}

// Reasons a replay is refused (ReplayError.Reason).
const (
	ReplayRecordUnverified   = "record_unverified"   // the dead letter is not a verified record
	ReplayEnvelopeMissing    = "envelope_missing"    // omitted and no longer in its stream (or different bytes there)
	ReplayEnvelopeUnverified = "envelope_unverified" // the envelope does not parse or its signature does not verify
	ReplayForeignEnvelope    = "foreign_envelope"    // the envelope belongs to another account (a stream import): replay it there
	ReplaySubjectMismatch    = "subject_mismatch"    // it was not delivered on the subject it is signed for
	ReplaySubjectForbidden   = "subject_forbidden"   // its subject is not an application subject ($..., _..., sealbus...)
	ReplayStreamMismatch     = "stream_mismatch"     // its source stream is missing or does not hold its subject
	ReplayConsumerUnknown    = "consumer_unknown"    // the durable is missing or not one the writer uses
)

// ErrReplayRefused is what every refused replay matches; see [ReplayError].
var ErrReplayRefused = errors.New("operator: replay refused")

// ReplayError is a refused replay, with its reason. It matches ErrReplayRefused.
type ReplayError struct {
	Sequence uint64
	Reason   string
	Detail   string // may quote the record's (untrusted) fields: escape before printing
}

func (e *ReplayError) Error() string {
	return fmt.Sprintf("operator: replay of dead letter %d refused (%s): %s", e.Sequence, e.Reason, e.Detail)
}

// Is makes errors.Is(err, ErrReplayRefused) true.
func (e *ReplayError) Is(target error) bool { return target == ErrReplayRefused }

// ReplayResult is what a replay did.
type ReplayResult struct {
	DeadLetter      uint64 `json:"dead_letter"`
	Stream          string `json:"stream"`
	Sequence        uint64 `json:"seq"`
	Subject         string `json:"subject"`
	Durable         string `json:"durable"`
	AuthorizationID string `json:"authorization_id"`
	OrderedBy       string `json:"ordered_by"`
	Duplicate       bool   `json:"duplicate"`
}

// ReplayValidity is how long a replay authorization is valid after it is issued: the replay
// must be stored within it (consumers also require the store time within their freshness
// window of the issue time).
const ReplayValidity = envelope.DefaultFreshness

// replayer is what replaying needs beyond reading: the keystore's account (its signing key
// signs the authorization and mints the publishing user), the server and the provisioner (the
// writer's declared consumers, audit).
type replayer struct {
	p    *Provisioner
	acct *accounts.Account
	nc   *nats.Conn // the admin connection (reads, audit records)
}

// Replay re-sends a dead letter's envelope once, under a replay authorization, and audits it.
// It is never the operator's deputy: it acts only on what a consumer signed and what the
// envelope's sender signed, and only with a connection that can do nothing else.
//
//   - The dead letter must be a verified record ([StateVerified]) written by a consumer that
//     declares the durable it names on the stream it names (keystore), and that durable must
//     exist. An envelope the record omitted (too large) is taken from its source stream and
//     must match the record's SHA-256.
//   - The envelope must parse and its signature verify under the sender it names
//     ([envelope.CheckSignature]); it must belong to this account and have been delivered on
//     the subject it is signed for, an application subject (never "$...", "_..." or
//     "sealbus..."), which its source stream holds.
//   - The authorization (a record signed by the account's signing key, envelope/RECORD.md
//     §4.3) binds the envelope's hash, the stream, the durable, the subject, the dead letter's
//     sequence, a unique id and an expiry ([ReplayValidity]). Consumers accept a stale envelope
//     only with it, verifying everything else, and at most once (the replay guard records its
//     id); the live path is not weakened.
//   - It is published over a connection minted for it: a user JWT allowed to publish on
//     exactly that subject and to subscribe to its own inbox (for the ack), nothing else, so
//     no JetStream API request is possible; with Nats-Expected-Stream set to the source stream.
//
// A refusal is a [*ReplayError] with its reason; refusals and replays are both written to the
// account's audit log as admin events naming the key that ordered them.
func (d *DeadLetters) Replay(ctx context.Context, seq uint64) (*ReplayResult, error) {
	if d.r == nil {
		return nil, fmt.Errorf("%w: this reader cannot replay (use Provisioner.DeadLetters)", ErrInvalidSpec)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	res, rerr := d.replay(ctx, seq)
	if rerr != nil {
		var re *ReplayError
		if errors.As(rerr, &re) {
			rerr = errors.Join(rerr, d.r.audit(ctx, bus.Event{Type: EventReplayRefused, Data: bus.EventData{DLQSeq: seq, Reason: re.Reason, Error: re.Detail}}))
		}
		return nil, rerr
	}
	// The replay is done: a record that could not be made is reported beside the result.
	return res, d.r.audit(ctx, bus.Event{Type: EventReplayed, Subject: res.Subject, Data: bus.EventData{
		DLQSeq: seq, Stream: res.Stream, Sequence: res.Sequence, Consumer: res.Durable, ReplayID: res.AuthorizationID,
	}})
}

func (d *DeadLetters) replay(ctx context.Context, seq uint64) (*ReplayResult, error) {
	refuse := func(reason, format string, args ...any) error {
		return &ReplayError{Sequence: seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return nil, err
	}
	if !dl.Verified() {
		return nil, refuse(ReplayRecordUnverified, "the dead letter is %s: %s", dl.Verification.State, dl.Verification.Detail)
	}
	svc, err := d.r.p.Keystore.LoadService(d.r.acct.Name, dl.Writer)
	if err != nil {
		return nil, refuse(ReplayConsumerUnknown, "writer %s is not a service of the keystore: %v", dl.Writer, err)
	}
	if !slices.Contains(svc.Spec.Consumers, accounts.ConsumerRef{Stream: dl.SourceStream, Durable: dl.Consumer}) {
		return nil, refuse(ReplayConsumerUnknown, "%s does not declare the durable %s on %s", dl.Writer, dl.Consumer, dl.SourceStream)
	}
	env := dl.Envelope
	if dl.EnvelopeOmitted {
		if env, err = d.sourceEnvelope(ctx, dl); err != nil {
			return nil, refuse(ReplayEnvelopeMissing, "%v", err)
		}
	}
	info, err := envelope.CheckSignature(env)
	if err != nil {
		return nil, refuse(ReplayEnvelopeUnverified, "%v", err)
	}
	switch {
	case info.Account != d.r.acct.PublicKey():
		return nil, refuse(ReplayForeignEnvelope, "the envelope belongs to account %s; replay it in its own account", info.Account)
	case info.Subject != dl.SourceSubject:
		return nil, refuse(ReplaySubjectMismatch, "signed for %q, delivered on %q", info.Subject, dl.SourceSubject)
	}
	if err := accounts.CheckAppSubject("replay", info.Subject); err != nil {
		return nil, refuse(ReplaySubjectForbidden, "%v", err)
	}
	subjects, err := StreamSubjects(ctx, d.r.nc, dl.SourceStream)
	if err != nil {
		return nil, refuse(ReplayStreamMismatch, "%v", err)
	}
	if !slices.ContainsFunc(subjects, func(p string) bool { return accounts.SubjectMatches(p, info.Subject) }) {
		return nil, refuse(ReplayStreamMismatch, "stream %s does not hold %q", dl.SourceStream, info.Subject)
	}
	if _, err := d.js.Consumer(ctx, dl.SourceStream, dl.Consumer); err != nil {
		return nil, refuse(ReplayConsumerUnknown, "durable %s on %s: %v", dl.Consumer, dl.SourceStream, err)
	}

	now := time.Now()
	sum := sha256.Sum256(env)
	grant, err := json.Marshal(consumers.ReplayGrant{
		DeadLetter: seq, Stream: dl.SourceStream, Durable: dl.Consumer, Subject: info.Subject,
		EnvelopeSHA256: hex.EncodeToString(sum[:]), Expires: now.Add(ReplayValidity).UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("operator: encode replay authorization: %w", err)
	}
	sk := d.r.acct.SigningKeys[0]
	auth, err := envelope.SignRecord(sk, envelope.Record{Kind: envelope.RecordReplayAuthorization, Time: now, Account: d.r.acct.PublicKey(), Payload: grant})
	if err != nil {
		return nil, fmt.Errorf("operator: sign replay authorization: %w", err)
	}
	rec, err := envelope.ParseRecord(auth)
	if err != nil {
		return nil, fmt.Errorf("operator: replay authorization: %w", err)
	}
	nc, err := replayConn(ctx, d.r.p.Target, d.r.acct, info.Subject, now)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	msg := &nats.Msg{Subject: info.Subject, Data: env, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "replay."+rec.ID.String())
	msg.Header.Set(consumers.HeaderReplayAuthorization, base64.StdEncoding.EncodeToString(auth))
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(dl.SourceStream))
	if err != nil {
		return nil, fmt.Errorf("operator: replay dead letter %d: %w", seq, err)
	}
	pub, _ := sk.PublicKey()
	return &ReplayResult{DeadLetter: seq, Stream: ack.Stream, Sequence: ack.Sequence, Subject: info.Subject, Durable: dl.Consumer,
		AuthorizationID: rec.ID.String(), OrderedBy: pub, Duplicate: ack.Duplicate}, nil
}

// sourceEnvelope fetches an omitted envelope from its stream and checks it against the hash the
// verified record names.
func (d *DeadLetters) sourceEnvelope(ctx context.Context, dl *DeadLetterEntry) ([]byte, error) {
	s, err := d.js.Stream(ctx, dl.SourceStream)
	if err != nil {
		return nil, err
	}
	m, err := s.GetMsg(ctx, dl.SourceSequence)
	if err != nil {
		return nil, fmt.Errorf("%s sequence %d: %w", dl.SourceStream, dl.SourceSequence, err)
	}
	sum := sha256.Sum256(m.Data)
	if hex.EncodeToString(sum[:]) != dl.EnvelopeSHA256 {
		return nil, fmt.Errorf("%s sequence %d holds other bytes than the dead letter names", dl.SourceStream, dl.SourceSequence)
	}
	return m.Data, nil
}

// ReplayUserName is the name in the user JWT [Replay] mints.
const ReplayUserName = "sealbus-replay"

// replayConn connects as a user minted for one replay: signed by the account's signing key,
// valid for a minute, allowed to publish on exactly subject and to subscribe to its own inbox
// (the publish acknowledgement comes there), nothing else: no JetStream API subject, no
// response permission.
func replayConn(ctx context.Context, t Target, acct *accounts.Account, subject string, now time.Time) (*nats.Conn, error) {
	userJWT, seed, inbox, err := replayUser(acct, subject, now)
	if err != nil {
		return nil, err
	}
	defer wipe(seed)
	return connect(ctx, t, ReplayUserName, userJWT, seed, nats.CustomInboxPrefix(inbox), nats.MaxReconnects(0))
}

// replayUser mints the replay user: its JWT, seed and inbox prefix.
func replayUser(acct *accounts.Account, subject string, now time.Time) (userJWT string, seed []byte, inbox string, err error) {
	if acct == nil || acct.Claims == nil || len(acct.SigningKeys) == 0 {
		return "", nil, "", fmt.Errorf("%w: account has no signing key", ErrInvalidSpec)
	}
	if !accounts.ValidSubject(subject) {
		return "", nil, "", fmt.Errorf("%w: replay subject %q", ErrInvalidSpec, subject)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, "", fmt.Errorf("operator: creating replay user key: %w", err)
	}
	defer ukp.Wipe()
	pub, _ := ukp.PublicKey()
	inbox = accounts.InboxPrefix(pub)
	uc := jwt.NewUserClaims(pub)
	uc.Name = ReplayUserName
	uc.IssuerAccount = acct.PublicKey()
	uc.IssuedAt = now.Unix()
	uc.Expires = now.Add(time.Minute).Unix()
	uc.Pub.Allow.Add(subject)
	uc.Sub.Allow.Add(inbox + ".>")
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	tok, err := uc.Encode(acct.SigningKeys[0])
	if err != nil {
		return "", nil, "", fmt.Errorf("operator: signing replay user JWT: %w", err)
	}
	seed, err = ukp.Seed()
	if err != nil {
		return "", nil, "", fmt.Errorf("operator: replay user seed: %w", err)
	}
	return tok, slices.Clone(seed), inbox, nil
}
