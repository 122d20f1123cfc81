package accounts

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
)

// Limits of an account (a tenant). The server enforces them.
//
// Mapping to jwt/v2 (which uses -1, [jwt.NoLimit], for "unlimited"):
//
//   - Connections, Subscriptions, MaxPayload, Data, Streams, Consumers:
//     0 means unlimited (-1 in the JWT); MaxPayload unlimited means the
//     server's max_payload applies. Negative values are refused.
//   - MemoryStorage, DiskStorage (bytes of JetStream storage): 0 means none
//     (0 in the JWT: that storage type is disabled for the account; with both
//     0 JetStream is disabled), -1 means unlimited. Unlimited storage is
//     never a default: one tenant could fill the server's disk. Below -1 is
//     refused.
//   - MaxAckPending: 0 means the server default (0 in the JWT); negative is
//     refused.
//
// Data is in bytes per second summed over the account's connections.
//
// Every account also gets, not configurable here: no leaf node connections
// (LeafNodeConn 0) and bearer user JWTs disallowed (DisallowBearer), so a
// user JWT without its seed never authenticates.
type Limits struct {
	Connections, Subscriptions, MaxPayload, Data   int64
	MemoryStorage, DiskStorage, Streams, Consumers int64
	MaxAckPending                                  int64
}

// DefaultLimits returns secure defaults for a tenant: finite connections,
// subscriptions and payload size, JetStream enabled with 64 MiB memory and
// 1 GiB disk storage, 32 streams, 256 consumers, 10000 pending acks per
// consumer. Data rate is unlimited.
func DefaultLimits() Limits {
	return Limits{
		Connections:   1000,
		Subscriptions: 10000,
		MaxPayload:    1 << 20,
		Data:          0,
		MemoryStorage: 64 << 20,
		DiskStorage:   1 << 30,
		Streams:       32,
		Consumers:     256,
		MaxAckPending: 10000,
	}
}

// OperatorAccountLimits are the limits of the operator account ([OperatorAccountName]): only
// the operator's tools connect to it, and its JetStream storage holds the directory of every
// tenant (1 GiB of disk, no memory storage).
func OperatorAccountLimits() Limits {
	return Limits{
		Connections:   256,
		Subscriptions: 4096,
		MaxPayload:    1 << 20,
		MemoryStorage: 0,
		DiskStorage:   1 << 30,
		Streams:       16,
		Consumers:     1024,
	}
}

// SystemLimits are the limits of the system account: unlimited NATS limits,
// JetStream disabled.
func systemLimits() Limits { return Limits{} }

func unlimitedIfZero(v int64) int64 {
	if v <= 0 {
		return jwt.NoLimit
	}
	return v
}

func storage(v int64) int64 {
	if v < 0 {
		return jwt.NoLimit
	}
	return v
}

// Validate reports the first nonsensical limit as [ErrInvalidOption]: a
// negative count, size or rate (storage may be -1, unlimited), or a max
// payload below 1024 bytes.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"connections", l.Connections}, {"subscriptions", l.Subscriptions}, {"max payload", l.MaxPayload},
		{"data rate", l.Data}, {"streams", l.Streams}, {"consumers", l.Consumers}, {"max ack pending", l.MaxAckPending},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s %d is negative (0 means unlimited)", ErrInvalidOption, f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"memory storage", l.MemoryStorage}, {"disk storage", l.DiskStorage}} {
		if f.v < -1 {
			return fmt.Errorf("%w: %s %d: use a size, 0 for none or -1 for unlimited", ErrInvalidOption, f.name, f.v)
		}
	}
	if l.MaxPayload > 0 && l.MaxPayload < 1024 {
		return fmt.Errorf("%w: max payload %d is below 1024 bytes; envelopes would not fit", ErrInvalidOption, l.MaxPayload)
	}
	return nil
}

// apply writes l into the account claims' operator limits.
func (l Limits) apply(c *jwt.AccountClaims) {
	c.Limits.Conn = unlimitedIfZero(l.Connections)
	c.Limits.LeafNodeConn = 0      // sealbus uses no leaf nodes; none may attach to a tenant
	c.Limits.DisallowBearer = true // sealbus never issues bearer user JWTs; refuse any
	c.Limits.Subs = unlimitedIfZero(l.Subscriptions)
	c.Limits.Payload = unlimitedIfZero(l.MaxPayload)
	c.Limits.Data = unlimitedIfZero(l.Data)
	c.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: storage(l.MemoryStorage),
		DiskStorage:   storage(l.DiskStorage),
		Streams:       unlimitedIfZero(l.Streams),
		Consumer:      unlimitedIfZero(l.Consumers),
		MaxAckPending: max(l.MaxAckPending, 0),
	}
	if l.MemoryStorage == 0 && l.DiskStorage == 0 {
		// JetStream disabled: keep the other JetStream fields at zero so the
		// JWT says so plainly.
		c.Limits.JetStreamLimits = jwt.JetStreamLimits{}
	}
	c.Limits.JetStreamTieredLimits = nil
}

// LimitsOf reads the limits back from account claims, inverting the mapping
// documented on [Limits] (unlimited becomes 0, except storage, where
// unlimited becomes -1).
func LimitsOf(c *jwt.AccountClaims) Limits {
	z := func(v int64) int64 {
		if v < 0 {
			return 0
		}
		return v
	}
	return Limits{
		Connections:   z(c.Limits.Conn),
		Subscriptions: z(c.Limits.Subs),
		MaxPayload:    z(c.Limits.Payload),
		Data:          z(c.Limits.Data),
		MemoryStorage: c.Limits.MemoryStorage,
		DiskStorage:   c.Limits.DiskStorage,
		Streams:       z(c.Limits.Streams),
		Consumers:     z(c.Limits.Consumer),
		MaxAckPending: z(c.Limits.MaxAckPending),
	}
}
