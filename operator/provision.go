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
	// Auditor records admin actions (see [AdminAuditor]); nil writes them unsigned into the
	// account's audit stream.
	Auditor AdminAuditor

	mu  sync.Mutex // serializes load-modify-save of accounts
	cmu sync.Mutex
	sys *nats.Conn
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

// CreateAccount creates an account signed by the operator and saves it. An account of that
// name already in the keystore is [accounts.ErrExists].
func (p *Provisioner) CreateAccount(name string, lim accounts.Limits) (*accounts.Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.Keystore.LoadAccount(name); err == nil {
		return nil, fmt.Errorf("%w: account %q", accounts.ErrExists, name)
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return nil, err
	}
	acct, err := p.Operator.NewAccount(name, lim)
	if err != nil {
		return nil, err
	}
	if err := p.Keystore.SaveAccount(acct); err != nil {
		return nil, err
	}
	return acct, nil
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
	old, err := p.Keystore.LoadService(account, name)
	if err != nil {
		return nil, nil, "", err
	}
	return p.reissueService(account, old, old.Spec, grace)
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

// PushAccount verifies the account JWT against the operator, pushes it to the server's
// resolver, then writes it into the account's directory when the directory exists
// (revocations reach clients through it).
func (p *Provisioner) PushAccount(ctx context.Context, acct *accounts.Account) error {
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := PutAccountJWT(ctx, nc, acct.JWT); err != nil && !errors.Is(err, ErrNoDirectory) {
		return err
	}
	return nil
}

// SetupAccount verifies and pushes the account JWT and runs [SetupAccount] (directory, DLQ
// and audit streams, account JWT in the directory).
func (p *Provisioner) SetupAccount(ctx context.Context, acct *accounts.Account) error {
	nc, err := p.pushAndConnect(ctx, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	return SetupAccount(ctx, nc, acct, p.Replicas)
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
	nc, err := p.Admin(ctx, account)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if err := PublishCard(ctx, nc, svc.Spec.Name, svc.Card); err != nil {
		return nil, err
	}
	return ensureConsumers(ctx, nc, svc, filters, skipMissing)
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
// pushed or set up.
func (p *Provisioner) Sync(ctx context.Context, account string) (*SyncResult, error) {
	acct, err := p.Keystore.LoadAccount(account)
	if err != nil {
		return nil, err
	}
	if err := p.SetupAccount(ctx, acct); err != nil {
		return nil, err
	}
	res := &SyncResult{Account: account, PublicKey: acct.PublicKey()}
	names, err := p.Keystore.ListServices(account)
	if err != nil {
		return nil, err
	}
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	problem := func(service string, err error) {
		res.Problems = append(res.Problems, SyncProblem{Service: service, Error: err.Error(), err: err})
	}
	for _, name := range names {
		svc, err := p.Keystore.LoadService(account, name)
		if err != nil {
			problem(name, err)
			continue
		}
		if err := PublishCard(ctx, nc, name, svc.Card); err != nil {
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
	return res, nil
}
