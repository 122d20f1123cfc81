package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/envelope"
)

// publishAttempts is how many times one envelope is sent before its publish fails. Every
// attempt sends the same bytes under the same Nats-Msg-Id, so JetStream stores it once.
const publishAttempts = 3

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

// pending is a publish waiting to be sealed.
type pending struct {
	msg envelope.Message
	ttl time.Duration
	f   *future
}

// inflight is a sent envelope waiting for its JetStream ack.
type inflight struct {
	f       *future
	msg     *nats.Msg
	paf     jetstream.PubAckFuture
	attempt int
	sealed  time.Time // clock reading just before sealing: the envelope was created at or after it
}

type future struct {
	subject string
	idp     atomic.Pointer[string] // set when sealed
	done    chan struct{}
	ack     *PubAck
	err     error
	release func()
}

func (f *future) Done() <-chan struct{} { return f.done }

// id returns the envelope's message id, or "" before sealing.
func (f *future) id() string {
	if p := f.idp.Load(); p != nil {
		return *p
	}
	return ""
}

func (f *future) Wait(ctx context.Context) (*PubAck, error) {
	select {
	case <-f.done:
		return f.ack, f.err
	case <-ctx.Done():
		return nil, &PublishError{Subject: f.subject, ID: f.id(), Err: ctx.Err()}
	}
}

func (f *future) resolve(ack *PubAck, err error) {
	if err != nil {
		err = &PublishError{Subject: f.subject, ID: f.id(), Err: err}
	}
	f.ack, f.err = ack, err
	close(f.done)
	f.release()
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
// token. Publishes from one goroutine are sent in call order.
func (c *Client) PublishAsync(subject string, payload []byte, opts ...PublishOption) (PubAckFuture, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.timeout)
	defer cancel()
	return c.publish(ctx, subject, payload, opts, true)
}

// PublishJSON publishes v encoded as JSON with content type "application/json".
func PublishJSON[T any](ctx context.Context, c *Client, subject string, v T, opts ...PublishOption) (*PubAck, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bus: encode JSON: %w", err)
	}
	return c.Publish(ctx, subject, b, append([]PublishOption{WithContentType("application/json")}, opts...)...)
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
	var po publishOptions
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil publish option", ErrInvalidOption)
		}
		if err := o(&po); err != nil {
			return nil, err
		}
	}
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	to, err := c.checkPublish(subject)
	if err != nil {
		return nil, err
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, &PublishError{Subject: subject, Err: err}
		}
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		if async && c.ctx.Err() == nil {
			return nil, &PublishError{Subject: subject, Err: ErrMaxPending}
		}
		return nil, &PublishError{Subject: subject, Err: ctx.Err()}
	}
	f := &future{subject: subject, done: make(chan struct{}), release: func() { <-c.slots }}
	p := &pending{
		msg: envelope.Message{
			Header:  envelope.Header{Account: c.account, Subject: subject, ContentType: po.contentType, Expires: po.expires},
			Payload: payload,
			To:      to,
		},
		ttl: po.ttl,
		f:   f,
	}
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.closing {
		f.release()
		return nil, &PublishError{Subject: subject, Err: ErrClosed}
	}
	c.queue <- p // never blocks: the queue holds maxPending and a slot is held
	return f, nil
}

// checkPublish runs the checks that happen before anything is sent and returns the audience.
func (c *Client) checkPublish(subject string) ([]envelope.Recipient, error) {
	card, ok := c.dir.CardByKey(c.userKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s may no longer publish", ErrRevoked, c.name)
	}
	if !card.MayPublish(subject) {
		return nil, fmt.Errorf("%w: %s may not publish on %q", ErrForbidden, c.name, subject)
	}
	to, err := c.dir.recipients(subject)
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoAudience, subject)
	}
	return to, nil
}

// checkSubject accepts a concrete NATS subject: non-empty tokens, no wildcards, no whitespace.
func checkSubject(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("%w: %q", ErrInvalidSubject, s)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return fmt.Errorf("%w: %q (a publish needs a concrete subject)", ErrInvalidSubject, s)
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return fmt.Errorf("%w: %q has whitespace or control characters", ErrInvalidSubject, s)
		}
	}
	return nil
}

// sealAndSend seals one batch and sends every envelope (batcher goroutine).
func (c *Client) sealAndSend(batch []*pending) {
	msgs := make([]envelope.Message, len(batch))
	now := c.cfg.now()
	for i, p := range batch {
		msgs[i] = p.msg
		if p.ttl > 0 {
			msgs[i].Header.Expires = now.Add(p.ttl)
		}
	}
	sealed, err := c.sealer.SealBatch(msgs)
	if err == nil {
		c.counters.Batches.Add(1)
		for i, p := range batch {
			c.send(p.f, sealed[i], now)
		}
		return
	}
	// One bad message fails the whole batch: seal them one by one so the others go through.
	for i, p := range batch {
		s, err := c.sealer.Seal(msgs[i].Header, msgs[i].Payload, msgs[i].To)
		if err != nil {
			c.counters.PublishFailed.Add(1)
			p.f.resolve(nil, err)
			continue
		}
		c.counters.Batches.Add(1)
		c.send(p.f, s, now)
	}
}

func (c *Client) send(f *future, s envelope.Sealed, sealed time.Time) {
	id := s.ID.String()
	f.idp.Store(&id)
	msg := &nats.Msg{Subject: f.subject, Data: s.Data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	paf, err := c.js.PublishMsgAsync(msg)
	if err != nil {
		c.counters.PublishFailed.Add(1)
		f.resolve(nil, err)
		return
	}
	c.ackQ <- &inflight{f: f, msg: msg, paf: paf, attempt: 1, sealed: sealed}
}

// acker waits for acks in send order and retries failed sends with the same envelope.
func (c *Client) acker() {
	defer c.pipes.Done()
	for in := range c.ackQ {
		c.await(in)
	}
}

func (c *Client) await(in *inflight) {
	for {
		var err error
		select {
		case ack := <-in.paf.Ok():
			c.counters.Published.Add(1)
			in.f.resolve(&PubAck{ID: in.f.id(), Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil)
			return
		case err = <-in.paf.Err():
		case <-c.ctx.Done():
			if c.nc.IsClosed() {
				err = ErrClosed
			} else {
				select { // draining: the ack is still coming
				case ack := <-in.paf.Ok():
					c.counters.Published.Add(1)
					in.f.resolve(&PubAck{ID: in.f.id(), Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil)
					return
				case err = <-in.paf.Err():
				}
			}
		}
		if in.attempt >= publishAttempts || !retryable(err) || c.nc.IsClosed() {
			c.counters.PublishFailed.Add(1)
			in.f.resolve(nil, err)
			return
		}
		c.log.Debug("sealbus: retrying publish", "id", in.f.id(), "subject", in.f.subject, "attempt", in.attempt+1, "error", err)
		select {
		case <-time.After(time.Duration(in.attempt) * 250 * time.Millisecond):
		case <-c.ctx.Done():
		}
		if c.expired(in) {
			c.counters.PublishFailed.Add(1)
			in.f.resolve(nil, fmt.Errorf("%w: sealed %v ago, last error: %w", ErrPublishExpired, c.cfg.now().Sub(in.sealed).Round(time.Millisecond), err))
			return
		}
		paf, perr := c.js.PublishMsgAsync(in.msg)
		if perr != nil {
			c.counters.PublishFailed.Add(1)
			in.f.resolve(nil, perr)
			return
		}
		in.paf, in.attempt = paf, in.attempt+1
	}
}

// expired reports whether in's envelope is too old to send again: receivers reject an
// envelope stored more than the freshness window after its creation, so it is resent only
// while younger than the window minus a quarter of it (room for clock skew between this host
// and the server, and for the time to store it).
func (c *Client) expired(in *inflight) bool {
	w := c.cfg.freshness
	return c.cfg.now().Sub(in.sealed) >= w-w/4
}

func retryable(err error) bool {
	return errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded)
}
