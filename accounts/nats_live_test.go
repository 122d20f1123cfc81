package accounts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// This file checks the computed permission set against what a real server does with it: a
// service connected with its creds and accounts.InboxPrefix can read its account's directory
// view (single-key direct gets), use its durable consumer, publish envelopes, dead letters and
// audit events, and cannot write the directory, get it in batches, create consumers anywhere
// or administer streams. The directory itself lives in the operator account and reaches the
// tenant through the operator account's exports and the tenant's imports
// (accounts.Account.ImportOperatorViews), which this test wires by hand.

type liveEnv struct {
	url, caFile string
	op          *accounts.Operator
	opAcc       *accounts.Account
	acc         *accounts.Account
}

func startLive(t *testing.T) *liveEnv {
	t.Helper()
	op, err := accounts.NewOperator("live")
	if err != nil {
		t.Fatal(err)
	}
	opAcc, err := op.NewOperatorAccount()
	if err != nil {
		t.Fatal(err)
	}
	acc, err := op.NewAccount("shop", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := acc.ImportOperatorViews(opAcc.PublicKey()); err != nil || !changed {
		t.Fatalf("import views: %v %v", changed, err)
	}
	if err := op.Reissue(acc); err != nil {
		t.Fatal(err)
	}
	url, ca := accounts.StartServer(t, op, opAcc, acc)
	return &liveEnv{url: url, caFile: ca, op: op, opAcc: opAcc, acc: acc}
}

// adminConn connects as an unrestricted user of acct (what the operator's tools do to create
// streams and write the directory).
func (e *liveEnv) adminConn(t *testing.T, acct *accounts.Account) *nats.Conn {
	t.Helper()
	ukp, err := nkeysUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.IssuerAccount = acct.PublicKey()
	uc.Expires = time.Now().Add(time.Hour).Unix()
	tok, err := uc.Encode(acct.SigningKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	nc, err := nats.Connect(e.url, nats.RootCAs(e.caFile), nats.UserJWTAndSeed(tok, string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// permErrors collects asynchronous permission violations per subject.
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		p.mu.Lock()
		p.errs = append(p.errs, err.Error())
		p.mu.Unlock()
	}
}

func (p *permErrors) has(subject string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.Contains(e, `"`+subject+`"`) {
			return true
		}
	}
	return false
}

func (p *permErrors) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.errs)
}

func TestServicePermissionsWithJetStream(t *testing.T) {
	e := startLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shop := e.acc.PublicKey()

	// The operator's setup: the directory bucket in the operator account, the tenant's view,
	// DLQ, audit, an application stream and the service's durable.
	onc := e.adminConn(t, e.opAcc)
	ojs, err := jetstream.New(onc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := ojs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: accounts.DirectoryBucket, History: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, shop+"."+accounts.DirectoryAccountKey, e.acc.JWT); err != nil {
		t.Fatal(err)
	}
	anc := e.adminConn(t, e.acc)
	ajs, err := jetstream.New(anc)
	if err != nil {
		t.Fatal(err)
	}
	view, err := ajs.CreateStream(ctx, jetstream.StreamConfig{
		Name: accounts.DirectoryView, AllowDirect: true, MaxMsgsPerSubject: 1,
		Mirror: &jetstream.StreamSource{
			Name: accounts.DirectoryStream, FilterSubject: accounts.DirectoryFilter(shop),
			External: &jetstream.ExternalStream{APIPrefix: accounts.OperatorAPIPrefix, DeliverPrefix: accounts.DirectoryDeliverPrefix(shop)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: accounts.DLQStream, Subjects: []string{accounts.DLQSubjectPrefix + ".>"}},
		{Name: accounts.AuditStream, Subjects: []string{accounts.AuditSubjectPrefix + ".>"}}, // every writer's subject, for this test
		{Name: "ORDERS", Subjects: []string{"orders.>"}, Duplicates: time.Minute},
	} {
		if _, err := ajs.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ajs.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "orders.created"}); err != nil {
		t.Fatal(err)
	}

	svc, err := e.acc.NewService(accounts.ServiceSpec{
		Name:      "billing",
		Publish:   []string{"orders.billed"},
		Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cardKey := accounts.DirectoryCardKey("billing", svc.UserPublicKey())
	if _, err := kv.PutString(ctx, shop+"."+cardKey, svc.Card); err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "billing.creds")
	cb, err := svc.Creds()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(credsFile, cb, 0o600); err != nil {
		t.Fatal(err)
	}

	var perms permErrors
	snc, err := nats.Connect(e.url, nats.RootCAs(e.caFile), nats.UserCredentials(credsFile),
		nats.CustomInboxPrefix(accounts.InboxPrefix(svc.UserPublicKey())), nats.ErrorHandler(perms.handler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snc.Close)
	sjs, err := jetstream.New(snc)
	if err != nil {
		t.Fatal(err)
	}

	// Allowed: account info, single-key gets on the view, which the mirror fills from the
	// operator account within moments.
	if _, err := sjs.AccountInfo(ctx); err != nil {
		t.Fatalf("account info: %v", err)
	}
	get := func(key string) *nats.Msg {
		t.Helper()
		var m *nats.Msg
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err = snc.RequestWithContext(ctx, accounts.DirectoryGetSubject(shop, key), nil)
			if err == nil && m.Header.Get("Status") == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil || m.Header.Get("Status") != "" {
			t.Fatalf("get %s: %v %v", key, err, m.Header)
		}
		return m
	}
	if m := get(accounts.DirectoryAccountKey); string(m.Data) != e.acc.JWT || m.Header.Get(jetstream.StreamHeader) != accounts.DirectoryView {
		t.Fatalf("account key: %q %v", m.Data, m.Header)
	}
	if m := get(cardKey); string(m.Data) != svc.Card {
		t.Fatalf("card key: %q", m.Data)
	}
	// A later operator write reaches the view; the newest-entry get names it.
	rev, err := kv.PutString(ctx, shop+".card.other."+svc.UserPublicKey(), "x")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := get(">")
		if m.Header.Get(jetstream.SequenceHeader) == strconv.FormatUint(rev, 10) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("newest entry %v, want sequence %d", m.Header, rev)
		}
	}
	// The subject form answers one key only: a batch or sequence in the body is refused.
	for _, body := range []string{`{"batch":100}`, `{"seq":1}`, `{"multi_last":["` + accounts.DirectoryFilter(shop) + `"]}`} {
		m, err := snc.RequestWithContext(ctx, accounts.DirectoryGetSubject(shop, accounts.DirectoryAccountKey), []byte(body))
		if err != nil || m.Header.Get("Status") != "408" {
			t.Errorf("subject-form get with %s: %v %v, want status 408", body, err, m)
		}
	}

	// Allowed: its durable, acks, publishing envelopes, dead letters and audit events.
	if _, err := ajs.Publish(ctx, "orders.created", []byte("order")); err != nil {
		t.Fatal(err)
	}
	cons, err := sjs.Consumer(ctx, "ORDERS", "billing")
	if err != nil {
		t.Fatalf("look up durable: %v", err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("fetched %d (%v)", n, msgs.Error())
	}
	if _, err := sjs.Stream(ctx, "ORDERS"); err != nil {
		t.Fatalf("stream info: %v", err)
	}
	tok := svc.Spec.EvidenceToken
	for _, subj := range []string{"orders.billed", accounts.DLQSubject("billing", tok), accounts.AuditSubject("billing", tok)} {
		if _, err := sjs.Publish(ctx, subj, []byte("x")); err != nil {
			t.Errorf("publish %s: %v", subj, err)
		}
	}
	if c := perms.count(); c != 0 {
		t.Fatalf("permission violations on allowed operations: %v", perms.errs)
	}
	before, err := view.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Refused: directory writes, batch gets, consumers anywhere (the directory view's and the
	// application stream's, in every API form), stream administration, other durables,
	// publishing outside its subjects.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*time.Second) }
	raw := func(subject, body string) func(context.Context) error {
		return func(c context.Context) error {
			_, err := snc.RequestWithContext(c, subject, []byte(body))
			return err
		}
	}
	refused := []struct {
		subject string
		do      func(context.Context) error
	}{
		{"$JS.API.DIRECT.GET." + accounts.DirectoryView, raw("$JS.API.DIRECT.GET."+accounts.DirectoryView, `{"seq":1,"batch":1000}`)},
		{"$JS.API.DIRECT.GET.ORDERS.orders.created", raw("$JS.API.DIRECT.GET.ORDERS.orders.created", "")},
		{"$JS.API.STREAM.MSG.GET." + accounts.DirectoryView, raw("$JS.API.STREAM.MSG.GET."+accounts.DirectoryView, `{"seq":1}`)},
		{"$JS.API.CONSUMER.CREATE." + accounts.DirectoryView, raw("$JS.API.CONSUMER.CREATE."+accounts.DirectoryView, `{"stream_name":"SEALBUS_DIRECTORY","config":{"direct":true,"deliver_subject":"x"}}`)},
		{"$JS.API.CONSUMER.CREATE." + accounts.DirectoryView + ".w.>", raw("$JS.API.CONSUMER.CREATE."+accounts.DirectoryView+".w.>", `{"stream_name":"SEALBUS_DIRECTORY","config":{"name":"w","sourcing":true}}`)},
		{"$JS.API.CONSUMER.DURABLE.CREATE." + accounts.DirectoryView + ".d", raw("$JS.API.CONSUMER.DURABLE.CREATE."+accounts.DirectoryView+".d", `{"stream_name":"SEALBUS_DIRECTORY","config":{"durable_name":"d"}}`)},
		{accounts.OperatorAPIPrefix + ".CONSUMER.CREATE." + accounts.DirectoryStream + ".x." + accounts.DirectoryFilter(shop),
			raw(accounts.OperatorAPIPrefix+".CONSUMER.CREATE."+accounts.DirectoryStream+".x."+accounts.DirectoryFilter(shop), `{}`)},
		{accounts.DirectorySubject(shop, cardKey), func(c context.Context) error {
			_, err := sjs.Publish(c, accounts.DirectorySubject(shop, cardKey), []byte("forged"))
			return err
		}},
		{"$JS.API.STREAM.CREATE.EVIL", func(c context.Context) error {
			_, err := sjs.CreateStream(c, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
			return err
		}},
		{"$JS.API.STREAM.DELETE.ORDERS", func(c context.Context) error { return sjs.DeleteStream(c, "ORDERS") }},
		{"$JS.API.STREAM.PURGE." + accounts.DirectoryView, raw("$JS.API.STREAM.PURGE."+accounts.DirectoryView, "")},
		{"$JS.API.CONSUMER.CREATE.ORDERS.mine", func(c context.Context) error {
			_, err := sjs.CreateConsumer(c, "ORDERS", jetstream.ConsumerConfig{Durable: "mine"})
			return err
		}},
		{"$JS.API.CONSUMER.DELETE.ORDERS.billing", func(c context.Context) error { return sjs.DeleteConsumer(c, "ORDERS", "billing") }},
		{"$JS.API.CONSUMER.INFO.ORDERS.other", func(c context.Context) error {
			_, err := sjs.Consumer(c, "ORDERS", "other")
			return err
		}},
		{"orders.created", func(c context.Context) error {
			_, err := sjs.Publish(c, "orders.created", []byte("forged"))
			return err
		}},
	}
	// Each refused request waits for its timeout, so they run concurrently.
	errs := make([]error, len(refused))
	var wg sync.WaitGroup
	for i, r := range refused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := short()
			defer cancel()
			errs[i] = r.do(c)
		}()
	}
	wg.Wait()
	for i, r := range refused {
		if errs[i] == nil {
			t.Errorf("%s: allowed", r.subject)
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for !perms.has(r.subject) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !perms.has(r.subject) {
			t.Errorf("%s: failed (%v) without a permission violation from the server", r.subject, errs[i])
		}
	}
	// The admin's view: nothing was created, deleted or forged; the view holds what it held.
	if _, err := ajs.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("EVIL stream: %v", err)
	}
	after, err := view.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != before.State.Msgs || after.State.LastSeq != before.State.LastSeq || after.State.Consumers != 0 {
		t.Errorf("directory view changed: %+v -> %+v", before.State, after.State)
	}
	if ent, err := kv.Get(ctx, shop+"."+cardKey); err != nil || string(ent.Value()) != svc.Card {
		t.Errorf("directory card changed: %v", err)
	}
}
