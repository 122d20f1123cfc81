package consumers

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Handler handles one verified message. Returning nil acknowledges it; returning an error
// retries it with backoff until the consumer's last delivery, after which it is dead-lettered
// with reason max_deliveries. Returning an error made by Reject dead-letters it at once.
// A Handler may be called concurrently from several workers (WithWorkers).
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler. Consume always runs, outermost first: DeadLetter, Verify,
// the replay guard, Retry, then the middleware given with WithMiddleware (in the order given), then
// the handler. Security middleware cannot be left out.
type Middleware func(Handler) Handler

// Chain applies middleware to h so that the first middleware is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// recoverPanics turns a panic in h into an error, so one bad message cannot take a worker
// down; the message is then retried like any other handler failure.
func recoverPanics(h Handler) Handler {
	return func(ctx context.Context, m *Message) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("consumers: handler panic: %v\n%s", r, debug.Stack())
			}
		}()
		return h(ctx, m)
	}
}
