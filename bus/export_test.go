package bus

import "github.com/nats-io/nats.go"

// ConnOf exposes a client's connection to this package's external tests (its options); the
// public API has no such handle.
func ConnOf(c *Client) *nats.Conn { return c.nc }
