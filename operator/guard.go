package operator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// maxGuardBytes caps a replay guard store (1/32 of a finite account disk limit at most): about
// 200 bytes per message id, so 64 MiB hold the ids of ~330,000 messages, which the guard keeps
// for its horizon (about 7.5 minutes with the default windows): ~700 messages/s sustained.
// Durables that consume faster need a bigger store: ConsumerSpec.GuardMaxBytes, or
// SetGuardSize for a durable that exists.
const maxGuardBytes = 64 << 20

// MinGuardBytes is the smallest replay guard store SetGuardSize accepts.
const MinGuardBytes = 1 << 20

// GuardEntryBytes is about what one message id costs its durable's replay guard store for
// the store's horizon (the entry, its subject and headers, the store's overhead).
const GuardEntryBytes = 200

// guardKeyBytes is the size of a durable's guard key (HMAC-SHA256 key of the store's keys).
const guardKeyBytes = 32

// guardSetup prepares the replay guard of the durable described by spec on stream st (see
// [AddConsumer]) and returns the metadata the durable must carry: the guard key (kept when
// the durable already has one, existing is its metadata) and the store's horizon.
func guardSetup(ctx context.Context, js jetstream.JetStream, st *jetstream.StreamInfo, spec ConsumerSpec, ackWait time.Duration, existing map[string]string) (map[string]string, error) {
	window := max(st.Config.Duplicates, envelope.DefaultFreshness)
	horizon := consumers.GuardHorizon(window, ackWait)
	maxBytes := spec.GuardMaxBytes
	if maxBytes == 0 {
		disk := int64(-1)
		if ai, err := js.AccountInfo(ctx); err == nil {
			disk = ai.Limits.MaxStore
		}
		maxBytes = share(disk, maxGuardBytes, 32)
	}
	name := accounts.GuardStream(spec.Stream, spec.Durable)
	cfg := jetstream.StreamConfig{
		Name:              name,
		Description:       "sealbus replay guard of " + spec.Stream + ":" + spec.Durable,
		Subjects:          []string{accounts.GuardSubjects(spec.Stream, spec.Durable)},
		Storage:           jetstream.FileStorage,
		Replicas:          max(st.Config.Replicas, 1),
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		MaxMsgsPerSubject: 1,
		MaxAge:            horizon,
		MaxBytes:          maxBytes,
		AllowMsgTTL:       true,
		Duplicates:        time.Minute,
	}
	if s, err := js.Stream(ctx, name); err == nil {
		if err := isGuardStore(s, spec.Stream, spec.Durable); err != nil {
			return nil, err
		}
		if spec.GuardMaxBytes == 0 {
			// A size set earlier (SetGuardSize) is kept: shrinking a store in use could
			// stall the durable.
			cfg.MaxBytes = max(cfg.MaxBytes, s.CachedInfo().Config.MaxBytes)
		}
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("operator: replay guard of %s:%s: %w", spec.Stream, spec.Durable, err)
		}
	} else if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("operator: replay guard of %s:%s: %w", spec.Stream, spec.Durable, err)
		}
	} else {
		return nil, fmt.Errorf("operator: replay guard of %s:%s: %w", spec.Stream, spec.Durable, err)
	}
	key := existing[accounts.GuardKeyMetadata]
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != guardKeyBytes {
		b := make([]byte, guardKeyBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("operator: guard key: %w", err)
		}
		key = base64.StdEncoding.EncodeToString(b)
	}
	md := map[string]string{}
	for k, v := range existing {
		if !strings.HasPrefix(k, "_nats.") { // the server's own entries
			md[k] = v
		}
	}
	md[accounts.GuardKeyMetadata] = key
	md[accounts.GuardHorizonMetadata] = horizon.String()
	return md, nil
}

// GuardSize is the state of a durable's replay guard store.
type GuardSize struct {
	Stream   string        `json:"stream"`
	Durable  string        `json:"durable"`
	Store    string        `json:"store"`     // the store's stream
	MaxBytes int64         `json:"max_bytes"` // its size limit
	Bytes    uint64        `json:"bytes"`     // in use
	Horizon  time.Duration `json:"horizon_ns"`
	// Rate is about how many messages per second the durable can handle, sustained, before
	// its store fills and it stops handling (fail-closed) until entries expire: MaxBytes over
	// GuardEntryBytes per message kept for the horizon (entries usually expire sooner, so
	// this errs low).
	Rate int64 `json:"sustained_msgs_per_s"`
}

// SetGuardSize sets the size limit of the replay guard store of durable on stream (which must
// exist; its messages, its key and its horizon are kept) and returns the store's state. A
// durable's store holds about GuardEntryBytes per message it handles for the store's horizon;
// when it is full, the durable's deliveries are returned to the server unhandled (counted as
// GuardUnavailable) until entries expire: size it for the durable's peak sustained rate. The
// server refuses a size the account's storage limit cannot reserve. A later [AddConsumer] of
// the durable without GuardMaxBytes keeps the size.
func SetGuardSize(ctx context.Context, nc *nats.Conn, stream, durable string, maxBytes int64) (GuardSize, error) {
	if maxBytes < MinGuardBytes {
		return GuardSize{}, fmt.Errorf("%w: a replay guard store of %d bytes is smaller than %d", ErrInvalidSpec, maxBytes, MinGuardBytes)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, s, err := guardStoreOf(ctx, nc, stream, durable)
	if err != nil {
		return GuardSize{}, err
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes = maxBytes
	info, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return GuardSize{}, fmt.Errorf("operator: replay guard of %s:%s: %w", stream, durable, err)
	}
	return guardSize(stream, durable, info.CachedInfo()), nil
}

// GuardSizeOf returns the state of the replay guard store of durable on stream.
func GuardSizeOf(ctx context.Context, nc *nats.Conn, stream, durable string) (GuardSize, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	_, s, err := guardStoreOf(ctx, nc, stream, durable)
	if err != nil {
		return GuardSize{}, err
	}
	return guardSize(stream, durable, s.CachedInfo()), nil
}

// guardStoreOf finds the replay guard store of an existing durable.
func guardStoreOf(ctx context.Context, nc *nats.Conn, stream, durable string) (jetstream.JetStream, jetstream.Stream, error) {
	if !accounts.ValidName(stream) || !accounts.ValidName(durable) {
		return nil, nil, fmt.Errorf("%w: stream %q and durable %q must be names of [A-Za-z0-9_-]", ErrInvalidSpec, stream, durable)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("operator: %w", err)
	}
	if _, err := js.Consumer(ctx, stream, durable); err != nil {
		return nil, nil, fmt.Errorf("operator: durable %s on %s: %w", durable, stream, err)
	}
	name := accounts.GuardStream(stream, durable)
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("operator: replay guard of %s:%s: %w", stream, durable, err)
	}
	if err := isGuardStore(s, stream, durable); err != nil {
		return nil, nil, err
	}
	return js, s, nil
}

// isGuardStore checks that s, named as the replay guard store of durable on stream, is one.
func isGuardStore(s jetstream.Stream, stream, durable string) error {
	if got := s.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != accounts.GuardSubjects(stream, durable) {
		return fmt.Errorf("%w: stream %s exists but is not the replay guard of %s:%s (subjects %v)", ErrInvalidSpec, s.CachedInfo().Config.Name, stream, durable, got)
	}
	return nil
}

func guardSize(stream, durable string, info *jetstream.StreamInfo) GuardSize {
	g := GuardSize{
		Stream: stream, Durable: durable, Store: info.Config.Name,
		MaxBytes: info.Config.MaxBytes, Bytes: info.State.Bytes, Horizon: info.Config.MaxAge,
	}
	if secs := int64(g.Horizon / time.Second); secs > 0 && g.MaxBytes > 0 {
		g.Rate = g.MaxBytes / GuardEntryBytes / secs
	}
	return g
}
