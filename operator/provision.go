package operator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/atomicfile"
)

// Provisioner runs the operator's workflows that combine the keystore and a server: the CLI
// and the sandbox both use it, so a service created by `sealbus service add` and one created
// by sealbustest.Sandbox.AddService are provisioned by the same code.
//
// Methods named Create*, Revoke* and Rotate* change only the keystore (and creds files); the
// others talk to [Provisioner.Target]. A Provisioner is safe for concurrent use; account edits
// are serialized.
type Provisioner struct {
	Keystore *accounts.Keystore
	Operator *accounts.Operator
	Target   Target
	// Replicas of the sealbus streams and directory created by SetupAccount (default 1).
	Replicas int

	mu  sync.Mutex // serializes load-modify-save of accounts
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
	return acct, nil
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

// SetupOperatorAccount pushes the operator account's JWT to the target and creates its
// directory bucket ([SetupOperatorAccount]); tenant set-ups call it first. Idempotent.
func (p *Provisioner) SetupOperatorAccount(ctx context.Context) error {
	p.omu.Lock()
	defer p.omu.Unlock()
	return p.setupOperatorAccountLocked(ctx)
}

func (p *Provisioner) setupOperatorAccountLocked(ctx context.Context) error {
	acct, err := p.OperatorAccount()
	if err != nil {
		return err
	}
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := SetupOperatorAccount(ctx, nc, acct, p.Replicas); err != nil {
		return err
	}
	p.opReady = true
	return nil
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

// importViews makes a tenant account import the operator account's views, reissuing and
// saving it when it did not (an account made before the operator account existed). acct is
// updated in place.
func (p *Provisioner) importViews(acct *accounts.Account) error {
	opAcct, err := p.OperatorAccount()
	if err != nil {
		return err
	}
	if accounts.ImportsOperatorViews(acct.Claims, opAcct.PublicKey()) {
		return nil
	}
	edited, err := p.EditAccount(acct.Name, func(a *accounts.Account) error {
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
// and saves it. Push it afterwards ([Provisioner.PushAccount]).
func (p *Provisioner) EditAccount(name string, edit func(*accounts.Account) error) (*accounts.Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acct, err := p.Keystore.LoadAccount(name)
	if err != nil {
		return nil, err
	}
	if err := edit(acct); err != nil {
		return nil, err
	}
	if err := p.Operator.Reissue(acct); err != nil {
		return nil, err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, err
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
	return svc, path, nil
}

// RevokeService revokes the service's current user key (and with it its card) in the account
// JWT, reissues and saves the account, and returns it. Push it afterwards.
func (p *Provisioner) RevokeService(account, name string, at time.Time) (*accounts.Account, error) {
	svc, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, err
	}
	return p.EditAccount(account, func(a *accounts.Account) error {
		a.Revoke(svc.UserPublicKey(), at)
		return nil
	})
}

// RotateService gives the service new keys, a new user JWT and card (listing the previous
// curve key as usable until now+grace) and revokes the old user key in the account JWT. It
// saves both, writes the old credentials to [Provisioner.PreviousCredsPath] and the new ones
// to [Provisioner.CredsPath]. Publish the card and push the account afterwards.
func (p *Provisioner) RotateService(account, name string, grace time.Duration) (*accounts.Service, *accounts.Account, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, nil, "", err
	}
	old, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, nil, "", err
	}
	svc, err := acct.RotateService(old, grace)
	if err != nil {
		return nil, nil, "", err
	}
	if err := p.Operator.Reissue(acct); err != nil {
		return nil, nil, "", err
	}
	if err := WriteCredsFile(p.PreviousCredsPath(account, name), old); err != nil {
		return nil, nil, "", err
	}
	if err := p.Keystore.SaveService(account, svc); err != nil {
		return nil, nil, "", err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, nil, "", err
	}
	path, err := p.WriteCreds(account, svc)
	if err != nil {
		return nil, nil, "", err
	}
	return svc, acct, path, nil
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

// Admin opens an admin connection to account (see [ConnectAdmin]); the caller closes it.
func (p *Provisioner) Admin(ctx context.Context, account string) (*nats.Conn, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, err
	}
	return ConnectAdmin(ctx, p.Target, acct)
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
		return nil
	case err != nil:
		return err
	}
	return WaitView(ctx, dir, nc, acct.PublicKey())
}

// SetupAccount sets a tenant account up on the target: the operator account first (once per
// Provisioner), the account's imports of the operator account's views (reissuing and saving
// the account when it lacks them), then it verifies and pushes the account JWT, runs
// [SetupAccount] (dead-letter and audit streams, directory view), writes the account JWT into
// the directory and waits until the view shows it. For the operator account it is
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
	if err := SetupAccount(ctx, nc, acct, p.Replicas); err != nil {
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
	return WaitView(ctx, dir, nc, acct.PublicKey())
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
	Stream, Durable string
	Filter          []string
	Status          string // "created", "exists" or "skipped: <reason>"
}

// PublishService publishes the service's card into the directory and creates each declared
// durable that does not exist yet: filter = filters[ref] when given, else the service's
// subscribe subjects that fall in the stream ([ConsumerFilter]); MaxDeliver
// [DefaultMaxDeliver], AckWait [DefaultAckWait] and no server BackOff list: the SDK chooses
// retry delays itself (NakWithDelay), and a short server BackOff would become the AckWait and
// redeliver messages still waiting in a client's buffer. A consumer on a missing stream is skipped
// when skipMissing is set, an error otherwise.
func (p *Provisioner) PublishService(ctx context.Context, account string, svc *accounts.Service, filters map[accounts.ConsumerRef][]string, skipMissing bool) ([]ConsumerResult, error) {
	nc, err := p.Admin(ctx, account)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
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
	return res, WaitView(ctx, dir, nc, svc.Account)
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
}

// Sync brings the server in line with the keystore for one account: pushes the account JWT,
// runs SetupAccount (which also puts the account JWT into the directory), publishes every
// service's card and creates missing durables (skipping those whose stream does not exist).
// For the operator account it runs [Provisioner.SetupOperatorAccount] only.
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
	for _, name := range names {
		svc, err := p.Keystore.LoadService(account, name)
		if err != nil {
			return res, err
		}
		if err := PublishCard(ctx, dir, name, svc.Card); err != nil {
			return res, err
		}
		res.Cards = append(res.Cards, name)
		cr, err := ensureConsumers(ctx, nc, svc, nil, true)
		res.Consumers = append(res.Consumers, cr...)
		if err != nil {
			return res, err
		}
	}
	return res, WaitView(ctx, dir, nc, acct.PublicKey())
}
