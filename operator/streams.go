package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// Retention of the sealbus streams of every account.
const (
	// DLQMaxAge is how long dead letters are kept.
	DLQMaxAge = 30 * 24 * time.Hour
	// AuditMaxAge is how long audit events are kept.
	AuditMaxAge = 30 * 24 * time.Hour
	// maxSealbusStreamBytes caps the evidence budget of the DLQ and of the audit stream; each
	// gets at most 1/8 of a finite account disk limit so application streams keep most of it.
	maxSealbusStreamBytes = 1 << 30
)

// Evidence stream limits (docs/ARCHITECTURE.md, "Streams and subjects").
const (
	// AuditMaxRecord is the largest audit record the audit stream stores (JetStream
	// MaxMsgSize, headers included): an SDK event with its writer's card fits many times.
	AuditMaxRecord = 16 << 10
	// DLQMaxRecord is the largest dead-letter record the dead-letter stream stores: an
	// envelope of consumers.MaxDeadLetterEnvelope with its metadata and the writer's card.
	DLQMaxRecord = consumers.MaxDeadLetterEnvelope + 32<<10
	// MinEvidenceQuota is the fewest records per writer subject SetupEvidence accepts; an
	// account whose disk share cannot give every writer that many is refused.
	MinEvidenceQuota = 16
	// MaxEvidenceQuota caps the records per writer subject.
	MaxEvidenceQuota = 100_000
	// evidenceSlotOverhead bounds what the store adds per message (subject, sequence, time,
	// hash), so a writer's byte bound is quota × (max record + overhead).
	evidenceSlotOverhead = 256
)

// SetupAccount prepares a tenant account on the server behind nc, which must be an admin
// connection of that account ([ConnectAdmin]). It is idempotent: it creates or updates the
// evidence streams ([SetupEvidence] with the writers the streams already list;
// [Provisioner.SetupAccount] also adds every service of the keystore as a writer) and the
// account's directory view ([accounts.DirectoryView]), a mirror of the
// operator account's directory filtered to this account's keys. It deletes the directory
// bucket earlier versions kept inside the account. The account's JWT must already be on the
// server ([PushAccount]) with JetStream disk storage enabled and import the operator
// account's views ([accounts.Account.ImportOperatorViews]); the account JWT itself goes into
// the directory with [PutAccountJWT] ([Provisioner.SetupAccount] does both).
func SetupAccount(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int) error {
	if acct == nil || acct.Claims == nil {
		return fmt.Errorf("%w: nil account", ErrInvalidSpec)
	}
	if accounts.ReservedAccountName(acct.Name) {
		return fmt.Errorf("%w: %s is not a tenant account", ErrInvalidSpec, acct.Name)
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
	if _, err := SetupEvidence(ctx, nc, acct, replicas, nil); err != nil {
		return err
	}
	return setupView(ctx, js, acct, replicas, share(disk, maxViewBytes, 16))
}

// EvidenceQuota is what [SetupEvidence] configured for one evidence stream.
type EvidenceQuota struct {
	Stream    string
	Writers   int   // writer subjects the stream lists
	PerWriter int64 // records each writer subject may hold (MaxMsgsPerSubject)
	MaxRecord int32 // largest record stored (MaxMsgSize)
	Created   bool  // the stream did not exist before
}

// AdminEvidenceToken returns the token of acct's admin audit subject
// ([accounts.AdminAuditSubject]), derived from its first signing key
// ([envelope.DeriveSubjectToken]): only the holder of that key can name the subject.
func AdminEvidenceToken(acct *accounts.Account) (string, error) {
	if acct == nil || len(acct.SigningKeys) == 0 {
		return "", fmt.Errorf("%w: account has no signing key", ErrInvalidSpec)
	}
	tok, err := envelope.DeriveSubjectToken(acct.SigningKeys[0], acct.PublicKey())
	if err != nil {
		return "", fmt.Errorf("%w: admin evidence token of %s: %w", accounts.ErrNoSeed, acct.Name, err)
	}
	return tok, nil
}

// SetupEvidence creates or updates the account's evidence streams, [accounts.AuditStream] and
// [accounts.DLQStream], so that each writer has its own subjects and quota:
//
//   - Subjects: exactly the writers' literal subjects (each service's audit and overflow
//     subject, and its dead-letter subject when it declares consumers; the operator's admin
//     subject in both), never a wildcard, so whatever is sent anywhere else under
//     "sealbus." — for instance a JetStream API answer a service made the server publish
//     with a reply subject — is stored by no stream. A subject the streams list that no
//     writer uses any more (its token rotated) is kept while it holds records.
//   - Per-writer quota: MaxMsgsPerSubject with DiscardNew and DiscardNewPerSubject, so a
//     writer that floods its subject is refused at that subject (JetStream error 10077) and
//     can neither evict nor block another writer's records; MaxMsgSize ([AuditMaxRecord],
//     [DLQMaxRecord]), so the quota bounds bytes too. The quota is the stream's budget (1/8
//     of a finite account disk limit, at most 1 GiB) divided among the writer subjects; an
//     account that cannot give each at least [MinEvidenceQuota] is refused ([ErrInvalidSpec]).
//     MaxBytes is the budget plus what the stream already holds (records of retired subjects
//     included), so the stream-wide limit is never what refuses a writer. The budget is divided
//     by the replicas: the account's disk limit counts every replica.
//   - File storage, the given replicas, a duplicate window of the envelope freshness window,
//     records kept [AuditMaxAge] / [DLQMaxAge].
//
// services are all of the account's services (their specs carry their evidence tokens); nil
// keeps every writer the streams already list (and adds the admin subject).
func SetupEvidence(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int, services []accounts.ServiceSpec) ([]EvidenceQuota, error) {
	if acct == nil || acct.Claims == nil {
		return nil, fmt.Errorf("%w: nil account", ErrInvalidSpec)
	}
	if replicas < 1 {
		replicas = 1
	}
	admin, err := AdminEvidenceToken(acct)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	audit := []string{accounts.AdminAuditSubject(admin)}
	// Nothing writes the admin's dead-letter subject: it keeps the dead-letter stream valid (a
	// stream needs a subject) while no service of the account consumes, and only an admin
	// could publish on it.
	dlq := []string{accounts.DLQSubject(accounts.AdminWriter, admin)}
	for _, s := range services {
		if s.EvidenceToken == "" {
			continue // created before per-writer subjects; it cannot write evidence
		}
		audit = append(audit, accounts.AuditSubject(s.Name, s.EvidenceToken), accounts.AuditOverflowSubject(s.Name, s.EvidenceToken))
		if len(s.Consumers) > 0 {
			dlq = append(dlq, accounts.DLQSubject(s.Name, s.EvidenceToken))
		}
	}
	// The account's disk limit counts every replica: each evidence stream's budget is its share
	// of the disk divided by its replicas, so the two together reserve at most a quarter.
	budget := share(acct.Claims.Limits.DiskStorage, maxSealbusStreamBytes, 8) / int64(replicas)
	var out []EvidenceQuota
	for _, st := range []struct {
		name, desc string
		subjects   []string
		maxRecord  int32
		age        time.Duration
	}{
		{accounts.DLQStream, "sealbus dead letters: signed records, one subject and quota per writer", dlq, DLQMaxRecord, DLQMaxAge},
		{accounts.AuditStream, "sealbus audit events: signed records, one subject and quota per writer", audit, AuditMaxRecord, AuditMaxAge},
	} {
		q, err := setupEvidenceStream(ctx, js, acct.Name, st.name, st.desc, st.subjects, services == nil, st.maxRecord, st.age, budget, replicas)
		if err != nil {
			return out, err
		}
		out = append(out, q)
	}
	return out, nil
}

// setupEvidenceStream creates or updates one evidence stream with the want subjects, plus the
// evidence subjects it already lists: all of them with keepAll, else those that hold records.
func setupEvidenceStream(ctx context.Context, js jetstream.JetStream, acctName, name, desc string, want []string, keepAll bool, maxRecord int32, age time.Duration, budget int64, replicas int) (EvidenceQuota, error) {
	q := EvidenceQuota{Stream: name, MaxRecord: maxRecord}
	var stored int64
	subjects := slices.Clone(want)
	st, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		q.Created = true
	case err != nil:
		return q, fmt.Errorf("operator: stream %s of %s: %w", name, acctName, err)
	default:
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err != nil {
			return q, fmt.Errorf("operator: stream %s of %s: %w", name, acctName, err)
		}
		stored = int64(info.State.Bytes)
		for _, s := range info.Config.Subjects {
			// Keep a subject no writer uses any more (a rotated token) while it holds records,
			// so they stay attributable and counted in the quotas; an old wildcard
			// configuration ("sealbus.audit.>") is replaced.
			if _, ok := accounts.ParseEvidenceSubject(s); ok && (keepAll || info.State.Subjects[s] > 0) && !slices.Contains(subjects, s) {
				subjects = append(subjects, s)
			}
		}
	}
	slices.Sort(subjects)
	q.Writers = len(subjects)
	per := budget / (int64(len(subjects)) * (int64(maxRecord) + evidenceSlotOverhead))
	if per < MinEvidenceQuota {
		return q, fmt.Errorf("%w: account %s: %d evidence writers in %s get %d records each (at least %d): raise the account's disk storage",
			ErrInvalidSpec, acctName, len(subjects), name, per, MinEvidenceQuota)
	}
	q.PerWriter = min(per, MaxEvidenceQuota)
	cfg := jetstream.StreamConfig{
		Name:                 name,
		Description:          desc,
		Subjects:             subjects,
		Storage:              jetstream.FileStorage,
		Replicas:             replicas,
		Retention:            jetstream.LimitsPolicy,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgsPerSubject:    q.PerWriter,
		MaxMsgSize:           maxRecord,
		MaxBytes:             stored + budget,
		MaxAge:               age,
		Duplicates:           envelope.DefaultFreshness,
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return q, fmt.Errorf("operator: stream %s of %s: %w", name, acctName, err)
	}
	return q, nil
}

const viewDescription = "sealbus directory view: read-only mirror of this account's part of the operator account's directory"

// setupView creates the account's directory view, or brings an existing one to the sealbus
// settings. The view is a mirror of [accounts.DirectoryStream] in the operator account,
// filtered to [accounts.DirectoryFilter] of the account (so the server sends its consumer
// creation on the filtered form, which the operator account's export pins to this account),
// reached through the imports under [accounts.OperatorAPIPrefix]. It has no subjects: no
// publish, and no reply or deliver subject anyone names, is stored in it. It keeps the last
// value of each key and allows direct gets (the only way services read it).
func setupView(ctx context.Context, js jetstream.JetStream, acct *accounts.Account, replicas int, maxBytes int64) error {
	pub := acct.PublicKey()
	if legacy, err := js.Stream(ctx, accounts.DirectoryStream); err == nil {
		// The directory of earlier versions, inside the account, where services could make the
		// server store junk under its keys. The operator account holds the directory now.
		if cfg := legacy.CachedInfo().Config; len(cfg.Subjects) == 1 && cfg.Subjects[0] == accounts.DirectorySubjects {
			if err := js.DeleteStream(ctx, accounts.DirectoryStream); err != nil {
				return fmt.Errorf("operator: removing the old directory bucket of %s: %w", acct.Name, err)
			}
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("operator: directory of %s: %w", acct.Name, err)
	}
	mirror := &jetstream.StreamSource{
		Name:          accounts.DirectoryStream,
		FilterSubject: accounts.DirectoryFilter(pub),
		External: &jetstream.ExternalStream{
			APIPrefix:     accounts.OperatorAPIPrefix,
			DeliverPrefix: accounts.DirectoryDeliverPrefix(pub),
		},
	}
	cfg := jetstream.StreamConfig{
		Name:              accounts.DirectoryView,
		Description:       viewDescription,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		MaxBytes:          maxBytes,
		Mirror:            mirror,
		AllowDirect:       true,
	}
	st, err := js.Stream(ctx, accounts.DirectoryView)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("operator: directory view of %s: %w", acct.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("operator: directory view of %s: %w", acct.Name, err)
	}
	have := st.CachedInfo().Config
	if m := have.Mirror; len(have.Subjects) > 0 || m == nil || m.Name != mirror.Name || m.FilterSubject != mirror.FilterSubject ||
		m.External == nil || m.External.APIPrefix != mirror.External.APIPrefix || m.External.DeliverPrefix != mirror.External.DeliverPrefix {
		return fmt.Errorf("%w: stream %s of %s exists but is not the directory view", ErrInvalidSpec, accounts.DirectoryView, acct.Name)
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("operator: directory view of %s: %w", acct.Name, err)
	}
	return nil
}

// share returns min(ceiling, disk/div) for a finite disk limit, ceiling otherwise.
func share(disk, ceiling, div int64) int64 {
	if disk > 0 && disk/div < ceiling {
		return disk / div
	}
	return ceiling
}

// StreamSpec describes an application stream.
//
// By default a full stream refuses new messages instead of removing old ones (discard new):
// nothing a publisher sends, however much, removes a message another publisher stored and a
// consumer has not read yet; the flooding publisher gets the error (JetStream 503, error code
// 10077, "maximum bytes exceeded" or "maximum messages per subject exceeded"), and so do
// publishers that come after it while the stream is full. docs/PERMISSIONS.md, "Streams: no
// eviction by a neighbour", states the guarantee and its limits.
type StreamSpec struct {
	Name     string
	Subjects []string
	Replicas int           // 1 when < 1
	MaxAge   time.Duration // 0 = no age limit
	// MaxBytes caps the stream's size. 0 means, when the account's storage limit of that type
	// is finite, half of what the account's other streams have not reserved, at most a quarter
	// of the limit, divided by the replicas (so a full stream leaves room for the account's
	// other streams, dead letters and audit events included); no cap otherwise.
	MaxBytes   int64
	Duplicates time.Duration // duplicate window; 0 = envelope.DefaultFreshness, never less
	Storage    jetstream.StorageType
	// MaxMsgsPerSubject caps the messages kept per subject (0 = no cap). With discard new, a
	// publish beyond the cap fails at its publisher while other subjects still take messages,
	// so a publisher flooding its own subjects cannot fill the stream for the others.
	MaxMsgsPerSubject int64
	// DiscardOld makes a full stream remove its oldest messages to take new ones: any
	// publisher can then push out messages of others that no consumer has read. Off by
	// default; set it only for streams whose readers can afford to lose messages.
	DiscardOld bool
}

// Validate checks the name (not reserved for sealbus or KV buckets), the subjects (application
// subjects only), the duplicate window and the limits.
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
	if s.MaxAge < 0 || s.MaxBytes < 0 || s.MaxMsgsPerSubject < 0 || s.Replicas > 5 {
		return fmt.Errorf("%w: negative limit or more than 5 replicas", ErrInvalidSpec)
	}
	if s.DiscardOld && s.MaxMsgsPerSubject > 0 {
		return fmt.Errorf("%w: a per-subject cap with discard old removes a subject's oldest messages; use one or the other", ErrInvalidSpec)
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

// AddStream creates the stream, or updates it when it exists, with the settings of spec (see
// [StreamSpec]: discard new unless DiscardOld, roll-ups refused, the default size cap).
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
		Discard:    jetstream.DiscardNew,
		MaxAge:     spec.MaxAge,
		Duplicates: spec.duplicates(),
		// A message with a Nats-Rollup header would remove the subject's earlier messages.
		AllowRollup: false,
	}
	if spec.DiscardOld {
		cfg.Discard = jetstream.DiscardOld
	}
	if spec.MaxMsgsPerSubject > 0 {
		cfg.MaxMsgsPerSubject = spec.MaxMsgsPerSubject
		cfg.DiscardNewPerSubject = true
	}
	cfg.MaxBytes = spec.MaxBytes
	if cfg.MaxBytes == 0 {
		if cfg.MaxBytes, err = defaultStreamBytes(ctx, js, spec.Name, spec.Storage, replicas); err != nil {
			return err
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("operator: stream %s: %w", spec.Name, err)
	}
	return nil
}

// defaultStreamBytes is the size cap of a stream that sets none: half of the account's storage
// of that type not yet reserved by its other streams (a stream's cap is reserved once per
// replica), at most a quarter of the limit, divided by the replicas; no cap (0) when the limit
// is not finite. It fails with ErrInvalidSpec when less than 1 MiB would be left.
func defaultStreamBytes(ctx context.Context, js jetstream.JetStream, name string, st jetstream.StorageType, replicas int) (int64, error) {
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		return 0, fmt.Errorf("operator: account info: %w", err)
	}
	limit := ai.Limits.MaxStore
	if st == jetstream.MemoryStorage {
		limit = ai.Limits.MaxMemory
	}
	if limit <= 0 {
		return 0, nil
	}
	reserved := int64(0)
	l := js.ListStreams(ctx)
	for si := range l.Info() {
		if si.Config.Name != name && si.Config.Storage == st && si.Config.MaxBytes > 0 {
			reserved += si.Config.MaxBytes * int64(max(si.Config.Replicas, 1))
		}
	}
	if err := l.Err(); err != nil {
		return 0, fmt.Errorf("operator: listing streams: %w", err)
	}
	n := min(limit/4, (limit-reserved)/2) / int64(max(replicas, 1))
	if n < 1<<20 {
		return 0, fmt.Errorf("%w: stream %s: the account's %s storage (%d bytes) is reserved by its other streams; give a size (--max-bytes) or raise the account's limit", ErrInvalidSpec, name, st, limit)
	}
	return n, nil
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
