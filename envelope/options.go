package envelope

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"
)

// Defaults and limits of the options.
const (
	DefaultMaxSize   = 1 << 20 // 1 MiB
	MinMaxSize       = 1 << 10 // smallest value WithMaxSize accepts
	HardMaxSize      = 64 << 20
	DefaultEpoch     = time.Hour
	MaxEpoch         = 7 * 24 * time.Hour
	DefaultFreshness = 2 * time.Minute
	MaxFreshness     = 24 * time.Hour
	DefaultRootCache = 4096
	MaxRootCache     = 1 << 20
)

type role int

const (
	roleSealer role = iota + 1
	roleOpener
)

func (r role) String() string {
	if r == roleSealer {
		return "NewSealer"
	}
	return "NewOpener"
}

type config struct {
	role      role
	rand      io.Reader
	now       func() time.Time
	maxSize   int
	epoch     time.Duration
	freshness time.Duration
	rootCache int
}

// Option configures NewSealer or NewOpener. An option given to a constructor it does not
// apply to makes that constructor return ErrInvalidOption.
type Option func(*config) error

func newConfig(r role, opts []Option) (config, error) {
	c := config{
		role:      r,
		rand:      rand.Reader,
		now:       time.Now,
		maxSize:   DefaultMaxSize,
		epoch:     DefaultEpoch,
		freshness: DefaultFreshness,
		rootCache: DefaultRootCache,
	}
	for _, o := range opts {
		if o == nil {
			return c, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

func only(c *config, r role, name string) error {
	if c.role != r {
		return fmt.Errorf("%w: %s does not apply to %s", ErrInvalidOption, name, c.role)
	}
	return nil
}

// WithRand sets the source of randomness (message ids, content keys, nonces, epoch keys).
// The default is crypto/rand. Only tests and vector generation should set it. Sealer only.
func WithRand(r io.Reader) Option {
	return func(c *config) error {
		if err := only(c, roleSealer, "WithRand"); err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("%w: nil random source", ErrInvalidOption)
		}
		c.rand = r
		return nil
	}
}

// WithClock sets the clock. The sealer stamps creation times and rotates and discards epoch
// keys by it (its epoch timer calls the clock from another goroutine, so the clock must be
// safe for concurrent use); the opener uses it for expiry and when a Delivery has no stored
// time. Default time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithMaxSize sets the largest envelope, in bytes, that is sealed or opened (default
// DefaultMaxSize; between MinMaxSize and HardMaxSize).
func WithMaxSize(n int) Option {
	return func(c *config) error {
		if n < MinMaxSize || n > HardMaxSize {
			return fmt.Errorf("%w: max size %d outside [%d, %d]", ErrInvalidOption, n, MinMaxSize, HardMaxSize)
		}
		c.maxSize = n
		return nil
	}
}

// WithEpoch sets how long one sender epoch (ephemeral X25519) key is used before it is
// discarded and a fresh one drawn (default DefaultEpoch; positive and at most MaxEpoch); see
// Sealer for when exactly the key is discarded. Sealer only.
func WithEpoch(d time.Duration) Option {
	return func(c *config) error {
		if err := only(c, roleSealer, "WithEpoch"); err != nil {
			return err
		}
		if d <= 0 || d > MaxEpoch {
			return fmt.Errorf("%w: epoch %v outside (0, %v]", ErrInvalidOption, d, MaxEpoch)
		}
		c.epoch = d
		return nil
	}
}

// WithFreshness sets how far the signed creation time may be from the delivery's stored
// time, on either side (default DefaultFreshness; positive and at most MaxFreshness). Keep it
// no longer than the stream's duplicate window. Opener only.
func WithFreshness(d time.Duration) Option {
	return func(c *config) error {
		if err := only(c, roleOpener, "WithFreshness"); err != nil {
			return err
		}
		if d <= 0 || d > MaxFreshness {
			return fmt.Errorf("%w: freshness %v outside (0, %v]", ErrInvalidOption, d, MaxFreshness)
		}
		c.freshness = d
		return nil
	}
}

// WithRootCache sets how many verified batch signatures the opener remembers (default
// DefaultRootCache; 0 disables the cache, so every envelope costs one Ed25519 verification).
// Opener only.
func WithRootCache(n int) Option {
	return func(c *config) error {
		if err := only(c, roleOpener, "WithRootCache"); err != nil {
			return err
		}
		if n < 0 || n > MaxRootCache {
			return fmt.Errorf("%w: root cache %d outside [0, %d]", ErrInvalidOption, n, MaxRootCache)
		}
		c.rootCache = n
		return nil
	}
}
