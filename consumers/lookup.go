package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/internal/clientseam"
)

// ErrPermission reports a consumer the service's permissions do not let it use: the
// server refused the lookup (wrong durable or stream name, or another service's durable). It
// comes wrapped with ErrNoConsumer and nats.ErrPermissionViolation, with the server's reason.
var ErrPermission = errors.New("consumers: not permitted by the service's permissions")

// lookupConsumer looks the durable up and returns as soon as the server refuses the request
// with a permission error, instead of waiting for ctx's deadline (the server answers a refused
// publish with an asynchronous error, not a reply).
func lookupConsumer(ctx context.Context, link *clientseam.Link, stream, durable string) (jetstream.Consumer, error) {
	if link.Violations == nil {
		return link.JS.Consumer(ctx, stream, durable)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	denied := make(chan error, 1)
	subject := "$JS.API.CONSUMER.INFO." + stream + "." + durable
	stop := link.Violations.Watch(func(s string, err error) {
		if s == subject {
			select {
			case denied <- err:
			default:
			}
			cancel()
		}
	})
	defer stop()
	cons, err := link.JS.Consumer(ctx, stream, durable)
	if err != nil {
		select {
		case perr := <-denied:
			return nil, fmt.Errorf("%w: %w", ErrPermission, perr)
		default:
		}
	}
	return cons, err
}
