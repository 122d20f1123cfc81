package integration

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// alerts collects a monitor's reports.
type alerts struct {
	mu  sync.Mutex
	all []operator.Alert
}

func (l *alerts) add(a operator.Alert) {
	l.mu.Lock()
	l.all = append(l.all, a)
	l.mu.Unlock()
}

func (l *alerts) opened(kind operator.AlertKind) []operator.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []operator.Alert
	for _, a := range l.all {
		if a.State == operator.AlertOpen && (kind == "" || a.Kind == kind) {
			out = append(out, a)
		}
	}
	return out
}

func (l *alerts) waitOpened(t *testing.T, kind operator.AlertKind, n int, within time.Duration) []operator.Alert {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(l.opened(kind)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s alerts within %v, want %d: %v", len(l.opened(kind)), kind, within, n, l.opened(""))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l.opened(kind)
}

// setupMonitoring checks that d's set-up made the operator's monitoring (SetupMonitoring finds
// nothing to change) and returns the operator account.
func setupMonitoring(t *testing.T, ctx context.Context, d *natstest.Deployment) *accounts.Account {
	t.Helper()
	res, err := d.Provisioner().SetupMonitoring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pushed) != 0 || len(res.Accounts) == 0 {
		t.Fatalf("monitoring set up again: view of %v, pushed %v; want every tenant, nothing to push", res.Accounts, res.Pushed)
	}
	ops, err := d.Provisioner().OperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// runMonitor runs a monitor of d through urls with its state in the operator-owned account,
// reporting to log. stop ends it and waits.
func runMonitor(t *testing.T, ctx context.Context, d *natstest.Deployment, ops *accounts.Account, urls []string, cfg operator.MonitorConfig, log *alerts) (m *operator.Monitor, stop func()) {
	m, _, stop = runMonitorConn(t, ctx, d, ops, urls, cfg, log)
	return m, stop
}

// runMonitorConn is runMonitor that also returns the monitor's system connection.
func runMonitorConn(t *testing.T, ctx context.Context, d *natstest.Deployment, ops *accounts.Account, urls []string, cfg operator.MonitorConfig, log *alerts) (m *operator.Monitor, sysConn *nats.Conn, stop func()) {
	t.Helper()
	sys, opsNC, store := connectMonitor(t, ctx, d, ops, urls)
	m, err := operator.NewMonitor(sys, operator.WithOperatorAccount(opsNC, ops), operator.WithMonitorConfig(cfg),
		operator.WithAlertHandler(log.add), operator.WithStateStore(store), operator.WithMonitorLogger(testLogger(t, slog.LevelWarn)))
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("monitor: %v", err)
			}
			sys.Close()
			opsNC.Close()
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for m.Stats().Events["poll"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the monitor never read the servers")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m, sys, stop
}

// connectMonitor connects as a monitor of d through urls (the system user and a user of the
// operator-owned account) and opens the monitor's state store; the caller closes both.
func connectMonitor(t *testing.T, ctx context.Context, d *natstest.Deployment, ops *accounts.Account, urls []string) (sys, opsNC *nats.Conn, store operator.KVStateStore) {
	t.Helper()
	target := d.Target()
	target.URLs = urls
	sys, opsNC, err := operator.ConnectMonitor(ctx, target, d.Operator, ops)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(opsNC)
	if store, err = operator.MonitorStateStore(ctx, js); err != nil {
		sys.Close()
		opsNC.Close()
		t.Fatal(err)
	}
	return sys, opsNC, store
}

// bruteForce makes n connection attempts at url with service's JWT and a key that is not its
// own, and returns how long they took.
func bruteForce(t *testing.T, d *natstest.Deployment, url, account, service string, n int) time.Duration {
	t.Helper()
	creds, err := accounts.ReadCredsFile(d.CredsPath(account, service))
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := nkeys.CreateUser()
	seed, _ := stranger.Seed()
	start := time.Now()
	for i := range n {
		nc, err := nats.Connect(url, nats.RootCAs(d.CAFile()), nats.UserJWTAndSeed(creds.UserJWT, string(seed)),
			nats.Name(fmt.Sprintf("guess-%d", i)), nats.NoReconnect(), nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Fatal("a login with the wrong key succeeded")
		}
	}
	return time.Since(start)
}

// validTraffic publishes sealed orders at rate per second for d and has billing and shipping
// consume them; it returns how many were published and handled when ctx ends.
func validTraffic(t *testing.T, ctx context.Context, h sealbustest.Harness, rate int) (published, handled int) {
	t.Helper()
	checkout, err := sealbustest.Connect(ctx, h, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer checkout.Close()
	var mu sync.Mutex
	for _, svc := range []string{sealbustest.Billing, sealbustest.Shipping} {
		c, err := sealbustest.Connect(ctx, h, sealbustest.Shop, svc)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs, err := consumers.Consume(context.WithoutCancel(ctx), c, sealbustest.OrdersStream, svc, func(context.Context, *consumers.Message) error {
			mu.Lock()
			handled++
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Stop()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return published, handled
		case <-tick.C:
		}
		region := "eu"
		if i%3 == 0 {
			region = "us"
		}
		if _, err := checkout.Publish(ctx, fmt.Sprintf("orders.%s.%d", region, i), []byte(`{"total":42}`)); err == nil {
			published++
		} else if ctx.Err() == nil {
			t.Errorf("publish: %v", err)
		}
	}
}

// monitorConfig is the monitor configuration of these tests: the defaults, with polls every
// second and incidents closing after 5 s without evidence so a test sees them resolve.
func monitorConfig() operator.MonitorConfig {
	var cfg operator.MonitorConfig
	cfg.Poll = operator.Duration(time.Second)
	cfg.Quiet = operator.Duration(5 * time.Second)
	return cfg
}

// TestMonitorInContainers runs the monitor against a server in a container, with the demo's
// world provisioned and the operator-wide view set up:
//
//   - 60 s of the demo's valid traffic (sealed orders, two consumers) raise no alert;
//   - 50 bad logins within 2 s raise exactly one brute-force alert within 5 s, resolved with
//     the count 50;
//   - a revoked service whose client keeps reconnecting raises a revoked-key alert;
//   - an insider's junk flood raises one rejection-spike alert, and its dead letters one
//     dead-letter alert;
//   - the server restarts: the monitor reconnects, reads on and reports nothing again;
//   - the monitor restarts from its saved state: the bad logins made while it was stopped
//     (recorded by the servers in the operator-owned account) are one new incident, and no
//     old incident is reported again.
func TestMonitorInContainers(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 8*time.Minute)
	if _, err := sealbustest.ProvisionWorld(ctx, s.Deployment, nil); err != nil {
		t.Fatal(err)
	}
	ops := setupMonitoring(t, ctx, s.Deployment)
	var log alerts
	m, stop := runMonitor(t, ctx, s.Deployment, ops, s.URLs(), monitorConfig(), &log)

	// Valid traffic.
	const normal = 60 * time.Second
	tctx, cancel := context.WithTimeout(ctx, normal)
	published, handled := validTraffic(t, tctx, s, 20)
	cancel()
	if n := len(log.opened("")); n != 0 {
		t.Fatalf("%d alerts during %v of valid traffic (%d published, %d handled): %v", n, normal, published, handled, log.opened(""))
	}
	t.Logf("valid traffic: %d sealed messages published, %d deliveries handled in %v; alerts: 0 (false-positive rate 0 per minute)", published, handled, normal)

	// Brute force.
	start := time.Now()
	took := bruteForce(t, s.Deployment, s.URL, sealbustest.Shop, sealbustest.Checkout, 50)
	if took > 2*time.Second {
		t.Fatalf("50 bad logins took %v, not within 2 s", took)
	}
	bf := log.waitOpened(t, operator.AlertBruteForce, 1, 5*time.Second-time.Since(start))
	t.Logf("50 bad logins in %v; brute-force alert after %v: %s", took, bf[0].At.Sub(start), bf[0])
	waitResolved(t, &log, bf[0].Incident, 50, 30*time.Second)

	// A revoked service reconnecting: its client is cut off at the revocation and gives up
	// after two refusals (nats.go); restarted by its supervisor, it tries again.
	legacy, err := sealbustest.Connect(ctx, s, sealbustest.Shop, sealbustest.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	defer legacy.Close()
	if err := s.RevokeService(ctx, sealbustest.Shop, sealbustest.Legacy); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if c, err := sealbustest.Connect(ctx, s, sealbustest.Shop, sealbustest.Legacy); err == nil {
			c.Close()
			t.Fatal("a revoked service connected")
		}
	}
	rk := log.waitOpened(t, operator.AlertRevokedKey, 1, 20*time.Second)
	if rk[0].Service != sealbustest.Legacy {
		t.Fatalf("revoked-key alert %+v", rk[0])
	}
	t.Logf("%s", rk[0])
	legacy.Close()

	// A junk flood.
	insider, err := sealbustest.InsiderConn(ctx, s, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	billing, err := sealbustest.Connect(ctx, s, sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	cs, err := consumers.Consume(ctx, billing, sealbustest.OrdersStream, sealbustest.Billing, func(context.Context, *consumers.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	ijs, _ := jetstream.New(insider)
	for i := range 200 {
		if _, err := ijs.Publish(ctx, fmt.Sprintf("orders.eu.junk.%d", i), []byte("junk")); err != nil {
			t.Fatal(err)
		}
	}
	rs := log.waitOpened(t, operator.AlertRejectionSpike, 1, 30*time.Second)
	t.Logf("%s", rs[0])
	// 200 dead letters within minutes are the dead-letter rule's too.
	dl := log.waitOpened(t, operator.AlertDeadLetters, 1, 30*time.Second)
	t.Logf("%s", dl[0])

	// A forged record: the insider stores junk on its own audit subject (the only one it may
	// write); the view shows it as shop's, unsigned, and the monitor raises one alert.
	svc, err := s.Deployment.Provisioner().Keystore.LoadService(sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ijs.Publish(ctx, accounts.AuditSubject(sealbustest.Checkout, svc.Spec.EvidenceToken), []byte(`{"type":"sealbus.rejected","claim":"not signed"}`)); err != nil {
		t.Fatal(err)
	}
	fr := log.waitOpened(t, operator.AlertForgedRecord, 1, 20*time.Second)
	if fr[0].AccountName != sealbustest.Shop {
		t.Fatalf("forged-record alert %+v, want shop's", fr[0])
	}
	t.Logf("%s", fr[0])

	// Server restart: the monitor reconnects and reports nothing again.
	before := len(log.opened(""))
	readBefore := m.Stats().Events["auth_error"]
	if err := s.Nodes[0].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := s.Nodes[0].Start(ctx); err != nil {
		t.Fatal(err)
	}
	lastPoll := m.Stats().LastPoll
	if err := poll(ctx, 60*time.Second, func(context.Context) error {
		if !m.Stats().LastPoll.After(lastPoll.Add(2 * time.Second)) {
			return fmt.Errorf("no poll since the restart")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if n := len(log.opened("")); n != before {
		t.Fatalf("after the server restart %d new alerts: %v", n-before, log.opened("")[before:])
	}
	if got := m.Stats().Events["auth_error"]; got != readBefore {
		t.Fatalf("auth errors read %d before the restart, %d after: recorded events read twice", readBefore, got)
	}

	// Monitor restart: stopped, 20 bad logins, started again from its saved state.
	stop()
	bruteForce(t, s.Deployment, s.URL, sealbustest.Shop, sealbustest.Support, 20)
	var log2 alerts
	m2, _ := runMonitor(t, ctx, s.Deployment, ops, s.URLs(), monitorConfig(), &log2)
	bf2 := log2.waitOpened(t, operator.AlertBruteForce, 1, 20*time.Second)
	waitResolved(t, &log2, bf2[0].Incident, 20, 30*time.Second)
	time.Sleep(2 * time.Second)
	if n := len(log2.opened("")); n != 1 {
		t.Fatalf("the restarted monitor reported %d incidents, want only the one made while it was stopped: %v", n, log2.opened(""))
	}
	if got := m2.Stats().Opened[operator.AlertBruteForce]; got != 2 {
		t.Fatalf("brute-force incidents in the saved state %d, want 2 (one before, one while stopped)", got)
	}

	// Every report is a verified audit event of the operator account in the view, once.
	view, done, err := s.Deployment.Provisioner().AuditView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	recs, _, err := view.Tail(ctx, 0, operator.ViewFilter{Account: accounts.OperatorAccountName, Service: accounts.AdminWriter})
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]int{}
	for _, r := range recs {
		if !strings.HasPrefix(r.Type(), operator.AlertEventPrefix) {
			continue
		}
		if !r.Verification().Verified() {
			t.Errorf("alert record %s not verified: %+v", r.Type(), r.Verification())
		}
		byKind[strings.TrimPrefix(r.Type(), operator.AlertEventPrefix)+"/"+r.Reason()]++
	}
	t.Logf("alert records in the view: %v", byKind)
	if byKind["brute_force/open"] != 2 || byKind["forged_record/open"] != 1 {
		t.Fatalf("alert records in the view %v, want 2 brute-force incidents and 1 forged record opened", byKind)
	}
}

// waitResolved waits for incident to resolve with count.
func waitResolved(t *testing.T, log *alerts, incident string, count uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		log.mu.Lock()
		for _, a := range log.all {
			if a.Incident == incident && a.State == operator.AlertResolved {
				log.mu.Unlock()
				if a.Count != count {
					t.Fatalf("incident resolved with count %d, want %d: %s", a.Count, count, a)
				}
				t.Logf("%s", a)
				return
			}
		}
		log.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("incident %s not resolved within %v", incident, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMonitorClusterWorkload runs the monitor on a three-node cluster (R3 streams, the
// operator-wide view replicated) while the cluster workload publishes and consumes for 60 s
// and the node the monitor is connected to is stopped for 10 s: no alert. Afterwards 50 bad
// logins against another node are one brute-force alert, and a monitor restarted from its
// saved state reports nothing again.
func TestMonitorClusterWorkload(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	ctx := testContext(t, 10*time.Minute)
	lim := accounts.DefaultLimits()
	lim.DiskStorage = 4 << 30
	pubCreds, conCreds := provisionWorkload(t, ctx, c.Deployment, lim,
		operator.StreamSpec{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3, Storage: jetstream.FileStorage}, "processor", "publisher")
	ops := setupMonitoring(t, ctx, c.Deployment)
	var log alerts
	monURLs := []string{c.Node(0).URL, c.Node(1).URL}
	m, sys, stop := runMonitorConn(t, ctx, c.Deployment, ops, monURLs, monitorConfig(), &log)
	monNode := nodeIndex(t, sys.ConnectedServerName())

	clientURLs := []string{c.Node(0).URL, c.Node(1).URL, c.Node(2).URL}
	pub := connectSDK(t, ctx, c.Deployment, pubCreds, clientURLs, bus.WithPublishRate(500, 50))
	sub := connectSDK(t, ctx, c.Deployment, conCreds, clientURLs)
	w := &workload{Subject: "events.created", Total: 1 << 30, Size: 1024}
	cs, err := consumers.Consume(ctx, sub, "EVENTS", "processor", w.handler, consumers.WithWorkers(4), consumers.WithMaxInFlight(1024))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	const run = 60 * time.Second
	wctx, cancel := context.WithTimeout(ctx, run)
	defer cancel()
	pubDone := make(chan error, 1)
	go func() { pubDone <- w.publish(wctx, pub) }()

	// Node loss under the monitor: the node its system connection uses is stopped for 10 s.
	if err := sleepCtx(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, monNode); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (the monitor's) stopped", c.Node(monNode).Name)
	if err := sleepCtx(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, monNode); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s started; the monitor is on %s", c.Node(monNode).Name, sys.ConnectedServerName())
	<-pubDone
	acked := w.Acked()
	if acked < 10000 {
		t.Fatalf("only %d messages acknowledged in %v", acked, run)
	}
	if n := len(log.opened("")); n != 0 {
		t.Fatalf("%d alerts during the cluster workload (%d acknowledged): %v", n, acked, log.opened(""))
	}
	t.Logf("cluster workload: %d acknowledged in %v with a node stopped for 10 s; alerts: 0 (false-positive rate 0 per minute); monitor events %v, poll errors %d",
		acked, run, m.Stats().Events, m.Stats().PollErrors)

	start := time.Now()
	bruteForce(t, c.Deployment, c.Node(2).URL, "A", "publisher", 50)
	bf := log.waitOpened(t, operator.AlertBruteForce, 1, 10*time.Second)
	t.Logf("after the node loss: brute-force alert %v after the first bad login: %s", bf[0].At.Sub(start), bf[0])

	stop()
	var log2 alerts
	runMonitor(t, ctx, c.Deployment, ops, []string{c.Node(2).URL}, monitorConfig(), &log2)
	time.Sleep(8 * time.Second)
	if n := len(log2.opened("")); n != 0 {
		t.Fatalf("the restarted monitor reported old incidents again: %v", log2.opened(""))
	}

	// The state a monitor loads is the last one saved, through whichever node it is connected
	// to (the store reads from the bucket's leader, not by direct get).
	for i := range 3 {
		readYourWrites(t, ctx, c.Deployment, ops, c.Node(i).URL, fmt.Sprintf("readback-%d", i), 50)
	}
}

// readYourWrites saves n states under key through url, each read back at once through the
// monitor's state store, which must return it; the bucket's direct get is read too, and how
// often it answered with an older save is logged (it may: any replica answers it).
func readYourWrites(t *testing.T, ctx context.Context, d *natstest.Deployment, ops *accounts.Account, url, key string, n int) {
	t.Helper()
	sys, opsNC, store := connectMonitor(t, ctx, d, ops, []string{url})
	defer sys.Close()
	defer opsNC.Close()
	store.Key = key
	direct := operator.KVStateStore{KV: store.KV, Key: key}
	older := 0
	for i := range n {
		want := fmt.Sprintf(`{"version":1,"try":%d}`, i)
		if err := store.SaveState(ctx, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := store.LoadState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("through %s: saved %s, loaded %q", opsNC.ConnectedServerName(), want, got)
		}
		if got, err := direct.LoadState(ctx); err == nil && string(got) != want {
			older++
		}
	}
	t.Logf("through %s: %d saves each loaded back from the leader; the direct get answered %d of them with an older save", opsNC.ConnectedServerName(), n, older)
}
