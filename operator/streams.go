package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// Retention of the sealbus streams of every account.
const (
	// DirectoryHistory is the number of revisions the directory keeps per key: the most
	// JetStream KV allows (jetstream.KeyValueMaxHistory), so junk a service makes the server
	// store under a key (see docs/PERMISSIONS.md) has to be repeated that many times to push
	// the admin's last write out of the history.
	DirectoryHistory = jetstream.KeyValueMaxHistory
	// DLQMaxAge is how long dead letters are kept.
	DLQMaxAge = 30 * 24 * time.Hour
	// AuditMaxAge is how long audit events are kept.
	AuditMaxAge = 30 * 24 * time.Hour
	// maxSealbusStreamBytes caps the DLQ and audit streams; each takes at most 1/8 of a
	// finite account disk limit so application streams keep most of it.
	maxSealbusStreamBytes = 128 << 20
	// maxDirectoryBytes caps the directory bucket (1/16 of a finite disk limit at most).
	maxDirectoryBytes = 16 << 20
)

// SetupAccount prepares acct on the server behind nc, which must be an admin connection of
// that account ([ConnectAdmin]). It is idempotent: it creates or updates the directory KV
// bucket ([accounts.DirectoryBucket], history [DirectoryHistory], hardened against
// replayed purge markers: no roll-ups, no purge, no message deletes), the dead-letter stream
// ([accounts.DLQStream], sealbus.dlq.>) and the audit stream ([accounts.AuditStream],
// sealbus.audit.>) — file storage, the given replicas (1 when < 1), a duplicate window of the
// envelope freshness window, old entries discarded past their age or size — then puts the
// account JWT into the directory. The account's JWT must already be on the server
// ([PushAccount]) with JetStream disk storage enabled.
func SetupAccount(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int) error {
	if acct == nil || acct.Claims == nil {
		return fmt.Errorf("%w: nil account", ErrInvalidSpec)
	}
	if replicas < 1 {
		replicas = 1
	}
	disk := acct.Claims.Limits.DiskStorage
	if disk == 0 {
		return fmt.Errorf("%w: account %s has no JetStream disk storage", ErrInvalidSpec, acct.Name)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	if err := setupDirectory(ctx, js, acct.Name, replicas, share(disk, maxDirectoryBytes, 16)); err != nil {
		return err
	}
	for _, s := range []struct {
		name, prefix, desc string
		age                time.Duration
	}{
		{accounts.DLQStream, accounts.DLQSubjectPrefix, "sealbus dead letters", DLQMaxAge},
		{accounts.AuditStream, accounts.AuditSubjectPrefix, "sealbus audit events", AuditMaxAge},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        s.name,
			Description: s.desc,
			Subjects:    []string{s.prefix + ".>"},
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      s.age,
			MaxBytes:    share(disk, maxSealbusStreamBytes, 8),
			Duplicates:  envelope.DefaultFreshness,
		}); err != nil {
			return fmt.Errorf("operator: stream %s of %s: %w", s.name, acct.Name, err)
		}
	}
	return PutAccountJWT(ctx, nc, acct.JWT)
}

// setupDirectory creates the directory bucket, or brings an existing one to the sealbus
// settings. The bucket is a standard
// JetStream KV bucket (nats.go and the nats CLI read and watch it as usual) whose stream,
// [accounts.DirectoryStream], is then updated beyond what the KV API sets:
//
//   - AllowRollup false: a message carrying a Nats-Rollup header is refused, so a purge marker
//     a service makes the server copy into the directory (a Direct Get reply sent to a
//     "$KV.SEALBUS_DIRECTORY.<key>" reply subject, see docs/PERMISSIONS.md) cannot wipe a key's
//     history. KV Purge is therefore refused too; admins remove a card with a delete marker
//     ([DeleteCard]).
//   - DenyPurge and DenyDelete true: the stream cannot be purged nor its messages deleted
//     through the JetStream API, whoever asks. The server never allows these to be turned off
//     again.
//   - MaxMsgsPerSubject [DirectoryHistory] (64, the KV maximum).
//
// A stream of that name that is not a KV stream of the bucket's subjects is refused
// ([ErrInvalidSpec]).
func setupDirectory(ctx context.Context, js jetstream.JetStream, acctName string, replicas int, maxBytes int64) error {
	of := ""
	if acctName != "" {
		of = " of " + acctName
	}
	st, err := js.Stream(ctx, accounts.DirectoryStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      accounts.DirectoryBucket,
			Description: directoryDescription,
			History:     DirectoryHistory,
			Replicas:    replicas,
			Storage:     jetstream.FileStorage,
			MaxBytes:    maxBytes,
		})
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("operator: directory bucket%s: %w", of, err)
		}
		st, err = js.Stream(ctx, accounts.DirectoryStream)
	}
	if err != nil {
		return fmt.Errorf("operator: directory bucket%s: %w", of, err)
	}
	cfg := st.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != accounts.DirectorySubjects || cfg.Mirror != nil || len(cfg.Sources) > 0 {
		return fmt.Errorf("%w: stream %s%s exists but is not the directory bucket", ErrInvalidSpec, accounts.DirectoryStream, of)
	}
	hardenDirectory(&cfg, replicas, maxBytes)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("operator: hardening the directory bucket%s: %w", of, err)
	}
	return nil
}

const (
	directoryDescription = "sealbus directory: account JWT and identity cards"
)

// hardenDirectory applies the sealbus settings to the directory's stream configuration (see
// setupDirectory); the rest stays as the KV API made it.
func hardenDirectory(cfg *jetstream.StreamConfig, replicas int, maxBytes int64) {
	cfg.Description = directoryDescription
	cfg.Replicas = replicas
	if maxBytes > 0 {
		cfg.MaxBytes = maxBytes
	}
	cfg.MaxMsgsPerSubject = DirectoryHistory
	cfg.AllowRollup = false
	cfg.DenyPurge = true
	cfg.DenyDelete = true
	cfg.AllowDirect = true
}

// share returns min(ceiling, disk/div) for a finite disk limit, ceiling otherwise.
func share(disk, ceiling, div int64) int64 {
	if disk > 0 && disk/div < ceiling {
		return disk / div
	}
	return ceiling
}

func directory(ctx context.Context, nc *nats.Conn) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	kv, err := js.KeyValue(ctx, accounts.DirectoryBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w (run account setup first): %w", ErrNoDirectory, err)
	}
	if err != nil {
		return nil, fmt.Errorf("operator: directory: %w", err)
	}
	return kv, nil
}

// PutAccountJWT writes accountJWT under [accounts.DirectoryAccountKey] in the directory of
// the account nc is connected to. Readers verify it; storage is not trusted.
func PutAccountJWT(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	if _, err := jwt.DecodeAccountClaims(accountJWT); err != nil {
		return fmt.Errorf("%w: not an account JWT: %v", ErrInvalidSpec, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := directory(ctx, nc)
	if err != nil {
		return err
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryAccountKey, accountJWT); err != nil {
		return fmt.Errorf("operator: putting the account JWT: %w", err)
	}
	return nil
}

// PublishCard writes a service's identity card under [accounts.DirectoryCardKey] in the
// directory. The card must decode, verify against its own issuer and name serviceName.
func PublishCard(ctx context.Context, nc *nats.Conn, serviceName, cardToken string) error {
	if !accounts.ValidName(serviceName) {
		return fmt.Errorf("%w: service name %q", ErrInvalidSpec, serviceName)
	}
	c, err := accounts.DecodeCard(cardToken)
	if err != nil {
		return fmt.Errorf("%w: card of %s: %w", ErrInvalidSpec, serviceName, err)
	}
	if c.Name != serviceName {
		return fmt.Errorf("%w: card names %q, not %q", ErrInvalidSpec, c.Name, serviceName)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := directory(ctx, nc)
	if err != nil {
		return err
	}
	if _, err := kv.PutString(ctx, accounts.DirectoryCardKey(serviceName), cardToken); err != nil {
		return fmt.Errorf("operator: publishing the card of %s: %w", serviceName, err)
	}
	return nil
}

// DeleteCard removes a service's card from the directory (revocation is what makes a card
// unusable; deleting only tidies the directory). A missing card is not an error.
func DeleteCard(ctx context.Context, nc *nats.Conn, serviceName string) error {
	if !accounts.ValidName(serviceName) {
		return fmt.Errorf("%w: service name %q", ErrInvalidSpec, serviceName)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := directory(ctx, nc)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, accounts.DirectoryCardKey(serviceName)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("operator: deleting the card of %s: %w", serviceName, err)
	}
	return nil
}

// StreamSpec describes an application stream.
type StreamSpec struct {
	Name       string
	Subjects   []string
	Replicas   int           // 1 when < 1
	MaxAge     time.Duration // 0 = no age limit
	MaxBytes   int64         // 0 = no size limit beyond the account's
	Duplicates time.Duration // duplicate window; 0 = envelope.DefaultFreshness, never less
	Storage    jetstream.StorageType
}

// Validate checks the name (not reserved for sealbus or KV buckets), the subjects (application
// subjects only) and the duplicate window.
func (s StreamSpec) Validate() error {
	if !accounts.ValidName(s.Name) {
		return fmt.Errorf("%w: stream name %q must be 1-64 characters of [A-Za-z0-9_-]", ErrInvalidSpec, s.Name)
	}
	if strings.HasPrefix(s.Name, "SEALBUS_") || strings.HasPrefix(s.Name, "KV_") || strings.HasPrefix(s.Name, "OBJ_") {
		return fmt.Errorf("%w: stream name %q is reserved", ErrInvalidSpec, s.Name)
	}
	if len(s.Subjects) == 0 {
		return fmt.Errorf("%w: stream %s needs at least one subject", ErrInvalidSpec, s.Name)
	}
	for _, subj := range s.Subjects {
		if err := accounts.CheckAppSubject("stream", subj); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	if s.Duplicates != 0 && s.Duplicates < envelope.DefaultFreshness {
		return fmt.Errorf("%w: duplicate window %v is shorter than the freshness window %v", ErrInvalidSpec, s.Duplicates, envelope.DefaultFreshness)
	}
	dup := s.duplicates()
	if s.MaxAge > 0 && s.MaxAge < dup {
		return fmt.Errorf("%w: max age %v is shorter than the duplicate window %v", ErrInvalidSpec, s.MaxAge, dup)
	}
	if s.MaxAge < 0 || s.MaxBytes < 0 || s.Replicas > 5 {
		return fmt.Errorf("%w: negative limit or more than 5 replicas", ErrInvalidSpec)
	}
	if s.Storage != jetstream.FileStorage && s.Storage != jetstream.MemoryStorage {
		return fmt.Errorf("%w: storage type %v", ErrInvalidSpec, s.Storage)
	}
	return nil
}

func (s StreamSpec) duplicates() time.Duration {
	if s.Duplicates == 0 {
		return envelope.DefaultFreshness
	}
	return s.Duplicates
}

// AddStream creates the stream, or updates it when it exists.
func AddStream(ctx context.Context, nc *nats.Conn, spec StreamSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	replicas := max(spec.Replicas, 1)
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:       spec.Name,
		Subjects:   spec.Subjects,
		Storage:    spec.Storage,
		Replicas:   replicas,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     spec.MaxAge,
		Duplicates: spec.duplicates(),
	}
	if spec.MaxBytes > 0 {
		cfg.MaxBytes = spec.MaxBytes
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("operator: stream %s: %w", spec.Name, err)
	}
	return nil
}

// Streams lists the account's streams, sealbus's own included.
func Streams(ctx context.Context, nc *nats.Conn) ([]*jetstream.StreamInfo, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	var out []*jetstream.StreamInfo
	l := js.ListStreams(ctx)
	for si := range l.Info() {
		out = append(out, si)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("operator: listing streams: %w", err)
	}
	return out, nil
}

// StreamSubjects returns the subjects of a stream.
func StreamSubjects(ctx context.Context, nc *nats.Conn, stream string) ([]string, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("operator: stream %s: %w", stream, err)
	}
	return st.CachedInfo().Config.Subjects, nil
}

// ConsumerSpec describes a durable pull consumer a service uses.
type ConsumerSpec struct {
	Stream, Durable string
	FilterSubjects  []string        // empty = the whole stream
	MaxDeliver      int             // 0 = DefaultMaxDeliver
	BackOff         []time.Duration // redelivery delays; fewer entries than MaxDeliver
	AckWait         time.Duration   // 0 = DefaultAckWait (ignored by the server when BackOff is set)
	MaxAckPending   int             // 0 = the server's or account's default
	// GuardMaxBytes is the size of the durable's replay guard store (0 = 64 MiB, at most 1/32
	// of a finite account disk limit); it holds about 200 bytes per message for the guard's
	// horizon, see [AddConsumer].
	GuardMaxBytes int64
}

// Consumer defaults.
const (
	DefaultMaxDeliver = 5
	DefaultAckWait    = 30 * time.Second
)

// AddConsumer creates (or updates) a durable pull consumer with explicit acks delivering the
// whole stream from the start, and its replay guard: the stream [accounts.GuardStream]
// (subjects [accounts.GuardSubjects], file storage, the replicas of the consumer's stream,
// one message per subject, discard new, per-message TTLs, kept at most
// consumers.GuardHorizon of the stream's duplicate window and the AckWait, GuardMaxBytes)
// where the processes consuming the durable record the message ids they handle, and the
// durable's metadata the guard reads ([accounts.GuardKeyMetadata], kept across updates, and
// [accounts.GuardHorizonMetadata]). Only the durable's service may use the store
// (accounts.Permissions).
func AddConsumer(ctx context.Context, nc *nats.Conn, spec ConsumerSpec) error {
	if !accounts.ValidName(spec.Stream) || !accounts.ValidName(spec.Durable) {
		return fmt.Errorf("%w: consumer %s:%s", ErrInvalidSpec, spec.Stream, spec.Durable)
	}
	maxDeliver := spec.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = DefaultMaxDeliver
	}
	if maxDeliver < 1 || spec.AckWait < 0 || spec.MaxAckPending < 0 || spec.GuardMaxBytes < 0 {
		return fmt.Errorf("%w: consumer %s:%s: negative limit", ErrInvalidSpec, spec.Stream, spec.Durable)
	}
	if len(spec.BackOff) >= maxDeliver {
		return fmt.Errorf("%w: consumer %s:%s: %d backoff delays need max deliver above %d", ErrInvalidSpec, spec.Stream, spec.Durable, len(spec.BackOff), len(spec.BackOff))
	}
	for _, f := range spec.FilterSubjects {
		if err := accounts.CheckAppSubject("consumer filter", f); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	ackWait := spec.AckWait
	if ackWait == 0 {
		ackWait = DefaultAckWait
	}
	if len(spec.BackOff) > 0 && ackWait < spec.BackOff[0] {
		ackWait = spec.BackOff[0]
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    maxDeliver,
		BackOff:       spec.BackOff,
		AckWait:       ackWait,
		MaxAckPending: spec.MaxAckPending,
	}
	switch len(spec.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = spec.FilterSubjects[0]
	default:
		cfg.FilterSubjects = spec.FilterSubjects
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	st, err := js.Stream(ctx, spec.Stream)
	if err != nil {
		return fmt.Errorf("operator: consumer %s:%s: %w", spec.Stream, spec.Durable, err)
	}
	var existing map[string]string
	if c, err := js.Consumer(ctx, spec.Stream, spec.Durable); err == nil {
		existing = c.CachedInfo().Config.Metadata
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("operator: consumer %s:%s: %w", spec.Stream, spec.Durable, err)
	}
	redelivery := ackWait // the longest a redelivery waits
	for _, b := range spec.BackOff {
		redelivery = max(redelivery, b)
	}
	if cfg.Metadata, err = guardSetup(ctx, js, st.CachedInfo(), spec, redelivery, existing); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, cfg); err != nil {
		return fmt.Errorf("operator: consumer %s:%s: %w", spec.Stream, spec.Durable, err)
	}
	return nil
}

// ConsumerFilter returns the filter subjects of a service's durable on a stream: each
// subscribe subject the stream's subjects cover, and each stream subject a subscribe subject
// covers. An empty result means the service reads nothing from that stream.
func ConsumerFilter(subscribe, streamSubjects []string) []string {
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	for _, sub := range subscribe {
		for _, ss := range streamSubjects {
			switch {
			case accounts.SubjectSubset(sub, ss):
				add(sub)
			case accounts.SubjectSubset(ss, sub):
				add(ss)
			}
		}
	}
	return out
}
