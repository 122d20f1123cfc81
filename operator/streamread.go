package operator

// The audit and dead-letter readers read a stream's messages in order through an ordered
// consumer. Reading needs a connection with consumer-create rights on the stream (an admin
// connection); services only write to these streams.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readIdle bounds the wait for a message known to exist.
const readIdle = 2 * time.Second

// readLast calls fn, in stream order, for the last n messages of stream (all of them when n <= 0)
// that exist when Last starts. It returns the last sequence of the stream at that moment (0
// for an empty stream), from which a follower can continue.
func readLast(ctx context.Context, js jetstream.JetStream, stream string, n int, fn func(jetstream.Msg) error) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	st := info.State
	if st.Msgs == 0 || st.LastSeq == 0 {
		return st.LastSeq, nil
	}
	start := st.FirstSeq
	if n > 0 && st.LastSeq >= uint64(n) && st.LastSeq-uint64(n)+1 > start {
		start = st.LastSeq - uint64(n) + 1
	}
	err = each(ctx, js, stream, start, func(m jetstream.Msg, seq uint64) (bool, error) {
		if err := fn(m); err != nil {
			return false, err
		}
		return seq < st.LastSeq, nil
	}, true)
	return st.LastSeq, err
}

// follow calls fn for every message with a sequence of at least from (from 0 means: only
// messages stored after Follow starts; 1 means all), in order, until ctx ends (then it returns nil) or fn
// returns an error (returned as is).
func follow(ctx context.Context, js jetstream.JetStream, stream string, from uint64, fn func(jetstream.Msg) error) error {
	err := each(ctx, js, stream, from, func(m jetstream.Msg, _ uint64) (bool, error) {
		return true, fn(m)
	}, false)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func each(ctx context.Context, js jetstream.JetStream, stream string, from uint64, fn func(jetstream.Msg, uint64) (bool, error), bounded bool) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy, InactiveThreshold: time.Minute}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	// Delete the server-side consumer when done, so repeated reads do not pile up consumers
	// (each would otherwise count against the account's limit until InactiveThreshold).
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readIdle)
			_ = js.DeleteConsumer(dctx, stream, info.Name)
			cancel()
		}
	}()
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		c, cancel := ctx, context.CancelFunc(func() {})
		if bounded {
			c, cancel = context.WithTimeout(ctx, readIdle)
		}
		m, err := it.Next(jetstream.NextContext(c))
		cancel()
		if err != nil {
			if bounded && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return nil // the remaining messages were deleted meanwhile
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if more, err := call(m, fn); err != nil || !more {
			return err
		}
	}
}

func call(m jetstream.Msg, fn func(jetstream.Msg, uint64) (bool, error)) (bool, error) {
	md, err := m.Metadata()
	if err != nil {
		return false, err
	}
	return fn(m, md.Sequence.Stream)
}
