package consumers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sealbus/sealbus/bus"
)

// ReasonUndecodable is the dead-letter reason of a verified message whose payload
// ConsumeJSON cannot decode into the handler's type.
const ReasonUndecodable = "undecodable"

// ConsumeJSON is Consume for JSON payloads, the counterpart of bus.PublishJSON: each verified
// message's payload is decoded into a T and passed to h with the message. A payload that does
// not decode can never succeed, so it is dead-lettered at once with reason
// [ReasonUndecodable] (not retried); h's own errors retry and dead-letter as with Consume.
// Unknown JSON fields are ignored.
func ConsumeJSON[T any](ctx context.Context, c *bus.Client, stream, durable string, h func(ctx context.Context, m *Message, v T) error, opts ...Option) (*Consumption, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	return Consume(ctx, c, stream, durable, func(ctx context.Context, m *Message) error {
		var v T
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			return Reject(ReasonUndecodable, fmt.Errorf("consumers: payload is not a %T: %w", v, err))
		}
		return h(ctx, m, v)
	}, opts...)
}
