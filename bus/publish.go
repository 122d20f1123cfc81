package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// PubAck is JetStream's acknowledgement of a stored envelope.
type PubAck struct {
	ID        string // envelope message id, also the Nats-Msg-Id
	Stream    string
	Sequence  uint64
	Duplicate bool // JetStream had already stored this id (a retry)
}

// PubAckFuture is the pending result of PublishAsync.
type PubAckFuture interface {
	// Done is closed when the publish is acknowledged or has failed.
	Done() <-chan struct{}
	// Wait blocks until Done or ctx ends and returns the result. An error is a *PublishError
	// (or ctx's error, in which case the envelope may still be stored).
	Wait(ctx context.Context) (*PubAck, error)
}

// PublishOption configures one publish.
type PublishOption func(*publishOptions) error

type publishOptions struct {
	contentType string
	expires     time.Time
	ttl         time.Duration
}

// WithContentType sets the envelope's signed content type (printable ASCII, at most 255
// bytes), e.g. "application/json".
func WithContentType(ct string) PublishOption {
	return func(o *publishOptions) error {
		if len(ct) > 255 {
			return fmt.Errorf("%w: content type longer than 255 bytes", ErrInvalidOption)
		}
		for i := 0; i < len(ct); i++ {
			if ct[i] < 0x20 || ct[i] > 0x7e {
				return fmt.Errorf("%w: content type must be printable ASCII", ErrInvalidOption)
			}
		}
		o.contentType = ct
		return nil
	}
}

// WithExpires sets the envelope's signed expiry: receivers reject it at or after t.
func WithExpires(t time.Time) PublishOption {
	return func(o *publishOptions) error {
		if t.IsZero() {
			return fmt.Errorf("%w: zero expiry", ErrInvalidOption)
		}
		o.expires, o.ttl = t, 0
		return nil
	}
}

// WithTTL sets the envelope's expiry to d after sealing.
func WithTTL(d time.Duration) PublishOption {
	return func(o *publishOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: ttl %v", ErrInvalidOption, d)
		}
		o.ttl, o.expires = d, time.Time{}
		return nil
	}
}

// future is one publish from the call to its outcome: waiting to be sealed (msg, ttl), then
// sent and waiting for its JetStream ack (nmsg and the retry state, owned by the acker; the attempt, pubAcks),
// then resolved (ack or err, done closed). One allocation carries it all.
type future struct {
	c       *Client
	subject string
	done    chan struct{}

	// Until sealed (batcher).
	msg envelope.Message
	ttl time.Duration

	// Set once when sealed, before hasID is: read by Wait and resolve on any goroutine.
	idStr string
	idHdr [1]string // idStr, as the Nats-Msg-Id header's values
	hasID atomic.Bool

	// Acker state.
	nmsg   nats.Msg
	sends  int       // times sent
	tries  int       // failed attempts that count against publishAttempts
	absent int       // attempts no stream answered (no responders), against noStreamAttempts
	round  uint64    // backoff round it was last sent in
	sealed time.Time // clock reading just before sealing: the envelope was created at or after it

	// The current attempt (pubAcks): token, connection generation and time it was sent with;
	// attempt and aerr are guarded by pubAcks.mu, and so is ack until the acker resolves.
	token   uint64
	gen     uint64
	sentAt  time.Time
	attempt int
	aerr    error
	probes  int // sends of this attempt repeated after a no-responders answer

	ack PubAck
	err error
}

func (f *future) Done() <-chan struct{} { return f.done }

// id returns the envelope's message id, or "" before sealing.
func (f *future) id() string {
	if f.hasID.Load() {
		return f.idStr
	}
	return ""
}

func (f *future) Wait(ctx context.Context) (*PubAck, error) {
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return &f.ack, nil
	case <-ctx.Done():
		return nil, &PublishError{Subject: f.subject, ID: f.id(), Err: ctx.Err()}
	}
}

// resolve settles the future with its ack (nil on error) and frees its pending slot.
func (f *future) resolve(ack *PubAck, err error) {
	if err != nil {
		f.err = &PublishError{Subject: f.subject, ID: f.id(), Err: err}
	} else {
		f.ack = *ack
	}
	f.msg, f.nmsg = envelope.Message{}, nats.Msg{} // the payload and envelope are no longer needed
	close(f.done)
	<-f.c.slots
}

// Publish seals payload to every service that may read subject and waits until JetStream has
// stored it.
//
// Before anything is sent it checks that the subject is concrete (ErrInvalidSubject), that the
// service's own card allows publishing on it (ErrForbidden; ErrRevoked once the card is
// revoked) and that at least one valid card may read it (ErrNoAudience). The audience is every
// verified, non-revoked card whose subscribe permissions match the subject. The envelope's
// message id is the Nats-Msg-Id, and retries send the same envelope, so JetStream stores it
// once. Concurrent publishes are sealed in batches under one signature (WithBatch). If ctx ends
// while waiting for the ack, the error wraps ctx's error and the envelope may still be stored.
func (c *Client) Publish(ctx context.Context, subject string, payload []byte, opts ...PublishOption) (*PubAck, error) {
	f, err := c.publish(ctx, subject, payload, opts, false)
	if err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}

// PublishAsync is Publish without waiting for the ack: the checks run before it returns, the
// envelope is sealed (with other waiting publishes) and sent in the background, and the future
// reports the outcome. It blocks while WithMaxPending publishes are in flight, failing with
// ErrMaxPending after the client's timeout, and while the publish rate limit (if any) has no
// token. Publishes from one goroutine are sent in call order (one sent again after a failed
// attempt may be stored after later ones). A publish fails with ErrPublishExpired when it
// could not be stored while its envelope was young enough to be resent; the caller may
// publish again (a new envelope under a new id).
func (c *Client) PublishAsync(subject string, payload []byte, opts ...PublishOption) (PubAckFuture, error) {
	// No context is made unless the publish has to wait (a full pending window, an empty
	// rate-limit bucket): the client's timeout then bounds the wait.
	return c.publish(nil, subject, payload, opts, true)
}

// PublishJSON publishes v encoded as JSON with content type "application/json".
func PublishJSON[T any](ctx context.Context, c *Client, subject string, v T, opts ...PublishOption) (*PubAck, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bus: encode JSON: %w", err)
	}
	return c.Publish(ctx, subject, b, append([]PublishOption{WithContentType("application/json")}, opts...)...)
}

// applyPublishOptions applies opts (none: the zero options, made without an allocation).
func applyPublishOptions(opts []PublishOption) (publishOptions, error) {
	if len(opts) == 0 {
		return publishOptions{}, nil
	}
	po := new(publishOptions)
	for _, o := range opts {
		if o == nil {
			return publishOptions{}, fmt.Errorf("%w: nil publish option", ErrInvalidOption)
		}
		if err := o(po); err != nil {
			return publishOptions{}, err
		}
	}
	return *po, nil
}

func (c *Client) publish(ctx context.Context, subject string, payload []byte, opts []PublishOption, async bool) (*future, error) {
	if c.ctx.Err() != nil {
		return nil, &PublishError{Subject: subject, Err: ErrClosed}
	}
	if c.nc.IsClosed() {
		// The server closed the connection for good (for example after revoking this
		// service): fail now rather than when the ack times out.
		if last := c.nc.LastError(); last != nil {
			return nil, &PublishError{Subject: subject, Err: fmt.Errorf("%w: connection closed: %v", ErrClosed, last)}
		}
		return nil, &PublishError{Subject: subject, Err: ErrClosed}
	}
	po, err := applyPublishOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	to, err := c.checkPublish(subject)
	if err != nil {
		return nil, err
	}
	// ctx is nil for PublishAsync: waiting, if needed, is bounded by the client's timeout
	// (waitContext), and nothing is made for a publish that does not wait.
	if c.limiter != nil && !c.limiter.Allow() {
		wctx, cancel := c.waitContext(ctx)
		err := c.limiter.Wait(wctx)
		cancel()
		if err != nil {
			return nil, &PublishError{Subject: subject, Err: err}
		}
	}
	select {
	case c.slots <- struct{}{}:
	default:
		if err := c.waitSlot(ctx); err != nil {
			if async && c.ctx.Err() == nil {
				return nil, &PublishError{Subject: subject, Err: ErrMaxPending}
			}
			return nil, &PublishError{Subject: subject, Err: err}
		}
	}
	f := &future{
		c: c, subject: subject, done: make(chan struct{}),
		msg: envelope.Message{
			Header:  envelope.Header{Account: c.account, Subject: subject, ContentType: po.contentType, Expires: po.expires},
			Payload: payload,
			To:      to,
		},
		ttl: po.ttl,
	}
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.closing {
		<-c.slots
		return nil, &PublishError{Subject: subject, Err: ErrClosed}
	}
	c.queue <- f // never blocks: the queue holds maxPending and a slot is held
	return f, nil
}

// waitContext returns ctx, or for PublishAsync (nil ctx) the client's context bounded by its
// timeout.
func (c *Client) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		return context.WithTimeout(c.ctx, c.cfg.timeout)
	}
	return ctx, func() {}
}

// waitSlot waits for a pending slot (WithMaxPending) until ctx (waitContext) ends.
func (c *Client) waitSlot(ctx context.Context) error {
	ctx, cancel := c.waitContext(ctx)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkPublish runs the checks that happen before anything is sent and returns the audience.
func (c *Client) checkPublish(subject string) ([]envelope.Recipient, error) {
	to, may, ok := c.dir.publishable(c.userKey, subject)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s may no longer publish", ErrRevoked, c.name)
	case !may:
		return nil, fmt.Errorf("%w: %s may not publish on %q", ErrForbidden, c.name, subject)
	case len(to) == 0:
		return nil, fmt.Errorf("%w: %q", ErrNoAudience, subject)
	}
	return to, nil
}

// checkSubject accepts a concrete subject (accounts.ValidSubject).
func checkSubject(s string) error {
	if !accounts.ValidSubject(s) {
		return fmt.Errorf("%w: %q is not a concrete subject (printable ASCII tokens, no wildcards, at most %d bytes)", ErrInvalidSubject, s, accounts.MaxSubjectLen)
	}
	return nil
}

// sealAndSend seals one batch and sends every envelope (batcher goroutine).
func (c *Client) sealAndSend(batch []*future) {
	msgs := make([]envelope.Message, len(batch))
	now := c.cfg.now()
	for i, f := range batch {
		msgs[i] = f.msg
		if f.ttl > 0 {
			msgs[i].Header.Expires = now.Add(f.ttl)
		}
	}
	sealed, err := c.sealer.SealBatch(msgs)
	if err == nil {
		c.counters.Batches.Add(1)
		c.counters.BatchSize(len(batch))
		for i, f := range batch {
			c.send(f, sealed[i], now)
		}
		return
	}
	// One bad message fails the whole batch: seal them one by one so the others go through.
	for i, f := range batch {
		s, err := c.sealer.Seal(msgs[i].Header, msgs[i].Payload, msgs[i].To)
		if err != nil {
			c.counters.PublishFailed.Add(1)
			f.resolve(nil, err)
			continue
		}
		c.counters.Batches.Add(1)
		c.counters.BatchSize(1)
		c.send(f, s, now)
	}
}

func (c *Client) send(f *future, s envelope.Sealed, sealed time.Time) {
	f.idStr = s.ID.String()
	f.hasID.Store(true)
	f.msg = envelope.Message{} // sealed: the payload is no longer needed
	f.idHdr[0] = f.idStr
	f.nmsg = nats.Msg{Subject: f.subject, Data: s.Data} // the Nats-Msg-Id header is added per attempt (pubAcks.publish)
	f.sealed = sealed
	err := c.pa.send(f, time.Now())
	switch {
	case err == nil:
		f.sends = 1
	case disconnected(err):
		// Not connected (nothing is buffered while reconnecting): the acker sends it once the
		// connection is back.
	default:
		c.counters.PublishFailed.Add(1)
		f.resolve(nil, err)
		return
	}
	c.ackQ <- f
}

// acker resolves the futures of sent envelopes and sends again those whose attempt failed or
// went unanswered: the same bytes under the same Nats-Msg-Id, so JetStream stores each once.
//
// It takes the in-flight publishes in send order. One whose attempt failed is sent again at
// once and queued behind the others, so that after a reconnect (nats.go fails every pending
// publish with ErrDisconnected) all of them are resent together, without waiting for each
// other's acks, and throughput returns to what it was. It waits only when the server is
// actually unavailable: while the connection is down (until it is back), and after an
// unanswered or refused attempt (no stream responded, ack timeout) for a backoff that one
// round of failures pays once, not once per message. Every publish stays bounded: it fails
// after publishAttempts answered or timed-out attempts, when its envelope has become too old
// to resend (ErrPublishExpired), or when the client closes.
func (c *Client) acker() {
	defer c.pipes.Done()
	a := &ackState{c: c, timer: time.NewTimer(time.Hour)}
	a.timer.Stop()
	open := true
	for open || a.len() > 0 {
		if a.len() == 0 {
			in, ok := <-c.ackQ
			if !ok {
				open = false
				continue
			}
			a.push(in)
		}
		for more := open; more; { // take everything sent meanwhile, keeping send order
			select {
			case in, ok := <-c.ackQ:
				if !ok {
					open, more = false, false
					break
				}
				a.push(in)
			default:
				more = false
			}
		}
		a.next()
	}
}

// publishAttempts bounds the attempts of one publish that the server answered with an error
// worth retrying or did not answer in time. Attempts lost to a disconnection do not count:
// they are bounded by the envelope's age (ErrPublishExpired).
const publishAttempts = 8

// noStreamAttempts bounds the attempts of one publish that no stream answered at all (no
// responders). nats.go already repeats each attempt twice, 250ms apart, on no responders, so
// two attempts probe six times over about a second before ErrNoStream.
const noStreamAttempts = 2

// Backoff after a round of attempts the server refused or left unanswered while connected:
// it starts at retryBackoffMin and doubles up to retryBackoffMax; an ack resets it.
const (
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = 2 * time.Second
	connectedPoll   = 20 * time.Millisecond
)

// ackState is the acker's queue and its shared backoff.
type ackState struct {
	c     *Client
	timer *time.Timer // await's, reused
	q     []*future
	head  int
	round uint64 // backoff rounds paid; an attempt sent in an older round is resent at once
	fails int    // consecutive rounds of failure, for the backoff
}

func (a *ackState) len() int { return len(a.q) - a.head }

func (a *ackState) push(in *future) {
	if a.head > 1024 && a.head*2 > len(a.q) {
		a.q = append(a.q[:0:0], a.q[a.head:]...)
		a.head = 0
	}
	a.q = append(a.q, in)
}

func (a *ackState) pop() *future {
	in := a.q[a.head]
	a.q[a.head] = nil
	a.head++
	return in
}

// next settles the oldest in-flight publish: it resolves its future, or sends it again and
// queues it at the back.
func (a *ackState) next() {
	c := a.c
	in := a.pop()
	var err error
	if in.sends == 0 {
		err = nats.ErrDisconnected // never sent: not connected at the time
	} else if err = a.await(in); err == nil {
		a.acked(in)
		return
	}
	if !retryable(err) || c.nc.IsClosed() {
		a.fail(in, err)
		return
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		// Nobody holds the subject: a missing stream, not a slow one. A leader election
		// answers within the backoff of a few rounds; a missing stream never does.
		if in.absent++; in.absent >= noStreamAttempts {
			a.fail(in, fmt.Errorf("%w: %s (%w)", ErrNoStream, in.subject, err))
			return
		}
	}
	if !disconnected(err) {
		if in.tries++; in.tries >= publishAttempts {
			a.fail(in, err)
			return
		}
		a.backoff(in)
	}
	for {
		if !a.waitConnected(in) {
			if c.nc.IsClosed() || c.ctx.Err() != nil {
				a.fail(in, ErrClosed)
			} else {
				a.expire(in, err)
			}
			return
		}
		if c.expired(in) {
			a.expire(in, err)
			return
		}
		perr := c.pa.send(in, time.Now())
		if perr == nil {
			if in.sends > 0 {
				c.counters.Resent.Add(1)
				c.log.Debug("sealbus: publish sent again", "id", in.id(), "subject", in.subject, "sends", in.sends+1, "error", err)
			}
			in.round = a.round
			in.sends++
			a.push(in)
			return
		}
		if !disconnected(perr) {
			a.fail(in, perr)
			return
		}
		err = perr // the connection dropped again: wait for it
	}
}

// await waits for the answer to in's current attempt and returns nil when JetStream stored
// it (in.ack holds the ack), else why the attempt failed: the server's error, a lost answer
// (the connection dropped: nats.ErrDisconnected), no answer within the client's timeout
// (jetstream.ErrAsyncPublishTimeout), or ErrClosed.
func (a *ackState) await(in *future) error {
	c, p := a.c, a.c.pa
	draining := false
	for {
		if answered, err := p.result(in); answered {
			return err
		}
		if in.gen != p.gen.Load() {
			p.forget(in)
			return nats.ErrDisconnected
		}
		left := c.cfg.timeout - time.Since(in.sentAt)
		if left <= 0 {
			p.forget(in)
			return jetstream.ErrAsyncPublishTimeout
		}
		done := c.ctx.Done()
		if draining {
			done = nil // Drain: the answer is still coming
		}
		a.timer.Reset(left)
		select {
		case <-p.notify:
		case <-a.timer.C:
		case <-done:
			if c.nc.IsClosed() {
				a.timer.Stop()
				p.forget(in)
				return ErrClosed
			}
			draining = true
		}
		a.timer.Stop()
	}
}

func (a *ackState) acked(in *future) {
	a.fails = 0
	a.c.counters.Published.Add(1)
	in.ack.ID = in.id()
	in.resolve(&in.ack, nil)
}

func (a *ackState) fail(in *future, err error) {
	a.c.counters.PublishFailed.Add(1)
	if code, full := streamFull(err); full {
		// A full stream refuses new messages rather than removing others' (streams are
		// discard-new by default): the refusal is the caller's to see, and the operator's.
		err = fmt.Errorf("%w: %w", ErrStreamFull, err)
		a.c.report(Event{Type: EventPublishRefused, Subject: in.subject, Data: EventData{
			Reason: "stream_full", Error: fmt.Sprintf("JetStream error %d: %v", code, err),
		}})
	}
	in.resolve(nil, err)
}

// streamFull reports whether err is JetStream refusing a message for a stream or account
// storage limit (error codes 10077: stream limits, maximum bytes, messages or messages per
// subject; 10047 and 10023: account storage or server resources).
func streamFull(err error) (int, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false
	}
	switch code := int(apiErr.ErrorCode); code {
	case 10077, 10047, 10023:
		return code, true
	}
	return 0, false
}

func (a *ackState) expire(in *future, last error) {
	c := a.c
	a.fail(in, fmt.Errorf("%w: sealed %v ago; last attempt: %w", ErrPublishExpired, c.cfg.now().Sub(in.sealed).Round(time.Millisecond), last))
}

// backoff waits before resending an attempt the server refused or left unanswered, once per
// round: attempts sent before the last wait go again at once.
func (a *ackState) backoff(in *future) {
	if in.round != a.round {
		return
	}
	d := min(retryBackoffMin<<min(a.fails, 10), retryBackoffMax)
	a.fails++
	a.round++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.c.ctx.Done():
	}
}

// waitConnected waits until the connection is up. It returns false when the client closes or
// in's envelope becomes too old to send while waiting.
func (a *ackState) waitConnected(in *future) bool {
	c := a.c
	if c.nc.IsConnected() {
		return true
	}
	t := time.NewTicker(connectedPoll)
	defer t.Stop()
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() || c.expired(in) {
			return false
		}
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// expired reports whether in's envelope is too old to send again: receivers reject an
// envelope stored more than the freshness window after its creation, so it is resent only
// while younger than the window minus a quarter of it (room for clock skew between this host
// and the server, and for the time to store it).
func (c *Client) expired(in *future) bool {
	w := c.cfg.freshness
	return c.cfg.now().Sub(in.sealed) >= w-w/4
}

// retryable reports whether a failed attempt may be sent again: the server did not answer, was
// not reachable, or no stream leader responded (an election). Answers such as a stream limit
// or a wrong expected stream are final.
func retryable(err error) bool {
	return disconnected(err) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded)
}

// disconnected reports whether err means the attempt never reached a server, or its answer was
// lost, because the connection dropped: nats.go's errors for a lost or reconnecting
// connection, or the socket's own error when a write fails as it breaks.
func disconnected(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrStaleConnection) ||
		errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
