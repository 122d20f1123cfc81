package operator_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/devserver"
	"github.com/sealbus/sealbus/operator"
)

type env struct {
	op  *accounts.Operator
	srv *devserver.Server
	t   operator.Target
}

// newEnv starts a dev server that knows only the operator's system account.
func newEnv(t *testing.T) env {
	t.Helper()
	op, err := accounts.NewOperator("admintest")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := devserver.Start(ctx, devserver.Config{StateDir: t.TempDir(), OperatorJWT: op.JWT, SystemAccountJWT: op.System.JWT})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return env{op: op, srv: srv, t: operator.Target{URLs: []string{srv.URL()}, RootCA: srv.CAFile()}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// tenant is a tenant account set up the way Provisioner.SetupAccount does it, with the
// low-level calls: the operator account pushed and its directory bucket created, the tenant
// importing its views, pushed, its streams and view made and its JWT in the directory.
type tenant struct {
	acct, opAcct *accounts.Account
	sys, nc, dir *nats.Conn // system, tenant admin, operator account admin
}

func setupTenant(t *testing.T, e env, c context.Context, name string) tenant {
	t.Helper()
	opAcct, err := e.op.NewOperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	acct, err := e.op.NewAccount(name, accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	// Before the push the server does not know the account.
	if nc, err := operator.ConnectAdmin(c, e.t, acct); err == nil {
		nc.Close()
		t.Fatal("admin of an unpushed account connected")
	}
	if _, err := acct.ImportOperatorViews(opAcct.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := e.op.Reissue(acct); err != nil {
		t.Fatal(err)
	}
	sys, err := operator.ConnectSystem(c, e.t, e.op)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.Close)
	for _, a := range []*accounts.Account{opAcct, acct} {
		if err := operator.PushAccount(c, sys, a.JWT); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := operator.ConnectAdmin(c, e.t, opAcct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dir.Close)
	nc, err := operator.ConnectAdmin(c, e.t, acct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	for range 2 { // idempotent
		if err := operator.SetupOperatorAccount(c, dir, opAcct, 1); err != nil {
			t.Fatal(err)
		}
		if err := operator.SetupAccount(c, nc, acct, 1); err != nil {
			t.Fatal(err)
		}
		if err := operator.PutAccountJWT(c, dir, acct.JWT); err != nil {
			t.Fatal(err)
		}
	}
	if err := operator.WaitView(c, dir, nc, acct.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return tenant{acct: acct, opAcct: opAcct, sys: sys, nc: nc, dir: dir}
}

// viewGet makes a direct get on the tenant's directory view, as a service does.
func viewGet(t *testing.T, c context.Context, nc *nats.Conn, account, key string) *nats.Msg {
	t.Helper()
	m, err := nc.RequestWithContext(c, accounts.DirectoryGetSubject(account, key), nil)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return m
}

func TestPushSetupAndProvision(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	tn := setupTenant(t, e, c, "shop")
	acct, nc := tn.acct, tn.nc
	if err := operator.SetupAccount(c, tn.dir, tn.opAcct, 1); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("SetupAccount of the operator account: %v", err)
	}
	js, _ := jetstream.New(nc)

	// The directory lives in the operator account; the tenant reads its part through the view.
	djs, _ := jetstream.New(tn.dir)
	kv, err := djs.KeyValue(c, accounts.DirectoryBucket)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := kv.Get(c, acct.PublicKey()+"."+accounts.DirectoryAccountKey)
	if err != nil || string(ent.Value()) != acct.JWT {
		t.Fatalf("directory account entry: %v", err)
	}
	st, err := kv.Status(c)
	if err != nil || st.History() != operator.DirectoryHistory {
		t.Fatalf("directory history: %v %v", st, err)
	}
	if m := viewGet(t, c, nc, acct.PublicKey(), accounts.DirectoryAccountKey); string(m.Data) != acct.JWT {
		t.Fatalf("account JWT in the view: %q %v", m.Data, m.Header)
	}
	view, err := js.Stream(c, accounts.DirectoryView)
	if err != nil {
		t.Fatal(err)
	}
	vc := view.CachedInfo().Config
	if len(vc.Subjects) != 0 || vc.Mirror == nil || vc.Mirror.Name != accounts.DirectoryStream || vc.Mirror.FilterSubject != accounts.DirectoryFilter(acct.PublicKey()) ||
		!vc.AllowDirect || vc.MaxMsgsPerSubject != 1 || vc.MaxBytes <= 0 {
		t.Fatalf("directory view config: %+v", vc)
	}
	for _, name := range []string{accounts.DLQStream, accounts.AuditStream} {
		s, err := js.Stream(c, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Storage != jetstream.FileStorage || cfg.Duplicates < envelope.DefaultFreshness || cfg.MaxBytes <= 0 {
			t.Errorf("%s config: %+v", name, cfg)
		}
	}

	if err := operator.AddStream(c, nc, operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(c, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if d := s.CachedInfo().Config.Duplicates; d != envelope.DefaultFreshness {
		t.Errorf("default duplicate window %v", d)
	}
	// A full stream refuses new messages instead of removing others'; it takes at most a
	// quarter of the account's storage (and half of what its other streams leave); roll-ups
	// (which remove a subject's earlier messages) are refused.
	if sc := s.CachedInfo().Config; sc.Discard != jetstream.DiscardNew || sc.MaxBytes <= 0 || sc.MaxBytes > accounts.DefaultLimits().DiskStorage/4 || sc.AllowRollup || sc.DiscardNewPerSubject {
		t.Errorf("default stream config: discard %v max bytes %d rollup %v", sc.Discard, sc.MaxBytes, sc.AllowRollup)
	}
	if err := operator.AddStream(c, nc, operator.StreamSpec{Name: "METRICS", Subjects: []string{"metrics.>"}, MaxMsgsPerSubject: 10, MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if m, err := js.Stream(c, "METRICS"); err != nil {
		t.Fatal(err)
	} else if sc := m.CachedInfo().Config; sc.Discard != jetstream.DiscardNew || !sc.DiscardNewPerSubject || sc.MaxMsgsPerSubject != 10 || sc.MaxBytes != 1<<20 {
		t.Errorf("capped stream config: %+v", sc)
	}
	if err := operator.AddStream(c, nc, operator.StreamSpec{Name: "LOGS", Subjects: []string{"logs.>"}, DiscardOld: true}); err != nil {
		t.Fatal(err)
	}
	if l, err := js.Stream(c, "LOGS"); err != nil || l.CachedInfo().Config.Discard != jetstream.DiscardOld {
		t.Errorf("discard-old stream: %v", err)
	}

	svc, err := acct.NewService(accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.PublishCard(c, tn.dir, "billing", svc.Card); err != nil {
		t.Fatal(err)
	}
	if err := operator.PublishCard(c, tn.dir, "other", svc.Card); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Errorf("card under another name: %v", err)
	}
	if err := operator.PublishCard(c, nc, "billing", svc.Card); !errors.Is(err, operator.ErrNoDirectory) {
		t.Errorf("card written through a tenant connection: %v, want ErrNoDirectory", err)
	}
	subjects, err := operator.StreamSubjects(c, nc, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	filter := operator.ConsumerFilter(svc.Spec.Subscribe, subjects)
	if err := operator.AddConsumer(c, nc, operator.ConsumerSpec{Stream: "ORDERS", Durable: "billing", FilterSubjects: filter, BackOff: []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(c, "ORDERS", "billing")
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.FilterSubject != "orders.created" || cc.MaxDeliver != operator.DefaultMaxDeliver {
		t.Errorf("consumer config: %+v", cc)
	}
	checkGuard(t, c, js, cc, "ORDERS", "billing")
	// An update keeps the guard key (the processes of the durable keep finding their entries).
	if err := operator.AddConsumer(c, nc, operator.ConsumerSpec{Stream: "ORDERS", Durable: "billing", FilterSubjects: filter, AckWait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	cons2, err := js.Consumer(c, "ORDERS", "billing")
	if err != nil {
		t.Fatal(err)
	}
	cc2 := cons2.CachedInfo().Config
	if cc2.Metadata[accounts.GuardKeyMetadata] != cc.Metadata[accounts.GuardKeyMetadata] {
		t.Error("the guard key changed on update")
	}
	checkGuard(t, c, js, cc2, "ORDERS", "billing")

	// The service can use its durable: fetch a message published by the admin.
	if _, err := js.Publish(c, "orders.created", []byte("x")); err != nil {
		t.Fatal(err)
	}
	seed, _ := svc.UserKey.Seed()
	snc, err := nats.Connect(e.srv.URL(), nats.RootCAs(e.srv.CAFile()), nats.UserJWTAndSeed(svc.UserJWT, string(seed)),
		nats.CustomInboxPrefix(accounts.InboxPrefix(svc.UserPublicKey())))
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	sjs, _ := jetstream.New(snc)
	scons, err := sjs.Consumer(c, "ORDERS", "billing")
	if err != nil {
		t.Fatalf("service looks up its durable: %v", err)
	}
	msgs, err := scons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range msgs.Messages() {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != 1 {
		t.Fatalf("service fetched %d messages (%v)", got, msgs.Error())
	}

	list, err := operator.Streams(c, nc)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, si := range list {
		names[si.Config.Name] = true
	}
	for _, n := range []string{"ORDERS", accounts.DLQStream, accounts.AuditStream, accounts.DirectoryView} {
		if !names[n] {
			t.Errorf("stream list lacks %s: %v", n, names)
		}
	}
}

func TestPushRefused(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	sys, err := operator.ConnectSystem(c, e.t, e.op)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()

	// Claims the server's validation refuses: a mapping weighted above 100%.
	acct, err := e.op.NewAccount("bad", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	acct.Claims.Mappings = jwt.Mapping{"a.b": {{Subject: "c.d", Weight: 101}}}
	tok, err := acct.Claims.Encode(e.op.Key)
	if err != nil {
		t.Fatal(err)
	}
	err = operator.PushAccount(c, sys, tok)
	var pe *operator.PushError
	if !errors.As(err, &pe) || !errors.Is(err, operator.ErrPushRejected) || pe.Account != acct.PublicKey() {
		t.Fatalf("push of invalid claims: %v, want *PushError", err)
	}
	if err := operator.PushAccount(c, sys, "not a jwt"); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("push of garbage: %v", err)
	}

	// The resolver stores an account of another operator, but the server never trusts it.
	other, err := accounts.NewOperator("stranger")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.NewAccount("evil", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	_ = operator.PushAccount(c, sys, foreign.JWT)
	if nc, err := operator.ConnectAdmin(c, e.t, foreign); err == nil {
		nc.Close()
		t.Fatal("a user of a foreign operator's account connected")
	}
}

func TestTargetRequiresTLS(t *testing.T) {
	op, err := accounts.NewOperator("x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range []operator.Target{
		{},
		{URLs: []string{"ws://127.0.0.1:1"}},
		{URLs: []string{"tls://127.0.0.1:1"}, ClientCert: "c.pem"},
	} {
		if nc, err := operator.ConnectSystem(context.Background(), tg, op); err == nil {
			nc.Close()
			t.Errorf("%+v accepted", tg)
		}
	}
}

func TestStreamSpecValidate(t *testing.T) {
	ok := operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]operator.StreamSpec{
		"reserved name":     {Name: "SEALBUS_X", Subjects: []string{"a"}},
		"kv name":           {Name: "KV_X", Subjects: []string{"a"}},
		"no subjects":       {Name: "A"},
		"wildcard first":    {Name: "A", Subjects: []string{">"}},
		"system subject":    {Name: "A", Subjects: []string{"$JS.API.>"}},
		"sealbus subject":   {Name: "A", Subjects: []string{"sealbus.dlq.>"}},
		"inbox subject":     {Name: "A", Subjects: []string{"_INBOX.x"}},
		"short dup window":  {Name: "A", Subjects: []string{"a"}, Duplicates: time.Minute},
		"age below dup":     {Name: "A", Subjects: []string{"a"}, MaxAge: time.Minute},
		"bad subject":       {Name: "A", Subjects: []string{"a..b"}},
		"gt in middle":      {Name: "A", Subjects: []string{"a.>.b"}},
		"bad name":          {Name: "a b", Subjects: []string{"a"}},
		"too many replicas": {Name: "A", Subjects: []string{"a"}, Replicas: 7},
		"negative cap":      {Name: "A", Subjects: []string{"a"}, MaxMsgsPerSubject: -1},
		"cap with evict":    {Name: "A", Subjects: []string{"a"}, MaxMsgsPerSubject: 5, DiscardOld: true},
	}
	for name, s := range bad {
		if err := s.Validate(); !errors.Is(err, operator.ErrInvalidSpec) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestConsumerFilter(t *testing.T) {
	cases := []struct {
		sub, stream, want []string
	}{
		{[]string{"orders.created"}, []string{"orders.>"}, []string{"orders.created"}},
		{[]string{"orders.>"}, []string{"orders.created", "orders.paid"}, []string{"orders.created", "orders.paid"}},
		{[]string{"orders.*"}, []string{"orders.>"}, []string{"orders.*"}},
		{[]string{"billing.>"}, []string{"orders.>"}, nil},
		{[]string{"orders.*.eu"}, []string{"orders.created.*"}, nil},
	}
	for _, c := range cases {
		got := operator.ConsumerFilter(c.sub, c.stream)
		if len(got) != len(c.want) {
			t.Errorf("ConsumerFilter(%v, %v) = %v, want %v", c.sub, c.stream, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ConsumerFilter(%v, %v) = %v, want %v", c.sub, c.stream, got, c.want)
			}
		}
	}
}

func TestAddConsumerValidation(t *testing.T) {
	c := context.Background()
	for name, spec := range map[string]operator.ConsumerSpec{
		"bad durable":      {Stream: "A", Durable: "a.b"},
		"backoff too long": {Stream: "A", Durable: "d", MaxDeliver: 2, BackOff: []time.Duration{1, 2}},
		"bad filter":       {Stream: "A", Durable: "d", FilterSubjects: []string{"$JS.>"}},
	} {
		if err := operator.AddConsumer(c, nil, spec); !errors.Is(err, operator.ErrInvalidSpec) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWriteCredsKeepsKeys checks that writing a creds file leaves the service's keys usable
// (nkeys hands out its own seed slice; wiping it would corrupt the key pair).
func TestWriteCredsKeepsKeys(t *testing.T) {
	op, err := accounts.NewOperator("x")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := op.NewAccount("a", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := acct.NewService(accounts.ServiceSpec{Name: "s", Publish: []string{"a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	pub := svc.UserPublicKey()
	path := filepath.Join(t.TempDir(), "sub", "s.creds")
	if err := operator.WriteCredsFile(path, svc); err != nil {
		t.Fatal(err)
	}
	if svc.UserPublicKey() != pub {
		t.Fatal("user key changed after writing creds")
	}
	if _, err := svc.UserKey.Sign([]byte("x")); err != nil {
		t.Fatalf("user key unusable after writing creds: %v", err)
	}
	c, err := accounts.ReadCredsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.CurveSeed == nil || c.UserJWT != svc.UserJWT {
		t.Fatal("creds file lacks the curve seed or the user JWT")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

// TestProvisionerRefusesForeignAccount: the provisioner never pushes an account JWT its
// operator did not sign.
func TestProvisionerRefusesForeignAccount(t *testing.T) {
	op, err := accounts.NewOperator("mine")
	if err != nil {
		t.Fatal(err)
	}
	other, err := accounts.NewOperator("theirs")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.NewAccount("evil", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	p := &operator.Provisioner{Operator: op, Target: operator.Target{URLs: []string{"tls://127.0.0.1:1"}}}
	defer p.Close()
	if err := p.PushAccount(context.Background(), foreign); !errors.Is(err, accounts.ErrUntrustedOperator) {
		t.Fatalf("PushAccount of a foreign account: %v", err)
	}
	if err := p.SetupAccount(context.Background(), foreign); !errors.Is(err, accounts.ErrUntrustedOperator) {
		t.Fatalf("SetupAccount of a foreign account: %v", err)
	}
}

// checkGuard checks the replay guard store AddConsumer made for a durable whose configuration
// is cc: a stream of its own subjects, one entry per subject, discard new, TTLs, kept for the
// horizon the durable's metadata names (which covers the stream's duplicate window and the
// AckWait), and a 32-byte guard key.
func checkGuard(t *testing.T, ctx context.Context, js jetstream.JetStream, cc jetstream.ConsumerConfig, stream, durable string) {
	t.Helper()
	gs, err := js.Stream(ctx, accounts.GuardStream(stream, durable))
	if err != nil {
		t.Fatalf("guard store: %v", err)
	}
	gc := gs.CachedInfo().Config
	horizon, err := time.ParseDuration(cc.Metadata[accounts.GuardHorizonMetadata])
	wait := cc.AckWait
	for _, b := range cc.BackOff {
		wait = max(wait, b)
	}
	if need := consumers.GuardHorizon(envelope.DefaultFreshness, wait); err != nil || horizon < need || gc.MaxAge != horizon {
		t.Errorf("guard horizon %q (%v), store max age %v, want at least %v", cc.Metadata[accounts.GuardHorizonMetadata], err, gc.MaxAge, need)
	}
	if len(gc.Subjects) != 1 || gc.Subjects[0] != accounts.GuardSubjects(stream, durable) || gc.MaxMsgsPerSubject != 1 ||
		gc.Discard != jetstream.DiscardNew || !gc.AllowMsgTTL || gc.AllowDirect || gc.MaxBytes <= 0 || gc.Storage != jetstream.FileStorage {
		t.Errorf("guard store config: %+v", gc)
	}
	if key, err := base64.StdEncoding.DecodeString(cc.Metadata[accounts.GuardKeyMetadata]); err != nil || len(key) != 32 {
		t.Errorf("guard key %q: %v", cc.Metadata[accounts.GuardKeyMetadata], err)
	}
}

// TestUnauditedActionReported: an administrative action whose signed audit record cannot be
// kept (here the keystore's audit-pending directory is a file) is carried out and reported as
// ErrNotAudited, never silently left out of the audit.
func TestUnauditedActionReported(t *testing.T) {
	op, err := accounts.NewOperator("x")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	ks, err := accounts.OpenKeystore(home, nil, accounts.WithUnencrypted())
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	if err := ks.SaveOperator(op); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ks.Path("audit-pending"), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &operator.Provisioner{Keystore: ks, Operator: op, Target: operator.Target{URLs: []string{"tls://127.0.0.1:1"}}}
	defer p.Close()
	acct, err := p.CreateAccount("shop", accounts.DefaultLimits())
	if !errors.Is(err, operator.ErrNotAudited) || acct == nil {
		t.Fatalf("CreateAccount with no place for its audit record: %v (account %v)", err, acct)
	}
	if _, err := ks.LoadAccount("shop"); err != nil {
		t.Fatalf("the account was not created: %v", err)
	}
	if _, _, err := p.CreateService("shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"}}); !errors.Is(err, operator.ErrNotAudited) {
		t.Fatalf("CreateService with no place for its audit record: %v", err)
	}
}
