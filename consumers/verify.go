package consumers

import (
	"context"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
)

// opener opens envelopes delivered in one account; *bus.Client implements it.
type opener interface {
	Open(data []byte, d envelope.Delivery) (*envelope.Opened, error)
}

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
func Verify(c *bus.Client) Middleware {
	dir := c.Directory()
	return verify(c, dir.Origin, func(key string) string {
		name, _ := dir.NameOf(key)
		return name
	})
}

func verify(o opener, origin func(local string) (account, subject string), nameOf func(string) string) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			account, subject := origin(m.LocalSubject)
			op, err := o.Open(m.envelope, envelope.Delivery{Account: account, Subject: subject, Stored: m.Stored})
			if err != nil {
				return err
			}
			m.ID = op.ID.String()
			m.Account = op.Account
			m.Subject = op.Subject
			m.SenderKey = op.Sender
			m.Sender = nameOf(op.Sender)
			m.ContentType = op.ContentType
			m.Created = op.Created
			m.Expires = op.Expires
			m.Payload = op.Payload
			m.verified = true
			return next(ctx, m)
		}
	}
}
