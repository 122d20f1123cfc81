package consumers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/clientseam"
)

// DefaultReplayCapacity is the default number of message ids a consumption remembers in memory
// (about 125 bytes each: 64 MiB when full), in front of the durable's guard store: they spare
// the store a read for redeliveries this process has handled and let concurrent deliveries of
// one id in this process wait for each other.
const DefaultReplayCapacity = 1 << 19

// DefaultClaimLease is how long the processes sharing a durable consider one of them alive
// after its last heartbeat in the guard store (WithClaimLease).
const DefaultClaimLease = 30 * time.Second

// The replay guard makes one handler call succeed per message id across every process that
// consumes the durable and across their restarts, and refuses replays (the same envelope
// stored again at another stream position). It runs after verification: only verified
// envelopes reach it, so a forged envelope can neither block a genuine id nor borrow it.
//
// It keeps its state in the durable's guard store (guardstore.go), one entry per delivery key
// (by default the envelope's message id), written with compare-and-set:
//
//   - claimed (owner O, sequence P): O's handler is running. A process claims a key before
//     calling the handler; the claim exists only if no entry does.
//   - handled: a handler call returned nil and the server did not confirm the message's ack
//     at its first attempt. The owner writes it before sending the ack again, so a redelivery
//     that reaches any process (the ack was lost) is acknowledged without a handler call. A
//     confirmed ack needs no record: the server has applied it (replicated, on a clustered
//     consumer), so the message is not delivered again; the claim stays until it expires.
//   - released: the handler call failed; the retry, wherever it is delivered, claims it again.
//
// A verified delivery of key K at stream sequence P:
//
//   - K has no entry: claim it, call the handler.
//   - K's entry names another sequence P': a replay. Refused with reason replay (and
//     dead-lettered), whether or not K was handled.
//   - K handled at P: a redelivery of a handled message; no handler call (the caller
//     acknowledges it, counted in bus.Metrics.Deduplicated).
//   - K released at P: a retry: claim it again, call the handler.
//   - K claimed at P by a live process (its heartbeat in the store is younger than the claim
//     lease): wait for that process's outcome, telling the server the delivery is in progress;
//     after one claim lease without an outcome, return the delivery to the server (a nak):
//     the owner may be handling it still, or it handled it and the server lost its confirmed
//     ack, and only the owner knows (in memory). The redelivery may reach the owner, which
//     acknowledges it without a handler call. On the durable's last delivery, wait three
//     leases, then dead-letter it (max_deliveries, saying that the owner may have handled it).
//   - K claimed at P by a process that stopped or whose heartbeat expired (it crashed between
//     claiming and recording the outcome): take the claim over and call the handler. This is
//     one case where a handler may run twice for one message (if the crashed process's call
//     had finished and its ack had not been applied); the message is never lost. The other:
//     a server that loses an ack it had confirmed (a single server's crash before it wrote
//     its consumer state) for a message whose owner then stopped, or forgot the id (more than
//     its capacity of ids handled since).
//
// Entries live from their write for entryTTL: until no copy of the envelope can be stored any
// more (signed creation time plus freshness window), plus one window and the AckWait. A
// consumption also remembers ids in memory (at most capacity, oldest first) so that its own
// redeliveries and concurrent deliveries need no store round trip.
//
// When the store cannot be read or written (a server fault, or the store is full), the guard
// retries for a while, then returns an error wrapping ErrGuardUnavailable: the delivery is
// negatively acknowledged and comes back later; it is never handled without a claim.
type guard struct {
	store   guardStore
	hmacKey []byte
	owner   ownerID
	ownBeat string        // the store key of owner's heartbeat
	window  time.Duration // freshness window
	ackWait time.Duration // the longest a redelivery waits (the durable's AckWait or BackOff)
	lease   time.Duration // claim lease (heartbeat TTL)
	// progressEvery is how often a waiting delivery tells the server it is in progress.
	progressEvery time.Duration
	storeWait     time.Duration // how long store errors are retried before giving up a delivery
	log           *slog.Logger
	local         *replaySet
	macs          sync.Pool // *keyHasher of hmacKey (keyOf)

	writes   sync.WaitGroup // releases written in the background
	beating  sync.WaitGroup // the heartbeat loop
	stopBeat chan struct{}
	stopOnce sync.Once
}

// guardConfig configures a guard.
type guardConfig struct {
	store     guardStore
	hmacKey   []byte
	window    time.Duration
	ackWait   time.Duration // the longest a redelivery waits
	minWait   time.Duration // the shortest (the durable's AckWait, its first BackOff)
	lease     time.Duration
	storeWait time.Duration
	capacity  int
	log       *slog.Logger
}

func newGuard(c guardConfig) (*guard, error) {
	g := &guard{
		store: c.store, hmacKey: c.hmacKey, window: c.window, ackWait: c.ackWait, lease: c.lease,
		storeWait: c.storeWait, log: c.log, local: newReplaySet(c.window, c.capacity), stopBeat: make(chan struct{}),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.lease <= 0 {
		g.lease = DefaultClaimLease
	}
	if g.storeWait <= 0 {
		g.storeWait = defaultStoreWait
	}
	if g.ackWait <= 0 {
		g.ackWait = 30 * time.Second
	}
	g.progressEvery = max(min(c.minWait, g.ackWait)/3, 20*time.Millisecond)
	if c.minWait <= 0 {
		g.progressEvery = g.ackWait / 3
	}
	if _, err := rand.Read(g.owner[:]); err != nil {
		return nil, fmt.Errorf("consumers: owner id: %w", err)
	}
	g.ownBeat = beatKey(g.store.keyPrefix(), g.owner)
	return g, nil
}

// startGuard builds the replay guard of a consumption of durable on stream from the durable's
// configuration (guard key and horizon in its metadata, set by the operator) and starts its
// heartbeat. A durable without a guard, or whose store keeps ids for less than this client's
// freshness window needs, is ErrNoConsumer; a store that cannot be written is
// ErrGuardUnavailable.
func startGuard(ctx context.Context, c *bus.Client, link *clientseam.Link, stream, durable string, cc jetstream.ConsumerConfig, cfg *config) (*guard, error) {
	key, err := base64.StdEncoding.DecodeString(cc.Metadata[accounts.GuardKeyMetadata])
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("%w: %s on %s has no replay guard (the operator creates it with the durable: operator.AddConsumer)", ErrNoConsumer, durable, stream)
	}
	redelivery := cc.AckWait // the longest a redelivery waits
	for _, b := range cc.BackOff {
		redelivery = max(redelivery, b)
	}
	horizon, err := time.ParseDuration(cc.Metadata[accounts.GuardHorizonMetadata])
	if need := GuardHorizon(c.Freshness(), redelivery); err != nil || horizon < need {
		return nil, fmt.Errorf("%w: the replay guard of %s on %s keeps ids for %q, and freshness %v with redeliveries after %v needs %v (the stream's duplicate window must cover the freshness window; the operator updates the durable)",
			ErrNoConsumer, durable, stream, cc.Metadata[accounts.GuardHorizonMetadata], c.Freshness(), redelivery, need)
	}
	store, err := newJSGuardStore(link.Conn, stream, durable, cfg.ackTimeout, max(4096, 2*cfg.maxInFlight))
	if err != nil {
		return nil, err
	}
	g, err := newGuard(guardConfig{
		store: store, hmacKey: key, window: c.Freshness(), ackWait: redelivery, minWait: cc.AckWait, lease: cfg.lease,
		capacity: cfg.replayCap, log: c.Logger().With("stream", stream, "consumer", durable),
	})
	if err != nil {
		store.close()
		return nil, err
	}
	if err := g.start(ctx); err != nil {
		store.close()
		return nil, fmt.Errorf("%s on %s: %w", durable, stream, err)
	}
	return g, nil
}

// beatEvery is how often a consumption refreshes its heartbeat: six times per lease.
func (g *guard) beatEvery() time.Duration { return max(g.lease/6, 200*time.Millisecond) }

// start writes the consumption's first heartbeat (it must succeed: claims made without one
// would be taken over at once) and keeps refreshing it until stop.
func (g *guard) start(ctx context.Context) error {
	if err := g.store.beat(ctx, g.ownBeat, encodeBeat(beatAlive, g.owner), g.lease); err != nil {
		return fmt.Errorf("%w: heartbeat: %w", ErrGuardUnavailable, err)
	}
	g.beating.Go(func() {
		tk := time.NewTicker(g.beatEvery())
		defer tk.Stop()
		for {
			select {
			case <-g.stopBeat:
				return
			case <-tk.C:
				ctx, cancel := context.WithTimeout(context.Background(), g.beatEvery())
				if err := g.store.beat(ctx, g.ownBeat, encodeBeat(beatAlive, g.owner), g.lease); err != nil {
					msg := "sealbus: replay guard heartbeat not written"
					if errors.Is(err, nats.ErrReconnectBufExceeded) {
						msg += ": not connected (reconnecting)" // a client buffers nothing then
					}
					g.log.Warn(msg, "error", err)
				}
				cancel()
			}
		}
	})
	return nil
}

// stop waits for the background writes, then records that this consumption has stopped, so
// that another process takes over at once a claim it left (none, unless an outcome could not
// be written).
func (g *guard) stop() {
	g.writes.Wait()
	g.stopOnce.Do(func() { close(g.stopBeat) })
	g.beating.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := g.store.beat(ctx, g.ownBeat, encodeBeat(beatStopped, g.owner), time.Second); err != nil {
		g.log.Debug("sealbus: replay guard: final heartbeat not written", "error", err)
	}
	if c, ok := g.store.(interface{ close() }); ok {
		c.close()
	}
}

// keyOf returns the delivery key of a verified message.
func (g *guard) keyOf(m *Message) (deliveryKey, msgKey, string) {
	k := deliveryKey{kind: kindMessage, name: m.ID}
	switch {
	case m.guardKey != nil:
		k = *m.guardKey
	case m.Replay != nil:
		// An operator-authorized replay of a dead letter is let through once per
		// authorization: its original delivery does not make it look like a copy, and a
		// second delivery of the same authorization is a replay.
		k = deliveryKey{kind: kindAuthorization, name: m.Replay.ID}
	}
	if k.ttl <= 0 {
		k.ttl = entryTTL(m.guardTime(), m.Stored, g.window, g.ackWait)
	}
	kh, _ := g.macs.Get().(*keyHasher)
	if kh == nil {
		kh = newKeyHasher(g.hmacKey)
	}
	h, sk := kh.keyWith(k, g.store.keyPrefix())
	g.macs.Put(kh)
	return k, h, sk
}

// storedUnderOwnID refuses, as a replay, an envelope stored under another Nats-Msg-Id than its
// own message id. Publishers store every envelope under its id (and resend it under the same
// id), so any such copy was republished by someone else. This holds however long the copy
// waits in the stream, where the store's entries expire: a copy under the envelope's own id is
// dropped by JetStream within the stream's duplicate window (never shorter than the freshness
// window), and one stored later is stale. An operator's authorized replay of a dead letter
// carries its own id and is let through once by its authorization (keyOf).
func storedUnderOwnID(m *Message) error {
	if m.Replay != nil || m.raw == nil {
		return nil
	}
	if id := m.raw.Headers().Get(jetstream.MsgIDHeader); id != m.ID {
		return &DeadLetterError{Reason: ReasonReplay, Err: fmt.Errorf("message %s stored under another Nats-Msg-Id than its own id: a copy republished by someone else", m.ID)}
	}
	return nil
}

// outcome of the store phase.
type outcome int

const (
	owned     outcome = iota // this delivery holds the claim: call the handler
	handledAt                // the key was handled at this sequence
	replayAt                 // the key belongs to another sequence
)

// claimState is what the claim stage hands to the handler stage for one delivery (kept in its
// Message: Message.claimed).
type claimState struct {
	g     *guard
	entry *seenEntry
	key   string // store key
	dk    deliveryKey
	rev   uint64 // revision of this delivery's claim
}

// claimStage is the guard's first half, run as a message is prepared: the in-memory layer and
// the claim in the store. A replay is refused (the caller dead-letters it); a redelivery of a
// handled message is marked duplicate; otherwise the delivery holds the claim and goes on.
func (g *guard) claimStage(next Handler) Handler {
	return func(ctx context.Context, m *Message) error {
		if !m.verified {
			return &DeadLetterError{Reason: "unverified", Err: fmt.Errorf("replay guard placed before verification")}
		}
		if err := storedUnderOwnID(m); err != nil {
			return err
		}
		dk, h, sk := g.keyOf(m)
		e, v, err := g.local.enter(ctx, h, m)
		switch {
		case errors.Is(err, errBusyHere):
			return err
		case err != nil:
			return fmt.Errorf("consumers: waiting for the handler call in progress for %s: %w", m.ID, err)
		case v == replayed:
			return g.replay(m, e.pos.seq)
		case v == duplicate:
			m.duplicate = true
			return nil
		}
		cctx := ctx
		if m.last {
			// The server will not deliver it again: claim it even if the consumption is
			// stopping, for a bounded time (longer than the wait for a live owner).
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), lastDeliveryWait*g.lease+g.storeWait)
			defer cancel()
		}
		rev, out, seq, err := g.claim(cctx, sk, dk, m)
		if err != nil {
			g.local.leave(e)
			if _, ok := DeadLetterReason(err); m.last && !ok && !errors.Is(err, errBusyHere) {
				// Returned to the server, it would not come again: a dead letter keeps it.
				return &DeadLetterError{Reason: ReasonMaxDeliveries, Err: fmt.Errorf("consumers: last allowed delivery not handled: %w", err)}
			}
			return err
		}
		switch out {
		case replayAt:
			g.local.settle(e, seq, false)
			return g.replay(m, seq)
		case handledAt:
			g.local.settle(e, m.Sequence, true)
			m.duplicate = true
			return nil
		}
		g.local.own(e, m.Sequence)
		m.claimed = claimState{g: g, entry: e, key: sk, dk: dk, rev: rev}
		m.claim = &m.claimed
		return next(ctx, m)
	}
}

// handlerStage is the guard's second half, around the handler of a delivery that holds the
// claim: on success the handled record, written only if the ack is not confirmed at once (see
// Consumption.slowAck), on failure the release.
func (g *guard) handlerStage(next Handler) Handler {
	return func(ctx context.Context, m *Message) error {
		c := m.claim
		if c == nil {
			return &DeadLetterError{Reason: "unverified", Err: fmt.Errorf("handler reached without a claim")}
		}
		m.claim = nil
		err := next(ctx, m)
		ok := err == nil && !m.settled
		if ok {
			m.toRecord = c
		} else {
			g.writes.Go(func() { g.release(c.key, c.dk, m.Sequence, c.rev) })
		}
		g.local.settle(c.entry, m.Sequence, ok)
		return err
	}
}

// abandon gives back the claim of a prepared delivery that will not be handled here (the
// consumption is stopping).
func (g *guard) abandon(m *Message) {
	c := m.claim
	if c == nil {
		return
	}
	m.claim = nil
	g.writes.Go(func() { g.release(c.key, c.dk, m.Sequence, c.rev) })
	g.local.settle(c.entry, m.Sequence, false)
}

// middleware is both stages around next (tests).
func (g *guard) middleware(next Handler) Handler { return g.claimStage(g.handlerStage(next)) }

func (g *guard) replay(m *Message, seq uint64) error {
	return &DeadLetterError{Reason: ReasonReplay, Err: fmt.Errorf("message %s already stored at %s sequence %d", m.ID, m.Stream, seq)}
}

// claim runs the store phase for m (see guard): it returns the revision of this delivery's
// claim (owned), or handledAt, or replayAt with the key's sequence.
func (g *guard) claim(ctx context.Context, sk string, dk deliveryKey, m *Message) (uint64, outcome, uint64, error) {
	// The store copies what it writes: the entry is encoded into the message's own buffer.
	val := guardEntry{state: stateClaimed, owner: g.owner, seq: m.Sequence}.appendTo(m.claimEntry[:0])
	var last uint64
	p := g.pacer(m)
	for {
		rev, err := g.store.put(ctx, sk, val, dk.ttl, last)
		if err == nil {
			return rev, owned, 0, nil
		}
		if !errors.Is(err, errConflict) {
			if err := p.failed(ctx, "claiming", err); err != nil {
				return 0, 0, 0, err
			}
			continue
		}
		// The key has an entry (or had one at the revision expected): read it and decide.
		for {
			cur, crev, err := g.store.get(ctx, sk)
			if errors.Is(err, errNoEntry) {
				last = 0 // expired meanwhile
				break
			}
			if err != nil {
				if err := p.failed(ctx, "reading", err); err != nil {
					return 0, 0, 0, err
				}
				continue
			}
			ent, ok := decodeEntry(cur)
			switch {
			case !ok:
				// Not an entry, under a key only holders of the guard key can name: take it.
				g.log.Warn("sealbus: replay guard: unreadable entry replaced", "id", m.ID, "seq", m.Sequence)
				last = crev
			case ent.seq != m.Sequence:
				return 0, replayAt, ent.seq, nil
			case ent.state == stateHandled:
				return 0, handledAt, 0, nil
			case ent.state == stateReleased, ent.owner == g.owner:
				// A retry, or our own claim (a lost reply to our write, or an earlier call in
				// this process that ended without recording its outcome).
				last = crev
			default:
				alive, err := g.alive(ctx, ent.owner)
				if err != nil {
					if err := p.failed(ctx, "reading the heartbeat of", err); err != nil {
						return 0, 0, 0, err
					}
					continue
				}
				if !alive {
					g.log.Warn("sealbus: replay guard: taking over the claim of a process that stopped or stopped answering",
						"id", m.ID, "seq", m.Sequence, "owner", ent.owner.String())
					last = crev
					break
				}
				if m.noWait {
					// Being prepared in delivery order: wait aside, not in front of the
					// messages behind it.
					return 0, 0, 0, errBusyHere
				}
				if !m.last && time.Since(p.start) > g.lease {
					// The owner may have handled it and had its ack confirmed, which needs no
					// record (an ack the server then lost): only the owner knows. Returned to
					// the server, the delivery may reach it next.
					return 0, 0, 0, fmt.Errorf("%w: message %s, claimed by process %s for longer than %v", errClaimHeld, m.ID, ent.owner, g.lease)
				}
				if err := p.wait(ctx); err != nil {
					if m.last {
						// The server will not deliver it again, to the owner or anyone: kept as
						// a dead letter, for the operator to decide, rather than held forever.
						return 0, 0, 0, &DeadLetterError{Reason: ReasonMaxDeliveries, Err: fmt.Errorf(
							"consumers: last delivery of message %s while process %s, alive, held its claim without an outcome (%v): it may have handled it (an ack the server confirmed, then lost)",
							m.ID, ent.owner, err)}
					}
					return 0, 0, 0, fmt.Errorf("consumers: waiting for process %s to finish message %s: %w", ent.owner, m.ID, err)
				}
				continue
			}
			break
		}
	}
}

// alive reports whether owner's heartbeat says it is alive.
func (g *guard) alive(ctx context.Context, owner ownerID) (bool, error) {
	b, _, err := g.store.get(ctx, beatKey(g.store.keyPrefix(), owner))
	if errors.Is(err, errNoEntry) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return decodeBeat(b, owner), nil
}

// record writes that the handler call holding the claim at revision rev returned nil. It is
// called before the message is acknowledged. A lost reply is recognised on retry; a claim
// taken over meanwhile by another process is logged (both calls ran).
func (g *guard) record(ctx context.Context, sk string, dk deliveryKey, seq, rev uint64) error {
	return g.settleEntry(ctx, sk, dk, guardEntry{state: stateHandled, owner: g.owner, seq: seq}, rev)
}

// record writes that the handler call holding claim c for the delivery at stream sequence seq
// returned nil (see guard.record).
func (c *claimState) record(ctx context.Context, seq uint64) error {
	return c.g.record(ctx, c.key, c.dk, seq, c.rev)
}

// release writes that the handler call holding the claim at revision rev failed, so that the
// retry can be claimed anywhere at once. Best effort: if it is not written, the retry waits
// for this process (or its heartbeat's expiry).
func (g *guard) release(sk string, dk deliveryKey, seq, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.settleEntry(ctx, sk, dk, guardEntry{state: stateReleased, owner: g.owner, seq: seq}, rev); err != nil {
		g.log.Debug("sealbus: replay guard: release not written", "seq", seq, "error", err)
	}
}

// settleEntry replaces our claim (revision rev) with want, retrying until ctx ends.
func (g *guard) settleEntry(ctx context.Context, sk string, dk deliveryKey, want guardEntry, rev uint64) error {
	val := want.encode()
	last := rev
	delay := 20 * time.Millisecond
	for {
		_, err := g.store.put(ctx, sk, val, dk.ttl, last)
		if err == nil {
			return nil
		}
		if errors.Is(err, errConflict) {
			cur, crev, gerr := g.store.get(ctx, sk)
			switch {
			case errors.Is(gerr, errNoEntry):
				last = 0 // expired: write it anew
				continue
			case gerr == nil:
				ent, ok := decodeEntry(cur)
				if ok && ent == want {
					return nil // an earlier attempt was applied
				}
				if ok && ent.seq == want.seq && ent.owner != g.owner {
					g.log.Warn("sealbus: replay guard: another process took this message over before its outcome was recorded",
						"seq", want.seq, "owner", ent.owner.String())
					return nil
				}
				if ok && ent.owner == g.owner && ent.seq == want.seq {
					last = crev
					continue
				}
				return fmt.Errorf("consumers: guard entry of sequence %d changed", want.seq)
			}
			err = gerr
		}
		if errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("%w: %w", ErrGuardUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last error: %w)", ErrGuardUnavailable, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// pacer paces the retries of one delivery's store phase: backoff after store errors, polls
// while waiting for another process, and in-progress signals to the server so the delivery
// is not redelivered meanwhile. Store errors give up after storeWait, except on the last
// allowed delivery (which the server would not repeat), where they go on until ctx ends.
type pacer struct {
	g        *guard
	m        *Message
	start    time.Time
	delay    time.Duration
	progress time.Time
}

func (g *guard) pacer(m *Message) *pacer {
	now := time.Now()
	return &pacer{g: g, m: m, start: now, progress: now}
}

func (p *pacer) failed(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed) || (!p.m.last && time.Since(p.start) > p.g.storeWait) {
		return fmt.Errorf("%w: %s message %s: %w", ErrGuardUnavailable, what, p.m.ID, err)
	}
	p.g.log.Debug("sealbus: replay guard store error; retrying", "what", what, "seq", p.m.Sequence, "error", err)
	if serr := p.sleep(ctx); serr != nil {
		return fmt.Errorf("%w: %s message %s: %w", ErrGuardUnavailable, what, p.m.ID, err)
	}
	return nil
}

func (p *pacer) wait(ctx context.Context) error { return p.sleep(ctx) }

func (p *pacer) sleep(ctx context.Context) error {
	p.delay = min(max(2*p.delay, 20*time.Millisecond), time.Second)
	if time.Since(p.progress) > p.g.progressEvery && p.m.raw != nil {
		_ = p.m.InProgress()
		p.progress = time.Now()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(p.delay):
		return nil
	}
}

// msgKey is a delivery key in 16 bytes (its keyed hash).
type msgKey [16]byte

// keyOf maps a message id to a msgKey without a guard key (tests of the set).
func keyOf(id string) msgKey {
	var k msgKey
	if len(id) == 2*len(k) {
		if _, err := hex.Decode(k[:], []byte(id)); err == nil {
			return k
		}
	}
	sum := sha256.Sum256([]byte(id))
	copy(k[:], sum[:])
	return k
}

type position struct {
	stream string
	seq    uint64
}

// seenEntry is one id remembered in memory. known says pos is the key's sequence in the store
// (not only where this process first saw it); handled that a handler call returned nil (or the
// store said so). handled, known, pos, busy and wake are guarded by the set's mutex.
type seenEntry struct {
	key     msgKey
	pos     position
	created int64 // unix nanoseconds
	known   bool
	handled bool
	busy    bool          // this process works on the id
	wake    chan struct{} // made for the first delivery that waits for busy to end; closed then
}

// replaySet is the in-memory layer of the guard.
type replaySet struct {
	window   time.Duration
	capacity int

	mu    sync.Mutex
	seen  map[msgKey]*seenEntry
	order []*seenEntry // FIFO of insertions
	head  int
	high  time.Time // newest stored time seen
}

func newReplaySet(window time.Duration, capacity int) *replaySet {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	return &replaySet{window: window, capacity: capacity, seen: make(map[msgKey]*seenEntry)}
}

// verdict is what the in-memory layer decides for a delivery.
type verdict int

const (
	deliver   verdict = iota // go to the store (the caller must call settle or leave)
	duplicate                // handled here: acknowledge again, no handler call
	replayed                 // the id is known at another position
)

// errBusyHere: another delivery of the same key is in progress in this process, or another
// live process holds its claim, and the caller asked not to wait for it (a message being
// prepared in delivery order: the one it would wait for may be queued behind it).
var errBusyHere = errors.New("consumers: a delivery of this message is in progress here")

// defaultStoreWait is how long the guard retries its store before giving a delivery up
// (ErrGuardUnavailable: returned to the server for a later redelivery). Tests shorten it.
var defaultStoreWait = 30 * time.Second

// lastDeliveryWait is how many claim leases the last allowed delivery of a message waits for
// the live process that holds its claim.
const lastDeliveryWait = 3

// errClaimHeld: another live process has held the message's claim for longer than the claim
// lease without recording an outcome. It may still be handling it, or it handled it and its
// confirmed ack was lost by the server (nothing is recorded for a confirmed ack); the delivery
// is returned to the server, which may redeliver it to that process.
var errClaimHeld = errors.New("consumers: message claimed by another process")

// enter applies the in-memory layer to a delivery of k. With deliver, the entry is marked busy
// until settle or leave; another delivery of k in this process waits for that, or returns
// errBusyHere at once when m.noWait is set.
func (g *replaySet) enter(ctx context.Context, k msgKey, m *Message) (*seenEntry, verdict, error) {
	for {
		g.mu.Lock()
		e, v, wait := g.decide(k, m)
		g.mu.Unlock()
		if wait == nil {
			return e, v, nil
		}
		if m.noWait {
			return e, v, errBusyHere
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return e, v, ctx.Err()
		}
	}
}

// neverWoken is the wait decide returns to a delivery that will not wait (Message.noWait).
var neverWoken = make(chan struct{})

// decide is enter under the lock; a non-nil wait means: wait for it, then decide again.
func (g *replaySet) decide(k msgKey, m *Message) (*seenEntry, verdict, <-chan struct{}) {
	if m.Stored.After(g.high) {
		g.high = m.Stored
	}
	g.expire()
	pos := position{m.Stream, m.Sequence}
	if e, ok := g.seen[k]; ok {
		switch {
		case e.known && e.pos != pos:
			return e, replayed, nil
		case e.busy && m.noWait:
			return e, deliver, neverWoken // the caller returns errBusyHere, waiting for nothing
		case e.busy:
			if e.wake == nil {
				e.wake = make(chan struct{})
			}
			return e, deliver, e.wake
		case e.handled && e.pos == pos:
			return e, duplicate, nil
		}
		e.busy = true
		return e, deliver, nil
	}
	if len(g.order)-g.head >= g.capacity {
		g.evict()
	}
	e := &seenEntry{key: k, pos: pos, created: m.guardTime().UnixNano(), busy: true}
	g.seen[k] = e
	g.order = append(g.order, e)
	return e, deliver, nil
}

// settle ends the work entered for e with what the store said: the key's sequence and
// whether it is handled.
func (g *replaySet) settle(e *seenEntry, seq uint64, handled bool) {
	g.mu.Lock()
	e.pos.seq, e.known = seq, true
	if handled {
		e.handled = true
	}
	g.unbusy(e)
	g.mu.Unlock()
}

// own records that this process holds the key's claim at seq: its position is known (a
// replay is refused at once) while the entry stays busy.
func (g *replaySet) own(e *seenEntry, seq uint64) {
	g.mu.Lock()
	e.pos.seq, e.known = seq, true
	g.mu.Unlock()
}

// leave ends the work entered for e without learning anything (a store error).
func (g *replaySet) leave(e *seenEntry) {
	g.mu.Lock()
	g.unbusy(e)
	g.mu.Unlock()
}

func (g *replaySet) unbusy(e *seenEntry) {
	e.busy = false
	if e.wake != nil {
		close(e.wake)
		e.wake = nil
	}
}

// expire forgets ids that no envelope stored from now on could replay: created more than
// twice the window before the newest stored time (the store keeps them longer).
func (g *replaySet) expire() {
	limit := g.high.Add(-2 * g.window).UnixNano()
	for g.head < len(g.order) && g.order[g.head].created < limit {
		g.evict()
	}
	if g.head > 1024 && g.head*2 > len(g.order) {
		g.order = append(g.order[:0:0], g.order[g.head:]...)
		g.head = 0
	}
}

// evict forgets the oldest entry. An entry in use stays reachable by its waiters (they hold
// it), and settle or leave still wakes them.
func (g *replaySet) evict() {
	e := g.order[g.head]
	g.order[g.head] = nil
	g.head++
	if g.seen[e.key] == e {
		delete(g.seen, e.key)
	}
}

func (g *replaySet) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
