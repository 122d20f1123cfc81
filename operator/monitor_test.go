package operator_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// alertLog collects a monitor's alerts.
type alertLog struct {
	mu  sync.Mutex
	all []operator.Alert
}

func (l *alertLog) add(a operator.Alert) {
	l.mu.Lock()
	l.all = append(l.all, a)
	l.mu.Unlock()
}

func (l *alertLog) of(kind operator.AlertKind, state operator.AlertState) []operator.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []operator.Alert
	for _, a := range l.all {
		if a.Kind == kind && a.State == state {
			out = append(out, a)
		}
	}
	return out
}

func (l *alertLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// badLogins makes n connection attempts with a service's real user JWT and a key that is not
// its own (an insider who copied the JWT but not the seed), as fast as they go.
func badLogins(t *testing.T, sb *sealbustest.Sandbox, account, service string, n int) time.Duration {
	t.Helper()
	creds, err := accounts.ReadCredsFile(sb.CredsPath(account, service))
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := nkeys.CreateUser()
	seed, _ := stranger.Seed()
	start := time.Now()
	for i := range n {
		nc, err := nats.Connect(sb.URL(), nats.RootCAs(sb.CAFile()), nats.UserJWTAndSeed(creds.UserJWT, string(seed)),
			nats.Name(fmt.Sprintf("guess-%d", i)), nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("a login with the wrong key succeeded")
		}
	}
	return time.Since(start)
}

// TestMonitorAlerts runs the monitor against the embedded server with the operator-wide view
// and raises, each exactly once: brute force (50 bad logins within 2 s: one alert within 5 s,
// resolved with the count 50), a revoked service that keeps reconnecting, and a junk flood
// (a rejection spike, and its dead letters a dead-letter alert). Ten seconds of valid traffic before raise none. Every alert is
// recorded as an audit event in the operator-owned account.
func TestMonitorAlerts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sb, shop, _, ops := monitoredSandbox(t, ctx)
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []accounts.ServiceSpec{
		{Name: "checkout", Publish: []string{"orders.>"}},
		{Name: "billing", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}},
		{Name: "legacy", Publish: []string{"orders.legacy.>"}},
	} {
		if _, err := sb.AddService(ctx, "shop", spec); err != nil {
			t.Fatal(err)
		}
	}

	sys, opsNC, err := operator.ConnectMonitor(ctx, sb.Target(), sb.Operator(), ops)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	defer opsNC.Close()
	opsJS, _ := jetstream.New(opsNC)
	store, err := operator.MonitorStateStore(ctx, opsJS)
	if err != nil {
		t.Fatal(err)
	}
	var cfg operator.MonitorConfig
	cfg.Quiet = operator.Duration(3 * time.Second)
	cfg.Poll = operator.Duration(time.Second)
	var log alertLog
	m, err := operator.NewMonitor(sys, operator.WithOperatorAccount(opsNC, ops), operator.WithMonitorConfig(cfg),
		operator.WithAlertHandler(log.add), operator.WithStateStore(store))
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, 10*time.Second, "the monitor's first poll", func() bool { return m.Stats().Events["poll"] > 0 })

	// Valid traffic: raises nothing.
	checkout, err := sealbustest.Connect(ctx, sb, "shop", "checkout")
	if err != nil {
		t.Fatal(err)
	}
	defer checkout.Close()
	billing, err := sealbustest.Connect(ctx, sb, "shop", "billing")
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	var handled sync.WaitGroup
	cs, err := consumers.Consume(ctx, billing, "ORDERS", "billing", func(context.Context, *consumers.Message) error {
		handled.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	for i := range 100 {
		handled.Add(1)
		if _, err := checkout.Publish(ctx, fmt.Sprintf("orders.eu.%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	handled.Wait()
	if n := log.len(); n != 0 {
		t.Fatalf("valid traffic raised %d alerts: %v", n, log.all)
	}

	// Brute force.
	start := time.Now()
	took := badLogins(t, sb, "shop", "checkout", 50)
	if took > 2*time.Second {
		t.Fatalf("50 bad logins took %v, not within 2 s", took)
	}
	waitFor(t, 5*time.Second-time.Since(start), "a brute-force alert within 5 s of the first bad login", func() bool {
		return len(log.of(operator.AlertBruteForce, operator.AlertOpen)) > 0
	})
	t.Logf("50 bad logins in %v; brute-force alert %v after the first", took, log.of(operator.AlertBruteForce, operator.AlertOpen)[0].At.Sub(start))
	waitFor(t, 15*time.Second, "the brute-force incident resolved", func() bool { return len(log.of(operator.AlertBruteForce, operator.AlertResolved)) > 0 })
	open, res := log.of(operator.AlertBruteForce, operator.AlertOpen), log.of(operator.AlertBruteForce, operator.AlertResolved)
	if len(open) != 1 || len(res) != 1 || res[0].Count != 50 || res[0].Incident != open[0].Incident {
		t.Fatalf("brute force: open %+v, resolved %+v; want one incident with count 50", open, res)
	}
	if open[0].Address != "127.0.0.1" || len(open[0].Keys) != 1 {
		t.Fatalf("brute-force alert %+v", open[0])
	}
	t.Logf("%s", res[0])

	// A revoked service that keeps reconnecting.
	legacy, err := sealbustest.InsiderConn(ctx, sb, "shop", "legacy")
	if err != nil {
		t.Fatal(err)
	}
	legacy.Close()
	if err := sb.RevokeService(ctx, "shop", "legacy"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if nc, err := sealbustest.InsiderConn(ctx, sb, "shop", "legacy", nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("a revoked service connected")
		}
	}
	waitFor(t, 5*time.Second, "a revoked-key alert", func() bool { return len(log.of(operator.AlertRevokedKey, operator.AlertOpen)) > 0 })
	if a := log.of(operator.AlertRevokedKey, operator.AlertOpen)[0]; a.Service != "legacy" || a.AccountName != "shop" {
		t.Fatalf("revoked-key alert %+v", a)
	}

	// A junk flood: an insider stores 100 junk messages, the consumer dead-letters each.
	insider, err := sealbustest.InsiderConn(ctx, sb, "shop", "checkout")
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	// The insider goes for the monitor's saved state with its raw connection: reading it
	// through the leader get the store uses, or the direct get, and overwriting it. Its
	// account has no path to the operator account's bucket, so the state stays the monitor's.
	bogus := []byte(`{"version":1,"incidents":{}}`)
	for _, subj := range []string{
		"$JS.API.STREAM.MSG.GET.KV_" + accounts.MonitorBucket,
		"$JS.API.DIRECT.GET.KV_" + accounts.MonitorBucket + ".$KV." + accounts.MonitorBucket + ".state",
	} {
		if r, err := insider.Request(subj, []byte(`{"last_by_subj":"$KV.`+accounts.MonitorBucket+`.state"}`), 2*time.Second); err == nil {
			t.Fatalf("the insider read %s: %q", subj, r.Data)
		}
	}
	if err := insider.Publish("$KV."+accounts.MonitorBucket+".state", bogus); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, err := ijs.Publish(pctx, "$KV."+accounts.MonitorBucket+".state", bogus); err == nil {
		t.Fatal("the insider's JetStream publish on the monitor's state key was stored")
	}
	pcancel()
	if err := insider.Flush(); err != nil {
		t.Fatal(err)
	}
	saved, err := store.LoadState(ctx)
	if err != nil || !strings.Contains(string(saved), `"saved":"`) { // the monitor's own save, not bogus
		t.Fatalf("the monitor's state after the insider's attempts: %v %.80q", err, saved)
	}
	for i := range 100 {
		if _, err := ijs.Publish(ctx, fmt.Sprintf("orders.eu.junk.%d", i), []byte("junk")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "a rejection-spike alert", func() bool { return len(log.of(operator.AlertRejectionSpike, operator.AlertOpen)) > 0 })
	spike := log.of(operator.AlertRejectionSpike, operator.AlertOpen)
	if len(spike) != 1 || spike[0].Account != shop.PublicKey() {
		t.Fatalf("rejection spikes %+v", spike)
	}
	t.Logf("%s", spike[0])
	// The flood's 100 dead letters are the dead-letter rule's too (growth 100 within 5 min).
	waitFor(t, 10*time.Second, "a dead-letter alert", func() bool { return len(log.of(operator.AlertDeadLetters, operator.AlertOpen)) > 0 })

	// Nothing else, and each report recorded in the operator-owned account's audit stream.
	for _, kind := range operator.AlertKinds {
		if kind == operator.AlertPublishRate {
			// The flood multiplies the insider's publishing and the consumer's (dead letters and
			// audit events): spikes of those rates are the flood's, not false positives. None
			// came before it (the valid traffic raised nothing).
			for _, a := range log.of(kind, operator.AlertOpen) {
				t.Logf("flood: %s", a)
			}
			continue
		}
		want := map[operator.AlertKind]int{operator.AlertBruteForce: 1, operator.AlertRevokedKey: 1, operator.AlertRejectionSpike: 1, operator.AlertDeadLetters: 1}[kind]
		if got := len(log.of(kind, operator.AlertOpen)); got != want {
			t.Errorf("%d %s alerts, want %d", got, kind, want)
		}
	}
	reports := log.len()
	view, closeView, err := sb.Provisioner().AuditView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer closeView()
	var recorded []operator.ViewRecord
	waitFor(t, 10*time.Second, "the alerts recorded as signed audit events in the view", func() bool {
		recs, _, err := view.Tail(ctx, 0, operator.ViewFilter{Account: accounts.OperatorAccountName})
		if err != nil {
			return false
		}
		recorded = recorded[:0]
		for _, r := range recs {
			if strings.HasPrefix(r.Type(), operator.AlertEventPrefix) {
				recorded = append(recorded, r)
			}
		}
		return len(recorded) >= reports
	})
	for _, r := range recorded {
		if !r.Verification().Verified() || r.Service() != accounts.AdminWriter || r.Audit.Event.Source != bus.EventSource(ops.PublicKey(), accounts.AdminWriter) {
			t.Errorf("alert record %s: %+v, want verified, written by the operator account's admin", r.Type(), r.Verification())
		}
	}
	waitFor(t, 20*time.Second, "every rejection read from the view", func() bool { return m.Stats().Events["audit"] >= 100 })
	if got := len(log.of(operator.AlertRejectionSpike, operator.AlertOpen)); got != 1 {
		t.Fatalf("%d rejection-spike alerts after the whole flood, want 1", got)
	}
	st := m.Stats()
	if st.Events["auth_error"] < 54 || st.Opened[operator.AlertBruteForce] != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range st.Consumers {
		if c.Stream == "ORDERS" && c.Consumer != "billing" {
			t.Errorf("a consumer other than the durable is reported: %+v", c)
		}
	}

	// billing's replay guard store fills (here the account's admin writes junk into it, as an
	// insider's reply-subject junk or a rate its size does not allow would): the monitor warns
	// before the durable stalls, naming the durable and the fix.
	if _, err := sb.Provisioner().SetGuardSize(ctx, "shop", "ORDERS", "billing", operator.MinGuardBytes); err != nil {
		t.Fatal(err)
	}
	admin, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	junk := make([]byte, 1024)
	for i := range operator.MinGuardBytes * 85 / 100 / len(junk) {
		if err := admin.Publish(fmt.Sprintf("%s.ORDERS.billing.junk%d", accounts.GuardSubjectPrefix, i), junk); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a guard-store alert", func() bool { return len(log.of(operator.AlertGuardStoreFull, operator.AlertOpen)) > 0 })
	if a := log.of(operator.AlertGuardStoreFull, operator.AlertOpen)[0]; a.Stream != "ORDERS" || a.Consumer != "billing" || a.Value < operator.GuardStoreFullPercent {
		t.Fatalf("guard-store alert %s", a)
	}
}
