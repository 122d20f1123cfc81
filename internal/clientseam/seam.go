// Package clientseam is the one seam between package bus and package consumers: what a
// consumption needs of a *bus.Client that the public API does not offer, because offering it
// publicly would give applications a handle that bypasses sealing (a raw NATS connection, a
// JetStream context).
//
// Package bus registers the resolver in its init function; package consumers calls [Of]. No
// other package uses it.
package clientseam

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Link is a bus client's connection, JetStream context and counters.
type Link struct {
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Counters *Counters
	// Violations reports the server's permission errors on Conn.
	Violations *Violations
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
