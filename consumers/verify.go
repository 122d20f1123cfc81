package consumers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// opener opens envelopes delivered in one account; *bus.Client implements it.
type opener interface {
	OpenInto(dst *envelope.Opened, data []byte, d envelope.Delivery) error
}

// openedPool holds the Opened that verify opens into and copies out of (one fewer allocation
// per message than Open's).
var openedPool = sync.Pool{New: func() any { return new(envelope.Opened) }}

// Verify returns middleware that opens the envelope with the client: the checks run in the
// order of docs/ARCHITECTURE.md, "Receiving" (size, parse, version and suite, account and
// subject against the delivery, freshness against the server's stored time, sender card known, valid, not revoked
// and allowed to publish on the subject, a recipient entry for this service, signature or
// cached batch root, unwrap, key commitment, decryption). A refusal is returned as the
// envelope's *envelope.RejectError, which the dead-letter middleware handles; on success the
// message's signed fields and plaintext are filled in.
//
// A message brought into the account by a stream import is opened against its origin (the
// exporting account and its subject, from the account's verified JWT), see
// bus.Directory.Origin.
//
// # Replays
//
// A delivery with a HeaderReplayAuthorization header is an operator's replay of a dead letter
// (operator.DeadLetters.Replay) if the header holds a replay authorization record that verifies:
// signed by a signing key of this account that its verified JWT lists (not a scoped one), for
// this stream, subject and the SHA-256 of these envelope bytes, and this delivery stored within
// the freshness window of its issue time and before it expires. Such a delivery is opened with
// every check except freshness (sender, card chain and revocation, subject, account,
// recipient, signature, key commitment, decryption, expiry all still run), Message.Replay says
// so (Message.Created stays the envelope's original creation time), and the replay guard
// records the authorization's id, so each authorization is handled at most once. If the
// authorization names another durable of the stream, the delivery is acknowledged without
// calling the handler (the operator replayed it for that durable; bus.Metrics.ReplaysSkipped).
// A header that does not verify is ignored and the delivery takes the live path: an envelope
// outside the freshness window stays stale, whatever the header says.
func Verify(c *bus.Client) Middleware {
	dir := c.Directory()
	auth := replayAuthority{account: c.Account(), claims: dir.AccountClaims, window: c.Freshness()}
	var k *clientseam.Counters
	if link := clientseam.Of(c); link != nil {
		k = link.Counters
	}
	return verify(c, dir.Origin, func(key string) string {
		name, _ := dir.NameOf(key)
		return name
	}, auth, k)
}

func verify(o opener, origin func(local string) (account, subject string), nameOf func(string) string, auth replayAuthority, k *clientseam.Counters) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			account, subject := origin(m.LocalSubject)
			d := envelope.Delivery{Account: account, Subject: subject, Stored: m.Stored}
			var grant *grantCheck
			var authErr error
			if h := m.UnverifiedHeaders.Get(HeaderReplayAuthorization); h != "" {
				grant, authErr = auth.check(h, m)
				if grant != nil && grant.forOther {
					if k != nil {
						k.ReplaysSkipped.Add(1)
					}
					return nil // acknowledged: the operator replayed it for another durable
				}
				d.SkipFreshness = grant != nil
			}
			op := openedPool.Get().(*envelope.Opened)
			if err := o.OpenInto(op, m.envelope, d); err != nil {
				putOpened(op) // not written by a refused open; cleared all the same
				var re *envelope.RejectError
				if authErr != nil && errors.As(err, &re) && re.Reason == envelope.ReasonStale {
					return &envelope.RejectError{Reason: envelope.ReasonStale, Err: fmt.Errorf("%w; %w", re.Err, authErr)}
				}
				return err
			}
			m.ID = idString(op.ID, m.UnverifiedHeaders)
			m.Account = op.Account
			m.Subject = op.Subject
			m.SenderKey = op.Sender
			m.Sender = nameOf(op.Sender)
			m.ContentType = op.ContentType
			m.Created = op.Created
			m.Expires = op.Expires
			m.Payload = op.Payload
			putOpened(op)
			m.verified = true
			if grant != nil {
				info := grant.info
				m.Replay = &info
			}
			return next(ctx, m)
		}
	}
}

// putOpened clears op, which holds the payload and sender of the message it was opened for,
// and gives it back to the pool.
func putOpened(op *envelope.Opened) {
	*op = envelope.Opened{}
	openedPool.Put(op)
}

// idString returns id's String form. A delivery normally carries exactly that string as its
// Nats-Msg-Id (the publisher stores every envelope under its id), so the header's string is
// used instead of a new one; any other header value is ignored here (the replay guard refuses
// such a copy, storedUnderOwnID).
func idString(id envelope.MessageID, h nats.Header) string {
	var buf [2 * len(id)]byte
	b, _ := id.AppendText(buf[:0])
	if v := h[jetstream.MsgIDHeader]; len(v) > 0 && v[0] == string(b) {
		return v[0]
	}
	return string(b)
}
