// Package clientseam is the one seam between package bus and package consumers: what a
// consumption needs of a *bus.Client that the public API does not offer, because offering it
// publicly would give applications a handle that bypasses sealing (a raw NATS connection, a
// JetStream context).
//
// Package bus registers the resolver in its init function; package consumers calls [Of]. No
// other package uses it. It also holds the little both sides share: the form of their reply
// subjects ([ReplySubject]).
package clientseam

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Link is a bus client's connection, JetStream context and counters, and its writer of signed
// dead-letter records.
type Link struct {
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Counters *Counters
	// Violations reports the server's permission errors on Conn.
	Violations *Violations
	// WriteDeadLetter writes a dead-letter record signed by the client (meta: its JSON
	// metadata; env: the envelope as received, or nil when it is too large to carry) on the
	// client's own dead-letter subject and returns its sequence in SEALBUS_DLQ. key names the
	// dead letter for deduplication; ref ("<stream>/<seq>") is what an overflow report lists
	// if the server refuses it (then the error wraps bus.ErrEvidenceRefused).
	WriteDeadLetter func(ctx context.Context, key, ref string, meta, env []byte) (seq uint64, err error)
}

var resolve func(client any) *Link

// SetResolver is called once, by package bus, with the function that returns a client's Link.
func SetResolver(f func(client any) *Link) { resolve = f }

// Of returns the Link of a *bus.Client, or nil for anything else.
func Of(client any) *Link {
	if resolve == nil {
		return nil
	}
	return resolve(client)
}
