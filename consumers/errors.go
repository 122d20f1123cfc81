package consumers

import (
	"errors"
	"fmt"

	"github.com/sealbus/sealbus/envelope"
)

// Sentinel errors. Errors returned by this package wrap one of these, a *DeadLetterError or an
// error of the packages it builds on, and are matched with [errors.Is] / [errors.As].
var (
	// ErrInvalidOption reports an invalid option value or argument.
	ErrInvalidOption = errors.New("consumers: invalid option")
	// ErrNoConsumer reports that the durable consumer does not exist or the service may
	// not use it (the operator creates durables; services cannot).
	ErrNoConsumer = errors.New("consumers: durable consumer unavailable")
	// ErrStopped reports a consumption that ended because its consumer was deleted or its
	// connection closed.
	ErrStopped = errors.New("consumers: consumption stopped")
)

// Reason codes added by this package to the envelope's reason codes. Dead letters and audit
// events carry the reason as a string.
const (
	// ReasonReplay: a verified envelope whose message id was already seen at another stream
	// position inside the freshness window (a replay under a new Nats-Msg-Id).
	ReasonReplay = "replay"
	// ReasonMaxDeliveries: the handler failed on the consumer's last allowed delivery.
	ReasonMaxDeliveries = "max_deliveries"
)

// DeadLetterError is how a middleware or handler refuses a message for good: the dead-letter
// middleware copies it to the dead-letter stream with Reason and terminates it at its source.
// Envelope rejections (*envelope.RejectError) are dead-lettered the same way.
type DeadLetterError struct {
	Reason string
	Err    error
}

func (e *DeadLetterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("consumers: rejected (%s)", e.Reason)
	}
	return fmt.Sprintf("consumers: rejected (%s): %v", e.Reason, e.Err)
}

// Unwrap returns the cause.
func (e *DeadLetterError) Unwrap() error { return e.Err }

// Reject returns an error that makes the dead-letter middleware move the message to the
// dead-letter stream with reason (lower-case letters, digits and '_'), instead of retrying it.
// Handlers use it for messages that can never succeed.
func Reject(reason string, err error) error {
	return &DeadLetterError{Reason: reason, Err: err}
}

// DeadLetterReason returns the rejection reason anywhere in err's chain: a *DeadLetterError of this
// package or an *envelope.RejectError.
func DeadLetterReason(err error) (string, bool) {
	var re *DeadLetterError
	if errors.As(err, &re) {
		return re.Reason, true
	}
	if r, ok := envelope.ReasonOf(err); ok {
		return string(r), true
	}
	return "", false
}

// validReason reports whether a reason is usable as a subject token and header value.
func validReason(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
