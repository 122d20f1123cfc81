package consumers

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// ReplayGrant is the JSON payload of a replay authorization record (envelope/RECORD.md §4.3):
// an operator's decision, signed by an account signing key, that one dead letter's envelope may
// be delivered once more, after its freshness window, to one durable. The record's id is the
// authorization's id and its time when it was issued.
type ReplayGrant struct {
	DeadLetter     uint64    `json:"dead_letter"`     // the dead letter's sequence in SEALBUS_DLQ
	Stream         string    `json:"stream"`          // the stream the envelope is replayed into
	Durable        string    `json:"durable"`         // the one durable that may accept it
	Subject        string    `json:"subject"`         // the subject it is replayed on (the envelope's own)
	EnvelopeSHA256 string    `json:"envelope_sha256"` // SHA-256 of the envelope bytes, hex
	Expires        time.Time `json:"expires"`         // the replay must be stored before this
}

// ErrReplayAuthorization reports a replay authorization that is missing a field, does not
// verify, or does not bind this delivery. A delivery carrying one is opened on the live path
// (and a stale envelope stays stale).
var ErrReplayAuthorization = errors.New("consumers: replay authorization refused")

// ParseReplayGrant decodes a replay authorization's payload strictly (unknown fields, trailing
// data and missing fields are refused).
func ParseReplayGrant(payload []byte) (*ReplayGrant, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var g ReplayGrant
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrReplayAuthorization, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrReplayAuthorization)
	}
	if g.DeadLetter == 0 || !accounts.ValidName(g.Stream) || !accounts.ValidName(g.Durable) || !accounts.ValidSubject(g.Subject) ||
		len(g.EnvelopeSHA256) != 64 || g.Expires.IsZero() {
		return nil, fmt.Errorf("%w: a field is missing or invalid", ErrReplayAuthorization)
	}
	if _, err := hex.DecodeString(g.EnvelopeSHA256); err != nil {
		return nil, fmt.Errorf("%w: envelope hash: %v", ErrReplayAuthorization, err)
	}
	return &g, nil
}

// maxReplayHeader bounds the header value decoded (a replay authorization is a few hundred
// bytes).
const maxReplayHeader = 8 << 10

// ReplayInfo says a message is an operator's replay of a dead letter (Message.Replay).
type ReplayInfo struct {
	ID         string    // the authorization's id: what the replay guard records for this delivery
	OrderedBy  string    // the account signing key that signed it ("A...")
	Issued     time.Time // when the operator issued it
	DeadLetter uint64    // the dead letter's sequence in SEALBUS_DLQ
}

// replayAuthority checks replay authorizations against the account's verified JWT.
type replayAuthority struct {
	account string
	claims  func() *jwt.AccountClaims // the directory's verified account JWT
	window  time.Duration             // the consumer's freshness window
}

// grantCheck is the outcome of a verified authorization: for this durable, or for another
// durable of the same stream (then the consumer acknowledges the delivery without handling
// it: the operator replayed it for someone else).
type grantCheck struct {
	info     ReplayInfo
	forOther bool
}

// check verifies the authorization in header for delivery m: a record of kind
// replay_authorization written by a signing key (not scoped) or the identity key of this
// account, as its verified JWT lists them; its grant names m's stream, subject and the
// SHA-256 of m's envelope bytes; m was stored within the freshness window of the grant's issue
// time and before it expires. It does not open the envelope: Verify does, with everything but
// freshness.
func (a replayAuthority) check(header string, m *Message) (*grantCheck, error) {
	if len(header) > maxReplayHeader {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrReplayAuthorization, len(header))
	}
	data, err := base64.StdEncoding.Strict().DecodeString(header)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64", ErrReplayAuthorization)
	}
	claims := a.claims()
	rec, err := envelope.VerifyRecord(data, envelope.RecordPolicyFunc(func(r *envelope.Record) error {
		switch {
		case r.Kind != envelope.RecordReplayAuthorization:
			return fmt.Errorf("%w: a %s record", envelope.ErrWriterUnknown, r.Kind)
		case r.Account != a.account || claims == nil || claims.Subject != a.account:
			return fmt.Errorf("%w: account %s", envelope.ErrWriterUnknown, r.Account)
		case r.Role != envelope.WriterAccount || !(r.Writer == claims.Subject || claims.SigningKeys.Contains(r.Writer)):
			return fmt.Errorf("%w: %s is not a signing key of the account", envelope.ErrWriterUnknown, r.Writer)
		}
		if scope, ok := claims.SigningKeys.GetScope(r.Writer); ok && scope != nil {
			return fmt.Errorf("%w: %s is a scoped signing key", envelope.ErrWriterUnknown, r.Writer)
		}
		return nil
	}), maxReplayHeader)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReplayAuthorization, err)
	}
	g, err := ParseReplayGrant(rec.Payload)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(m.envelope)
	switch {
	case g.Stream != m.Stream:
		return nil, fmt.Errorf("%w: issued for stream %s, delivered from %s", ErrReplayAuthorization, g.Stream, m.Stream)
	case g.Subject != m.LocalSubject:
		return nil, fmt.Errorf("%w: issued for subject %q, delivered on %q", ErrReplayAuthorization, g.Subject, m.LocalSubject)
	case g.EnvelopeSHA256 != hex.EncodeToString(sum[:]):
		return nil, fmt.Errorf("%w: issued for other envelope bytes", ErrReplayAuthorization)
	case m.Stored.Before(rec.Time.Add(-a.window)) || m.Stored.After(rec.Time.Add(a.window)):
		return nil, fmt.Errorf("%w: issued %s, stored %s: outside the freshness window", ErrReplayAuthorization,
			rec.Time.Format(time.RFC3339), m.Stored.UTC().Format(time.RFC3339))
	case !m.Stored.Before(g.Expires):
		return nil, fmt.Errorf("%w: expired at %s", ErrReplayAuthorization, g.Expires.UTC().Format(time.RFC3339))
	}
	gc := &grantCheck{info: ReplayInfo{ID: rec.ID.String(), OrderedBy: rec.Writer, Issued: rec.Time, DeadLetter: g.DeadLetter}}
	gc.forOther = g.Durable != m.Consumer
	return gc, nil
}
