package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// Monitor watches a sealbus deployment for attacks and trouble and raises de-duplicated
// alerts (see [AlertKind] and docs/MONITORING.md). It reads, as the operator:
//
//   - the servers' authentication-failure and connection events (system account), from the
//     operator account's recording of them (set up with it, [Provisioner.SetupOperatorAccount]) when there is one, so
//     nothing is lost while the monitor is away, else live;
//   - the operator-wide audit view ([Provisioner.SetupMonitoring]): rejections, and records
//     that do not verify (each verified with its account's [RecordVerifier]);
//   - every Poll, the servers' JetStream state (consumer lag, redeliveries, dead-letter
//     growth, stream ingest rates) and connection counters (per-service publish rates).
//
// Each incident is reported once when it opens, again at most every Repeat while it grows,
// and once when it resolves, with its count: to the alert handlers (a line on stdout, JSON),
// as a signed audit event on the operator account's admin subject, part of the operator-wide
// view ([WithOperatorAccount], [WithAlertRecorder]) and in [Monitor.Stats]
// for metrics. With a state store ([WithStateStore]) a restarted monitor resumes where it
// stopped: open incidents stay open and are not reported again, and recorded events are read
// from the position it had reached.
//
// A Monitor is safe for concurrent use; Run runs it once.
type Monitor struct {
	cfg      MonitorConfig
	sys      *nats.Conn
	ops      *nats.Conn
	opsJS    jetstream.JetStream
	now      func() time.Time
	log      *slog.Logger
	handlers []func(Alert)
	recorder func(context.Context, bus.Event) error
	lookup   VerifierLookup // record verifiers of the view's accounts
	store    StateStore
	opsAcct  *accounts.Account // the operator account (its signing key signs the alerts)
	opsKey   string            // its public key
	opsToken string            // its admin evidence token

	emitMu   sync.Mutex // serializes delivery of alerts, in order
	mu       sync.Mutex // guards what follows
	st       *monitorState
	dirty    bool
	saveSoon chan struct{} // an alert went out: the ticker saves at once
	// pending alerts, delivered after the state change that made them
	pending        []Alert
	sourcePending  map[string]uint64 // recorded source -> messages not yet read
	names          map[string]string // account public key -> name, as the view learned them
	servers        []ServerStats
	consumers      []consumerSample
	pollErrors     uint64
	lastPollFailed bool
	dropped        uint64 // alert events not recorded
	started        bool

	claimsMu  sync.Mutex
	claims    map[string]claimsEntry
	verifiers map[string]*RecordVerifier // by account JWT

	recQ chan bus.Event
}

// MonitorOption configures [NewMonitor].
type MonitorOption func(*Monitor) error

// WithMonitorConfig sets the thresholds (zero fields take their defaults). An invalid
// configuration is [ErrInvalidSpec].
func WithMonitorConfig(cfg MonitorConfig) MonitorOption {
	return func(m *Monitor) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		m.cfg = cfg.withDefaults()
		return nil
	}
}

// WithOperatorAccount gives the monitor an admin connection nc ([ConnectAdmin],
// [ConnectMonitor]) to the operator account acct (from the keystore, with its signing key): it
// then reads the recorded system events and the operator-wide audit view there, and records its
// alerts as audit events signed with the account's signing key on the account's admin subject
// (so they are part of the view and verify like every admin record). The view's records are
// verified with [WithRecordVerifiers], by default with the account JWTs the servers hold, each
// verified up to the operator that signed acct. Without this option the monitor reads the
// system events live and has no audit view.
func WithOperatorAccount(nc *nats.Conn, acct *accounts.Account) MonitorOption {
	return func(m *Monitor) error {
		if nc == nil || acct == nil || acct.Claims == nil {
			return fmt.Errorf("%w: monitor: nil connection or account", ErrInvalidSpec)
		}
		tok, err := AdminEvidenceToken(acct)
		if err != nil {
			return err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("operator: monitor: %w", err)
		}
		m.ops, m.opsJS, m.opsAcct, m.opsKey, m.opsToken = nc, js, acct, acct.PublicKey(), tok
		return nil
	}
}

// WithRecordVerifiers sets how the monitor finds the verifier of an account's records in the
// view (for instance from a keystore). By default ([WithOperatorAccount]) it builds one from the
// account JWT the servers hold, verified up to the operator account's operator, and builds it
// again when a new account JWT is pushed. A record that does not verify is a forged record
// ([AlertForgedRecord]); a lookup error is retried.
func WithRecordVerifiers(lookup VerifierLookup) MonitorOption {
	return func(m *Monitor) error {
		if lookup == nil {
			return fmt.Errorf("%w: monitor: nil verifier lookup", ErrInvalidSpec)
		}
		m.lookup = lookup
		return nil
	}
}

// WithAlertHandler adds a function called with every alert, in order, from one goroutine at
// a time. It must not block for long.
func WithAlertHandler(f func(Alert)) MonitorOption {
	return func(m *Monitor) error {
		if f == nil {
			return fmt.Errorf("%w: monitor: nil alert handler", ErrInvalidSpec)
		}
		m.handlers = append(m.handlers, f)
		return nil
	}
}

// WithAlertRecorder replaces how alerts are recorded as audit events (by default, when
// WithOperatorAccount is given, they are signed and written to the operator account's admin
// audit subject). The recorder runs in its own goroutine; an error is retried a few times, then
// logged and counted.
func WithAlertRecorder(f func(context.Context, bus.Event) error) MonitorOption {
	return func(m *Monitor) error {
		if f == nil {
			return fmt.Errorf("%w: monitor: nil alert recorder", ErrInvalidSpec)
		}
		m.recorder = f
		return nil
	}
}

// WithStateStore makes the monitor load its state at Run and save it every few seconds and
// when Run returns, so that a restarted monitor neither loses incidents nor reports them again.
func WithStateStore(s StateStore) MonitorOption {
	return func(m *Monitor) error {
		if s == nil {
			return fmt.Errorf("%w: monitor: nil state store", ErrInvalidSpec)
		}
		m.store = s
		return nil
	}
}

// WithMonitorClock sets the clock reports and quiet periods use (default time.Now).
func WithMonitorClock(now func() time.Time) MonitorOption {
	return func(m *Monitor) error {
		if now == nil {
			return fmt.Errorf("%w: monitor: nil clock", ErrInvalidSpec)
		}
		m.now = now
		return nil
	}
}

// WithMonitorLogger sets the logger (default: discard).
func WithMonitorLogger(l *slog.Logger) MonitorOption {
	return func(m *Monitor) error {
		if l == nil {
			return fmt.Errorf("%w: monitor: nil logger", ErrInvalidSpec)
		}
		m.log = l
		return nil
	}
}

// NewMonitor returns a monitor that reads the servers through sys, a connection of the
// operator's system account ([ConnectSystem]; give it nats.MaxReconnects(-1) for a
// long-running monitor, as [ConnectMonitor] does). It talks to nothing until Run.
func NewMonitor(sys *nats.Conn, opts ...MonitorOption) (*Monitor, error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: monitor: nil system connection", ErrInvalidSpec)
	}
	m := &Monitor{
		cfg: DefaultMonitorConfig(), sys: sys, now: time.Now, log: slog.New(slog.DiscardHandler),
		st: newMonitorState(), sourcePending: map[string]uint64{}, names: map[string]string{}, claims: map[string]claimsEntry{},
		verifiers: map[string]*RecordVerifier{}, recQ: make(chan bus.Event, 1024), saveSoon: make(chan struct{}, 1),
	}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: monitor: nil option", ErrInvalidSpec)
		}
		if err := o(m); err != nil {
			return nil, err
		}
	}
	if m.recorder == nil && m.opsJS != nil {
		m.recorder = m.publishAlertEvent
	}
	if m.lookup == nil && m.opsAcct != nil {
		m.lookup = m.serverVerifier(accounts.Trust{Operators: []string{m.opsAcct.Claims.Issuer}})
	}
	return m, nil
}

// monitorState is what a monitor persists.
type monitorState struct {
	Version       int                  `json:"version"`
	Saved         time.Time            `json:"saved"`
	Incidents     map[string]*incident `json:"incidents"`
	Opened        map[AlertKind]uint64 `json:"opened"`
	Events        map[string]uint64    `json:"events"`
	AddrFailures  map[string]*window   `json:"addr_failures"`
	KeyFailures   map[string]*window   `json:"key_failures"`
	StaleAttempts map[string]*window   `json:"stale_attempts"`
	Forged        map[string]*window   `json:"forged"`
	Rejections    map[string]*spike    `json:"rejections"`
	Rates         map[string]*spike    `json:"rates"`
	Conns         map[string]connState `json:"conns"`
	Streams       map[string]uint64    `json:"streams"`
	Lag           map[string]*lag      `json:"lag"`
	Redelivered   map[string]*growth   `json:"redelivered"`
	DeadLetters   map[string]*growth   `json:"dead_letters"`
	LastPoll      time.Time            `json:"last_poll"`
	Positions     map[string]uint64    `json:"positions"` // recorded stream -> last sequence applied
}

const monitorStateVersion = 1

func newMonitorState() *monitorState {
	return &monitorState{
		Version: monitorStateVersion, Incidents: map[string]*incident{}, Opened: map[AlertKind]uint64{}, Events: map[string]uint64{},
		AddrFailures: map[string]*window{}, KeyFailures: map[string]*window{}, StaleAttempts: map[string]*window{}, Forged: map[string]*window{},
		Rejections: map[string]*spike{}, Rates: map[string]*spike{}, Conns: map[string]connState{}, Streams: map[string]uint64{},
		Lag: map[string]*lag{}, Redelivered: map[string]*growth{}, DeadLetters: map[string]*growth{}, Positions: map[string]uint64{},
	}
}

// decodeState reads saved state; maps missing from it are made empty.
func decodeState(b []byte) (*monitorState, error) {
	st := newMonitorState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: monitor state does not decode: %v", ErrInvalidSpec, err)
	}
	if st.Version != monitorStateVersion {
		return nil, fmt.Errorf("%w: monitor state version %d, want %d", ErrInvalidSpec, st.Version, monitorStateVersion)
	}
	fresh := newMonitorState()
	if st.Incidents == nil {
		st.Incidents = fresh.Incidents
	}
	if st.Opened == nil {
		st.Opened = fresh.Opened
	}
	if st.Events == nil {
		st.Events = fresh.Events
	}
	for _, p := range []*map[string]*window{&st.AddrFailures, &st.KeyFailures, &st.StaleAttempts, &st.Forged} {
		if *p == nil {
			*p = map[string]*window{}
		}
	}
	for _, p := range []*map[string]*spike{&st.Rejections, &st.Rates} {
		if *p == nil {
			*p = map[string]*spike{}
		}
	}
	for _, p := range []*map[string]*growth{&st.Redelivered, &st.DeadLetters} {
		if *p == nil {
			*p = map[string]*growth{}
		}
	}
	if st.Conns == nil {
		st.Conns = fresh.Conns
	}
	if st.Streams == nil {
		st.Streams = fresh.Streams
	}
	if st.Lag == nil {
		st.Lag = fresh.Lag
	}
	if st.Positions == nil {
		st.Positions = fresh.Positions
	}
	return st, nil
}

// apply runs f on the state under the lock, then delivers the alerts it made.
func (m *Monitor) apply(f func()) {
	m.emitMu.Lock()
	defer m.emitMu.Unlock()
	m.mu.Lock()
	f()
	out := m.pending
	m.pending = nil
	if len(out) > 0 && m.store != nil {
		// Its incident is saved now rather than at the next periodic save, so that a
		// monitor stopped (or killed) right after does not report it again when it restarts.
		select {
		case m.saveSoon <- struct{}{}:
		default:
		}
	}
	m.mu.Unlock()
	for _, a := range out {
		for _, h := range m.handlers {
			h(a)
		}
		if m.recorder != nil {
			select {
			case m.recQ <- m.alertEvent(a):
			default:
				m.mu.Lock()
				m.dropped++
				m.mu.Unlock()
				m.log.Warn("sealbus: monitor: alert event queue full; alert not recorded", "kind", a.Kind, "incident", a.Incident)
			}
		}
	}
}

// Run runs the monitor until ctx ends; it then saves the state (when a store is set) and
// returns nil. It fails with an error when the saved state cannot be loaded within
// [DefaultTimeout] (or is not a state), and with [ErrInvalidSpec] when called twice.
// Connection trouble while running is logged and retried, never fatal: the connections
// reconnect and reading resumes.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return fmt.Errorf("%w: monitor: Run called twice", ErrInvalidSpec)
	}
	m.started = true
	m.mu.Unlock()
	if m.store != nil {
		lctx, cancel := withDefaultTimeout(ctx)
		err := m.loadState(lctx)
		cancel()
		if err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.claimUpdates(ctx) })
	wg.Go(func() { m.systemEvents(ctx) })
	if m.opsJS != nil {
		wg.Go(func() { m.auditView(ctx) })
	}
	wg.Go(func() { m.poller(ctx) })
	wg.Go(func() { m.ticker(ctx) })
	recDone, producersDone := make(chan struct{}), make(chan struct{})
	if m.recorder != nil {
		go func() {
			defer close(recDone)
			m.recordAlerts(ctx, producersDone)
		}()
	} else {
		close(recDone)
	}
	wg.Wait()
	close(producersDone)
	<-recDone
	if m.store != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
		defer cancel()
		if err := m.saveRetrying(sctx); err != nil {
			m.log.Warn("sealbus: monitor: saving state at exit", "error", err)
		}
	}
	return nil
}

// loadState loads the saved state, trying again until ctx ends when the store cannot be
// read (a bucket whose leader is being elected answers nothing for a moment): a monitor
// started without its state would report its open incidents again.
func (m *Monitor) loadState(ctx context.Context) error {
	var b []byte
	if err := m.retrying(ctx, "loading state", func() (err error) {
		b, err = m.store.LoadState(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("operator: monitor: loading state: %w", err)
	}
	if b == nil {
		return nil
	}
	st, err := decodeState(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.st = st
	m.mu.Unlock()
	return nil
}

// saveRetrying saves until a save succeeds or ctx ends: the save at exit is the last chance
// to keep what the run found (a bucket that has just lost a node refuses a put for a
// moment), and a monitor restarted from an older state reports its incidents again.
func (m *Monitor) saveRetrying(ctx context.Context) error {
	return m.retrying(ctx, "saving state", func() error { return m.save(ctx) })
}

// retrying calls f until it succeeds or ctx ends (then returning f's last error), waiting
// 50 ms, doubling to 1 s, between tries; the first failure is logged.
func (m *Monitor) retrying(ctx context.Context, what string, f func() error) error {
	wait := 50 * time.Millisecond
	for try := 1; ; try++ {
		err := f()
		if err == nil {
			if try > 1 {
				m.log.Info("sealbus: monitor: "+what+": done", "tries", try)
			}
			return nil
		}
		if try == 1 {
			m.log.Warn("sealbus: monitor: "+what+"; retrying", "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// saveEvery is how often a changed state is saved.
const saveEvery = 2 * time.Second

func (m *Monitor) ticker(ctx context.Context) {
	every := min(time.Second, m.cfg.Poll.D())
	t := time.NewTicker(every)
	defer t.Stop()
	lastSave := time.Now()
	for {
		soon := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.apply(m.tick)
		case <-m.saveSoon:
			soon = true
		}
		if m.store != nil && (soon || time.Since(lastSave) >= saveEvery) {
			lastSave = time.Now()
			sctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
			if err := m.save(sctx); err != nil && ctx.Err() == nil {
				m.log.Warn("sealbus: monitor: saving state", "error", err)
			}
			cancel()
		}
	}
}

func (m *Monitor) save(ctx context.Context) error {
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	m.st.Saved = m.now()
	b, err := json.Marshal(m.st)
	m.dirty = false
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("operator: monitor state: %w", err)
	}
	if err := m.store.SaveState(ctx, b); err != nil {
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
		return err
	}
	return nil
}

// alertEvent is the audit event recording a.
func (m *Monitor) alertEvent(a Alert) bus.Event {
	return bus.Event{
		ID:   a.Incident + "-" + string(a.State) + "-" + fmt.Sprint(a.Count),
		Type: AlertEventPrefix + string(a.Kind),
		Time: a.At,
		Data: bus.EventData{
			Reason: string(a.State), Key: a.Incident, Stream: a.Stream, Consumer: a.Consumer,
			Sender: a.UserKey, Sequence: a.Count, Error: a.Summary,
		},
	}
}

// recordDrain is how long alerts still queued, or being recorded, when the run ends are given
// to be recorded.
const recordDrain = 2 * time.Second

// recordAlerts records the alerts queued until ctx ends, then those queued until the loops
// that raise them have stopped (producersDone).
func (m *Monitor) recordAlerts(ctx context.Context, producersDone <-chan struct{}) {
	// Alerts are recorded under rctx, which ends recordDrain after ctx: one being recorded
	// when the run ends is finished, not given up (it was reported, so it must be recorded).
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(recordDrain, cancel) })
	defer stop()
	for ctx.Err() == nil {
		select {
		case e := <-m.recQ:
			m.recordOne(rctx, e)
		case <-ctx.Done():
		}
	}
	// The run has ended: what the loops queue until they stop, then what is left.
	for {
		select {
		case e := <-m.recQ:
			m.recordOne(rctx, e)
		case <-producersDone:
			for {
				select {
				case e := <-m.recQ:
					m.recordOne(rctx, e)
				default:
					return
				}
			}
		}
	}
}

// recordAttempts is how often recording one alert is tried.
const recordAttempts = 3

func (m *Monitor) recordOne(ctx context.Context, e bus.Event) {
	var err error
	for i := range recordAttempts {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(i) * time.Second):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		err = m.recorder(rctx, e)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		m.mu.Lock()
		m.dropped++
		m.mu.Unlock()
		m.log.Warn("sealbus: monitor: alert not recorded", "type", e.Type, "error", err)
	}
}

// MonitorStats is a snapshot of what the monitor has done, for metrics.
type MonitorStats struct {
	Opened           map[AlertKind]uint64 // incidents opened, by kind
	Open             map[AlertKind]int    // incidents open now, by kind
	Events           map[string]uint64    // evidence read, by source: auth_error, connect, disconnect, audit, dlq, poll
	PollErrors       uint64               // server requests that failed or went unanswered
	AlertsUnrecorded uint64               // alerts that could not be recorded as audit events
	Sources          []SourceStats        // recorded streams the monitor reads, with its own lag on each
	Consumers        []ConsumerStats      // every durable consumer at the last poll
	Servers          []ServerStats        // every server at the last poll
	LastPoll         time.Time
}

// SourceStats is one recorded stream the monitor reads.
type SourceStats struct {
	Stream      string
	Kind        string // "system_events", "audit" or "dlq"
	Account     string // the account whose records it holds (view streams)
	AccountName string
	Pending     uint64 // messages not yet read
}

// ConsumerStats is one durable consumer's state at the last poll.
type ConsumerStats struct {
	Account, AccountName, Stream, Consumer string
	Pending                                uint64 // messages not yet delivered
	AckPending                             uint64 // delivered, not yet acknowledged
	Redelivered                            uint64 // messages redelivered and not yet acknowledged
}

// ServerStats is one server's counters at the last poll (its STATSZ).
type ServerStats struct {
	Name          string
	Connections   int
	InMsgs        uint64 // messages received from clients and routes since the server started
	OutMsgs       uint64 // messages sent
	InBytes       uint64
	OutBytes      uint64
	SlowConsumers int64
}

// Stats returns a snapshot of the monitor's counters.
func (m *Monitor) Stats() MonitorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := MonitorStats{
		Opened: maps.Clone(m.st.Opened), Open: map[AlertKind]int{}, Events: maps.Clone(m.st.Events),
		PollErrors: m.pollErrors, AlertsUnrecorded: m.dropped,
		Servers: slices.Clone(m.servers), LastPoll: m.st.LastPoll,
	}
	for stream, n := range m.sourcePending {
		src := SourceStats{Stream: stream, Kind: "system_events", Pending: n}
		if kind, account, ok := accounts.ParseViewStream(stream); ok {
			src.Kind, src.Account, src.AccountName = kind, account, m.names[account]
		}
		s.Sources = append(s.Sources, src)
	}
	slices.SortFunc(s.Sources, func(a, b SourceStats) int { return strings.Compare(a.Stream, b.Stream) })
	for _, in := range m.st.Incidents {
		s.Open[in.Kind]++
	}
	for _, c := range m.consumers {
		s.Consumers = append(s.Consumers, ConsumerStats{c.Account, c.AccountName, c.Stream, c.Consumer, c.Pending, c.AckPending, c.Redelivered})
	}
	return s
}

// Incidents returns the open incidents, as their latest alert (state open), oldest first.
func (m *Monitor) Incidents() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]Alert, 0, len(m.st.Incidents))
	for _, in := range m.st.Incidents {
		out = append(out, in.alert(AlertOpen, now))
	}
	slices.SortFunc(out, func(a, b Alert) int { return a.First.Compare(b.First) })
	return out
}

// errNoStream reports a recorded stream that does not exist (yet).
var errNoStream = errors.New("no such stream")
