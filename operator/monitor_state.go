package operator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/atomicfile"
)

// StateStore keeps a monitor's state between runs ([WithStateStore]). LoadState returns nil
// (and no error) when nothing was saved yet.
type StateStore interface {
	LoadState(ctx context.Context) ([]byte, error)
	SaveState(ctx context.Context, state []byte) error
}

// FileStateStore keeps the state in a file, written atomically, mode 0600 (it names user keys
// and client addresses).
type FileStateStore string

// LoadState reads the file; a missing file is no state.
func (f FileStateStore) LoadState(context.Context) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state: %w", err)
	}
	return b, nil
}

// SaveState writes the file.
func (f FileStateStore) SaveState(_ context.Context, state []byte) error {
	return atomicfile.Write(string(f), state, atomicfile.Private)
}

// KVStateStore keeps the state under one key of a JetStream KV bucket, normally
// [accounts.MonitorBucket] of the operator account ([MonitorStateBucket]), so a monitor
// restarted on another host resumes too.
type KVStateStore struct {
	KV  jetstream.KeyValue
	Key string // default "state"
}

func (s KVStateStore) key() string {
	if s.Key == "" {
		return "state"
	}
	return s.Key
}

// LoadState reads the key; a missing key is no state.
func (s KVStateStore) LoadState(ctx context.Context) ([]byte, error) {
	e, err := s.KV.Get(ctx, s.key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state: %w", err)
	}
	return e.Value(), nil
}

// SaveState puts the key.
func (s KVStateStore) SaveState(ctx context.Context, state []byte) error {
	if _, err := s.KV.Put(ctx, s.key(), state); err != nil {
		return fmt.Errorf("operator: monitor state: %w", err)
	}
	return nil
}

// MonitorStateBucket opens the monitor's state bucket [accounts.MonitorBucket] in the
// operator account js is connected to (created with the operator account, [Provisioner.SetupOperatorAccount]).
func MonitorStateBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := js.KeyValue(ctx, accounts.MonitorBucket)
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state bucket (run the monitoring setup first): %w", err)
	}
	return kv, nil
}
