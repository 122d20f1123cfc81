package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

// Defaults of the options.
const (
	// DefaultMaxPending is the default bound on in-flight asynchronous publishes.
	DefaultMaxPending = 4096
	// DefaultBatchSize is the default largest number of concurrent publishes sealed
	// under one signature.
	DefaultBatchSize = 64
	// DefaultBatchDelay is how long, by default, a batch that already holds two or more
	// messages waits for more. A lone message never waits.
	DefaultBatchDelay = 0
	// DefaultTimeout bounds network calls whose context has no deadline.
	DefaultTimeout = 5 * time.Second
	// DefaultName is the connection name used when WithName is not given.
	DefaultName = "sealbus"
	// MaxBatchDelay is the largest delay WithBatch accepts.
	MaxBatchDelay = time.Second
	// DefaultPingInterval is how often, by default, the client pings the server it is
	// connected to. With DefaultMaxPingsOutstanding unanswered pings the connection counts as
	// stale and the client reconnects (to another server of the list when there is one): a
	// server that hangs with its connection open (paused, overloaded to a stop) is left after
	// about 15 to 20 seconds instead of nats.go's default of several minutes.
	DefaultPingInterval = 5 * time.Second
	// DefaultMaxPingsOutstanding is the default number of unanswered pings after which the
	// connection counts as stale.
	DefaultMaxPingsOutstanding = 3
	// MinPingInterval and MaxPingInterval bound WithPingInterval.
	MinPingInterval = 100 * time.Millisecond
	MaxPingInterval = 10 * time.Minute
	// DefaultDirectoryPoll is how often, by default, the client asks its directory view for
	// changes (one small direct get; the index and changed keys only when something changed),
	// so a revocation or rotation takes effect within about this long.
	DefaultDirectoryPoll = 500 * time.Millisecond
	// MinDirectoryPoll and MaxDirectoryPoll bound WithDirectoryPoll.
	MinDirectoryPoll = 50 * time.Millisecond
	MaxDirectoryPoll = time.Minute
)

// Option configures Connect. Options validate their arguments and make Connect return an error
// wrapping ErrInvalidOption when a value is out of range.
type Option func(*config) error

type config struct {
	urls       []string
	credsPath  string
	credsData  []byte
	prevPaths  []string
	prevData   [][]byte
	rootCA     string
	rootCAPEM  []byte
	certFile   string
	keyFile    string
	operators  []string
	logger     *slog.Logger
	name       string
	rate       float64
	burst      int
	maxPending int
	batchSize  int
	batchDelay time.Duration
	freshness  time.Duration
	now        func() time.Time
	rand       io.Reader
	timeout    time.Duration
	pingEvery  time.Duration
	maxPings   int
	dirPoll    time.Duration
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		logger:     slog.New(defaultLogHandler{}),
		name:       DefaultName,
		maxPending: DefaultMaxPending,
		batchSize:  DefaultBatchSize,
		batchDelay: DefaultBatchDelay,
		freshness:  envelope.DefaultFreshness,
		now:        time.Now,
		timeout:    DefaultTimeout,
		pingEvery:  DefaultPingInterval,
		maxPings:   DefaultMaxPingsOutstanding,
		dirPoll:    DefaultDirectoryPoll,
	}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if len(c.urls) == 0 {
		return nil, fmt.Errorf("%w: no server URL (WithURL)", ErrInvalidOption)
	}
	if c.credsPath == "" && c.credsData == nil {
		return nil, fmt.Errorf("%w: no credentials (WithCredsFile or WithCreds)", ErrInvalidOption)
	}
	if c.credsPath != "" && c.credsData != nil {
		return nil, fmt.Errorf("%w: both WithCredsFile and WithCreds given", ErrInvalidOption)
	}
	if len(c.operators) == 0 {
		return nil, fmt.Errorf("%w: no trusted operator (WithTrustedOperator); there is no default trust", ErrInvalidOption)
	}
	if c.rootCA != "" && c.rootCAPEM != nil {
		return nil, fmt.Errorf("%w: both WithRootCA and WithRootCAPEM given", ErrInvalidOption)
	}
	hasCA := c.rootCA != "" || c.rootCAPEM != nil
	for _, u := range c.urls {
		if !hasCA && !strings.HasPrefix(u, "tls://") && !strings.HasPrefix(u, "wss://") {
			return nil, fmt.Errorf("%w: %s is not a TLS URL and no root CA is set; plaintext is refused", ErrInvalidOption, u)
		}
	}
	return c, nil
}

// WithURL sets the server URLs (at least one). Schemes tls://, nats:// and wss:// are
// accepted; the connection always requires TLS, so a nats:// URL needs WithRootCA or
// WithRootCAPEM (a tls:// URL without a root CA verifies against the system roots).
func WithURL(urls ...string) Option {
	return func(c *config) error {
		if len(urls) == 0 {
			return fmt.Errorf("%w: WithURL needs at least one URL", ErrInvalidOption)
		}
		for _, s := range urls {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				return fmt.Errorf("%w: server URL %q does not parse as scheme://host:port", ErrInvalidOption, s)
			}
			switch u.Scheme {
			case "tls", "nats", "wss":
			default:
				return fmt.Errorf("%w: server URL scheme %q (want tls, nats or wss)", ErrInvalidOption, u.Scheme)
			}
			if u.User != nil {
				return fmt.Errorf("%w: server URL must not carry user information; use creds", ErrInvalidOption)
			}
		}
		c.urls = append(c.urls, urls...)
		return nil
	}
}

// WithCredsFile reads the service's sealbus credentials file (internal format: a standard
// NATS .creds file plus the curve seed block, as written by `sealbus service creds`). The file
// must not be readable by group or others.
func WithCredsFile(path string) Option {
	return func(c *config) error {
		if path == "" {
			return fmt.Errorf("%w: empty creds file path", ErrInvalidOption)
		}
		c.credsPath = path
		return nil
	}
}

// WithCreds takes the contents of a sealbus credentials file. The slice is copied.
func WithCreds(data []byte) Option {
	return func(c *config) error {
		if len(data) == 0 {
			return fmt.Errorf("%w: empty creds", ErrInvalidOption)
		}
		c.credsData = append([]byte(nil), data...)
		return nil
	}
}

// WithPreviousCreds names credentials files of keys this service had before a rotation.
// Only their curve seeds are used, and only while the service's current card lists the
// matching curve key as a previous key whose grace period has not ended: envelopes sealed to
// the old key before publishers saw the rotation still open.
func WithPreviousCreds(paths ...string) Option {
	return func(c *config) error {
		for _, p := range paths {
			if p == "" {
				return fmt.Errorf("%w: empty previous creds path", ErrInvalidOption)
			}
		}
		c.prevPaths = append(c.prevPaths, paths...)
		return nil
	}
}

// WithPreviousCredsData is WithPreviousCreds with the files' contents.
func WithPreviousCredsData(data ...[]byte) Option {
	return func(c *config) error {
		for _, d := range data {
			if len(d) == 0 {
				return fmt.Errorf("%w: empty previous creds", ErrInvalidOption)
			}
			c.prevData = append(c.prevData, append([]byte(nil), d...))
		}
		return nil
	}
}

// WithRootCA names a PEM file of CA certificates that the server's certificate must chain to.
func WithRootCA(path string) Option {
	return func(c *config) error {
		if path == "" {
			return fmt.Errorf("%w: empty root CA path", ErrInvalidOption)
		}
		c.rootCA = path
		return nil
	}
}

// WithRootCAPEM is WithRootCA with the PEM contents.
func WithRootCAPEM(pem []byte) Option {
	return func(c *config) error {
		if len(pem) == 0 {
			return fmt.Errorf("%w: empty root CA PEM", ErrInvalidOption)
		}
		c.rootCAPEM = append([]byte(nil), pem...)
		return nil
	}
}

// WithClientCert presents a client certificate (mutual TLS).
func WithClientCert(certPath, keyPath string) Option {
	return func(c *config) error {
		if certPath == "" || keyPath == "" {
			return fmt.Errorf("%w: client certificate needs both a certificate and a key path", ErrInvalidOption)
		}
		c.certFile, c.keyFile = certPath, keyPath
		return nil
	}
}

// WithTrustedOperator sets the operator public keys ("O...") that the account JWT and every
// card must chain up to. Required: there is no default trust.
func WithTrustedOperator(pubs ...string) Option {
	return func(c *config) error {
		if len(pubs) == 0 {
			return fmt.Errorf("%w: WithTrustedOperator needs at least one key", ErrInvalidOption)
		}
		for _, p := range pubs {
			if !nkeys.IsValidPublicOperatorKey(p) {
				return fmt.Errorf("%w: %q is not an operator public key", ErrInvalidOption, p)
			}
		}
		c.operators = append(c.operators, pubs...)
		return nil
	}
}

// WithLogger sets the logger for connection events, directory changes and rejections. The
// default sends warnings and errors (retries, disconnections, rejected envelopes) to
// slog.Default() as it is when each record is logged, and drops the rest; pass
// slog.New(slog.DiscardHandler) to silence the client. Payloads and secrets are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithName sets the NATS connection name (default "sealbus").
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 128 || strings.ContainsAny(name, "\r\n") {
			return fmt.Errorf("%w: connection name must be 1-128 characters on one line", ErrInvalidOption)
		}
		c.name = name
		return nil
	}
}

// WithPublishRate limits publishes to perSecond on average with bursts of burst messages.
// Publish waits for a token (honouring its context); PublishAsync waits too. Off by default.
func WithPublishRate(perSecond float64, burst int) Option {
	return func(c *config) error {
		if !(perSecond > 0) || burst < 1 {
			return fmt.Errorf("%w: publish rate needs perSecond > 0 and burst >= 1", ErrInvalidOption)
		}
		c.rate, c.burst = perSecond, burst
		return nil
	}
}

// WithMaxPending bounds the publishes sent and not yet acknowledged by JetStream
// (default DefaultMaxPending). PublishAsync blocks while the bound is reached.
func WithMaxPending(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: max pending %d (1 to %d)", ErrInvalidOption, n, 1<<20)
		}
		c.maxPending = n
		return nil
	}
}

// WithBatch configures batch signing: publishes waiting at the same time are sealed together,
// up to maxMessages under one Ed25519 signature. A lone publish is a batch of one and never
// waits. When two or more are already waiting, the batch waits up to maxDelay for more (0, the
// default, never waits). WithBatch(1, 0) signs every message on its own.
func WithBatch(maxMessages int, maxDelay time.Duration) Option {
	return func(c *config) error {
		if maxMessages < 1 || maxMessages > envelope.MaxBatch {
			return fmt.Errorf("%w: batch size %d (1 to %d)", ErrInvalidOption, maxMessages, envelope.MaxBatch)
		}
		if maxDelay < 0 || maxDelay > MaxBatchDelay {
			return fmt.Errorf("%w: batch delay %v (0 to %v)", ErrInvalidOption, maxDelay, MaxBatchDelay)
		}
		c.batchSize, c.batchDelay = maxMessages, maxDelay
		return nil
	}
}

// WithFreshness sets how far an envelope's signed creation time may be from the server's
// stored time (default envelope.DefaultFreshness). It must not exceed the streams' duplicate
// window, or a replay outside the window could pass.
func WithFreshness(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > envelope.MaxFreshness {
			return fmt.Errorf("%w: freshness %v (0 to %v)", ErrInvalidOption, d, envelope.MaxFreshness)
		}
		c.freshness = d
		return nil
	}
}

// WithClock sets the clock used for sealing times, card validity and audit events (tests).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithRand sets the source of randomness for sealing and event ids (tests). The default is
// crypto/rand.
func WithRand(r io.Reader) Option {
	return func(c *config) error {
		if r == nil {
			return fmt.Errorf("%w: nil random source", ErrInvalidOption)
		}
		c.rand = r
		return nil
	}
}

// WithTimeout bounds network calls made with a context that has no deadline (default
// DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithPingInterval sets how often the client pings its server and after how many unanswered
// pings (maxOutstanding) the connection counts as stale and is replaced by a reconnect (default
// DefaultPingInterval and DefaultMaxPingsOutstanding). A client of a server that hangs with
// the connection open detects it after about interval × (maxOutstanding + 1). interval is
// MinPingInterval to MaxPingInterval, maxOutstanding 1 to 100.
func WithPingInterval(interval time.Duration, maxOutstanding int) Option {
	return func(c *config) error {
		if interval < MinPingInterval || interval > MaxPingInterval {
			return fmt.Errorf("%w: ping interval %v (%v to %v)", ErrInvalidOption, interval, MinPingInterval, MaxPingInterval)
		}
		if maxOutstanding < 1 || maxOutstanding > 100 {
			return fmt.Errorf("%w: max pings outstanding %d (1 to 100)", ErrInvalidOption, maxOutstanding)
		}
		c.pingEvery, c.maxPings = interval, maxOutstanding
		return nil
	}
}

// defaultLogHandler passes records of level Warn and above to slog.Default()'s handler, looked
// up at each record, so a program that sets its default logger after Connect still gets them.
// WithAttrs and WithGroup are recorded and replayed in order on that handler.
type defaultLogHandler struct {
	ops []logOp
}

type logOp struct {
	attrs []slog.Attr
	group string
}

func (h defaultLogHandler) target() slog.Handler {
	t := slog.Default().Handler()
	for _, op := range h.ops {
		if op.group != "" {
			t = t.WithGroup(op.group)
		} else {
			t = t.WithAttrs(op.attrs)
		}
	}
	return t
}

func (h defaultLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && slog.Default().Handler().Enabled(ctx, l)
}

func (h defaultLogHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.target().Handle(ctx, r)
}

func (h defaultLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return defaultLogHandler{ops: append(slices.Clone(h.ops), logOp{attrs: as})}
}

func (h defaultLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return defaultLogHandler{ops: append(slices.Clone(h.ops), logOp{group: name})}
}

// WithDirectoryPoll sets how often the client asks its directory view for changes (default
// DefaultDirectoryPoll, MinDirectoryPoll to MaxDirectoryPoll). A revocation or a new card
// reaches the client within about this interval.
func WithDirectoryPoll(interval time.Duration) Option {
	return func(c *config) error {
		if interval < MinDirectoryPoll || interval > MaxDirectoryPoll {
			return fmt.Errorf("%w: directory poll %v (%v to %v)", ErrInvalidOption, interval, MinDirectoryPoll, MaxDirectoryPoll)
		}
		c.dirPoll = interval
		return nil
	}
}
