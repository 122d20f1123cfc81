package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// ViewLimits bound the streams of the operator's monitoring in the operator account
// ([Provisioner.ViewLimits]). Zero fields take the defaults below. Each tenant has its own view
// streams with their own limits, so one tenant's flood never evicts another's records; audit
// records (security events) and dead letters (routine failures and junk) have separate limits,
// so dead letters never evict audit records.
type ViewLimits struct {
	AuditMaxAge    time.Duration // per tenant, default 90 days
	AuditMaxBytes  int64         // per tenant, default 128 MiB
	DLQMaxAge      time.Duration // per tenant, default 30 days
	DLQMaxBytes    int64         // per tenant, default 64 MiB
	EventsMaxAge   time.Duration // recorded system events, default 7 days
	EventsMaxBytes int64         // recorded system events, default 256 MiB
	// Each account's mirrors of its audit and dead-letter streams, from which the view
	// sources ([accounts.ViewSourceStream]), are buffers in the account's own storage: they
	// need to hold what the view has not sourced yet (the operator account's streams
	// unavailable). Default 24 hours and 32 MiB each (at most 1/32 of the tenant's disk
	// storage), divided by the replicas.
	BufferMaxAge   time.Duration
	BufferMaxBytes int64
}

// Defaults of ViewLimits.
const (
	DefaultViewAuditMaxAge    = 90 * 24 * time.Hour
	DefaultViewAuditMaxBytes  = 128 << 20
	DefaultViewDLQMaxAge      = 30 * 24 * time.Hour
	DefaultViewDLQMaxBytes    = 64 << 20
	DefaultEventsMaxAge       = 7 * 24 * time.Hour
	DefaultEventsMaxBytes     = 256 << 20
	DefaultViewBufferMaxAge   = 24 * time.Hour
	DefaultViewBufferMaxBytes = 32 << 20
)

func (l ViewLimits) withDefaults() ViewLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defB := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.AuditMaxAge, DefaultViewAuditMaxAge)
	defB(&l.AuditMaxBytes, DefaultViewAuditMaxBytes)
	def(&l.DLQMaxAge, DefaultViewDLQMaxAge)
	defB(&l.DLQMaxBytes, DefaultViewDLQMaxBytes)
	def(&l.EventsMaxAge, DefaultEventsMaxAge)
	defB(&l.EventsMaxBytes, DefaultEventsMaxBytes)
	def(&l.BufferMaxAge, DefaultViewBufferMaxAge)
	defB(&l.BufferMaxBytes, DefaultViewBufferMaxBytes)
	return l
}

// Sizes of the operator account's monitoring streams beside the view (per replica).
const (
	// operatorAuditBytes is the budget of the operator account's own audit stream: its admin
	// subject holds the monitor's alerts and the operator account's admin events.
	operatorAuditBytes = 128 << 20
	// monitorStateBytes caps the monitor's state bucket.
	monitorStateBytes = 64 << 20
)

// MonitoringSetup reports what [Provisioner.SetupMonitoring] did.
type MonitoringSetup struct {
	Operator string   `json:"operator_account"` // the operator account's public key
	Accounts []string `json:"accounts"`         // names of the tenants whose records the view sources
	Pushed   []string `json:"pushed"`           // names of the accounts whose JWT it changed (and pushed)
}

// SetupMonitoring brings the operator's monitoring up to date on the target for every tenant of
// the keystore: the set-up [Provisioner.SetupOperatorAccount] and [Provisioner.SetupAccount]
// already do for each account they set up (so a deployment made by `sealbus init` and `push`,
// the sandbox or the container helpers has it), run again for all of them at once — for
// tenants set up by an earlier version, and to renew the activation tokens of the operator
// account's imports (valid [accounts.ActivationValidity], renewed within a quarter of their
// expiry). It changes nothing that is already up to date; it pushes the system, operator and
// tenant JWTs (the servers keep an unchanged one as it is), and reports the ones it changed.
//
// What it sets up, with NATS mechanisms only (no process copies anything):
//
//   - the system account exports its auth-error and connection events, privately, to the
//     operator account, which records them in [accounts.SystemEventsStream], so they survive
//     the monitor's absence and server restarts;
//   - every tenant mirrors its SEALBUS_AUDIT and SEALBUS_DLQ into streams named after it
//     ([accounts.ViewSource.Mirror], subject-less: nothing but the mirror writes them) and
//     exports, privately to the operator account, what one sourcing consumer on each needs
//     ([accounts.ViewExports]); the operator account holds one view stream per tenant and
//     source ([accounts.ViewSource.View]) that the servers fill by stream sourcing: the
//     operator-wide, read-only view. Tenants never see each other's records, nor the view, nor
//     each other's flow-control traffic;
//   - the operator account gets its own audit stream (its admin subject: the monitor's
//     signed alerts), the monitor's state bucket [accounts.MonitorBucket], and limits raised
//     to hold all of it ([Provisioner.ViewLimits] per tenant).
func (p *Provisioner) SetupMonitoring(ctx context.Context) (*MonitoringSetup, error) {
	p.omu.Lock()
	p.opReady = false
	p.omu.Unlock()
	res := &MonitoringSetup{}
	pushed, err := p.setupOperator(ctx)
	if err != nil {
		return nil, err
	}
	res.Pushed = append(res.Pushed, pushed...)
	opAcct, err := p.OperatorAccount()
	if err != nil {
		return nil, err
	}
	res.Operator = opAcct.PublicKey()
	names, err := p.Keystore.ListAccounts()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if accounts.ReservedAccountName(n) {
			continue
		}
		acct, err := p.Keystore.LoadAccount(n)
		if err != nil {
			return nil, err
		}
		before := acct.JWT
		if err := p.importViews(acct); err != nil {
			return nil, err
		}
		if acct.JWT != before {
			res.Pushed = append(res.Pushed, n)
		}
		nc, err := p.pushAndConnect(ctx, acct)
		if err != nil {
			return nil, err
		}
		err = setupViewSources(ctx, nc, acct, p.replicas(), p.ViewLimits.withDefaults())
		nc.Close()
		if err != nil {
			return nil, err
		}
		changed, err := p.linkView(ctx, acct)
		if err != nil {
			return nil, err
		}
		if changed {
			res.Pushed = append(res.Pushed, accounts.OperatorAccountName)
		}
		res.Accounts = append(res.Accounts, n)
	}
	slices.Sort(res.Pushed)
	res.Pushed = slices.Compact(res.Pushed)
	return res, nil
}

var errUnchanged = errors.New("unchanged")

// linkSystemEvents adds the system account's exports of its events ([accounts.SystemEventExports])
// when it lacks them, reissuing and saving it, and reports whether it changed.
func (p *Provisioner) linkSystemEvents() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !accounts.AddExports(p.Operator.System.Claims, accounts.SystemEventExports()) {
		return false, nil
	}
	if err := p.Operator.Reissue(p.Operator.System); err != nil {
		return false, err
	}
	return true, p.Keystore.SaveOperator(p.Operator)
}

// linkOperatorImports brings the operator account's imports up to date — the system events, and
// the view sources of each of tenants (which must carry [accounts.ViewExports]) — renewing
// activation tokens near their expiry, and raises its limits to hold the view of every tenant
// it imports from. It reports whether the account changed (reissued and saved; push it).
func (p *Provisioner) linkOperatorImports(tenants ...*accounts.Account) (*accounts.Account, bool, error) {
	opAcct, err := p.OperatorAccount()
	if err != nil {
		return nil, false, err
	}
	imports, err := accounts.SystemEventImports(p.Operator.System, opAcct.PublicKey())
	if err != nil {
		return nil, false, err
	}
	for _, t := range tenants {
		imps, err := accounts.ViewImports(t, opAcct.PublicKey())
		if err != nil {
			return nil, false, err
		}
		imports = append(imports, imps...)
	}
	lim := p.ViewLimits.withDefaults()
	acct, err := p.EditAccount(accounts.OperatorAccountName, func(a *accounts.Account) error {
		changed := accounts.AddImports(a.Claims, imports, time.Now())
		if raiseOperatorLimits(a.Claims, p.replicas(), lim) {
			changed = true
		}
		if !changed {
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return opAcct, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return acct, true, nil
}

// raiseOperatorLimits raises the operator account's JetStream limits, never lowering them, to
// hold its own streams ([accounts.OperatorAccountLimits]), the recorded system events, its audit
// stream, the monitor's state and, for every tenant it imports the view sources of, the view
// streams with their limits, each reserved once per replica. It reports whether it changed them.
func raiseOperatorLimits(c *jwt.AccountClaims, replicas int, lim ViewLimits) bool {
	tenants := map[string]bool{}
	for _, imp := range c.Imports {
		if strings.HasPrefix(imp.Name, "sealbus-view-") {
			tenants[imp.Account] = true
		}
	}
	n := int64(len(tenants))
	base := accounts.OperatorAccountLimits()
	perTenant := int64(0)
	for _, v := range accounts.ViewSources() {
		perTenant += lim.viewBytes(v.Kind)
	}
	disk := base.DiskStorage + int64(replicas)*(lim.EventsMaxBytes+operatorAuditBytes+monitorStateBytes+n*perTenant)
	streams := base.Streams + 3 + n*int64(len(accounts.ViewSources()))
	consumers := base.Consumers + 4*n*int64(len(accounts.ViewSources()))
	changed := false
	raise := func(have *int64, want int64) {
		if *have >= 0 && *have < want {
			*have, changed = want, true
		}
	}
	js := &c.Limits.JetStreamLimits
	raise(&js.DiskStorage, disk)
	raise(&js.Streams, streams)
	raise(&js.Consumer, consumers)
	return changed
}

// viewBytes is the size limit of a view stream of the given kind.
func (l ViewLimits) viewBytes(kind string) int64 {
	if kind == "dlq" {
		return l.DLQMaxBytes
	}
	return l.AuditMaxBytes
}

// viewAge is the age limit of a view stream of the given kind.
func (l ViewLimits) viewAge(kind string) time.Duration {
	if kind == "dlq" {
		return l.DLQMaxAge
	}
	return l.AuditMaxAge
}

// linkView makes the operator account import tenant's view sources (pushing the operator
// account when that changed it) and creates or updates its view streams of tenant. It reports
// whether the operator account's JWT changed.
func (p *Provisioner) linkView(ctx context.Context, tenant *accounts.Account) (bool, error) {
	p.omu.Lock()
	defer p.omu.Unlock()
	opAcct, changed, err := p.linkOperatorImports(tenant)
	if err != nil {
		return false, err
	}
	var nc *nats.Conn
	if changed {
		nc, err = p.pushAndConnect(ctx, opAcct)
	} else {
		nc, err = ConnectAdmin(ctx, p.Target, opAcct)
	}
	if err != nil {
		return changed, err
	}
	defer nc.Close()
	return changed, setupViewStreams(ctx, nc, tenant, p.replicas(), p.ViewLimits.withDefaults())
}

// setupViewSources creates or updates acct's mirrors of its streams that the view sources.
func setupViewSources(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int, lim ViewLimits) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	for _, v := range accounts.ViewSources() {
		name := v.Mirror(acct.PublicKey())
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "sealbus: mirror of " + v.Origin + " for the operator-wide view",
			Mirror:      &jetstream.StreamSource{Name: v.Origin},
			Storage:     jetstream.FileStorage, Replicas: replicas,
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			MaxAge: lim.BufferMaxAge, MaxBytes: share(acct.Claims.Limits.DiskStorage, lim.BufferMaxBytes, 32) / int64(replicas),
		}); err != nil {
			return fmt.Errorf("operator: mirror %s of account %s: %w", name, acct.Name, err)
		}
	}
	return nil
}

func (p *Provisioner) replicas() int { return max(1, p.Replicas) }

// setupOperatorStreams creates or updates the operator account's monitoring streams: the
// recorded system events, its own audit stream (its admin subject only) and the monitor's state
// bucket.
func setupOperatorStreams(ctx context.Context, nc *nats.Conn, acct *accounts.Account, replicas int, lim ViewLimits) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        accounts.SystemEventsStream,
		Description: "sealbus: the servers' auth-error and connection events, recorded for the monitor",
		Subjects:    []string{accounts.SystemEventsSubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage, Replicas: replicas,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		MaxAge: lim.EventsMaxAge, MaxBytes: lim.EventsMaxBytes,
	}); err != nil {
		return fmt.Errorf("operator: stream %s: %w", accounts.SystemEventsStream, err)
	}
	tok, err := AdminEvidenceToken(acct)
	if err != nil {
		return err
	}
	if _, err := setupEvidenceStream(ctx, js, acct.Name, accounts.AuditStream,
		"sealbus audit events of the operator account: the monitor's alerts and admin events, signed records",
		[]string{accounts.AdminAuditSubject(tok)}, true, AuditMaxRecord, AuditMaxAge, operatorAuditBytes, replicas); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: accounts.MonitorBucket, Description: "sealbus monitor state", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas, MaxBytes: monitorStateBytes,
	}); err != nil {
		return fmt.Errorf("operator: bucket %s: %w", accounts.MonitorBucket, err)
	}
	return nil
}

// setupViewStreams creates or updates the operator account's view streams of tenant, each
// sourcing the tenant's mirror through the operator account's imports.
func setupViewStreams(ctx context.Context, nc *nats.Conn, tenant *accounts.Account, replicas int, lim ViewLimits) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	key := tenant.PublicKey()
	for _, v := range accounts.ViewSources() {
		view := v.View(key)
		if err := retryResources(ctx, func() error {
			_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        view,
				Description: fmt.Sprintf("sealbus operator-wide view: %s of account %s", v.Origin, tenant.Name),
				Sources: []*jetstream.StreamSource{{
					Name: v.Mirror(key), FilterSubject: v.Filter,
					External: &jetstream.ExternalStream{APIPrefix: accounts.ViewAPIPrefix(key), DeliverPrefix: v.DeliverPrefix(key)},
				}},
				Storage: jetstream.FileStorage, Replicas: replicas,
				Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
				MaxAge: lim.viewAge(v.Kind), MaxBytes: lim.viewBytes(v.Kind),
				Metadata: map[string]string{"sealbus_account": key, "sealbus_account_name": tenant.Name, "sealbus_kind": v.Kind},
			})
			return err
		}); err != nil {
			return fmt.Errorf("operator: view stream %s: %w (the operator account's limits must hold the recorded events plus, per tenant, the audit and dead-letter views: raise them or lower Provisioner.ViewLimits)", view, err)
		}
	}
	return nil
}

// The server's error codes for a stream refused for storage or memory resources
// (JSStorageResourcesExceededErr, JSMemoryResourcesExceededErr), which jetstream does not name.
const (
	errCodeStorageExceeded jetstream.ErrorCode = 10047
	errCodeMemoryExceeded  jetstream.ErrorCode = 10028
)

// resourcesSettle bounds how long a stream refused for the account's storage is retried.
const resourcesSettle = 10 * time.Second

// retryResources runs create until it is not refused for storage or memory resources, for at
// most resourcesSettle. Right after the operator account's JWT was pushed with limits raised
// for a new tenant, the server that places the stream (the cluster's meta leader) may still
// apply the old limits for a moment; a refusal that lasts is a real one and is returned.
func retryResources(ctx context.Context, create func() error) error {
	deadline := time.Now().Add(resourcesSettle)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := create()
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || (apiErr.ErrorCode != errCodeStorageExceeded && apiErr.ErrorCode != errCodeMemoryExceeded) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// ViewSources reports, for each view stream of the operator account nc is connected to,
// how far its source lags and the source's error, if any.
func ViewSources(ctx context.Context, nc *nats.Conn) (map[string]*jetstream.StreamSourceInfo, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	infos, err := Streams(ctx, nc)
	if err != nil {
		return nil, err
	}
	out := map[string]*jetstream.StreamSourceInfo{}
	for _, in := range infos {
		if _, _, ok := accounts.ParseViewStream(in.Config.Name); ok && len(in.Sources) > 0 {
			out[in.Config.Name] = in.Sources[0]
		}
	}
	return out, nil
}
