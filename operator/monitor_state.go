package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
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
// [accounts.MonitorBucket] of the operator account ([MonitorStateStore]), so a monitor
// restarted on another host resumes too.
//
// With JS set (as [MonitorStateStore] sets it), LoadState asks the bucket's stream leader,
// which has every acknowledged save. Without it, LoadState reads through KV.Get, which in a
// cluster is a direct get that any replica may answer, one that has not applied the last
// save yet among them; a monitor restarted from that older state reports again the
// incidents it opened after it.
type KVStateStore struct {
	KV  jetstream.KeyValue
	JS  jetstream.JetStream // the bucket's JetStream, for reading through the leader
	Key string              // default "state"
}

func (s KVStateStore) key() string {
	if s.Key == "" {
		return "state"
	}
	return s.Key
}

// LoadState reads the key; a missing or deleted key is no state.
func (s KVStateStore) LoadState(ctx context.Context) ([]byte, error) {
	if s.JS != nil {
		return s.loadFromLeader(ctx)
	}
	e, err := s.KV.Get(ctx, s.key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state: %w", err)
	}
	return e.Value(), nil
}

// loadFromLeader reads the key's last value with the stream API's message get, which only
// the stream's leader answers (the direct get the KV uses is answered by any replica).
func (s KVStateStore) loadFromLeader(ctx context.Context) ([]byte, error) {
	bucket := s.KV.Bucket()
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + s.key()})
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	reply, err := s.JS.Conn().RequestWithContext(ctx, jsAPIPrefix(s.JS)+"STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("operator: monitor state: %w", err)
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
		Msg   *struct {
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("operator: monitor state: unreadable answer from the bucket's leader: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case resp.Error != nil:
		return nil, fmt.Errorf("operator: monitor state: %w", resp.Error)
	case resp.Msg == nil:
		return nil, fmt.Errorf("operator: monitor state: the bucket's leader answered without a message")
	}
	if len(resp.Msg.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Msg.Header)
		if err != nil {
			return nil, fmt.Errorf("operator: monitor state: unreadable headers: %w", err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil, nil
		}
	}
	return resp.Msg.Data, nil
}

// jsAPIPrefix is the JetStream API prefix js sends its requests with.
func jsAPIPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// SaveState puts the key.
func (s KVStateStore) SaveState(ctx context.Context, state []byte) error {
	if _, err := s.KV.Put(ctx, s.key(), state); err != nil {
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			// What nats.go says of a publish while reconnecting with no reconnect buffer
			// (ConnectMonitor's connections buffer nothing).
			return fmt.Errorf("operator: monitor state: not connected (reconnecting): %w", err)
		}
		return fmt.Errorf("operator: monitor state: %w", err)
	}
	return nil
}

// MonitorStateStore is the monitor's state store in the operator account js is connected to:
// the key "state" of the bucket [accounts.MonitorBucket] (created with the operator account,
// [Provisioner.SetupOperatorAccount]), read through the bucket's leader.
func MonitorStateStore(ctx context.Context, js jetstream.JetStream) (KVStateStore, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := js.KeyValue(ctx, accounts.MonitorBucket)
	if err != nil {
		return KVStateStore{}, fmt.Errorf("operator: monitor state bucket (run the monitoring setup first): %w", err)
	}
	return KVStateStore{KV: kv, JS: js}, nil
}
