package operator_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

// provisioner is a keystore with the env's operator and account shop (pushed and set up), with
// stream ORDERS on orders.>.
func provisioner(t *testing.T) (*operator.Provisioner, env) {
	t.Helper()
	e := newEnv(t)
	home := t.TempDir()
	ks, err := accounts.OpenKeystore(home, nil, accounts.WithUnencrypted())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ks.Close)
	if err := ks.SaveOperator(e.op); err != nil {
		t.Fatal(err)
	}
	p := &operator.Provisioner{Keystore: ks, Operator: e.op, Target: e.t}
	t.Cleanup(p.Close)
	c := ctx(t)
	acct, err := p.CreateAccount("shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetupAccount(c, acct); err != nil {
		t.Fatal(err)
	}
	nc, err := p.Admin(c, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := operator.AddStream(c, nc, operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	return p, e
}

func filesOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

// TestAddServiceValidatesBeforeSaving is the typo of the operator's day: a consumer whose
// filter does not match the stream. With push, nothing is saved and push keeps working.
func TestAddServiceValidatesBeforeSaving(t *testing.T) {
	p, _ := provisioner(t)
	c := ctx(t)
	before := filesOf(t, p.Keystore.Path("accounts"))
	bad := []accounts.ServiceSpec{
		{Name: "billing", Subscribe: []string{"order.created"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}},
		{Name: "billing", Subscribe: []string{"orders.created"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDER", Durable: "billing"}}},
	}
	for i, spec := range bad {
		_, err := p.AddService(c, "shop", spec, operator.ServiceChange{Push: true})
		if err == nil {
			t.Fatalf("bad spec %d accepted", i)
		}
		if after := filesOf(t, p.Keystore.Path("accounts")); len(after) != len(before) {
			t.Fatalf("bad spec %d left files: %d before, %d after", i, len(before), len(after))
		}
	}
	_, err := p.AddService(c, "shop", bad[1], operator.ServiceChange{Push: true})
	var snf *operator.StreamNotFoundError
	if !errors.As(err, &snf) || !slices.Contains(snf.Known, "ORDERS") || !strings.Contains(err.Error(), `did you mean "ORDERS"`) {
		t.Fatalf("missing stream: %v", err)
	}
	// A filter the service could not open is refused without the server.
	_, err = p.AddService(c, "shop", accounts.ServiceSpec{Name: "x", Subscribe: []string{"orders.a"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "x"}}},
		operator.ServiceChange{Filters: map[accounts.ConsumerRef][]string{{Stream: "ORDERS", Durable: "x"}: {"orders.b"}}})
	if !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("filter outside subscribe: %v", err)
	}
	good, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.created"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}, operator.ServiceChange{Push: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(good.Consumers) != 1 || good.Consumers[0].Status != "created" {
		t.Fatalf("consumers: %+v", good.Consumers)
	}
	// Another service may not take billing's durable.
	if _, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "thief", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}, operator.ServiceChange{}); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("durable of another service: %v", err)
	}
}

// TestSyncReportsABadEntryAndGoesOn: a service saved without push whose durable cannot be made
// does not stop the account's push; the other services are published.
func TestSyncReportsABadEntryAndGoesOn(t *testing.T) {
	p, _ := provisioner(t)
	c := ctx(t)
	if _, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "aaa-typo", Subscribe: []string{"order.created"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "typo"}}}, operator.ServiceChange{}); err != nil {
		t.Fatal(err) // keystore-only: the server is not asked
	}
	if _, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.created"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}, operator.ServiceChange{}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Sync(c, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 1 || res.Problems[0].Service != "aaa-typo" || !errors.Is(res.Problems[0].Err(), operator.ErrInvalidSpec) {
		t.Fatalf("problems: %+v", res.Problems)
	}
	var billing string
	for _, cr := range res.Consumers {
		if cr.Durable == "billing" {
			billing = cr.Status
		}
	}
	if billing != "created" || !slices.Contains(res.Cards, "billing") {
		t.Fatalf("billing after a bad sibling: %q, cards %v", billing, res.Cards)
	}
}

func TestEditAndRemoveService(t *testing.T) {
	p, e := provisioner(t)
	c := ctx(t)
	add, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}, operator.ServiceChange{Push: true})
	if err != nil {
		t.Fatal(err)
	}
	oldCreds := add.CredsPath
	// Narrow the subscription and move the durable.
	out, err := p.EditService(c, "shop", "billing", func(s *accounts.ServiceSpec) error {
		s.Subscribe = []string{"orders.paid"}
		s.Consumers = []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing2"}}
		return nil
	}, operator.ServiceChange{Push: true, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if out.Service.UserPublicKey() == add.Service.UserPublicKey() || len(out.Removed) != 1 || out.Removed[0].Durable != "billing" {
		t.Fatalf("edit: %+v", out)
	}
	if !accounts.IsRevoked(out.Account.Claims, add.Service.UserPublicKey(), time.Unix(jwtIAT(t, add.Service.UserJWT), 0)) {
		t.Fatal("the old key (with the old permissions) is not revoked")
	}
	nc, err := p.Admin(c, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Consumer(c, "ORDERS", "billing"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("old durable after edit: %v", err)
	}
	cons, err := js.Consumer(c, "ORDERS", "billing2")
	if err != nil || cons.CachedInfo().Config.FilterSubject != "orders.paid" {
		t.Fatalf("new durable: %v", err)
	}
	// The creds from before the edit no longer connect.
	if nc, err := nats.Connect(e.t.URLs[0], nats.RootCAs(e.t.RootCA), nats.UserCredentials(p.PreviousCredsPath("shop", "billing")), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("pre-edit creds connected")
	}
	_ = oldCreds
	if n, err := p.PendingAudit("shop"); err != nil || n != 0 {
		t.Fatalf("admin records left pending after a pushed edit: %d, %v", n, err)
	}

	// A removal whose push fails changes nothing, and nothing says it happened.
	bad := &operator.Provisioner{Keystore: p.Keystore, Operator: p.Operator, Target: operator.Target{URLs: []string{"tls://127.0.0.1:1"}, RootCA: e.t.RootCA}}
	defer bad.Close()
	if _, err := bad.RemoveService(c, "shop", "billing", true); err == nil {
		t.Fatal("a removal pushed to no server succeeded")
	}
	if _, err := p.Keystore.LoadService("shop", "billing"); err != nil {
		t.Fatalf("the service after a failed removal: %v", err)
	}
	if n, err := p.PendingAudit("shop"); err != nil || n != 0 {
		t.Fatalf("a failed removal left %d admin records (%v)", n, err)
	}

	rm, err := p.RemoveService(c, "shop", "billing", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Removed) != 1 || !accounts.IsRevoked(rm.Account.Claims, out.Service.UserPublicKey(), time.Now().Add(-time.Minute)) {
		t.Fatalf("remove: %+v", rm)
	}
	if _, err := p.Keystore.LoadService("shop", "billing"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("service after remove: %v", err)
	}
	if _, err := js.Consumer(c, "ORDERS", "billing2"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("durable after remove: %v", err)
	}
	if nc, err := nats.Connect(e.t.URLs[0], nats.RootCAs(e.t.RootCA), nats.UserCredentials(out.CredsPath), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("removed service's creds connected")
	}
}

func jwtIAT(t *testing.T, tok string) int64 {
	t.Helper()
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	return uc.IssuedAt
}

func TestRemoveAccountAndStreamRefusedWhileInUse(t *testing.T) {
	p, _ := provisioner(t)
	c := ctx(t)
	if _, err := p.AddService(c, "shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}, operator.ServiceChange{Push: true}); err != nil {
		t.Fatal(err)
	}
	var inUse *operator.InUseError
	if err := p.RemoveStream(c, "shop", "ORDERS", false); !errors.As(err, &inUse) || !strings.Contains(inUse.By[0], "billing") {
		t.Fatalf("remove a stream in use: %v", err)
	}
	if err := p.RemoveStream(c, "shop", "NOPE", true); !errors.Is(err, operator.ErrNotFound) {
		t.Fatalf("remove a missing stream: %v", err)
	}
	if err := p.RemoveStream(c, "shop", accounts.AuditStream, true); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("remove sealbus's own stream: %v", err)
	}
	if _, err := p.RemoveAccount(c, "shop", false, true); !errors.Is(err, operator.ErrInUse) {
		t.Fatalf("remove an account with services: %v", err)
	}
	if err := p.RemoveStream(c, "shop", "ORDERS", true); err != nil {
		t.Fatal(err)
	}
	acct, err := p.RemoveAccount(c, "shop", true, true)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Claims.Revocations[jwt.All] == 0 || acct.Claims.Limits.Conn != 0 {
		t.Fatalf("removed account not disabled: %+v", acct.Claims.Limits)
	}
	if names, _ := p.Keystore.ListAccounts(); len(names) != 1 || names[0] != accounts.OperatorAccountName {
		t.Fatalf("accounts after remove: %v (want only the operator account)", names)
	}
	// The account is disabled on the server: its admin cannot connect any more.
	if nc, err := operator.ConnectAdmin(c, p.Target, acct); err == nil {
		nc.Close()
		t.Fatal("admin of a removed account connected")
	}
}

func TestEditStream(t *testing.T) {
	p, _ := provisioner(t)
	c := ctx(t)
	nc, err := p.Admin(c, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	si, err := operator.EditStream(c, nc, "ORDERS", func(s *operator.StreamSpec) error {
		s.MaxAge = 48 * time.Hour
		return nil
	})
	if err != nil || si.Config.MaxAge != 48*time.Hour || si.Config.Subjects[0] != "orders.>" {
		t.Fatalf("edit: %v %+v", err, si)
	}
	if _, err := operator.EditStream(c, nc, "ORDERS", func(s *operator.StreamSpec) error { s.Duplicates = time.Second; return nil }); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("duplicate window below freshness: %v", err)
	}
	if _, err := operator.EditStream(c, nc, "ORDRES", func(*operator.StreamSpec) error { return nil }); !errors.Is(err, operator.ErrNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
}

func TestIssueAdminCredsIsAuditedAndExpires(t *testing.T) {
	p, e := provisioner(t)
	c := ctx(t)
	if _, err := p.IssueAdminCreds(c, "shop", 48*time.Hour); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("ttl above the maximum: %v", err)
	}
	ac, err := p.IssueAdminCreds(c, "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := accounts.ParseCreds(ac.Creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(creds.UserJWT)
	if err != nil || uc.Expires == 0 || time.Unix(uc.Expires, 0).After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("admin user JWT expiry: %v %v", err, uc)
	}
	path := filepath.Join(t.TempDir(), "admin.creds")
	if err := os.WriteFile(path, ac.Creds, 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.t.URLs[0], nats.RootCAs(e.t.RootCA), nats.UserCredentials(path), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(c, "ORDERS"); err != nil {
		t.Fatalf("admin creds cannot read the stream: %v", err)
	}
	v, err := p.RecordVerifier("shop")
	if err != nil {
		t.Fatal(err)
	}
	log, err := operator.NewAuditLog(js, v)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := log.Tail(c, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || r.Verified() && r.Event != nil && r.Event.Type == operator.EventCredsIssued && r.Event.Data.Key == ac.UserKey
	}
	if !found {
		t.Fatalf("no audit event for the issuance: %+v", recs)
	}
	if _, err := p.IssueAdminCreds(c, accounts.SystemAccountName, time.Minute); err != nil {
		t.Fatalf("system account creds: %v", err)
	}
}

func TestDevLockAndTarget(t *testing.T) {
	home := t.TempDir()
	if _, err := operator.ReadDevInfo(home); !errors.Is(err, operator.ErrNoDevServer) {
		t.Fatalf("no dev: %v", err)
	}
	l, err := operator.LockDevHome(home)
	if err != nil {
		t.Fatal(err)
	}
	info := operator.DevInfo{URL: "tls://127.0.0.1:4999", CAFile: "/x/ca.crt", PID: os.Getpid()}
	if err := l.Publish(info); err != nil {
		t.Fatal(err)
	}
	var running *operator.DevRunningError
	if _, err := operator.LockDevHome(home); !errors.As(err, &running) || running.URL != info.URL || running.PID != info.PID {
		t.Fatalf("second lock: %v", err)
	}
	tg, err := operator.ResolveTarget(home, operator.Target{})
	if err != nil || tg.URLs[0] != info.URL || tg.RootCA != info.CAFile {
		t.Fatalf("dev target: %v %+v", err, tg)
	}
	// --server naming the dev server (bare host:port, localhost) gets the dev CA.
	tg, err = operator.ResolveTarget(home, operator.Target{URLs: []string{"localhost:4999"}})
	if err != nil || tg.URLs[0] != "tls://localhost:4999" || tg.RootCA != info.CAFile {
		t.Fatalf("dev by address: %v %+v", err, tg)
	}
	tg, _ = operator.ResolveTarget(home, operator.Target{URLs: []string{"nats.example:4222"}})
	if tg.RootCA != "" {
		t.Fatalf("dev CA given to another server: %+v", tg)
	}
	if _, err := operator.ResolveTarget(home, operator.Target{URLs: []string{"http://x:1"}}); !errors.Is(err, operator.ErrNoTLS) {
		t.Fatalf("http URL: %v", err)
	}
	l.Release()
	// A server.json left by a dead server is not taken for a running one.
	if err := os.WriteFile(filepath.Join(home, "dev", "server.json"), []byte(`{"url":"tls://127.0.0.1:1","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.ReadDevInfo(home); !errors.Is(err, operator.ErrNoDevServer) {
		t.Fatalf("stale server.json: %v", err)
	}
}
