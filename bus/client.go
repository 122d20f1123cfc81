package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// Client is a connection of one service to the bus: its NATS connection (TLS, creds, private
// inbox), its verified directory, its sealer and opener. Safe for concurrent use.
type Client struct {
	cfg      *config
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	pa       *pubAcks // sends envelopes and collects their acks
	dir      *Directory
	id       *envelope.Identity
	prevIDs  []*envelope.Identity
	sealer   *envelope.Sealer
	opener   *envelope.Opener
	account  string
	name     string
	userKey  string
	limiter  *rate.Limiter
	counters *clientseam.Counters
	denied   clientseam.Violations // the server's permission errors, for consumers' lookups
	ctx      context.Context       // cancelled by Close
	cancel   context.CancelFunc

	slots   chan struct{}  // one per in-flight publish (WithMaxPending)
	sendMu  sync.RWMutex   // guards closing of queue
	closing bool           // no new publishes
	queue   chan *future   // to the batcher
	ackQ    chan *future   // to the acker
	pipes   sync.WaitGroup // batcher and acker
	audits  chan Event     // to the audit writer
	auditWG sync.WaitGroup
	ev      evidence // the writer of signed records: token, overflow reports
	prevMu  sync.Mutex
	prevKey string
	prevOp  *envelope.Opener
	once    sync.Once

	seedMu   sync.Mutex
	natsSeed []byte // user seed for the login nonce (reconnects); wiped at close
}

// Connect connects a service to the bus and returns when its directory is loaded and its own
// card verified.
//
// It reads the service's creds (WithCredsFile or WithCreds; the curve seed is required),
// connects over TLS only (WithURL; WithRootCA / WithRootCAPEM, WithClientCert for mutual TLS)
// with the private inbox prefix of the service, reconnecting forever with backoff and pinging
// the server every DefaultPingInterval so that a hung server is left within seconds
// (WithPingInterval), then reads the account's directory view (SEALBUS_DIRECTORY, a read-only
// mirror of the account's part of the operator account's directory) and follows it
// (WithDirectoryPoll), verifying every entry up to the trusted operators
// (WithTrustedOperator, required). It fails with ErrInvalidOption for bad options,
// ErrNoDirectory when the directory cannot be read or holds no valid account JWT, and ErrNoCard
// when the service's own card is missing, invalid or names other keys than the creds.
func Connect(ctx context.Context, opts ...Option) (*Client, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	creds, err := readCreds(cfg.credsPath, cfg.credsData)
	if err != nil {
		return nil, err
	}
	defer clear(creds.UserSeed)
	defer clear(creds.CurveSeed)
	if creds.CurveSeed == nil {
		return nil, fmt.Errorf("%w: creds have no curve seed block; a service needs it to open envelopes", ErrInvalidOption)
	}
	uc, err := jwt.DecodeUserClaims(creds.UserJWT)
	if err != nil {
		return nil, fmt.Errorf("%w: user JWT does not decode", ErrInvalidOption)
	}
	account := uc.IssuerAccount
	if account == "" {
		account = uc.Issuer
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	id, err := envelope.NewIdentity(creds.UserSeed, creds.CurveSeed)
	if err != nil {
		return nil, fmt.Errorf("%w: creds keys: %v", ErrInvalidOption, err)
	}
	prev, err := previousIdentities(cfg)
	if err != nil {
		id.Wipe()
		return nil, err
	}

	c := &Client{
		cfg:      cfg,
		log:      cfg.logger,
		id:       id,
		prevIDs:  prev,
		account:  account,
		name:     uc.Name,
		userKey:  uc.Subject,
		counters: new(clientseam.Counters),
		slots:    make(chan struct{}, cfg.maxPending),
		queue:    make(chan *future, cfg.maxPending),
		ackQ:     make(chan *future, cfg.maxPending),
		audits:   make(chan Event, 1024),
	}
	if c.name == "" {
		c.name = c.userKey
	}
	tok, ok := accounts.EvidenceTokenOf(uc.Pub.Allow, uc.Name)
	if !ok {
		id.Wipe()
		for _, p := range prev {
			p.Wipe()
		}
		return nil, fmt.Errorf("%w: the user JWT of %s grants no evidence subjects (services created before per-writer audit subjects must be created again)", ErrInvalidOption, c.name)
	}
	c.ev.token = tok
	if cfg.rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.rate), cfg.burst)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.natsSeed = slices.Clone(creds.UserSeed)

	if err := ctx.Err(); err != nil {
		c.wipe()
		return nil, err
	}
	c.nc, err = nats.Connect(strings.Join(cfg.urls, ","), c.natsOptions(creds, tlsCfg)...)
	if err != nil {
		c.wipe()
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	c.js, err = jetstream.New(c.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.maxPending+1),
		jetstream.WithPublishAsyncTimeout(cfg.timeout),
		jetstream.WithDefaultTimeout(cfg.timeout))
	if err != nil {
		c.abort()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if c.pa, err = newPubAcks(c.nc); err != nil {
		c.abort()
		return nil, fmt.Errorf("bus: publish acks: %w", err)
	}

	trust := accounts.Trust{Operators: cfg.operators, Now: cfg.now}
	c.dir = newDirectory(account, trust, cfg.now, c.log, c.report)
	card, err := c.loadDirectory(ctx)
	if err != nil {
		c.abort()
		return nil, err
	}
	if card == nil {
		c.abort()
		return nil, fmt.Errorf("%w: no valid card for %s (%s) in the directory", ErrNoCard, c.name, c.userKey)
	}
	if card.CurveKey != id.EncryptionKey() {
		c.abort()
		return nil, fmt.Errorf("%w: card of %s names curve key %s, creds hold %s", ErrNoCard, card.Name, card.CurveKey, id.EncryptionKey())
	}
	if card.Name != uc.Name {
		c.abort()
		return nil, fmt.Errorf("%w: card names %q, user JWT %q", ErrNoCard, card.Name, uc.Name)
	}
	c.name = card.Name
	// Events reported while the directory loaded wait in c.audits; the writer starts once the
	// source name is final (a Connect that fails drops them: other clients report the same
	// entries).
	c.auditWG.Add(1)
	go c.auditWriter()

	var sopts []envelope.Option
	oopts := []envelope.Option{envelope.WithClock(cfg.now), envelope.WithFreshness(cfg.freshness)}
	sopts = append(sopts, envelope.WithClock(cfg.now))
	if cfg.rand != nil {
		sopts = append(sopts, envelope.WithRand(cfg.rand))
	}
	if c.sealer, err = envelope.NewSealer(id, sopts...); err != nil {
		c.abort()
		return nil, fmt.Errorf("bus: sealer: %w", err)
	}
	if c.opener, err = envelope.NewOpener([]*envelope.Identity{id}, c.dir, oopts...); err != nil {
		c.abort()
		return nil, fmt.Errorf("bus: opener: %w", err)
	}
	c.pipes.Add(2)
	go func() {
		defer c.pipes.Done()
		batches(c.queue, cfg.batchSize, cfg.batchDelay, c.sealAndSend)
		close(c.ackQ)
	}()
	go c.acker()
	c.log.Info("sealbus: connected", "service", c.name, "account", account, "url", c.nc.ConnectedUrlRedacted())
	return c, nil
}

func readCreds(path string, data []byte) (accounts.Creds, error) {
	var (
		c   accounts.Creds
		err error
	)
	if path != "" {
		c, err = accounts.ReadCredsFile(path)
	} else {
		c, err = accounts.ParseCreds(data)
	}
	if err != nil {
		return c, fmt.Errorf("%w: creds: %w", ErrInvalidOption, err)
	}
	return c, nil
}

func previousIdentities(cfg *config) (_ []*envelope.Identity, err error) {
	var out []*envelope.Identity
	defer func() {
		if err != nil { // the keys made before the failing one are wiped, not left to the GC
			for _, id := range out {
				id.Wipe()
			}
		}
	}()
	add := func(c accounts.Creds) error {
		defer clear(c.UserSeed)
		defer clear(c.CurveSeed)
		if c.CurveSeed == nil {
			return fmt.Errorf("%w: previous creds have no curve seed block", ErrInvalidOption)
		}
		id, err := envelope.NewIdentity(c.UserSeed, c.CurveSeed)
		if err != nil {
			return fmt.Errorf("%w: previous creds keys: %v", ErrInvalidOption, err)
		}
		out = append(out, id)
		return nil
	}
	for _, p := range cfg.prevPaths {
		c, err := readCreds(p, nil)
		if err == nil {
			err = add(c)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, d := range cfg.prevData {
		c, err := readCreds("", d)
		if err == nil {
			err = add(c)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func tlsConfig(cfg *config) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	pem := cfg.rootCAPEM
	if cfg.rootCA != "" {
		b, err := os.ReadFile(cfg.rootCA)
		if err != nil {
			return nil, fmt.Errorf("%w: root CA: %v", ErrInvalidOption, err)
		}
		pem = b
	}
	if pem != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: root CA holds no PEM certificate", ErrInvalidOption)
		}
		t.RootCAs = pool
	}
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrInvalidOption, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// maxServerNonce is the longest login nonce accepted from a server. nats-server sends 11
// random bytes in unpadded base64url (15 characters); the bound leaves room for other server
// versions and stays far below anything that could be a sealbus signed statement.
const maxServerNonce = 64

// validServerNonce reports whether nonce has the shape of a NATS server login nonce: 1 to
// maxServerNonce characters of the base64 or base64url alphabet ([A-Za-z0-9_+/=-]).
func validServerNonce(nonce []byte) bool {
	if len(nonce) == 0 || len(nonce) > maxServerNonce {
		return false
	}
	for _, b := range nonce {
		switch {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9':
		case b == '_' || b == '-' || b == '+' || b == '/' || b == '=':
		default:
			return false
		}
	}
	return true
}

// signNonce signs the server's login nonce with the service's user key, as
// nats.UserJWTAndSeed does, after checking that it has the shape of a real server nonce: the
// user key also signs envelopes, so a server (or a man in the middle before TLS) must not be
// able to get it to sign chosen bytes. A refused nonce fails the connection attempt with
// ErrServerNonce and is logged.
func (c *Client) signNonce(nonce []byte) ([]byte, error) {
	if !validServerNonce(nonce) {
		c.log.Error("sealbus: refusing to sign a login nonce that is not a NATS server nonce; not connecting", "length", len(nonce))
		return nil, fmt.Errorf("%w: %d bytes, want 1 to %d characters of base64", ErrServerNonce, len(nonce), maxServerNonce)
	}
	c.seedMu.Lock()
	defer c.seedMu.Unlock()
	if c.natsSeed == nil {
		return nil, fmt.Errorf("%w: user key wiped", ErrClosed)
	}
	kp, err := nkeys.FromSeed(c.natsSeed)
	if err != nil {
		return nil, fmt.Errorf("bus: user seed: %w", err)
	}
	defer kp.Wipe()
	return kp.Sign(nonce)
}

func (c *Client) natsOptions(creds accounts.Creds, tlsCfg *tls.Config) []nats.Option {
	log := c.log
	return []nats.Option{
		nats.Name(c.cfg.name),
		nats.UserJWT(func() (string, error) { return creds.UserJWT, nil }, c.signNonce),
		nats.Secure(tlsCfg),
		nats.CustomInboxPrefix(accounts.InboxPrefix(c.userKey)),
		nats.Timeout(c.cfg.timeout),
		nats.MaxReconnects(-1),
		// Nothing is buffered while reconnecting: a publish made then fails at once and the
		// acker sends it when the connection is back, so no envelope reaches the server later
		// than the client knows (a buffered one could be stored after its freshness window).
		nats.ReconnectBufSize(-1),
		nats.PingInterval(c.cfg.pingEvery),
		nats.MaxPingsOutstanding(c.cfg.maxPings),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := 100 * time.Millisecond << min(attempts, 6) // 100ms doubling up to 6.4s
			return d
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("sealbus: disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("sealbus: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Debug("sealbus: connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("sealbus: asynchronous error", "subject", subj, "error", err)
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.denied.Report(err)
			}
		}),
	}
}

// ownCardWait bounds how long Connect reads the directory again for the client's own card
// when the first read lacks it: a replica of the view may answer a moment behind the operator's
// last write (a service connecting right after it was provisioned).
const ownCardWait = 2 * time.Second

// loadDirectory reads the account's directory view in full, then follows it (every
// WithDirectoryPoll interval) until the client closes. It returns the client's own card, or
// nil when the directory holds none for its key.
func (c *Client) loadDirectory(ctx context.Context) (*accounts.Card, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	r := newViewReader(c.nc, c.account)
	if err := c.dir.sync(ctx, r); err != nil {
		return nil, err
	}
	if c.dir.AccountClaims() == nil {
		return nil, fmt.Errorf("%w: no account JWT that verifies up to a trusted operator", ErrNoDirectory)
	}
	card, ok := c.dir.CardByKey(c.userKey)
	for wait := time.Now().Add(ownCardWait); !ok && time.Now().Before(wait) && ctx.Err() == nil; card, ok = c.dir.CardByKey(c.userKey) {
		time.Sleep(50 * time.Millisecond)
		if err := c.dir.sync(ctx, r); err != nil {
			break
		}
	}
	go c.dir.follow(c.ctx, r, c.cfg.dirPoll, c.cfg.timeout)
	if !ok {
		return nil, nil
	}
	return &card, nil
}

// withTimeout applies the client's default timeout when ctx has no deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.timeout)
}

// Directory returns the client's verified view of the account directory.
func (c *Client) Directory() *Directory { return c.dir }

// ConnectionInfo is a snapshot of a client's NATS connection, for logs, health checks and
// tests. It gives no access to the connection itself: every message a client sends is sealed.
type ConnectionInfo struct {
	Connected  bool   // connected now (not reconnecting, not closed)
	Closed     bool   // closed for good (Close, Drain)
	ServerName string // name of the server connected to, "" when not connected
	URL        string // its URL, credentials redacted
	Reconnects uint64 // reconnections since Connect
	InMsgs     uint64 // messages received (deliveries, acks, API replies)
	OutMsgs    uint64 // messages sent (envelopes, acks, API requests)
	InBytes    uint64
	OutBytes   uint64
}

// Connection returns a snapshot of the client's connection.
func (c *Client) Connection() ConnectionInfo {
	st := c.nc.Stats()
	info := ConnectionInfo{
		Connected: c.nc.IsConnected(), Closed: c.nc.IsClosed(), Reconnects: st.Reconnects,
		InMsgs: st.InMsgs, OutMsgs: st.OutMsgs, InBytes: st.InBytes, OutBytes: st.OutBytes,
	}
	if info.Connected {
		info.ServerName, info.URL = c.nc.ConnectedServerName(), c.nc.ConnectedUrlRedacted()
	}
	return info
}

func init() {
	clientseam.SetResolver(func(client any) *clientseam.Link {
		c, ok := client.(*Client)
		if !ok || c == nil {
			return nil
		}
		return &clientseam.Link{Conn: c.nc, JS: c.js, Counters: c.counters, Violations: &c.denied, WriteDeadLetter: c.writeDeadLetter}
	})
}

// Account returns the account public key ("A...") of the service.
func (c *Client) Account() string { return c.account }

// Name returns the service name from its card.
func (c *Client) Name() string { return c.name }

// UserKey returns the service's user public key ("U...").
func (c *Client) UserKey() string { return c.userKey }

// Card returns the service's own current card. ok is false once it is revoked or expired.
func (c *Client) Card() (card accounts.Card, ok bool) { return c.dir.CardByKey(c.userKey) }

// Freshness returns the freshness window envelopes are checked against.
func (c *Client) Freshness() time.Duration { return c.cfg.freshness }

// Logger returns the client's logger.
func (c *Client) Logger() *slog.Logger { return c.log }

// Now returns the client's clock reading.
func (c *Client) Now() time.Time { return c.cfg.now() }

// Open verifies and decrypts an envelope delivered in this account, with the checks in the
// order of docs/ARCHITECTURE.md ("Receiving") and the directory as sender policy. It tries the current identity first; an envelope addressed only
// to a previous curve key (WithPreviousCreds) opens while the service's card lists that key
// with a grace period that has not ended. Errors are *envelope.RejectError.
func (c *Client) Open(data []byte, d envelope.Delivery) (*envelope.Opened, error) {
	op := new(envelope.Opened)
	if err := c.OpenInto(op, data, d); err != nil {
		return nil, err
	}
	return op, nil
}

// OpenInto is Open writing the opened envelope to dst, which is written only when it returns
// nil (envelope.Opener.OpenInto).
func (c *Client) OpenInto(dst *envelope.Opened, data []byte, d envelope.Delivery) error {
	err := c.openInto(dst, data, d)
	if err == nil {
		c.counters.Opened.Add(1)
	}
	return err
}

func (c *Client) openInto(dst *envelope.Opened, data []byte, d envelope.Delivery) error {
	err := c.opener.OpenInto(dst, data, d)
	if err == nil || len(c.prevIDs) == 0 {
		return err
	}
	if r, _ := envelope.ReasonOf(err); r != envelope.ReasonNotRecipient {
		return err
	}
	prev := c.previousOpener()
	if prev == nil {
		return err
	}
	return prev.OpenInto(dst, data, d)
}

// previousOpener returns an opener over the previous identities whose grace period (on the
// service's current card) has not ended, or nil if there are none.
func (c *Client) previousOpener() *envelope.Opener {
	card, ok := c.dir.CardByKey(c.userKey)
	if !ok {
		return nil
	}
	now := c.cfg.now()
	var ids []*envelope.Identity
	var key strings.Builder
	for _, id := range c.prevIDs {
		if id.EncryptionKey() != card.CurveKey && card.CurveKeyAt(id.EncryptionKey(), now) {
			ids = append(ids, id)
			key.WriteString(id.EncryptionKey())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	c.prevMu.Lock()
	defer c.prevMu.Unlock()
	if c.prevOp != nil && c.prevKey == key.String() {
		return c.prevOp
	}
	op, err := envelope.NewOpener(ids, c.dir, envelope.WithClock(c.cfg.now), envelope.WithFreshness(c.cfg.freshness))
	if err != nil {
		c.log.Warn("sealbus: previous keys unusable", "error", err)
		return nil
	}
	c.prevOp, c.prevKey = op, key.String()
	return op
}

// waitUp waits until the connection is up; false when ctx ends or the connection is closed.
func (c *Client) waitUp(ctx context.Context) bool {
	t := time.NewTicker(connectedPoll)
	defer t.Stop()
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() {
			return false
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// report queues an audit event without blocking (directory and consumers use it).
func (c *Client) report(e Event) {
	if e.Type == EventDirectoryUnverifiable {
		c.counters.Ignore(e.Data.Reason)
	}
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.closing {
		return
	}
	select {
	case c.audits <- e:
	default:
		c.counters.AuditFailed.Add(1)
		c.log.Warn("sealbus: audit queue full; event dropped", "type", e.Type)
	}
}

func (c *Client) auditWriter() {
	defer c.auditWG.Done()
	for e := range c.audits {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
		if err := c.Audit(ctx, e); err != nil {
			c.log.Warn("sealbus: audit event not written", "type", e.Type, "error", err)
		}
		cancel()
	}
}

// Metrics is a snapshot of the client's counters (and those of the consumers running on it).
type Metrics struct {
	Published      uint64            // envelopes acknowledged by JetStream
	PublishFailed  uint64            // publishes that failed after the checks passed
	Resent         uint64            // envelopes sent again (same id) after a failed or unanswered attempt, e.g. across a reconnect
	Signatures     uint64            // batch signatures made (Published/Signatures is the mean batch size)
	Delivered      uint64            // handler calls that returned nil (each message once per consumer process); then acknowledged
	Deduplicated   uint64            // redeliveries of messages already handled (their ack was lost), acknowledged again without a handler call
	AckUnconfirmed uint64            // acks the server did not confirm after every attempt; a redelivery of such a message is deduplicated
	HandlerFailed  uint64            // handler calls that returned an error
	Retried        uint64            // deliveries scheduled for a retry with backoff
	Rejected       map[string]uint64 // rejected envelopes by reason code
	DeadLettered   map[string]uint64 // dead letters by reason code
	DLQFailed      uint64            // dead letters that could not be written (left for redelivery)
	DLQRefused     uint64            // dead letters the server refused because this service's quota is full (terminated; reported on the overflow subject)
	AuditWritten   uint64            // audit events written
	AuditFailed    uint64            // audit events lost
	// EvidenceRefused counts records (audit events, dead letters) the server refused because
	// this service's evidence subject is full; OverflowWritten the overflow records reporting
	// them, OverflowFailed those that could not be written either.
	EvidenceRefused uint64
	OverflowWritten uint64
	OverflowFailed  uint64
	// ReplaysSkipped counts operator replays of dead letters authorized for another durable
	// of the stream: acknowledged without calling the handler.
	ReplaysSkipped uint64
	Unverifiable   uint64 // directory entries ignored: markers, values that do not verify, rollbacks
	// UnverifiableByReason splits Unverifiable by reason (DirectoryUnsignedDelete, ...).
	UnverifiableByReason map[string]uint64

	Opened       uint64 // envelopes verified and decrypted by Open (consumptions open every envelope they receive)
	Received     uint64 // deliveries pulled by the consumptions of this client, redeliveries included
	AckConfirmed uint64 // acks the server confirmed
	// GuardUnavailable counts deliveries left unhandled (returned for a later redelivery)
	// because the replay guard's store could not be written or read: a server fault, or the
	// durable's store is full (sized with `sealbus stream guard-size` or operator.SetGuardSize).
	GuardUnavailable uint64
	// BatchSizes is the distribution of envelopes per batch signature.
	BatchSizes Histogram
	// HandlerDuration is the distribution of the time, in seconds, the application's handlers
	// took per call (successful or not).
	HandlerDuration Histogram
	// DirectoryCards is the number of valid cards of the service's own account in its
	// directory view now (peer accounts' cards are not counted).
	DirectoryCards int
	// DirectoryUpdates counts the directory changes applied since Connect: verified account
	// JWTs and cards that changed what the client uses (ignored entries are in Unverifiable).
	DirectoryUpdates uint64
	// EpochAge is how long the sealer's current epoch key has been live, by the client's
	// clock; 0 when there is none (nothing sealed yet, or the last epoch ended).
	EpochAge time.Duration
}

// Metrics returns a snapshot of the counters.
func (c *Client) Metrics() Metrics {
	k := c.counters.Snapshot()
	m := Metrics{
		Published: k.Published, PublishFailed: k.PublishFailed, Resent: k.Resent, Signatures: k.Batches,
		Delivered: k.Delivered, Deduplicated: k.Deduplicated, AckUnconfirmed: k.AckUnconfirmed,
		HandlerFailed: k.HandlerFailed, Retried: k.Retried,
		Rejected: k.Rejected, DeadLettered: k.DeadLettered, DLQFailed: k.DLQFailed, DLQRefused: k.DLQRefused,
		EvidenceRefused: k.EvidenceRefused, OverflowWritten: k.OverflowWritten, OverflowFailed: k.OverflowFailed,
		ReplaysSkipped: k.ReplaysSkipped,
		AuditWritten:   k.AuditWritten, AuditFailed: k.AuditFailed, Unverifiable: k.Unverifiable,
		UnverifiableByReason: k.Ignored,
		Opened:               k.Opened, Received: k.Received, AckConfirmed: k.AckConfirmed, GuardUnavailable: k.GuardUnavailable,
		BatchSizes: histogramOf(k.BatchSizes), HandlerDuration: histogramOf(k.HandlerDuration),
		DirectoryCards: len(c.dir.Cards()),
	}
	c.dir.mu.RLock()
	m.DirectoryUpdates = c.dir.gen
	c.dir.mu.RUnlock()
	if start, ok := c.sealer.EpochStart(); ok {
		m.EpochAge = max(0, c.cfg.now().Sub(start))
	}
	return m
}

// Drain stops accepting publishes, waits until every pending publish is acknowledged or has
// failed and queued audit events are written, then drains the NATS connection (subscriptions
// finish their buffered messages) and closes it. While the server is unreachable, pending
// publishes wait for it at most until their envelopes are too old to send
// (ErrPublishExpired); Close does not wait.
func (c *Client) Drain() error {
	var err error
	c.once.Do(func() {
		c.stopIntake()
		c.pipes.Wait()
		c.auditWG.Wait()
		c.flushOverflow()
		c.cancel()
		closed := make(chan struct{})
		c.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err = c.nc.Drain(); err == nil {
			<-closed
		}
		c.finish()
	})
	return err
}

// Close closes the client at once: pending publishes fail with ErrClosed (they may or may not
// have been stored), the directory polling stops and the connection closes.
func (c *Client) Close() {
	c.once.Do(func() {
		c.stopIntake()
		c.nc.Close() // before cancel: the acker sees a closed connection and fails what is pending
		c.cancel()
		c.pipes.Wait()
		c.auditWG.Wait()
		c.finish()
	})
}

func (c *Client) stopIntake() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if !c.closing {
		c.closing = true
		close(c.queue)
		close(c.audits)
	}
}

func (c *Client) finish() {
	c.stopOverflow()
	if c.pa != nil {
		c.pa.close()
	}
	c.wipe()
}

func (c *Client) wipe() {
	if c.sealer != nil {
		c.sealer.Close() // discards the epoch key and its cached wrap keys now
	}
	c.seedMu.Lock()
	clear(c.natsSeed)
	c.natsSeed = nil
	c.seedMu.Unlock()
	c.id.Wipe()
	for _, p := range c.prevIDs {
		p.Wipe()
	}
}

// abort tears down a half-made client inside Connect.
func (c *Client) abort() {
	c.cancel()
	c.sendMu.Lock()
	if !c.closing {
		c.closing = true
		close(c.audits)
	}
	c.sendMu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
	if c.pa != nil {
		c.pa.close()
	}
	c.auditWG.Wait()
	c.wipe()
}
