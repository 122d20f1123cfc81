package operator

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRetryResources: a stream refused for storage right after a limits change is created once
// the servers apply the new limits; other refusals are returned at once.
func TestRetryResources(t *testing.T) {
	calls := 0
	err := retryResources(context.Background(), func() error {
		calls++
		if calls < 3 {
			return &jetstream.APIError{Code: 500, ErrorCode: errCodeStorageExceeded, Description: "insufficient storage resources available"}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("after two storage refusals: %v in %d calls, want success in 3", err, calls)
	}
	calls = 0
	other := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse, Description: "stream name already in use"}
	err = retryResources(context.Background(), func() error { calls++; return other })
	if !errors.Is(err, other) || calls != 1 {
		t.Fatalf("another refusal: %v in %d calls, want it returned after one", err, calls)
	}
}
