package operator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/internal/atomicfile"
)

// Provisioner runs the operator's workflows that combine the keystore and a server: the CLI
// and the sandbox both use it, so a service created by `sealbus service add` and one created
// by sealbustest.Sandbox.AddService are provisioned by the same code.
//
// Methods named Create*, Revoke* and Rotate* change only the keystore (and creds files); the
// others talk to [Provisioner.Target]. A Provisioner is safe for concurrent use; account edits
// are serialized.
//
// # Audit
//
// Every administrative action writes a signed admin event to the account's audit log (see
// [EventAccountCreated] and the other Event* types), so the CLI and Go callers leave the same
// evidence. Actions that change only the keystore sign their event when they happen and keep it
// in the keystore home until the next call that connects to the account (any of them, including
// [Provisioner.Admin]) writes it; [Provisioner.FlushAudit] writes them at once and
// [Provisioner.PendingAudit] counts them. The operator's own initialization has no account: it
// is stated, signed by the operator key with the operator JWT's issue time, as the first event
// of every account's audit log when the account is set up.
type Provisioner struct {
	Keystore *accounts.Keystore
	Operator *accounts.Operator
	Target   Target
	// Replicas of the sealbus streams and directory created by SetupAccount (default 1).
	Replicas int
	// ViewLimits bound the operator-wide view's streams of each tenant and the recorded system
	// events (zero fields take their defaults; see [Provisioner.SetupMonitoring]).
	ViewLimits ViewLimits

	mu  sync.Mutex // serializes load-modify-save of accounts
	amu sync.Mutex // serializes writing pending admin audit records
	cmu sync.Mutex
	sys *nats.Conn

	omu     sync.Mutex // serializes setting up the operator account on the target
	opReady bool       // the operator account is set up on the target
}

// CredsPath is where the service's credentials file is written:
// <home>/accounts/<account>/services/<name>.creds.
func (p *Provisioner) CredsPath(account, name string) string {
	return p.Keystore.Path("accounts", account, "services", name+".creds")
}

// PreviousCredsPath is where the credentials of a service's keys before its last rotation
// are kept (for bus.WithPreviousCreds, to open envelopes sealed to the old curve key).
func (p *Provisioner) PreviousCredsPath(account, name string) string {
	return p.Keystore.Path("accounts", account, "services", name+".previous.creds")
}

// WriteCreds writes svc's credentials file (credsfile format: user JWT, user seed, curve
// seed) at [Provisioner.CredsPath], mode 0600, atomically.
func (p *Provisioner) WriteCreds(account string, svc *accounts.Service) (string, error) {
	path := p.CredsPath(account, svc.Spec.Name)
	return path, WriteCredsFile(path, svc)
}

// WriteCredsFile writes svc's credentials file (credsfile format) at path, mode 0600,
// atomically, creating the directory 0700.
func WriteCredsFile(path string, svc *accounts.Service) error {
	data, err := svc.Creds()
	if err != nil {
		return err
	}
	defer wipe(data)
	return atomicfile.Write(path, data, atomicfile.Private)
}

// CreateAccount creates a tenant account signed by the operator, importing the operator
// account's views (the directory), and saves it; the operator account is created first when
// the keystore has none ([Provisioner.OperatorAccount]). An account of that name already in
// the keystore is [accounts.ErrExists]; a reserved name ([accounts.ReservedAccountName]) is
// [accounts.ErrInvalidOption].
func (p *Provisioner) CreateAccount(name string, lim accounts.Limits) (*accounts.Account, error) {
	if accounts.ReservedAccountName(name) {
		return nil, fmt.Errorf("%w: account name %q is reserved for sealbus", accounts.ErrInvalidOption, name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.Keystore.LoadAccount(name); err == nil {
		return nil, fmt.Errorf("%w: account %q", accounts.ErrExists, name)
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return nil, err
	}
	opAcct, err := p.operatorAccountLocked()
	if err != nil {
		return nil, err
	}
	acct, err := p.Operator.NewAccount(name, lim)
	if err != nil {
		return nil, err
	}
	if _, err := acct.ImportOperatorViews(opAcct.PublicKey()); err != nil {
		return nil, err
	}
	if err := p.Operator.Reissue(acct); err != nil {
		return nil, err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, err
	}
	return acct, p.recordOnly(acct, true, bus.Event{Type: EventAccountCreated, Data: bus.EventData{Changes: limitsOf(lim)}})
}

// limitsOf describes account limits for an admin event.
func limitsOf(l accounts.Limits) []string {
	return []string{fmt.Sprintf("connections %d, subscriptions %d, payload %d, memory %d, disk %d, streams %d, consumers %d",
		l.Connections, l.Subscriptions, l.MaxPayload, l.MemoryStorage, l.DiskStorage, l.Streams, l.Consumers)}
}

// CreateOperatorAccount creates the operator account ([accounts.OperatorAccountName]: the
// directory of every tenant) and saves it in the keystore. `sealbus init`, the sandbox and the
// container helpers call it once; one already in the keystore is [accounts.ErrExists].
func (p *Provisioner) CreateOperatorAccount() (*accounts.Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.Keystore.LoadAccount(accounts.OperatorAccountName); err == nil {
		return nil, fmt.Errorf("%w: the operator account", accounts.ErrExists)
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return nil, err
	}
	return p.operatorAccountLocked()
}

// OperatorAccount loads the operator account from the keystore, creating and saving it when
// the keystore has none yet (a home made before the operator account existed), and bringing
// its exports up to date.
func (p *Provisioner) OperatorAccount() (*accounts.Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.operatorAccountLocked()
}

func (p *Provisioner) operatorAccountLocked() (*accounts.Account, error) {
	acct, err := p.Keystore.LoadAccount(accounts.OperatorAccountName)
	if errors.Is(err, accounts.ErrNotFound) {
		if acct, err = p.Operator.NewOperatorAccount(); err != nil {
			return nil, err
		}
		return acct, p.Keystore.SaveAccount(acct)
	}
	if err != nil {
		return nil, err
	}
	if acct.UpdateOperatorExports() {
		if err := p.Operator.Reissue(acct); err != nil {
			return nil, err
		}
		if err := p.Keystore.SaveAccount(acct); err != nil {
			return nil, err
		}
	}
	return acct, nil
}

// SetupOperatorAccount sets the operator account up on the target; tenant set-ups call it
// first. It adds the system account's exports of its events and the operator account's imports
// of them, raises the operator account's limits for its monitoring streams ([raiseOperatorLimits]),
// pushes the system and operator account JWTs, and creates the directory bucket
// ([SetupOperatorAccount]), the recorded system events, the operator account's audit stream and
// the monitor's state bucket ([Provisioner.SetupMonitoring]). Idempotent.
func (p *Provisioner) SetupOperatorAccount(ctx context.Context) error {
	p.omu.Lock()
	defer p.omu.Unlock()
	return p.setupOperatorAccountLocked(ctx)
}

func (p *Provisioner) setupOperatorAccountLocked(ctx context.Context) error {
	_, err := p.setupOperatorLocked(ctx)
	return err
}

// setupOperator is SetupOperatorAccount reporting which accounts' JWTs changed.
func (p *Provisioner) setupOperator(ctx context.Context) ([]string, error) {
	p.omu.Lock()
	defer p.omu.Unlock()
	return p.setupOperatorLocked(ctx)
}

func (p *Provisioner) setupOperatorLocked(ctx context.Context) ([]string, error) {
	var changed []string
	// The system account's exports of its events, then the operator account's imports of them.
	sysChanged, err := p.linkSystemEvents()
	if err != nil {
		return nil, err
	}
	if sysChanged {
		changed = append(changed, accounts.SystemAccountName)
	}
	sys, err := p.System(ctx)
	if err != nil {
		return nil, err
	}
	if err := PushAccount(ctx, sys, p.Operator.System.JWT); err != nil {
		return nil, err
	}
	acct, opChanged, err := p.linkOperatorImports()
	if err != nil {
		return nil, err
	}
	if opChanged {
		changed = append(changed, accounts.OperatorAccountName)
	}
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if err := SetupOperatorAccount(ctx, nc, acct, p.Replicas); err != nil {
		return nil, err
	}
	if err := setupOperatorStreams(ctx, nc, acct, p.replicas(), p.ViewLimits.withDefaults()); err != nil {
		return nil, err
	}
	_ = p.flushAudit(ctx, nc, acct)
	p.opReady = true
	return changed, nil
}

// ensureOperatorAccount sets the operator account up on the target once per Provisioner.
func (p *Provisioner) ensureOperatorAccount(ctx context.Context) error {
	p.omu.Lock()
	defer p.omu.Unlock()
	if p.opReady {
		return nil
	}
	return p.setupOperatorAccountLocked(ctx)
}

// DirectoryAdmin opens an admin connection to the operator account, the one that writes the
// directory ([PutAccountJWT], [PublishCard], [PutPeer]); the caller closes it.
func (p *Provisioner) DirectoryAdmin(ctx context.Context) (*nats.Conn, error) {
	return p.Admin(ctx, accounts.OperatorAccountName)
}

// importViews links a tenant account to the operator account: it imports the operator
// account's views (the directory) and exports its view sources to the operator account
// ([accounts.ViewExports]), reissuing and saving the account when it lacked either (an account
// made before the operator account, or its monitoring, existed). acct is updated in place.
func (p *Provisioner) importViews(acct *accounts.Account) error {
	opAcct, err := p.OperatorAccount()
	if err != nil {
		return err
	}
	exports := accounts.ViewExports(acct.PublicKey(), opAcct.PublicKey())
	if accounts.ImportsOperatorViews(acct.Claims, opAcct.PublicKey()) && accounts.HasExports(acct.Claims, exports) {
		return nil
	}
	edited, err := p.EditAccount(acct.Name, func(a *accounts.Account) error {
		accounts.AddExports(a.Claims, exports)
		_, err := a.ImportOperatorViews(opAcct.PublicKey())
		return err
	})
	if err != nil {
		return err
	}
	*acct = *edited
	return nil
}

// EditAccount loads an account, applies edit to it, reissues its JWT with the operator key
// and saves it; its admin event lists what the new JWT changes (exports, imports, revocations,
// signing keys, limits). Push it afterwards ([Provisioner.PushAccount]).
func (p *Provisioner) EditAccount(name string, edit func(*accounts.Account) error) (*accounts.Account, error) {
	var changes []string
	acct, err := p.editAccount(name, edit, &changes)
	if err != nil {
		return nil, err
	}
	return acct, p.recordOnly(acct, true, bus.Event{Type: EventAccountEdited, Data: bus.EventData{Changes: changes}})
}

// editAccount is EditAccount without its audit event; changes receives what changed.
func (p *Provisioner) editAccount(name string, edit func(*accounts.Account) error, changes *[]string) (*accounts.Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acct, err := p.Keystore.LoadAccount(name)
	if err != nil {
		return nil, err
	}
	before, _ := jwt.DecodeAccountClaims(acct.JWT)
	if err := edit(acct); err != nil {
		return nil, err
	}
	if err := p.Operator.Reissue(acct); err != nil {
		return nil, err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, err
	}
	if changes != nil {
		*changes = claimChanges(before, acct.Claims)
	}
	return acct, nil
}

// CreateService creates a service of account (keys, user JWT, card), saves it and writes its
// credentials file. A service of that name already in the keystore is [accounts.ErrExists].
func (p *Provisioner) CreateService(account string, spec accounts.ServiceSpec) (*accounts.Service, string, error) {
	if accounts.ReservedAccountName(account) {
		return nil, "", fmt.Errorf("%w: account %q holds no services", accounts.ErrInvalidOption, account)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, "", err
	}
	if _, err := p.Keystore.LoadService(account, spec.Name); err == nil {
		return nil, "", fmt.Errorf("%w: service %q in account %q", accounts.ErrExists, spec.Name, account)
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return nil, "", err
	}
	svc, err := acct.NewService(spec)
	if err != nil {
		return nil, "", err
	}
	if err := p.Keystore.SaveService(account, svc); err != nil {
		return nil, "", err
	}
	path, err := p.WriteCreds(account, svc)
	if err != nil {
		return nil, "", err
	}
	return svc, path, p.recordOnly(acct, false, bus.Event{Type: EventServiceCreated, Data: bus.EventData{Service: svc.Spec.Name, Key: svc.UserPublicKey()}})
}

// RevokeService revokes the service's current user key (and with it its card) in the account
// JWT, reissues and saves the account, and returns it. Push it afterwards.
func (p *Provisioner) RevokeService(account, name string, at time.Time) (*accounts.Account, error) {
	svc, acct, err := p.revokeService(account, name, at)
	if err != nil {
		return nil, err
	}
	return acct, p.recordOnly(acct, true, bus.Event{Type: EventServiceRevoked, Data: bus.EventData{Service: name, Key: svc.UserPublicKey()}})
}

// revokeService is RevokeService without its audit record.
func (p *Provisioner) revokeService(account, name string, at time.Time) (*accounts.Service, *accounts.Account, error) {
	svc, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, nil, err
	}
	acct, err := p.editAccount(account, func(a *accounts.Account) error {
		a.Revoke(svc.UserPublicKey(), at)
		return nil
	}, nil)
	if err != nil {
		return nil, nil, err
	}
	return svc, acct, nil
}

// RotateService gives the service new keys, a new user JWT and card (listing the previous
// curve key as usable until now+grace) and revokes the old user key in the account JWT. It
// saves both, writes the old credentials to [Provisioner.PreviousCredsPath] and the new ones
// to [Provisioner.CredsPath]. Publish the card and push the account afterwards.
func (p *Provisioner) RotateService(account, name string, grace time.Duration) (*accounts.Service, *accounts.Account, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, nil, "", err
	}
	svc, acct, path, err := p.reissueService(account, old, old.Spec, grace)
	if err != nil {
		return nil, nil, "", err
	}
	return svc, acct, path, p.recordOnly(acct, false, bus.Event{Type: EventServiceRotated, Data: bus.EventData{Service: name, Key: svc.UserPublicKey(),
		Changes: []string{"revoked " + old.UserPublicKey()}}})
}

// System returns a system account connection to the target, opened on first use and kept
// until [Provisioner.Close].
func (p *Provisioner) System(ctx context.Context) (*nats.Conn, error) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.sys != nil && !p.sys.IsClosed() {
		return p.sys, nil
	}
	nc, err := ConnectSystem(ctx, p.Target, p.Operator)
	if err != nil {
		return nil, err
	}
	p.sys = nc
	return nc, nil
}

// Admin opens an admin connection to account (see [ConnectAdmin]) and writes the account's
// pending admin audit records over it; the caller closes it.
func (p *Provisioner) Admin(ctx context.Context, account string) (*nats.Conn, error) {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return nil, err
	}
	_ = p.flushAudit(ctx, nc, acct)
	return nc, nil
}

// RecordVerifier returns a verifier of the account's records up to this provisioner's
// operator, with the keystore's account JWT (its current signing keys and revocations).
func (p *Provisioner) RecordVerifier(account string) (*RecordVerifier, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, err
	}
	return NewRecordVerifier(accounts.Trust{Operators: []string{p.Operator.PublicKey()}}, acct.JWT)
}

// AuditLog opens an admin connection to the account and returns a verifying reader of its audit
// log; done closes the connection.
func (p *Provisioner) AuditLog(ctx context.Context, account string) (log *AuditLog, done func(), err error) {
	r, err := p.reader(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	return &AuditLog{js: r.js, v: r.v}, r.nc.Close, nil
}

// AuditView opens an admin connection to the operator account and returns a reader of the
// operator-wide view ([AuditView]) that verifies each account's records with the keystore's
// account JWT of that account ([Provisioner.RecordVerifier]); done closes the connection.
func (p *Provisioner) AuditView(ctx context.Context) (view *AuditView, done func(), err error) {
	opAcct, err := p.OperatorAccount()
	if err != nil {
		return nil, nil, err
	}
	names, err := p.Keystore.ListAccounts()
	if err != nil {
		return nil, nil, err
	}
	byKey := map[string]string{}
	for _, n := range names {
		acct, err := p.Keystore.LoadAccount(n)
		if err != nil {
			return nil, nil, err
		}
		byKey[acct.PublicKey()] = n
	}
	lookup := func(_ context.Context, account string) (*RecordVerifier, error) {
		n, ok := byKey[account]
		if !ok {
			return nil, fmt.Errorf("%w: account %s is not in the keystore", accounts.ErrNotFound, account)
		}
		return p.RecordVerifier(n)
	}
	nc, err := p.Admin(ctx, accounts.OperatorAccountName)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("operator: %w", err)
	}
	view, err = NewAuditView(js, opAcct.PublicKey(), lookup)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return view, nc.Close, nil
}

// DeadLetters opens an admin connection to the account and returns a verifying reader of its
// dead letters that can also replay them (with the account's signing key, see
// [DeadLetters.Replay]); done closes the connection.
func (p *Provisioner) DeadLetters(ctx context.Context, account string) (dl *DeadLetters, done func(), err error) {
	r, err := p.reader(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	return &DeadLetters{js: r.js, v: r.v, r: &replayer{p: p, acct: r.acct, nc: r.nc}}, r.nc.Close, nil
}

// evidenceReader is what the readers of an account need: its keystore account, a verifier and
// an admin connection.
type evidenceReader struct {
	acct *accounts.Account
	v    *RecordVerifier
	nc   *nats.Conn
	js   jetstream.JetStream
}

func (p *Provisioner) reader(ctx context.Context, account string) (*evidenceReader, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, err
	}
	v, err := NewRecordVerifier(accounts.Trust{Operators: []string{p.Operator.PublicKey()}}, acct.JWT)
	if err != nil {
		return nil, err
	}
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return nil, err
	}
	_ = p.flushAudit(ctx, nc, acct)
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("operator: %w", err)
	}
	return &evidenceReader{acct: acct, v: v, nc: nc, js: js}, nil
}

// audit writes an admin event about a replay, signed by the account's signing key.
func (r *replayer) audit(ctx context.Context, e bus.Event) error {
	return r.p.audit(ctx, r.nc, r.acct, false, e)
}

// AddStream creates or updates an application stream in account ([AddStream]) and audits it.
func (p *Provisioner) AddStream(ctx context.Context, account string, spec StreamSpec) error {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := AddStream(ctx, nc, spec); err != nil {
		return err
	}
	return p.audit(ctx, nc, acct, false, bus.Event{Type: EventStreamAdded, Data: bus.EventData{Stream: spec.Name, Changes: spec.Subjects}})
}

// EditStream changes an existing application stream of account ([EditStream]) and audits it.
func (p *Provisioner) EditStream(ctx context.Context, account, stream string, edit func(*StreamSpec) error) (*jetstream.StreamInfo, error) {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	si, err := EditStream(ctx, nc, stream, edit)
	if err != nil {
		return nil, err
	}
	return si, p.audit(ctx, nc, acct, false, bus.Event{Type: EventStreamEdited, Data: bus.EventData{Stream: stream, Changes: si.Config.Subjects}})
}

// SetGuardSize sets the size limit of the replay guard store of an account's durable (see
// [SetGuardSize]) and records it in the account's audit stream.
func (p *Provisioner) SetGuardSize(ctx context.Context, account, stream, durable string, maxBytes int64) (GuardSize, error) {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return GuardSize{}, err
	}
	defer nc.Close()
	g, err := SetGuardSize(ctx, nc, stream, durable, maxBytes)
	if err != nil {
		return GuardSize{}, err
	}
	return g, p.audit(ctx, nc, acct, false, bus.Event{Type: EventGuardResized, Data: bus.EventData{Stream: stream, Consumer: durable, Changes: []string{strconv.FormatInt(g.MaxBytes, 10)}}})
}

// GuardSize returns the state of the replay guard store of an account's durable.
func (p *Provisioner) GuardSize(ctx context.Context, account, stream, durable string) (GuardSize, error) {
	_, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return GuardSize{}, err
	}
	defer nc.Close()
	return GuardSizeOf(ctx, nc, stream, durable)
}

// adminOf loads an account of the keystore and opens an admin connection to it.
func (p *Provisioner) adminOf(ctx context.Context, account string) (*accounts.Account, *nats.Conn, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, nil, err
	}
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return nil, nil, err
	}
	return acct, nc, nil
}

// Close closes the cached system connection.
func (p *Provisioner) Close() {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.sys != nil {
		p.sys.Close()
		p.sys = nil
	}
}

// verify checks that acct's JWT is signed by this provisioner's operator before it is pushed:
// a server's resolver stores any well-formed account JWT, even one it will never trust.
func (p *Provisioner) verify(acct *accounts.Account) error {
	_, err := accounts.Trust{Operators: []string{p.Operator.PublicKey()}}.VerifyAccount(acct.JWT)
	return err
}

// PushAccount verifies the account JWT against the operator and pushes it to the server's
// resolver. For a tenant it then writes the JWT into the account's directory when the
// directory exists (revocations reach clients through it) and waits until the account's
// directory view shows it.
func (p *Provisioner) PushAccount(ctx context.Context, acct *accounts.Account) error {
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	if accounts.ReservedAccountName(acct.Name) {
		return nil
	}
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return err
	}
	defer dir.Close()
	switch err := PutAccountJWT(ctx, dir, acct.JWT); {
	case errors.Is(err, ErrNoDirectory):
		return p.audit(ctx, nc, acct, true, bus.Event{Type: EventAccountPushed})
	case err != nil:
		return err
	}
	if err := WaitView(ctx, dir, nc, acct.PublicKey()); err != nil {
		return err
	}
	return p.audit(ctx, nc, acct, true, bus.Event{Type: EventAccountPushed})
}

// SetupAccount sets a tenant account up on the target: the operator account first (once per
// Provisioner), the account's imports of the operator account's views (reissuing and saving
// the account when it lacks them), then it verifies and pushes the account JWT, runs
// [SetupAccount] (directory view) and [SetupEvidence] with every service of the keystore as a
// writer, writes the account JWT into the directory, waits until the view shows it, and audits
// it (the first set-up also states the operator's initialization, [EventInit]). For the operator account it is
// [Provisioner.SetupOperatorAccount].
func (p *Provisioner) SetupAccount(ctx context.Context, acct *accounts.Account) error {
	if acct == nil {
		return fmt.Errorf("%w: nil account", ErrInvalidSpec)
	}
	if err := p.verify(acct); err != nil {
		return err
	}
	if acct.Name == accounts.OperatorAccountName {
		return p.SetupOperatorAccount(ctx)
	}
	if err := p.ensureOperatorAccount(ctx); err != nil {
		return err
	}
	if err := p.importViews(acct); err != nil {
		return err
	}
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	created := false
	if js, err := jetstream.New(nc); err == nil {
		sctx, cancel := withDefaultTimeout(ctx)
		_, err = js.Stream(sctx, accounts.AuditStream)
		cancel()
		created = errors.Is(err, jetstream.ErrStreamNotFound)
	}
	if err := SetupAccount(ctx, nc, acct, p.Replicas); err != nil {
		return err
	}
	quotas, err := p.setupEvidence(ctx, nc, acct)
	if err != nil {
		return err
	}
	if err := setupViewSources(ctx, nc, acct, p.replicas(), p.ViewLimits.withDefaults()); err != nil {
		return err
	}
	if _, err := p.linkView(ctx, acct); err != nil {
		return err
	}
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := PutAccountJWT(ctx, dir, acct.JWT); err != nil {
		return err
	}
	if err := WaitView(ctx, dir, nc, acct.PublicKey()); err != nil {
		return err
	}
	var changes []string
	for _, q := range quotas {
		changes = append(changes, fmt.Sprintf("%s: %d writers, %d records each, %d bytes at most per record", q.Stream, q.Writers, q.PerWriter, q.MaxRecord))
	}
	if created {
		if err := p.recordOnly(acct, true, p.initEvent()); err != nil {
			return err
		}
	}
	return p.audit(ctx, nc, acct, true, bus.Event{Type: EventAccountSetup, Data: bus.EventData{Changes: changes}})
}

// setupEvidence runs SetupEvidence with the keystore's services of acct.
func (p *Provisioner) setupEvidence(ctx context.Context, nc *nats.Conn, acct *accounts.Account) ([]EvidenceQuota, error) {
	names, err := p.Keystore.ListServices(acct.Name)
	if err != nil {
		return nil, err
	}
	specs := []accounts.ServiceSpec{} // all of them: a subject of none is dropped once it holds no record
	for _, n := range names {
		svc, err := p.Keystore.LoadService(acct.Name, n)
		if err != nil {
			return nil, err
		}
		specs = append(specs, svc.Spec)
	}
	return SetupEvidence(ctx, nc, acct, p.Replicas, specs)
}

// pushAndConnect verifies acct's JWT against the operator, pushes it to the server's resolver
// and opens an admin connection to the account; the caller closes it.
func (p *Provisioner) pushAndConnect(ctx context.Context, acct *accounts.Account) (*nats.Conn, error) {
	if err := p.verify(acct); err != nil {
		return nil, err
	}
	sys, err := p.System(ctx)
	if err != nil {
		return nil, err
	}
	if err := PushAccount(ctx, sys, acct.JWT); err != nil {
		return nil, err
	}
	return ConnectAdmin(ctx, p.Target, acct)
}

// ConsumerResult says what [Provisioner.PublishService] did with one declared consumer.
type ConsumerResult struct {
	Stream  string   `json:"stream"`
	Durable string   `json:"durable"`
	Filter  []string `json:"filter,omitempty"`
	Status  string   `json:"status"` // "created", "exists", "deleted", "skipped: <reason>" or "error: <reason>"
}

// PublishService publishes the service's card into the directory and creates each declared
// durable that does not exist yet: filter = filters[ref] when given, else the service's
// subscribe subjects that fall in the stream ([ConsumerFilter]); MaxDeliver
// [DefaultMaxDeliver], AckWait [DefaultAckWait] and no server BackOff list: the SDK chooses
// retry delays itself (NakWithDelay), and a short server BackOff would become the AckWait and
// redeliver messages still waiting in a client's buffer. A consumer on a missing stream is skipped
// when skipMissing is set, an error otherwise.
func (p *Provisioner) PublishService(ctx context.Context, account string, svc *accounts.Service, filters map[accounts.ConsumerRef][]string, skipMissing bool) ([]ConsumerResult, error) {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	// The service's evidence subjects first: its first records must find their stream.
	if _, err := p.setupEvidence(ctx, nc, acct); err != nil {
		return nil, err
	}
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if err := PublishCard(ctx, dir, svc.Spec.Name, svc.Card); err != nil {
		return nil, err
	}
	res, err := ensureConsumers(ctx, nc, svc, filters, skipMissing)
	if err != nil {
		return res, err
	}
	if err := WaitView(ctx, dir, nc, svc.Account); err != nil {
		return res, err
	}
	return res, p.audit(ctx, nc, acct, false, bus.Event{Type: EventServicePublished, Data: bus.EventData{Service: svc.Spec.Name, Key: svc.UserPublicKey()}})
}

func ensureConsumers(ctx context.Context, nc *nats.Conn, svc *accounts.Service, filters map[accounts.ConsumerRef][]string, skipMissing bool) ([]ConsumerResult, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	var out []ConsumerResult
	for _, ref := range svc.Spec.Consumers {
		res := ConsumerResult{Stream: ref.Stream, Durable: ref.Durable}
		subjects, err := StreamSubjects(ctx, nc, ref.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) && skipMissing {
			res.Status = "skipped: stream not found"
			out = append(out, res)
			continue
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return out, streamNotFound(ctx, nc, ref.Stream, err)
		}
		if err != nil {
			return out, err
		}
		if _, err := js.Consumer(ctx, ref.Stream, ref.Durable); err == nil {
			res.Status = "exists"
			out = append(out, res)
			continue
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return out, fmt.Errorf("operator: consumer %s:%s: %w", ref.Stream, ref.Durable, err)
		}
		res.Filter = filters[ref]
		if len(res.Filter) == 0 {
			res.Filter = ConsumerFilter(svc.Spec.Subscribe, subjects)
		}
		if len(res.Filter) == 0 {
			return out, fmt.Errorf("%w: service %s subscribes to nothing in stream %s (subjects %v)", ErrInvalidSpec, svc.Spec.Name, ref.Stream, subjects)
		}
		if err := AddConsumer(ctx, nc, ConsumerSpec{
			Stream: ref.Stream, Durable: ref.Durable, FilterSubjects: res.Filter,
			MaxDeliver: DefaultMaxDeliver, AckWait: DefaultAckWait,
		}); err != nil {
			return out, err
		}
		res.Status = "created"
		out = append(out, res)
	}
	return out, nil
}

// SyncResult reports what [Provisioner.Sync] did for one account.
type SyncResult struct {
	Account   string           `json:"account"`
	PublicKey string           `json:"public_key"`
	Cards     []string         `json:"cards"`
	Consumers []ConsumerResult `json:"consumers"`
	// Problems are the entries Sync could not apply; it went on with the others.
	Problems []SyncProblem `json:"problems,omitempty"`
}

// SyncProblem is one entry of an account that [Provisioner.Sync] could not apply.
type SyncProblem struct {
	Service string `json:"service,omitempty"` // "" for the account itself
	Error   string `json:"error"`
	err     error
}

// Err returns the problem as an error.
func (p SyncProblem) Err() error { return p.err }

// Sync brings the server in line with the keystore for one account: pushes the account JWT,
// runs SetupAccount (which also puts the account JWT into the directory), publishes every
// service's card and creates missing durables (skipping those whose stream does not exist).
// One bad entry never stops the rest: a service that cannot be loaded, whose card cannot be
// published or whose durable cannot be made is reported in Problems (and its durable's Status
// says why) and Sync goes on. It returns an error only when the account itself could not be
// pushed or set up. For the operator account it runs [Provisioner.SetupOperatorAccount] only.
func (p *Provisioner) Sync(ctx context.Context, account string) (*SyncResult, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, err
	}
	if err := p.SetupAccount(ctx, acct); err != nil {
		return nil, err
	}
	res := &SyncResult{Account: account, PublicKey: acct.PublicKey()}
	if account == accounts.OperatorAccountName {
		return res, nil
	}
	names, err := p.Keystore.ListServices(account)
	if err != nil {
		return nil, err
	}
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	dir, err := p.DirectoryAdmin(ctx)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	problem := func(service string, err error) {
		res.Problems = append(res.Problems, SyncProblem{Service: service, Error: err.Error(), err: err})
	}
	defer func() { _ = p.flushAudit(ctx, nc, acct) }()
	for _, name := range names {
		svc, err := p.Keystore.LoadService(account, name)
		if err != nil {
			problem(name, err)
			continue
		}
		if err := PublishCard(ctx, dir, name, svc.Card); err != nil {
			problem(name, err)
			continue
		}
		res.Cards = append(res.Cards, name)
		// Durables one at a time, so that one that cannot be made does not stop the others.
		for _, ref := range svc.Spec.Consumers {
			one := *svc
			one.Spec.Consumers = []accounts.ConsumerRef{ref}
			cr, err := ensureConsumers(ctx, nc, &one, nil, true)
			if err != nil {
				problem(name, err)
				cr = append(cr, ConsumerResult{Stream: ref.Stream, Durable: ref.Durable, Status: "error: " + err.Error()})
			}
			res.Consumers = append(res.Consumers, cr...)
		}
	}
	return res, WaitView(ctx, dir, nc, acct.PublicKey())
}
