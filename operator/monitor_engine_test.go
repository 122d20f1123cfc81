package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// engine is a monitor with no connection, driven by a test through its rules.
type engine struct {
	*Monitor
	clock  time.Time
	alerts []Alert
}

func newEngine(t *testing.T, cfg MonitorConfig) *engine {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := &engine{clock: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e.Monitor = &Monitor{cfg: cfg.withDefaults(), now: func() time.Time { return e.clock }, log: slog.New(slog.DiscardHandler), st: newMonitorState(), sourcePending: map[string]uint64{}, names: map[string]string{}}
	e.handlers = []func(Alert){func(a Alert) { e.alerts = append(e.alerts, a) }}
	return e
}

func (e *engine) advance(d time.Duration) { e.clock = e.clock.Add(d) }

func (e *engine) fail(f authFailure) { e.apply(func() { e.authFailure(f) }) }
func (e *engine) tickNow()           { e.apply(e.tick) }

func (e *engine) of(kind AlertKind, state AlertState) []Alert {
	var out []Alert
	for _, a := range e.alerts {
		if a.Kind == kind && a.State == state {
			out = append(out, a)
		}
	}
	return out
}

const (
	attacker = "203.0.113.7"
	userKey  = "UAFORGEDKEYFORTESTSXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
)

// TestBruteForceOneIncident: 50 failures in 2 s from one address, each with a fresh random
// key, make one incident: opened at the 10th failure, counted to 50, resolved once after the
// quiet period with the count, and never reported twice.
func TestBruteForceOneIncident(t *testing.T) {
	var cfg MonitorConfig
	cfg.Quiet = Duration(30 * time.Second)
	e := newEngine(t, cfg)
	for i := range 50 {
		e.fail(authFailure{Time: e.clock, Address: attacker, UserKey: fmt.Sprintf("U%055d", i), Cause: CauseBadCredentials})
		e.advance(40 * time.Millisecond)
		if i%10 == 0 {
			e.tickNow()
		}
	}
	open := e.of(AlertBruteForce, AlertOpen)
	if len(open) != 1 {
		t.Fatalf("%d open brute-force alerts, want 1: %v", len(open), e.alerts)
	}
	if open[0].Count != 10 || open[0].Address != attacker {
		t.Fatalf("open alert %+v", open[0])
	}
	if got := e.Incidents(); len(got) != 1 || got[0].Count != 50 {
		t.Fatalf("incidents %+v, want one with count 50", got)
	}
	e.advance(31 * time.Second)
	e.tickNow()
	res := e.of(AlertBruteForce, AlertResolved)
	if len(res) != 1 || res[0].Count != 50 || res[0].Incident != open[0].Incident {
		t.Fatalf("resolved %+v", res)
	}
	e.tickNow()
	if len(e.alerts) != 2 {
		t.Fatalf("alerts after resolution: %v", e.alerts)
	}
	if e.Stats().Opened[AlertBruteForce] != 1 {
		t.Fatalf("stats %+v", e.Stats())
	}
}

func TestBruteForceThresholds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures []authFailure // times are offsets in seconds in Time.Unix()
		want     int
	}{
		{"nine failures are not enough", repeat(9, attacker, "", time.Second), 0},
		{"ten within the minute", repeat(10, attacker, "", time.Second), 1},
		{"ten spread over two minutes", repeat(10, attacker, "", 13*time.Second), 0},
		{"one key from ten addresses", distributed(10, userKey), 1},
		{"ten addresses, one failure each, no key", distributed(10, ""), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, MonitorConfig{})
			base := e.clock
			for _, f := range tc.failures {
				f.Time = base.Add(time.Duration(f.Time.Unix()) * time.Millisecond)
				e.clock = f.Time
				e.fail(f)
			}
			if got := len(e.of(AlertBruteForce, AlertOpen)); got != tc.want {
				t.Fatalf("%d brute-force alerts, want %d", got, tc.want)
			}
		})
	}
}

// repeat makes n failures from addr (with key), step apart; Time holds the offset in ms.
func repeat(n int, addr, key string, step time.Duration) []authFailure {
	var out []authFailure
	for i := range n {
		out = append(out, authFailure{Time: time.Unix(int64(time.Duration(i)*step/time.Millisecond), 0), Address: addr, UserKey: key, Cause: CauseBadCredentials})
	}
	return out
}

func distributed(n int, key string) []authFailure {
	var out []authFailure
	for i := range n {
		out = append(out, authFailure{Time: time.Unix(int64(i*100), 0), Address: fmt.Sprintf("198.51.100.%d", i), UserKey: key, Cause: CauseBadCredentials})
	}
	return out
}

// TestStaleKey: a revoked key's attempts are their own alert, not brute force; an expired
// one's too.
func TestStaleKey(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	for range 12 {
		e.fail(authFailure{Time: e.clock, Address: "127.0.0.1", UserKey: userKey, Account: "ASHOP", AccountName: "shop", Service: "legacy", Cause: CauseRevoked})
		e.advance(2 * time.Second)
	}
	for range 3 {
		e.fail(authFailure{Time: e.clock, Address: "127.0.0.1", UserKey: "UOTHER", Cause: CauseExpired})
	}
	rev := e.of(AlertRevokedKey, AlertOpen)
	if len(rev) != 1 || rev[0].Count != 3 || rev[0].Service != "legacy" || !strings.Contains(rev[0].Summary, "service legacy") {
		t.Fatalf("revoked-key alerts %+v", rev)
	}
	if len(e.of(AlertExpiredKey, AlertOpen)) != 1 || len(e.of(AlertBruteForce, AlertOpen)) != 0 {
		t.Fatalf("alerts %v", e.alerts)
	}
	if in := e.incident(AlertRevokedKey, userKey); in == nil || in.Count != 12 {
		t.Fatalf("revoked incident %+v", in)
	}
}

func rejected(account, reason string, at time.Time) viewRecord {
	return viewRecord{Account: account, AccountName: "shop", Kind: "audit", Stored: at, Type: bus.EventRejected, Reason: reason}
}

// TestRejectionSpike: a steady trickle builds a baseline and raises nothing; a burst far
// above it raises one alert per account and reason; the burst does not become the baseline.
func TestRejectionSpike(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	// Two rejections per 10 s bucket for five minutes: normal.
	for range 30 {
		for range 2 {
			e.apply(func() { e.record(rejected("ASHOP", "stale", e.clock)) })
		}
		e.advance(10 * time.Second)
	}
	if len(e.alerts) != 0 {
		t.Fatalf("a trickle raised %v", e.alerts)
	}
	base := e.st.Rejections["ASHOP|stale"].EWMA
	for range 200 {
		e.apply(func() { e.record(rejected("ASHOP", "malformed", e.clock)) })
		e.apply(func() { e.record(rejected("ASHOP", "stale", e.clock)) })
	}
	for _, reason := range []string{"malformed", "stale"} {
		var n int
		for _, a := range e.of(AlertRejectionSpike, AlertOpen) {
			if a.Reason == reason {
				n++
				if a.Count < 20 || a.AccountName != "shop" {
					t.Errorf("alert %+v", a)
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d spike alerts for %s: %v", n, reason, e.alerts)
		}
	}
	e.advance(10 * time.Second)
	e.apply(func() { e.record(rejected("ASHOP", "stale", e.clock)) })
	if got := e.st.Rejections["ASHOP|stale"].EWMA; got > base*1.01 {
		t.Fatalf("the spike raised the baseline from %v to %v", base, got)
	}
	if in := e.incident(AlertRejectionSpike, "ASHOP|stale"); in == nil || in.Count != 200 {
		t.Fatalf("incident %+v, want count 200", in)
	}
}

// TestForgedRecord: one record that does not decode is an alert.
func TestForgedRecord(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	e.apply(func() {
		e.record(viewRecord{Account: "ASHOP", Kind: "audit", Seq: 7, Stored: e.clock, Problem: "does not decode as an audit event"})
		e.record(viewRecord{Account: "ASHOP", Kind: "audit", Seq: 8, Stored: e.clock, Problem: "does not decode as an audit event"})
	})
	if a := e.of(AlertForgedRecord, AlertOpen); len(a) != 1 || !strings.Contains(a[0].Summary, "record 7") {
		t.Fatalf("alerts %+v", e.alerts)
	}
}

// TestPollRules: per-service publish rates from connection counters, consumer lag, growing
// redeliveries and dead letters.
func TestPollRules(t *testing.T) {
	var cfg MonitorConfig
	cfg.ConsumerLag.For = Duration(20 * time.Second)
	cfg.Quiet = Duration(30 * time.Second)
	e := newEngine(t, cfg)
	start := e.clock.Add(-time.Hour)
	var in, dlq uint64
	poll := func(rate uint64, pending, redelivered uint64) {
		in += rate * 10
		e.apply(func() {
			e.poll(pollResult{At: e.clock,
				Conns:     []connSample{{Server: "S", CID: 5, Account: "ASHOP", AccountName: "shop", User: "UCHECKOUT", Service: "checkout", Start: start, InMsgs: in}},
				Streams:   []streamSample{{Account: "ASHOP", AccountName: "shop", Stream: accounts.DLQStream, LastSeq: dlq}},
				Consumers: []consumerSample{{Account: "ASHOP", AccountName: "shop", Stream: "ORDERS", Consumer: "billing", Pending: pending, Redelivered: redelivered}},
			})
		})
		e.advance(10 * time.Second)
	}
	for range 10 {
		poll(50, 10, 0) // 50 msgs/s, nearly caught up
	}
	if len(e.alerts) != 0 {
		t.Fatalf("normal polls raised %v", e.alerts)
	}
	poll(5000, 20000, 0) // flood; lag starts
	if a := e.of(AlertPublishRate, AlertOpen); len(a) != 1 || a[0].Service != "checkout" || a[0].Value < 4999 {
		t.Fatalf("publish-rate alerts %+v", e.alerts)
	}
	poll(50, 20000, 0)
	if len(e.of(AlertConsumerLag, AlertOpen)) != 0 {
		t.Fatal("lag alert before ConsumerLag.For")
	}
	poll(50, 20000, 150)
	if a := e.of(AlertConsumerLag, AlertOpen); len(a) != 1 || a[0].Consumer != "billing" {
		t.Fatalf("lag alerts %+v", e.alerts)
	}
	if len(e.of(AlertRedelivery, AlertOpen)) != 1 {
		t.Fatalf("redelivery alerts %+v", e.alerts)
	}
	dlq = 500
	poll(50, 0, 150)
	if a := e.of(AlertDeadLetters, AlertOpen); len(a) != 1 || a[0].Value != 500 {
		t.Fatalf("dead-letter alerts %+v", e.alerts)
	}
	// A failed poll (servers away) resolves nothing; once polls work again and nothing grows,
	// the incidents resolve, and the old growth does not open them again.
	e.advance(time.Minute)
	e.apply(func() { e.poll(pollResult{At: e.clock, Errors: 3}) })
	e.tickNow()
	if n := len(e.of(AlertDeadLetters, AlertResolved)); n != 0 {
		t.Fatal("resolved while the servers could not be read")
	}
	for range 8 {
		poll(50, 0, 150)
		e.tickNow()
	}
	if len(e.of(AlertDeadLetters, AlertResolved)) != 1 || len(e.of(AlertDeadLetters, AlertOpen)) != 1 || len(e.of(AlertRedelivery, AlertOpen)) != 1 {
		t.Fatalf("after the flood: %v", e.alerts)
	}
}

// TestStateRoundTrip: a monitor restarted from saved state keeps its incidents: the same
// evidence extends them and reports nothing new.
func TestStateRoundTrip(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	for range 12 {
		e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	}
	if len(e.of(AlertBruteForce, AlertOpen)) != 1 {
		t.Fatal("no incident to save")
	}
	e.dirty = true
	b, err := jsonState(e.Monitor)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	r := newEngine(t, MonitorConfig{})
	r.clock = e.clock
	r.st = st
	for range 5 {
		r.fail(authFailure{Time: r.clock, Address: attacker, Cause: CauseNoJWT})
	}
	if len(r.alerts) != 0 {
		t.Fatalf("restarted monitor reported %v", r.alerts)
	}
	if got := r.Incidents(); len(got) != 1 || got[0].Count != 17 {
		t.Fatalf("incidents after restart %+v", got)
	}
	if _, err := decodeState([]byte(`{"version":99}`)); err == nil {
		t.Fatal("a state of another version was accepted")
	}
}

func jsonState(m *Monitor) ([]byte, error) {
	var out []byte
	store := memStore{save: func(b []byte) { out = b }}
	m.store = store
	err := m.save(t0ctx)
	return out, err
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"billing":                "billing",
		"\x1b[31mred":            `\x1b[31mred`,
		"a\nb":                   `a\x0ab`,
		"bad\xffutf8":            `bad\xffutf8`,
		"bidi\u202eevil":         `bidi\u202eevil`,
		`back\slash`:             `back\\slash`,
		"Zürich":                 "Zürich",
		strings.Repeat("x", 300): strings.Repeat("x", 200) + "...",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	a := Alert{Kind: AlertBruteForce, State: AlertOpen, Service: "evil\x1b]0;pwned\x07", Summary: "x\ny"}
	if s := a.String(); strings.ContainsAny(s, "\x1b\x07\n") {
		t.Fatalf("alert line carries control characters: %q", s)
	}
}

func TestMonitorConfigValidate(t *testing.T) {
	var bad MonitorConfig
	bad.Rejections.Factor = 0.5
	if err := bad.Validate(); err == nil {
		t.Fatal("factor below 1 accepted")
	}
	var neg MonitorConfig
	neg.BruteForce.Window = Duration(-time.Second)
	if err := neg.Validate(); err == nil {
		t.Fatal("negative window accepted")
	}
	if err := (MonitorConfig{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSprayBounded: an attacker spraying random user keys (one failure each, below every
// threshold) does not grow the monitor's state without bound, and is caught by its address.
func TestSprayBounded(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	for i := range 3 * maxTracked {
		e.fail(authFailure{Time: e.clock, Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), UserKey: fmt.Sprintf("U%055d", i), Cause: CauseBadCredentials})
	}
	if n, k := len(e.st.AddrFailures), len(e.st.KeyFailures); n > maxTracked || k > maxTracked {
		t.Fatalf("tracking %d addresses and %d keys, bound %d", n, k, maxTracked)
	}
	for i := range 20 {
		e.fail(authFailure{Time: e.clock, Address: attacker, UserKey: fmt.Sprintf("V%055d", i), Cause: CauseBadCredentials})
	}
	if len(e.of(AlertBruteForce, AlertOpen)) != 1 {
		t.Fatalf("the spraying address raised %d alerts", len(e.of(AlertBruteForce, AlertOpen)))
	}
}

// TestGuardStoreFull: a durable's replay guard store filling (an insider's junk, or a rate its
// size does not allow) raises one alert naming the durable and the fix before the durable
// stalls, kept open while the store stays full and resolved once it has room; a stream that
// only looks like a guard store, or one without a size limit, raises nothing.
func TestGuardStoreFull(t *testing.T) {
	var cfg MonitorConfig
	cfg.Quiet = Duration(30 * time.Second)
	e := newEngine(t, cfg)
	guard := accounts.GuardStream("ORDERS", "billing")
	poll := func(bytes uint64, extra ...streamSample) {
		e.apply(func() {
			e.poll(pollResult{At: e.clock, Streams: append([]streamSample{{Account: "ASHOP", AccountName: "shop", Stream: guard, Bytes: bytes, MaxBytes: 1000}}, extra...)})
		})
		e.advance(10 * time.Second)
		e.tickNow()
	}
	poll(500, streamSample{Account: "ASHOP", Stream: "SEALBUS_GUARD_9_ORDERS_billing", Bytes: 999, MaxBytes: 1000}, // a bad length
		streamSample{Account: "ASHOP", Stream: accounts.GuardStream("ORDERS", "shipping"), Bytes: 1 << 30}) // no size limit
	if len(e.alerts) != 0 {
		t.Fatalf("half-full store, or streams that are not sized guard stores: %v", e.alerts)
	}
	poll(850)
	open := e.of(AlertGuardStoreFull, AlertOpen)
	if len(open) != 1 || open[0].Stream != "ORDERS" || open[0].Consumer != "billing" || open[0].Value != 85 || !strings.Contains(open[0].Summary, "guard-size") {
		t.Fatalf("guard store alerts %+v", e.alerts)
	}
	for range 5 {
		poll(990)
	}
	if len(e.of(AlertGuardStoreFull, AlertOpen)) != 1 || len(e.of(AlertGuardStoreFull, AlertResolved)) != 0 {
		t.Fatalf("while full: %v", e.alerts)
	}
	for range 5 {
		poll(100)
	}
	if res := e.of(AlertGuardStoreFull, AlertResolved); len(res) != 1 || res[0].Incident != open[0].Incident {
		t.Fatalf("after the store had room: %v", e.alerts)
	}
}

// TestStreamRateAfterAStaleReading: a stream taking in 500 messages/s is read once from a
// server back from a cut (its state 10 s old, as after a node restart in a cluster): no rate
// is taken from that reading or from the catch-up after it, so no publish-rate alert; a real
// flood afterwards still opens one.
func TestStreamRateAfterAStaleReading(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	var seq uint64
	poll := func(lastSeq uint64) {
		e.apply(func() {
			e.poll(pollResult{At: e.clock, Streams: []streamSample{{Account: "ASHOP", AccountName: "shop", Stream: "ORDERS", LastSeq: lastSeq}}})
		})
		e.advance(time.Second)
	}
	for range 30 {
		seq += 500
		poll(seq)
	}
	seq += 500
	poll(seq - 5500) // the old leader's state, 11 s behind
	for range 5 {
		seq += 500
		poll(seq)
	}
	if len(e.alerts) != 0 {
		t.Fatalf("a stale reading raised %v", e.alerts)
	}
	seq += 50000
	poll(seq)
	if a := e.of(AlertPublishRate, AlertOpen); len(a) != 1 || a[0].Stream != "ORDERS" || a[0].Value < 49999 {
		t.Fatalf("flood after the stale reading: %+v", e.alerts)
	}
}

// TestDeadLettersAfterAStaleReading: a dead-letter stream read once behind (its former leader
// answering as a node comes back) does not make the catch-up look like growth; growth after it
// still opens an incident.
func TestDeadLettersAfterAStaleReading(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	poll := func(lastSeq uint64) {
		e.apply(func() {
			e.poll(pollResult{At: e.clock, Streams: []streamSample{{Account: "ASHOP", AccountName: "shop", Stream: accounts.DLQStream, LastSeq: lastSeq}}})
		})
		e.advance(10 * time.Second)
	}
	poll(1000)
	poll(1010)
	poll(920) // the old leader's state
	poll(1015)
	poll(1020)
	if len(e.alerts) != 0 {
		t.Fatalf("a stale reading raised %v", e.alerts)
	}
	poll(1200)
	if a := e.of(AlertDeadLetters, AlertOpen); len(a) != 1 || a[0].Value != 200 {
		t.Fatalf("growth after the stale reading: %+v", e.alerts)
	}
}

// flakyStore refuses the first fails saves and loadFails loads, then keeps what it is given.
type flakyStore struct {
	fails, calls         int
	loadFails, loadCalls int
	saved                []byte
}

func (s *flakyStore) LoadState(context.Context) ([]byte, error) {
	s.loadCalls++
	if s.loadCalls <= s.loadFails {
		return nil, errors.New("no leader")
	}
	return s.saved, nil
}
func (s *flakyStore) SaveState(_ context.Context, b []byte) error {
	s.calls++
	if s.calls <= s.fails {
		return errors.New("no quorum")
	}
	s.saved = b
	return nil
}

// TestExitSaveRetries: the save at exit is tried again until it gets through, and when the
// time is up the state stays marked unsaved and the error is returned.
func TestExitSaveRetries(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	for range 12 {
		e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	}
	store := &flakyStore{fails: 3}
	e.store = store
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.saveRetrying(ctx); err != nil {
		t.Fatal(err)
	}
	if store.calls != 4 || store.saved == nil {
		t.Fatalf("%d saves, saved %d bytes; want the 4th to keep the state", store.calls, len(store.saved))
	}
	st, err := decodeState(store.saved)
	if err != nil || len(st.Incidents) != 1 {
		t.Fatalf("saved state: %v, %d incidents", err, len(st.Incidents))
	}

	e.dirty = true
	never := &flakyStore{fails: 1 << 30}
	e.store = never
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	if err := e.saveRetrying(sctx); err == nil {
		t.Fatal("a store that never saves: no error")
	}
	if never.calls < 2 || !e.dirty {
		t.Fatalf("%d tries, dirty %v; want retries and the state still unsaved", never.calls, e.dirty)
	}
}

// TestAlertAsksForASave: an alert wakes the saver once, so an incident is saved when it
// opens rather than at the next periodic save.
func TestAlertAsksForASave(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	e.store = &flakyStore{}
	e.saveSoon = make(chan struct{}, 1)
	for range 9 {
		e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	}
	if len(e.saveSoon) != 0 {
		t.Fatal("failures below the threshold asked for a save")
	}
	for range 3 {
		e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	}
	if len(e.of(AlertBruteForce, AlertOpen)) != 1 {
		t.Fatalf("alerts %v", e.alerts)
	}
	if len(e.saveSoon) != 1 {
		t.Fatal("the opened incident did not ask for a save")
	}
	<-e.saveSoon
	e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	if len(e.saveSoon) != 0 {
		t.Fatal("asked for a save twice for one alert")
	}
}

// TestLoadRetries: a store that cannot be read for a moment is read again until the load's
// time is up; a saved state that does not decode fails at once.
func TestLoadRetries(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	for range 12 {
		e.fail(authFailure{Time: e.clock, Address: attacker, Cause: CauseNoJWT})
	}
	saved, err := jsonState(e.Monitor)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r := newEngine(t, MonitorConfig{})
	store := &flakyStore{loadFails: 3, saved: saved}
	r.store = store
	if err := r.loadState(ctx); err != nil {
		t.Fatal(err)
	}
	if store.loadCalls != 4 || len(r.Incidents()) != 1 {
		t.Fatalf("%d loads, %d incidents; want the 4th load to bring back the incident", store.loadCalls, len(r.Incidents()))
	}

	bad := &flakyStore{saved: []byte("not a state")}
	r.store = bad
	if err := r.loadState(ctx); err == nil || bad.loadCalls != 1 {
		t.Fatalf("an unreadable state: %v after %d loads; want an error at once", err, bad.loadCalls)
	}

	never := &flakyStore{loadFails: 1 << 30}
	r.store = never
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	if err := r.loadState(sctx); err == nil || never.loadCalls < 2 {
		t.Fatalf("a store that cannot be read: %v after %d loads; want retries, then the error", err, never.loadCalls)
	}
}

// TestAlertsRecordedAsTheRunEnds: an alert being recorded when the run ends is finished, not
// given up, and one the loops queue after the end, before they stop, is recorded too.
func TestAlertsRecordedAsTheRunEnds(t *testing.T) {
	e := newEngine(t, MonitorConfig{})
	e.recQ = make(chan bus.Event, 8)
	started, release := make(chan struct{}, 2), make(chan struct{})
	var recorded []string
	e.recorder = func(ctx context.Context, ev bus.Event) error {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		recorded = append(recorded, ev.ID)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	producersDone, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		e.recordAlerts(ctx, producersDone)
	}()
	e.recQ <- bus.Event{ID: "a"}
	<-started
	cancel()                     // the run ends while "a" is being recorded
	e.recQ <- bus.Event{ID: "b"} // a loop that has not stopped yet raises one more
	time.Sleep(100 * time.Millisecond)
	close(release)
	close(producersDone)
	<-done
	if strings.Join(recorded, ",") != "a,b" || e.Stats().AlertsUnrecorded != 0 {
		t.Fatalf("recorded %v, %d unrecorded; want a and b", recorded, e.Stats().AlertsUnrecorded)
	}
}
