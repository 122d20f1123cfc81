package consumers

import (
	"fmt"
	"time"
)

// Defaults of the options.
const (
	DefaultWorkers     = 1
	DefaultMaxInFlight = 64
	// DefaultAckTimeout is how long one attempt to acknowledge a message waits for the
	// server's confirmation (WithAckTimeout).
	DefaultAckTimeout = 2 * time.Second
)

// Option configures Consume.
type Option func(*config) error

type config struct {
	workers     int
	maxInFlight int
	inFlightSet bool
	middleware  []Middleware
	backoff     []time.Duration
	replayCap   int
	ackTimeout  time.Duration
	lease       time.Duration
}

func newConfig(opts []Option) (*config, error) {
	c := &config{workers: DefaultWorkers, maxInFlight: DefaultMaxInFlight, replayCap: DefaultReplayCapacity, ackTimeout: DefaultAckTimeout, lease: DefaultClaimLease}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if !c.inFlightSet && c.maxInFlight < c.workers {
		c.maxInFlight = c.workers
	}
	if c.maxInFlight < c.workers {
		return nil, fmt.Errorf("%w: max in flight %d is below the %d workers", ErrInvalidOption, c.maxInFlight, c.workers)
	}
	return c, nil
}

// WithWorkers sets how many handler calls run concurrently (default 1: messages are handled
// one at a time, in delivery order).
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 4096 {
			return fmt.Errorf("%w: workers %d (1 to 4096)", ErrInvalidOption, n)
		}
		c.workers = n
		return nil
	}
}

// WithMaxInFlight bounds the messages pulled from the server and not yet acknowledged (being
// handled or waiting for a worker). Default DefaultMaxInFlight, and at least the number of
// workers. A pulled message's AckWait runs from its delivery, including while it waits for a
// worker: keep the consumer's AckWait (with a BackOff list, its first entry) well above the
// time to handle MaxInFlight messages, or JetStream redelivers messages still waiting.
func WithMaxInFlight(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: max in flight %d (1 to %d)", ErrInvalidOption, n, 1<<20)
		}
		c.maxInFlight, c.inFlightSet = n, true
		return nil
	}
}

// WithMiddleware adds middleware around the handler, inside the security middleware (they
// see verified messages only). The first is the outermost.
func WithMiddleware(mw ...Middleware) Option {
	return func(c *config) error {
		for _, m := range mw {
			if m == nil {
				return fmt.Errorf("%w: nil middleware", ErrInvalidOption)
			}
		}
		c.middleware = append(c.middleware, mw...)
		return nil
	}
}

// WithBackOff sets the retry delays after handler failures (the n-th delivery waits
// backoff[n-1], the last entry repeating). Without it the consumer's BackOff configuration is
// followed, else DefaultBackOff. With a consumer BackOff, a delay shorter than the
// consumer's BackOff entry minus its first entry cannot be had (JetStream counts from there).
func WithBackOff(backoff ...time.Duration) Option {
	return func(c *config) error {
		if len(backoff) == 0 {
			return fmt.Errorf("%w: empty backoff", ErrInvalidOption)
		}
		for _, d := range backoff {
			if d < 0 {
				return fmt.Errorf("%w: negative backoff %v", ErrInvalidOption, d)
			}
		}
		c.backoff = append([]time.Duration(nil), backoff...)
		return nil
	}
}

// WithReplayCapacity bounds the message ids the replay guard remembers in memory (default
// DefaultReplayCapacity, about 125 bytes each), in front of the durable's guard store, which
// holds every id for its horizon whatever this bound: ids forgotten early here cost a store
// read on their redelivery, nothing else.
func WithReplayCapacity(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: replay capacity %d", ErrInvalidOption, n)
		}
		c.replayCap = n
		return nil
	}
}

// WithAckTimeout sets how long one attempt to acknowledge a message waits for the server's
// confirmation (default DefaultAckTimeout; 10ms to 1 minute); it also bounds one write to the
// replay guard's store. Acks are confirmed (a window of acks by one round trip, or one ack by
// its reply) and tried a few times; an ack still unconfirmed is counted in
// bus.Metrics.AckUnconfirmed, and its redelivery, if any, is acknowledged without calling the
// handler again.
func WithAckTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond || d > time.Minute {
			return fmt.Errorf("%w: ack timeout %v (10ms to 1m)", ErrInvalidOption, d)
		}
		c.ackTimeout = d
		return nil
	}
}

// WithClaimLease sets how long the processes consuming a durable consider one of them alive
// after its last heartbeat in the replay guard's store (default DefaultClaimLease; 2s to 10m).
// A message claimed by a process that stopped answering for longer is taken over and handled
// by another (so a crash loses nothing, at the risk of a second handler call if the crashed
// call had finished); a shorter lease recovers sooner but takes over from a process that is
// merely cut off from the server for longer than the lease. Every process of a durable should
// use the same lease. It must be longer than the time the client takes to notice a dead
// server and reconnect (bus.WithPingInterval).
func WithClaimLease(d time.Duration) Option {
	return func(c *config) error {
		if d < 2*time.Second || d > 10*time.Minute {
			return fmt.Errorf("%w: claim lease %v (2s to 10m)", ErrInvalidOption, d)
		}
		c.lease = d
		return nil
	}
}
