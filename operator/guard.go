package operator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// maxGuardBytes caps a replay guard store (1/32 of a finite account disk limit at most): about
// 200 bytes per message id, so 64 MiB hold the ids of ~330,000 messages, which the guard keeps
// for its horizon (about 7.5 minutes with the default windows): ~700 messages/s sustained.
// Durables that consume faster need ConsumerSpec.GuardMaxBytes.
const maxGuardBytes = 64 << 20

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
		got := s.CachedInfo().Config.Subjects
		if len(got) != 1 || got[0] != cfg.Subjects[0] {
			return nil, fmt.Errorf("%w: stream %s exists but is not the replay guard of %s:%s (subjects %v)", ErrInvalidSpec, name, spec.Stream, spec.Durable, got)
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
