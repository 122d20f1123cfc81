package bus

import "github.com/nats-io/nats.go"

// ConnOf exposes a client's connection to this package's external tests (its options); the
// public API has no such handle.
func ConnOf(c *Client) *nats.Conn { return c.nc }

// AwaitingAnswers is how many sent envelopes wait for their JetStream answer: tests use it to
// know every envelope was sealed and sent (OutMsgs also counts other traffic).
func AwaitingAnswers(c *Client) int {
	c.pa.mu.Lock()
	defer c.pa.mu.Unlock()
	return len(c.pa.wait)
}
