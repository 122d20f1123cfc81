package accounts

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// DefaultValidity is the lifetime of a service's card and user JWT when
// [ServiceSpec.Validity] is zero.
const DefaultValidity = 90 * 24 * time.Hour

// ConsumerRef names a durable pull consumer on a stream. The operator creates
// it; the service only uses it.
type ConsumerRef struct {
	Stream  string `json:"stream"`
	Durable string `json:"durable"`
}

// ServiceSpec declares what a service does; its permissions are computed
// from it (least privilege, see [Permissions]).
type ServiceSpec struct {
	Name      string        `json:"name"`
	Publish   []string      `json:"publish,omitempty"`   // subjects it may publish (wildcards allowed)
	Subscribe []string      `json:"subscribe,omitempty"` // subjects it may read; drives the encryption audience
	Consumers []ConsumerRef `json:"consumers,omitempty"` // durable pull consumers it may use
	Validity  time.Duration `json:"validity,omitempty"`  // card and user JWT lifetime; 0 means DefaultValidity
	Limits    ServiceLimits `json:"limits,omitzero"`     // per-service limits; zero fields take DefaultServiceLimits
	// EvidenceToken is the secret last token of the service's audit and dead-letter subjects
	// (see [NewEvidenceToken]); empty in a spec a caller writes, it is drawn when the service
	// is created and again when it is rotated.
	EvidenceToken string `json:"evidence_token,omitempty"`
}

// ServiceLimits bound what one service may take of the limits its account's services share,
// so that no single service can exhaust them for the others (docs/PERMISSIONS.md, "Per-service
// limits"). Zero fields take the value of [DefaultServiceLimits].
type ServiceLimits struct {
	// Connections is how many connections the service may hold at once. NATS has no per-user
	// connection limit: the value is a tag of the service's user JWT ([ConnectionQuotaTag]),
	// and the operator's connection guard closes the connections beyond it.
	Connections int64 `json:"connections,omitempty"`
	// Subscriptions is how many subscriptions each connection of the service may hold,
	// enforced by the server.
	Subscriptions int64 `json:"subscriptions,omitempty"`
	// MaxPayload is the largest message, in bytes, the service may publish, enforced by the
	// server (at least 1024). Zero means the account's limit: a service copies every envelope
	// it rejects, byte for byte, to the dead-letter stream, so a service that may receive
	// messages larger than its own limit cannot dead-letter them.
	MaxPayload int64 `json:"max_payload,omitempty"`
}

// DefaultServiceLimits are the limits of a service that sets none: 16 connections, 128
// subscriptions per connection, and the account's payload limit. One service at its limits
// holds 16 of the 1000 connections and at most 2048 of the 10000 subscriptions
// [DefaultLimits] gives its account.
func DefaultServiceLimits() ServiceLimits {
	return ServiceLimits{Connections: 16, Subscriptions: 128}
}

// Resolved returns l with every zero field replaced by the default (MaxPayload stays 0, the
// account's limit).
func (l ServiceLimits) Resolved() ServiceLimits {
	d := DefaultServiceLimits()
	if l.Connections == 0 {
		l.Connections = d.Connections
	}
	if l.Subscriptions == 0 {
		l.Subscriptions = d.Subscriptions
	}
	return l
}

// Validate refuses negative limits and a payload limit below 1024 bytes.
func (l ServiceLimits) Validate() error {
	if l.Connections < 0 || l.Subscriptions < 0 || l.MaxPayload < 0 {
		return fmt.Errorf("%w: negative service limit", ErrInvalidOption)
	}
	if l.MaxPayload > 0 && l.MaxPayload < 1024 {
		return fmt.Errorf("%w: service max payload %d is below 1024 bytes; envelopes would not fit", ErrInvalidOption, l.MaxPayload)
	}
	return nil
}

// ServiceLimitsOf reads the per-service limits back from a service's user JWT: subscriptions
// and payload from its NATS limits (an unlimited payload is the account's, 0), connections
// from its [ConnectionQuotaTag] tag. ok is false when the JWT carries no finite subscription
// limit, a payload limit below 1024 bytes or no single valid quota tag (a user JWT sealbus did
// not issue).
func ServiceLimitsOf(uc *jwt.UserClaims) (l ServiceLimits, ok bool) {
	if uc == nil {
		return l, false
	}
	quota, n := int64(0), 0
	for _, t := range uc.Tags {
		v, isQuota := strings.CutPrefix(t, ConnectionQuotaTag)
		if !isQuota {
			continue
		}
		n++
		q, err := strconv.ParseInt(v, 10, 64)
		if err != nil || q <= 0 || strconv.FormatInt(q, 10) != v {
			return l, false
		}
		quota = q
	}
	l = ServiceLimits{Connections: quota, Subscriptions: uc.Limits.Subs, MaxPayload: uc.Limits.Payload}
	if l.MaxPayload == jwt.NoLimit {
		l.MaxPayload = 0
	}
	return l, n == 1 && l.Subscriptions > 0 && (l.MaxPayload == 0 || l.MaxPayload >= 1024)
}

// connectionQuotaTag is the user JWT tag stating the service's connection quota.
func connectionQuotaTag(l ServiceLimits) string {
	return ConnectionQuotaTag + strconv.FormatInt(l.Resolved().Connections, 10)
}

// Validate checks the name, every subject (see package documentation,
// "Permissions") and every consumer reference.
func (s ServiceSpec) Validate() error {
	if err := checkName("service", s.Name); err != nil {
		return err
	}
	for _, p := range s.Publish {
		if err := CheckAppSubject("publish", p); err != nil {
			return err
		}
	}
	for _, p := range s.Subscribe {
		if err := CheckAppSubject("subscribe", p); err != nil {
			return err
		}
	}
	for _, c := range s.Consumers {
		if err := checkName("stream", c.Stream); err != nil {
			return err
		}
		if err := checkName("durable", c.Durable); err != nil {
			return err
		}
	}
	if s.Validity < 0 {
		return fmt.Errorf("%w: negative validity", ErrInvalidOption)
	}
	if s.EvidenceToken != "" && !ValidEvidenceToken(s.EvidenceToken) {
		return fmt.Errorf("%w: evidence token must be %d lower-case hex digits", ErrInvalidOption, EvidenceTokenLen)
	}
	return s.Limits.Validate()
}

func (s ServiceSpec) validity() time.Duration {
	if s.Validity == 0 {
		return DefaultValidity
	}
	return s.Validity
}

// Permissions returns the NATS user permissions computed from spec, without
// the private inbox (which depends on the user key; see [ServicePermissions]
// for the complete set a service's user JWT carries). The computed set is
// documented in docs/PERMISSIONS.md:
//
// Publish allow: the declared publish subjects; the service's own evidence subjects
// (literal, named by its secret evidence token: "sealbus.audit.<name>.<token>" and its
// ".overflow" subject, and "sealbus.dlq.<name>.<token>" when it declares consumers; none when
// the spec has no token); "$JS.API.INFO"; read-only directory access: single-key
// direct gets on the account's directory view,
// "$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.>" (the subject form only: the server
// answers it with the last message of one key, never a sequence, a batch or
// several keys); for each consumer S:D "$JS.API.STREAM.INFO.S",
// "$JS.API.CONSUMER.INFO.S.D", "$JS.API.CONSUMER.MSG.NEXT.S.D" and
// "$JS.ACK.S.D.>", and its replay guard's store: "sealbus.guard.S.D.>" and
// "$JS.API.STREAM.MSG.GET.<[GuardStream](S, D)>". No consumer creation anywhere: the
// directory needs none, and the operator creates the durables.
//
// Publish deny (defence in depth): stream create, update, delete, purge and
// message delete, consumer creation, "$KV.>" (KV writes) and "$SYS.>"; the
// batch form of direct gets on every stream ("$JS.API.DIRECT.GET.*"), which would
// let one request make the server send a whole stream to a reply subject of the
// requester's choosing (NATS does not check reply subjects against publish
// permissions); and the stream message gets of the directory, the dead letters,
// the audit log and each consumer's stream (a deny cannot make an exception for
// the guard store, so it names them). See docs/PERMISSIONS.md.
//
// Subscribe allow: the declared subscribe subjects. No response permission.
func Permissions(spec ServiceSpec) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(dedup(spec.Publish)...)
	p.Pub.Allow.Add(evidenceSubjects(spec)...)
	p.Pub.Allow.Add("$JS.API.INFO")
	p.Pub.Allow.Add(directoryGetPrefix + ">")
	for _, c := range spec.Consumers {
		p.Pub.Allow.Add(
			"$JS.API.STREAM.INFO."+c.Stream,
			"$JS.API.CONSUMER.INFO."+c.Stream+"."+c.Durable,
			"$JS.API.CONSUMER.MSG.NEXT."+c.Stream+"."+c.Durable,
			"$JS.ACK."+c.Stream+"."+c.Durable+".>",
		)
		p.Pub.Allow.Add(guardPermissions(c)...)
	}
	p.Pub.Deny.Add(
		"$JS.API.STREAM.CREATE.>",
		"$JS.API.STREAM.UPDATE.>",
		"$JS.API.STREAM.DELETE.>",
		"$JS.API.STREAM.PURGE.>",
		"$JS.API.STREAM.MSG.DELETE.>",
		"$JS.API.CONSUMER.CREATE.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.>",
		"$JS.API.DIRECT.GET.*",
	)
	p.Pub.Deny.Add(messageGetDeny(spec.Consumers)...)
	p.Pub.Deny.Add(
		"$KV.>",
		"$SYS.>",
	)
	p.Sub.Allow.Add(dedup(spec.Subscribe)...)
	return p
}

// guardPermissions is what a consumer's replay guard needs of its store ([GuardStream]):
// writing its entries (compare-and-set publishes to "sealbus.guard.S.D.>") and reading one
// entry from the stream leader ("$JS.API.STREAM.MSG.GET.<guard stream>"). Nothing else reaches
// the store: no purge, message delete, direct get or consumer.
func guardPermissions(c ConsumerRef) []string {
	return []string{
		GuardSubjects(c.Stream, c.Durable),
		"$JS.API.STREAM.MSG.GET." + GuardStream(c.Stream, c.Durable),
	}
}

// messageGetDeny denies stream message gets on every stream a service has any right on
// except its guard stores: the directory, the dead letters, the audit log and the streams of
// its durables. (A deny cannot make an exception, so it names the streams instead of
// "$JS.API.STREAM.MSG.GET.>"; no allow entry reaches any other stream.)
func messageGetDeny(consumers []ConsumerRef) []string {
	out := []string{
		"$JS.API.STREAM.MSG.GET." + DirectoryView,
		"$JS.API.STREAM.MSG.GET." + DirectoryStream,
		"$JS.API.STREAM.MSG.GET." + DLQStream,
		"$JS.API.STREAM.MSG.GET." + AuditStream,
	}
	for _, c := range consumers {
		if s := "$JS.API.STREAM.MSG.GET." + c.Stream; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ServicePermissions is [Permissions] plus subscribe permission on the
// service's private inbox, InboxPrefix(userKey)+".>": the exact set written
// into the service's user JWT.
func ServicePermissions(spec ServiceSpec, userKey string) jwt.Permissions {
	p := Permissions(spec)
	p.Sub.Allow.Add(InboxPrefix(userKey) + ".>")
	return p
}

// serviceUserLimits is everything a service's user JWT grants or restricts,
// as [Account.NewService] writes it: [ServicePermissions], no response
// permission, the spec's per-service subscription and payload limits (payload
// unlimited, that is the account's, unless set; data unlimited: the server does
// not enforce it), standard and in-process
// connections only, and no bearer token.
func serviceUserLimits(spec ServiceSpec, userKey string) jwt.UserPermissionLimits {
	var l jwt.UserPermissionLimits
	l.Permissions = ServicePermissions(spec, userKey)
	lim := spec.Limits.Resolved()
	l.Limits = jwt.Limits{NatsLimits: jwt.NatsLimits{Subs: lim.Subscriptions, Data: jwt.NoLimit, Payload: jwt.NoLimit}}
	if lim.MaxPayload > 0 {
		l.Limits.Payload = lim.MaxPayload
	}
	l.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard, jwt.ConnectionTypeInProcess)
	return l
}

// consumersIn recovers the consumer references of a permission list from its
// "$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>" entries (stream and durable
// names contain no '.'; entries that do not parse are ignored, and then make
// the comparison with [ServicePermissions] fail).
func consumersIn(pubAllow []string) []ConsumerRef {
	const pre = "$JS.API.CONSUMER.MSG.NEXT."
	var out []ConsumerRef
	for _, s := range pubAllow {
		rest, ok := strings.CutPrefix(s, pre)
		if !ok {
			continue
		}
		stream, durable, ok := strings.Cut(rest, ".")
		if ok && ValidName(stream) && ValidName(durable) {
			out = append(out, ConsumerRef{Stream: stream, Durable: durable})
		}
	}
	return out
}

// userLimitsDiff describes every difference between a user JWT's permissions
// and limits and the wanted ones; lists are compared as sets. It returns nil
// when they are the same.
func userLimitsDiff(got, want jwt.UserPermissionLimits) []string {
	var out []string
	lists := []struct {
		name      string
		got, want []string
	}{
		{"publish allow", got.Pub.Allow, want.Pub.Allow},
		{"publish deny", got.Pub.Deny, want.Pub.Deny},
		{"subscribe allow", got.Sub.Allow, want.Sub.Allow},
		{"subscribe deny", got.Sub.Deny, want.Sub.Deny},
		{"connection types", got.AllowedConnectionTypes, want.AllowedConnectionTypes},
	}
	for _, l := range lists {
		if extra := missingFrom(l.got, l.want); len(extra) > 0 {
			out = append(out, fmt.Sprintf("%s has %v, which sealbus does not issue", l.name, extra))
		}
		if missing := missingFrom(l.want, l.got); len(missing) > 0 {
			out = append(out, fmt.Sprintf("%s lacks %v", l.name, missing))
		}
	}
	if got.Resp != nil {
		out = append(out, "has a response permission")
	}
	if want.Resp != nil && got.Resp == nil {
		out = append(out, "lacks the response permission")
	}
	gl, wl := got.Limits, want.Limits
	if len(gl.Src) != len(wl.Src) || len(gl.Times) != len(wl.Times) || gl.Locale != wl.Locale || gl.NatsLimits != wl.NatsLimits {
		out = append(out, "user limits differ from the ones sealbus issues")
	}
	if got.BearerToken != want.BearerToken {
		out = append(out, fmt.Sprintf("bearer token is %v", got.BearerToken))
	}
	if got.ProxyRequired != want.ProxyRequired {
		out = append(out, fmt.Sprintf("proxy required is %v", got.ProxyRequired))
	}
	return out
}

// serviceUserDiff is userLimitsDiff plus the user JWT's tags: exactly one connection quota
// tag, the spec's.
func serviceUserDiff(uc *jwt.UserClaims, spec ServiceSpec, userKey string) []string {
	out := userLimitsDiff(uc.UserPermissionLimits, serviceUserLimits(spec, userKey))
	want := connectionQuotaTag(spec.Limits)
	n, has := 0, false
	for _, t := range uc.Tags {
		if strings.HasPrefix(t, ConnectionQuotaTag) {
			n++
			has = has || t == want
		}
	}
	if n != 1 || !has {
		out = append(out, fmt.Sprintf("connection quota tags differ from %q", want))
	}
	return out
}

// missingFrom returns the entries of a that are not in b.
func missingFrom(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func dedup(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// PreviousCurveKey is a curve key replaced by a rotation, still usable for
// decryption until Until.
type PreviousCurveKey struct {
	Key   nkeys.KeyPair // "X..." (may be public-only)
	Until time.Time
}

// Service is a NATS user of one account with its sealbus identity.
type Service struct {
	Spec     ServiceSpec
	Account  string        // account public key ("A...")
	UserKey  nkeys.KeyPair // "U...": signs envelopes, authenticates to NATS
	CurveKey nkeys.KeyPair // "X...": receives content keys (nil for the system user)
	UserJWT  string        // signed by the account signing key
	Card     string        // identity card token (empty for the system user)

	// PreviousCurveKeys are curve keys replaced by rotations whose grace
	// period has not ended; keep them to open envelopes sealed before the
	// rotation was seen.
	PreviousCurveKeys []PreviousCurveKey
}

// UserPublicKey returns the service's user public key ("U...").
func (s *Service) UserPublicKey() string { return publicKey(s.UserKey) }

// CurvePublicKey returns the service's curve public key ("X..."), or "" if it has none.
func (s *Service) CurvePublicKey() string { return publicKey(s.CurveKey) }

// NewService creates a service of the account: fresh user and curve keys, a
// user JWT with [ServicePermissions] and an identity card, both signed by
// SigningKeys[0] and valid for spec.Validity from a.Now.
func (a *Account) NewService(spec ServiceSpec) (*Service, error) {
	return a.NewServiceWithRand(spec, a.rand())
}

// NewServiceWithRand is [Account.NewService] with an explicit source of
// randomness.
func (a *Account) NewServiceWithRand(spec ServiceSpec, r io.Reader) (*Service, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: nil random source", ErrInvalidOption)
	}
	spec.Publish = dedup(spec.Publish)
	spec.Subscribe = dedup(spec.Subscribe)
	if spec.EvidenceToken == "" {
		tok, err := NewEvidenceToken(r)
		if err != nil {
			return nil, err
		}
		spec.EvidenceToken = tok
	}
	ukp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteUser, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create user key: %w", err)
	}
	ckp, err := nkeys.CreateCurveKeysWithRand(r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create curve key: %w", err)
	}
	s := &Service{Spec: spec, Account: a.PublicKey(), UserKey: ukp, CurveKey: ckp}
	if err := a.issue(s); err != nil {
		return nil, err
	}
	return s, nil
}

// issue signs s's user JWT and card with the account's signing key.
func (a *Account) issue(s *Service) error {
	sk, err := a.signer()
	if err != nil {
		return err
	}
	now := a.now().Truncate(time.Second)
	exp := now.Add(s.Spec.validity())
	upk := s.UserPublicKey()

	uc := jwt.NewUserClaims(upk)
	uc.Name = s.Spec.Name
	uc.IssuerAccount = a.PublicKey()
	uc.Expires = exp.Unix()
	uc.UserPermissionLimits = serviceUserLimits(s.Spec, upk)
	uc.Tags.Add(connectionQuotaTag(s.Spec.Limits))
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if vr.IsBlocking(false) {
		return fmt.Errorf("%w: user claims: %v", ErrInvalidOption, vr.Errors())
	}
	ujwt, err := uc.Encode(sk)
	if err != nil {
		return fmt.Errorf("accounts: sign user jwt: %w", err)
	}

	card := Card{
		Name:      s.Spec.Name,
		Account:   a.PublicKey(),
		UserKey:   upk,
		CurveKey:  s.CurvePublicKey(),
		Publish:   slices.Clone(s.Spec.Publish),
		Subscribe: slices.Clone(s.Spec.Subscribe),
		IssuedAt:  now,
		NotBefore: now,
		Expires:   exp,
	}
	for _, pk := range s.PreviousCurveKeys {
		card.PreviousCurveKeys = append(card.PreviousCurveKeys, PreviousKey{CurveKey: publicKey(pk.Key), Until: pk.Until})
	}
	tok, err := IssueCard(sk, card)
	if err != nil {
		return err
	}
	s.UserJWT = ujwt
	s.Card = tok
	return nil
}

// RotateService replaces s's user and curve keys and its evidence token: the returned service
// has new keys, a new user JWT and a new card that lists the previous curve key
// as usable for decryption until now+grace (earlier previous keys whose
// grace has not ended are kept). The old user key is revoked in a.Claims at
// now; the caller reissues and pushes the account, and saves the returned
// service (which carries the previous curve keys for the keystore).
func (a *Account) RotateService(s *Service, grace time.Duration) (*Service, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil service", ErrInvalidOption)
	}
	if s.Account != a.PublicKey() {
		return nil, fmt.Errorf("%w: service %s belongs to account %s", ErrWrongAccount, s.Spec.Name, s.Account)
	}
	if grace < 0 {
		return nil, fmt.Errorf("%w: negative grace period", ErrInvalidOption)
	}
	r := a.rand()
	now := a.now().Truncate(time.Second)
	ukp, err := nkeys.CreatePairWithRand(nkeys.PrefixByteUser, r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create user key: %w", err)
	}
	ckp, err := nkeys.CreateCurveKeysWithRand(r)
	if err != nil {
		return nil, fmt.Errorf("accounts: create curve key: %w", err)
	}
	ns := &Service{Spec: s.Spec, Account: s.Account, UserKey: ukp, CurveKey: ckp}
	// A new evidence token too: a token that leaked with the old creds names a subject the
	// rotated service no longer writes.
	if ns.Spec.EvidenceToken, err = NewEvidenceToken(r); err != nil {
		return nil, err
	}
	if s.CurveKey != nil && grace > 0 {
		ns.PreviousCurveKeys = append(ns.PreviousCurveKeys, PreviousCurveKey{Key: s.CurveKey, Until: now.Add(grace)})
	}
	for _, pk := range s.PreviousCurveKeys {
		if pk.Until.After(now) {
			ns.PreviousCurveKeys = append(ns.PreviousCurveKeys, pk)
		}
	}
	if err := a.issue(ns); err != nil {
		return nil, err
	}
	a.Revoke(s.UserPublicKey(), now)
	return ns, nil
}

// Creds returns the service's credentials file: a standard .creds file (decorated user JWT
// and user seed, which nats.go's UserCredentials and the nats CLI accept as they are)
// followed by the sealbus curve-seed block (see [Creds]) when the
// service's curve key is present. The result holds secrets: write it 0600 (see
// [Keystore.WriteCreds]) and wipe it after use.
func (s *Service) Creds() ([]byte, error) {
	if !hasSeed(s.UserKey) {
		return nil, fmt.Errorf("%w: user key of %s", ErrNoSeed, s.Spec.Name)
	}
	// nkeys returns the user key pair's own seed slice: never wipe it.
	seed, err := s.UserKey.Seed()
	if err != nil {
		return nil, fmt.Errorf("%w: user key of %s", ErrNoSeed, s.Spec.Name)
	}
	var cseed []byte
	if s.CurveKey != nil {
		if cseed, err = s.CurveKey.Seed(); err != nil {
			return nil, fmt.Errorf("%w: curve key of %s", ErrNoSeed, s.Spec.Name)
		}
		defer wipe(cseed)
	}
	b, err := FormatCreds(Creds{UserJWT: s.UserJWT, UserSeed: seed, CurveSeed: cseed})
	if err != nil {
		return nil, fmt.Errorf("%w: format creds: %v", ErrBadToken, err)
	}
	return b, nil
}

// ReissueService is [Account.RotateService] with a changed spec: the returned
// service has new keys and a user JWT and card computed from spec (validated
// first), the old curve key stays usable until now+grace and the old user key
// is revoked in a.Claims, so the permissions of the old user JWT stop working
// once the account is pushed. The name cannot change.
func (a *Account) ReissueService(s *Service, spec ServiceSpec, grace time.Duration) (*Service, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil service", ErrInvalidOption)
	}
	if spec.Name != s.Spec.Name {
		return nil, fmt.Errorf("%w: a service cannot be renamed (%q to %q)", ErrInvalidOption, s.Spec.Name, spec.Name)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec.Publish, spec.Subscribe = dedup(spec.Publish), dedup(spec.Subscribe)
	edited := *s
	edited.Spec = spec
	return a.RotateService(&edited, grace)
}
