package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// ViewLimits bound the streams of the operator's monitoring in the operator-owned account.
// Zero fields take the defaults below. Each account has its own view streams with their own
// limits, so one account's flood never evicts another's records; audit records (security
// events) and dead letters (routine failures and junk) have separate limits, so dead letters
// never evict audit records.
type ViewLimits struct {
	AuditMaxAge    time.Duration // per account, default 90 days
	AuditMaxBytes  int64         // per account, default 256 MiB
	DLQMaxAge      time.Duration // per account, default 30 days
	DLQMaxBytes    int64         // per account, default 128 MiB
	EventsMaxAge   time.Duration // recorded system events, default 7 days
	EventsMaxBytes int64         // recorded system events, default 256 MiB
	// Each account's mirrors of its audit and dead-letter streams, from which the view
	// sources ([accounts.ViewSourceStream]), are buffers in the account's own storage: they
	// need to hold what the view has not sourced yet (the operator-owned account's streams
	// unavailable). Default 24 hours and 32 MiB each.
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

// MonitoringSetup reports what [Provisioner.SetupMonitoring] did.
type MonitoringSetup struct {
	Operator string   `json:"operator_account"` // the operator-owned account's public key
	Accounts []string `json:"accounts"`         // names of the accounts whose records the view sources
	Pushed   []string `json:"pushed"`           // names of the accounts whose JWT changed and was pushed
}

// SetupMonitoring makes the operator-owned account ops (a keystore account of this operator,
// with JetStream) the home of the operator's monitoring, with NATS mechanisms only — no
// process copies anything:
//
//   - the system account exports its auth-error and connection events, privately, to ops,
//     which records them in [accounts.SystemEventsStream], so they survive the monitor's
//     absence and server restarts;
//   - every other account of the keystore mirrors its SEALBUS_AUDIT and SEALBUS_DLQ into
//     streams named after it ([accounts.ViewSourceStream], subject-less: nothing but the
//     mirror writes them) and exports, privately to ops, what one sourcing consumer on each
//     needs ([accounts.ViewExports]); ops holds one view stream per account and kind
//     ([accounts.ViewAuditStream], [accounts.ViewDLQStream]) that the servers fill by stream
//     sourcing: the operator-wide, read-only view. Accounts never see each other's records,
//     nor the view, nor each other's flow-control traffic;
//   - ops gets its own sealbus streams ([SetupAccount]: its audit stream receives the
//     monitor's alerts) and the monitor's state bucket [accounts.MonitorBucket].
//
// Changed account JWTs (system, tenants, ops) are reissued, saved and pushed. It is
// idempotent; run it again after adding accounts.
func (p *Provisioner) SetupMonitoring(ctx context.Context, ops string, lim ViewLimits) (*MonitoringSetup, error) {
	lim = lim.withDefaults()
	opsAcct, err := p.Keystore.LoadAccount(ops)
	if err != nil {
		return nil, err
	}
	if opsAcct.Claims.Limits.DiskStorage == 0 {
		return nil, fmt.Errorf("%w: the operator-owned account %s has no JetStream disk storage", ErrInvalidSpec, ops)
	}
	opsKey := opsAcct.PublicKey()
	res := &MonitoringSetup{Operator: opsKey}
	sys, err := p.System(ctx)
	if err != nil {
		return nil, err
	}

	// The system account's exports.
	if accounts.AddExports(p.Operator.System.Claims, accounts.SystemEventExports()) {
		if err := p.Operator.Reissue(p.Operator.System); err != nil {
			return nil, err
		}
		if err := p.Keystore.SaveOperator(p.Operator); err != nil {
			return nil, err
		}
		if err := PushAccount(ctx, sys, p.Operator.System.JWT); err != nil {
			return nil, err
		}
		res.Pushed = append(res.Pushed, accounts.SystemAccountName)
	}

	// Every other account's exports, and the imports of ops.
	names, err := p.Keystore.ListAccounts()
	if err != nil {
		return nil, err
	}
	imports, err := accounts.SystemEventImports(p.Operator.System, opsKey)
	if err != nil {
		return nil, err
	}
	var tenants []*accounts.Account
	for _, n := range names {
		if n == ops {
			continue
		}
		var changed bool
		acct, err := p.EditAccount(n, func(a *accounts.Account) error {
			changed = accounts.AddExports(a.Claims, accounts.ViewExports(a.PublicKey(), opsKey))
			if !changed {
				return errUnchanged
			}
			return nil
		})
		if errors.Is(err, errUnchanged) {
			acct, err = p.Keystore.LoadAccount(n)
		}
		if err != nil {
			return nil, err
		}
		if changed {
			if err := p.PushAccount(ctx, acct); err != nil {
				return nil, err
			}
			res.Pushed = append(res.Pushed, n)
		}
		if err := p.setupViewSources(ctx, acct, lim); err != nil {
			return nil, err
		}
		imps, err := accounts.ViewImports(acct, opsKey)
		if err != nil {
			return nil, err
		}
		imports = append(imports, imps...)
		tenants = append(tenants, acct)
		res.Accounts = append(res.Accounts, n)
	}
	var opsChanged bool
	opsAcct, err = p.EditAccount(ops, func(a *accounts.Account) error {
		opsChanged = accounts.AddImports(a.Claims, imports, time.Now())
		if !opsChanged {
			return errUnchanged
		}
		return nil
	})
	if errors.Is(err, errUnchanged) {
		opsAcct, err = p.Keystore.LoadAccount(ops)
	}
	if err != nil {
		return nil, err
	}
	if opsChanged {
		res.Pushed = append(res.Pushed, ops)
	}
	// Pushed and set up in any case: SetupAccount creates ops's own sealbus streams.
	if err := p.SetupAccount(ctx, opsAcct); err != nil {
		return nil, err
	}

	nc, err := ConnectAdmin(ctx, p.Target, opsAcct)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if err := setupMonitoringStreams(ctx, nc, opsKey, tenants, p.replicas(), lim); err != nil {
		return nil, err
	}
	return res, nil
}

var errUnchanged = errors.New("unchanged")

// setupViewSources creates or updates acct's mirrors of its audit and dead-letter streams.
func (p *Provisioner) setupViewSources(ctx context.Context, acct *accounts.Account, lim ViewLimits) error {
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	for kind, origin := range map[string]string{"audit": accounts.AuditStream, "dlq": accounts.DLQStream} {
		name := accounts.ViewSourceStream(kind, acct.PublicKey())
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "sealbus: mirror of " + origin + " for the operator-wide view",
			Mirror:      &jetstream.StreamSource{Name: origin},
			Storage:     jetstream.FileStorage, Replicas: p.replicas(),
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
			MaxAge: lim.BufferMaxAge, MaxBytes: share(acct.Claims.Limits.DiskStorage, lim.BufferMaxBytes, 32),
		}); err != nil {
			return fmt.Errorf("operator: mirror %s of account %s: %w", name, acct.Name, err)
		}
	}
	return nil
}

func (p *Provisioner) replicas() int { return max(1, p.Replicas) }

// setupMonitoringStreams creates or updates the streams of the operator-owned account.
func setupMonitoringStreams(ctx context.Context, nc *nats.Conn, ops string, tenants []*accounts.Account, replicas int, lim ViewLimits) error {
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
	for _, t := range tenants {
		key := t.PublicKey()
		for _, v := range []struct {
			view, stream, filter, tag string
			age                       time.Duration
			bytes                     int64
		}{
			{accounts.ViewAuditStream(key), accounts.ViewSourceStream("audit", key), accounts.AuditSubjectPrefix + ".>", "audit", lim.AuditMaxAge, lim.AuditMaxBytes},
			{accounts.ViewDLQStream(key), accounts.ViewSourceStream("dlq", key), accounts.DLQSubjectPrefix + ".>", "dlq", lim.DLQMaxAge, lim.DLQMaxBytes},
		} {
			if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        v.view,
				Description: fmt.Sprintf("sealbus operator-wide view: %s of account %s", v.stream, t.Name),
				Sources: []*jetstream.StreamSource{{
					Name: v.stream, FilterSubject: v.filter,
					External: &jetstream.ExternalStream{APIPrefix: accounts.ViewAPIPrefix(key), DeliverPrefix: accounts.ViewDeliverPrefix(key) + "." + v.tag},
				}},
				Storage: jetstream.FileStorage, Replicas: replicas,
				Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
				MaxAge: v.age, MaxBytes: v.bytes,
				Metadata: map[string]string{"sealbus_account": key, "sealbus_account_name": t.Name, "sealbus_kind": v.tag},
			}); err != nil {
				return fmt.Errorf("operator: view stream %s: %w (the operator-owned account's disk and stream limits must hold the recorded events plus, per account, the audit and dead-letter views: raise them or lower the view limits)", v.view, err)
			}
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: accounts.MonitorBucket, Description: "sealbus monitor state", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas, MaxBytes: 64 << 20,
	}); err != nil {
		return fmt.Errorf("operator: bucket %s: %w", accounts.MonitorBucket, err)
	}
	return nil
}

// ViewSources reports, for each view stream of the operator-owned account nc is connected to,
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
