package operator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// monitoredSandbox is a sandbox with tenants shop and bank. Their set-up (AddAccount) also sets
// up the operator's monitoring; SetupMonitoring afterwards finds nothing to change.
func monitoredSandbox(t *testing.T, ctx context.Context) (*sealbustest.Sandbox, *accounts.Account, *accounts.Account, *accounts.Account) {
	t.Helper()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	shop, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	bank, err := sb.AddAccount(ctx, "bank", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	res, err := sb.Provisioner().SetupMonitoring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Accounts) != 2 || len(res.Pushed) != 0 {
		t.Fatalf("monitoring set up again: view of %v, pushed %v; want shop and bank, nothing to push (their set-up did it)", res.Accounts, res.Pushed)
	}
	ops, err := sb.Provisioner().OperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	return sb, shop, bank, ops
}

// adminSubjects are the admin audit and dead-letter subjects of acct.
func adminSubjects(t *testing.T, acct *accounts.Account) (audit, dlq string) {
	t.Helper()
	tok, err := operator.AdminEvidenceToken(acct)
	if err != nil {
		t.Fatal(err)
	}
	return accounts.AdminAuditSubject(tok), accounts.DLQSubject(accounts.AdminWriter, tok)
}

func streamCount(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitCount(t *testing.T, ctx context.Context, js jetstream.JetStream, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := streamCount(t, ctx, js, name)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("stream %s holds %d records, want %d", name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditViewAcrossAccounts: records written in shop and bank appear, server-side, in the
// operator-owned account's view streams of their own account, attributed by the stream they
// are in and by the server-set Nats-Stream-Source header; shop's records never reach bank's
// audit stream or bank's view; neither tenant can read the view; and the flow-control
// replies of shop's sourcing consumer, which thousands of records make the servers send, go
// to shop only (with one flow-control import subject shared by every account they would
// fan out to bank too).
func TestAuditViewAcrossAccounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, shop, bank, ops := monitoredSandbox(t, ctx)

	shopNC, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer shopNC.Close()
	bankNC, err := sb.AdminConn(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	defer bankNC.Close()
	opsNC, err := sb.AdminConn(ctx, "SEALBUS")
	if err != nil {
		t.Fatal(err)
	}
	defer opsNC.Close()

	// Shop counts the view's flow-control replies to its view source; bank counts every
	// flow-control reply it receives.
	var shopFC, bankFC atomic.Int64
	for nc, w := range map[*nats.Conn]struct {
		n    *atomic.Int64
		subj string
	}{shopNC: {&shopFC, "$JS.FC." + accounts.ViewSourceStream("audit", shop.PublicKey()) + ".>"}, bankNC: {&bankFC, "$JS.FC.>"}} {
		sub, err := nc.Subscribe(w.subj, func(*nats.Msg) { w.n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	shopJS, _ := jetstream.New(shopNC)
	bankJS, _ := jetstream.New(bankNC)
	opsJS, _ := jetstream.New(opsNC)
	bankBefore := streamCount(t, ctx, bankJS, accounts.AuditStream)
	shopAudit, _ := adminSubjects(t, shop)
	bankAudit, bankDLQ := adminSubjects(t, bank)
	const shopRecords, bankRecords = 4000, 3
	payload := []byte(strings.Repeat("s", 900)) // the stream stores any bytes; readers verify
	var futures []jetstream.PubAckFuture
	for range shopRecords {
		f, err := shopJS.PublishAsync(shopAudit, payload)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	for range bankRecords {
		if _, err := bankJS.Publish(ctx, bankAudit, []byte(`bank record`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bankJS.Publish(ctx, bankDLQ, []byte("bank dead letter")); err != nil {
		t.Fatal(err)
	}

	waitCount(t, ctx, opsJS, accounts.ViewAuditStream(shop.PublicKey()), streamCount(t, ctx, shopJS, accounts.AuditStream))
	waitCount(t, ctx, opsJS, accounts.ViewAuditStream(bank.PublicKey()), bankBefore+bankRecords)
	waitCount(t, ctx, opsJS, accounts.ViewDLQStream(bank.PublicKey()), 1)
	if n := streamCount(t, ctx, bankJS, accounts.AuditStream); n != bankBefore+bankRecords {
		t.Fatalf("bank's audit stream holds %d records, want its own %d", n, bankBefore+bankRecords)
	}
	if n := streamCount(t, ctx, opsJS, accounts.ViewDLQStream(shop.PublicKey())); n != 0 {
		t.Fatalf("shop's dead-letter view holds %d records; shop wrote none", n)
	}

	// Attribution: the header the server sets names the source stream through the API prefix
	// of the account it was sourced from.
	vs, _ := opsJS.Stream(ctx, accounts.ViewAuditStream(bank.PublicKey()))
	m, err := vs.GetMsg(ctx, bankBefore+1)
	if err != nil {
		t.Fatal(err)
	}
	if src := m.Header.Get("Nats-Stream-Source"); !strings.HasPrefix(src, accounts.ViewSourceStream("audit", bank.PublicKey())+":") || string(m.Data) != "bank record" || m.Subject != bankAudit {
		t.Fatalf("bank's first view record: source %q, subject %q, data %q", src, m.Subject, m.Data)
	}

	// Tenants cannot read the view.
	for name, js := range map[string]jetstream.JetStream{"shop": shopJS, "bank": bankJS} {
		if _, err := js.Stream(ctx, accounts.ViewAuditStream(shop.PublicKey())); err == nil {
			t.Errorf("%s reads the view stream", name)
		}
	}

	// Flow control went to shop, and none of it to bank.
	if shopFC.Load() == 0 {
		t.Fatalf("no flow-control reply of the view reached shop after %d records (the test would show nothing)", shopRecords)
	}
	if n := bankFC.Load(); n != 0 {
		t.Fatalf("%d flow-control replies reached bank, which had nothing to flow-control", n)
	}
	srcs, err := operator.ViewSources(ctx, opsNC)
	if err != nil {
		t.Fatal(err)
	}
	for name, si := range srcs {
		if si.Error != nil {
			t.Errorf("view %s: source error %v", name, si.Error)
		}
	}
	t.Logf("shop's flow-control replies: %d; ops account %s", shopFC.Load(), ops.PublicKey())
}

// TestSystemEventsRecorded: failed logins made while nobody listens are recorded in the
// operator-owned account.
func TestSystemEventsRecorded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, _, _, _ := monitoredSandbox(t, ctx)
	for i := range 5 {
		nc, err := nats.Connect(sb.URL(), nats.RootCAs(sb.CAFile()), nats.UserInfo("mallory", fmt.Sprint(i)), nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("a user name and password connected to an operator-mode server")
		}
	}
	opsNC, err := sb.AdminConn(ctx, "SEALBUS")
	if err != nil {
		t.Fatal(err)
	}
	defer opsNC.Close()
	js, _ := jetstream.New(opsNC)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := js.Stream(ctx, accounts.SystemEventsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(accounts.SystemEventsSubjectPrefix+".autherr.>"))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		if n == 5 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d auth-error events recorded after 5 failed logins", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditViewReader reads the view across accounts with filters and verification, and
// follows it: signed events of services verify with their account's verifier, junk a service
// stored on its own audit or dead-letter subject shows as unsigned and is attributed to it by
// the subject, and the records keep the subjects they had in their account.
func TestAuditViewReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, shop, bank, _ := monitoredSandbox(t, ctx)
	for _, name := range []string{"shop", "bank"} {
		if err := sb.AddStream(ctx, name, operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.AddService(ctx, name, accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"},
			Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}); err != nil {
			t.Fatal(err)
		}
		c, err := sealbustest.Connect(ctx, sb, name, "billing")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"stale", "bad_signature"} {
			if err := c.Audit(ctx, bus.Event{Type: bus.EventRejected, Data: bus.EventData{Reason: r}}); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		svc, err := sb.Service(name, "billing")
		if err != nil {
			t.Fatal(err)
		}
		insider, err := sealbustest.InsiderConn(ctx, sb, name, "billing")
		if err != nil {
			t.Fatal(err)
		}
		ijs, _ := jetstream.New(insider)
		if _, err := ijs.Publish(ctx, accounts.AuditSubject("billing", svc.Spec.EvidenceToken), []byte("\x1b[2Jnot an event")); err != nil {
			t.Fatal(err)
		}
		if _, err := ijs.Publish(ctx, accounts.DLQSubject("billing", svc.Spec.EvidenceToken), []byte("envelope bytes")); err != nil {
			t.Fatal(err)
		}
		insider.Close()
	}
	opsNC, err := sb.AdminConn(ctx, accounts.OperatorAccountName)
	if err != nil {
		t.Fatal(err)
	}
	defer opsNC.Close()
	opsJS, _ := jetstream.New(opsNC)
	for _, name := range []string{"shop", "bank"} {
		nc, err := sb.AdminConn(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		acct, _ := sb.Keystore().LoadAccount(name)
		waitCount(t, ctx, opsJS, accounts.ViewAuditStream(acct.PublicKey()), streamCount(t, ctx, js, accounts.AuditStream))
		waitCount(t, ctx, opsJS, accounts.ViewDLQStream(acct.PublicKey()), 1)
		nc.Close()
	}
	v, done, err := sb.Provisioner().AuditView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	all, pos, err := v.Tail(ctx, 0, operator.ViewFilter{Service: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 8 {
		t.Fatalf("%d records of billing in the view, want 8", len(all))
	}
	states := map[string]map[operator.RecordState]int{}
	for _, r := range all {
		if states[r.AccountName] == nil {
			states[r.AccountName] = map[operator.RecordState]int{}
		}
		states[r.AccountName][r.Verification().State]++
		if es, ok := accounts.ParseEvidenceSubject(r.Subject()); !ok || es.Writer != "billing" {
			t.Errorf("record stored on %q in the view, not on billing's evidence subject", r.Subject())
		}
	}
	for _, name := range []string{"shop", "bank"} {
		if got := states[name]; got[operator.StateVerified] != 2 || got[operator.StateUnsigned] != 2 {
			t.Errorf("%s's billing records: %v, want 2 verified and 2 unsigned", name, got)
		}
	}
	for _, tc := range []struct {
		f    operator.ViewFilter
		want int
	}{
		{operator.ViewFilter{Account: "bank", Service: "billing"}, 4},
		{operator.ViewFilter{Account: bank.PublicKey(), Type: "dlq"}, 1},
		{operator.ViewFilter{Reason: "stale"}, 2},
		{operator.ViewFilter{Service: "billing", Account: "shop"}, 4},
		{operator.ViewFilter{Type: bus.EventRejected, Reason: "bad_signature", Account: "shop"}, 1},
		{operator.ViewFilter{Type: operator.EventAccountSetup, Account: shop.PublicKey()}, 1},
		{operator.ViewFilter{Since: time.Now().Add(time.Hour)}, 0},
	} {
		got, _, err := v.Tail(ctx, 0, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("filter %+v: %d records, want %d", tc.f, len(got), tc.want)
		}
		for _, r := range got {
			if tc.f.Account == "bank" && r.Account != bank.PublicKey() {
				t.Errorf("filter bank returned a record of %s", r.Account)
			}
			if tc.f.Type == operator.EventAccountSetup && (!r.Verification().Verified() || r.Service() != accounts.AdminWriter) {
				t.Errorf("admin event %+v not verified as the admin's", r.Verification())
			}
		}
	}

	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	got := make(chan operator.ViewRecord, 1)
	go func() {
		_ = v.Follow(fctx, pos, operator.ViewFilter{Account: "bank", Service: "billing"}, func(r operator.ViewRecord) error {
			select {
			case got <- r:
			default:
			}
			return nil
		})
	}()
	c, err := sealbustest.Connect(ctx, sb, "bank", "billing")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Audit(ctx, bus.Event{Type: bus.EventRejected, Data: bus.EventData{Reason: "replay"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Audit == nil || r.Audit.Event == nil || r.Reason() != "replay" || r.AccountName != "bank" || !r.Verification().Verified() {
			t.Fatalf("followed %+v", r)
		}
	case <-fctx.Done():
		t.Fatal("Follow saw no new record")
	}
}

// TestViewInsider attacks the view as an insider holding a shop service's creds with plain
// nats.go: what it writes in its own audit stream stays attributed to shop whatever it
// claims; junk there is a forged-record alert; it can neither publish nor subscribe on the
// view's deliver subjects, call the view sources' consumer API, use the reply trick to get
// anything into the view, nor read the recorded system events.
func TestViewInsider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, shop, bank, ops := monitoredSandbox(t, ctx)
	if _, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "mallory", Publish: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	sys, opsNC, err := operator.ConnectMonitor(ctx, sb.Target(), sb.Operator(), ops)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	defer opsNC.Close()
	var log alertLog
	var cfg operator.MonitorConfig
	cfg.Poll = operator.Duration(time.Second)
	m, err := operator.NewMonitor(sys, operator.WithOperatorAccount(opsNC, ops), operator.WithMonitorConfig(cfg), operator.WithAlertHandler(log.add))
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	go m.Run(mctx)

	violations := make(chan error, 16)
	insider, err := sealbustest.InsiderConn(ctx, sb, "shop", "mallory", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	expectViolation := func(what string) {
		t.Helper()
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("%s: %v, want a permissions violation", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no permissions violation", what)
		}
	}

	// An event claiming to come from bank, written in shop on the insider's own audit subject
	// (the only one it may write).
	svc, err := sb.Service("shop", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	own := accounts.AuditSubject("mallory", svc.Spec.EvidenceToken)
	opsJS, _ := jetstream.New(opsNC)
	shopNC, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer shopNC.Close()
	shopJS, _ := jetstream.New(shopNC)
	before := streamCount(t, ctx, shopJS, accounts.AuditStream)
	claim := fmt.Sprintf(`{"specversion":"1.0","id":"forged-1","source":"sealbus://%s/billing","type":"sealbus.rejected","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"reason":"bad_signature"}}`, bank.PublicKey())
	if _, err := ijs.Publish(ctx, own, []byte(claim)); err != nil {
		t.Fatal(err)
	}
	// Junk in the audit stream.
	if _, err := ijs.Publish(ctx, own, []byte("\x1b[2Jnot an event")); err != nil {
		t.Fatal(err)
	}
	waitCount(t, ctx, opsJS, accounts.ViewAuditStream(shop.PublicKey()), before+2)
	v, done, err := sb.Provisioner().AuditView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	recs, _, err := v.Tail(ctx, 0, operator.ViewFilter{Account: "bank", Service: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("shop's insider got %d records attributed to bank", len(recs))
	}
	mine, _, err := v.Tail(ctx, 0, operator.ViewFilter{Account: "shop", Service: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 || mine[0].Verification().Verified() || mine[1].Verification().Verified() {
		t.Fatalf("the insider's records in the view: %+v, want 2, unverified", mine)
	}
	waitFor(t, 10*time.Second, "a forged-record alert", func() bool { return len(log.of(operator.AlertForgedRecord, operator.AlertOpen)) > 0 })
	if a := log.of(operator.AlertForgedRecord, operator.AlertOpen)[0]; a.Account != shop.PublicKey() || !strings.HasPrefix(a.Reason, string(operator.StateUnsigned)) {
		t.Fatalf("forged record alert %+v, want shop's, unsigned", a)
	}

	// The view's plumbing is out of reach.
	deliver := accounts.ViewDeliverPrefix(shop.PublicKey()) + ".audit.S.x"
	if err := insider.Publish(deliver, []byte("injected")); err != nil {
		t.Fatal(err)
	}
	expectViolation("publish on the view's deliver subject")
	if _, err := insider.Subscribe(accounts.ViewDeliverPrefix(shop.PublicKey())+".>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	expectViolation("subscribe to the view's deliver subjects")
	src := accounts.ViewSourceStream("audit", shop.PublicKey())
	if err := insider.Publish("$JS.API.CONSUMER.CREATE."+src+".x.sealbus.audit.>", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	expectViolation("consumer create on the view source")
	if err := insider.Publish("$JS.FC."+src+".x.y", nil); err != nil {
		t.Fatal(err)
	}
	expectViolation("flow control of the view source")
	if _, err := insider.Subscribe(accounts.AuthErrorEventSubject, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	expectViolation("subscribe to the system events")
	// The reply trick: the server answers to a deliver subject of the view; nothing lands.
	if err := insider.PublishRequest("$JS.API.INFO", deliver, nil); err != nil {
		t.Fatal(err)
	}
	if err := insider.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := streamCount(t, ctx, opsJS, accounts.ViewAuditStream(shop.PublicKey())); n != before+2 {
		t.Fatalf("the view of shop holds %d records, want %d and the 2 the insider could write in its own audit stream", n, before)
	}
}

// TestRemovedTenantUnlinked: the operator account's imports of a tenant's view sources do not
// count as a use of the tenant (it is removed without --force), they go with it (in the keystore
// and on the server), and its view streams keep the records it left.
func TestRemovedTenantUnlinked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, _, _, _ := monitoredSandbox(t, ctx)
	gone, err := sb.AddAccount(ctx, "gone", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	p := sb.Provisioner()
	imports := func(c *jwt.AccountClaims) int {
		n := 0
		for _, imp := range c.Imports {
			if imp.Account == gone.PublicKey() {
				n++
			}
		}
		return n
	}
	ops, _ := p.OperatorAccount()
	if imports(ops.Claims) == 0 {
		t.Fatal("the operator account does not import the new tenant's view sources")
	}
	opsNC, err := sb.AdminConn(ctx, accounts.OperatorAccountName)
	if err != nil {
		t.Fatal(err)
	}
	defer opsNC.Close()
	opsJS, _ := jetstream.New(opsNC)
	goneNC, err := sb.AdminConn(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	goneJS, _ := jetstream.New(goneNC)
	held := streamCount(t, ctx, goneJS, accounts.AuditStream)
	goneNC.Close()
	waitCount(t, ctx, opsJS, accounts.ViewAuditStream(gone.PublicKey()), held)

	linked := len(ops.JWT)
	if _, err := p.RemoveAccount(ctx, "gone", false, true); err != nil {
		t.Fatalf("removing a tenant without services: %v", err)
	}
	ops, _ = p.OperatorAccount()
	t.Logf("the operator account's JWT: %d bytes with 3 tenants, %d with 2: %d bytes per tenant linked", linked, len(ops.JWT), linked-len(ops.JWT))
	if n := imports(ops.Claims); n != 0 {
		t.Fatalf("the operator account still imports %d subjects of the removed tenant", n)
	}
	sys, err := sb.SystemConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	msg, err := sys.RequestWithContext(ctx, "$SYS.REQ.ACCOUNT."+ops.PublicKey()+".CLAIMS.LOOKUP", nil)
	if err != nil {
		t.Fatal(err)
	}
	served, err := jwt.DecodeAccountClaims(string(msg.Data))
	if err != nil || imports(served) != 0 {
		t.Fatalf("the servers' operator account JWT (%v) still imports from the removed tenant", err)
	}
	if n := streamCount(t, ctx, opsJS, accounts.ViewAuditStream(gone.PublicKey())); n != held {
		t.Fatalf("the removed tenant's view holds %d records, want the %d it left", n, held)
	}
	res, err := p.SetupMonitoring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.Accounts, "gone") || len(res.Pushed) != 0 {
		t.Fatalf("monitoring set up again: %+v", res)
	}
}
