package sealbustest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connectService connects with a creds file written by the sandbox, the way a service does.
func connectService(t *testing.T, sb *sealbustest.Sandbox, path string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	c, err := accounts.ReadCredsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwtSubject(c.UserJWT)
	if err != nil {
		t.Fatal(err)
	}
	base := []nats.Option{
		nats.RootCAs(sb.CAFile()),
		nats.UserCredentials(path),
		nats.CustomInboxPrefix(accounts.InboxPrefix(uc)),
		nats.Timeout(5 * time.Second),
		nats.NoReconnect(),
	}
	return nats.Connect(sb.URL(), append(base, opts...)...)
}

func jwtSubject(tok string) (string, error) {
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", err
	}
	return uc.Subject, nil
}

// errorSink collects asynchronous errors (permission violations) of a connection.
type errorSink chan error

func (e errorSink) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case e <- err:
	default:
	}
}

func (e errorSink) wait(t *testing.T, want string) {
	t.Helper()
	select {
	case err := <-e:
		if !strings.Contains(strings.ToLower(err.Error()), want) {
			t.Fatalf("async error %q does not mention %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no asynchronous %q error from the server", want)
	}
}

// TestAcceptance is issue 3's in-process acceptance: two accounts, services and a stream made
// through the accounts API and the provisioning code the CLI uses; generated creds over TLS;
// the server refuses what the permissions forbid; accounts are isolated; plaintext is refused;
// a revoked and pushed service cannot connect any more.
func TestAcceptance(t *testing.T) {
	ctx := testCtx(t)
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()

	for _, name := range []string{"shop", "bank"} {
		if _, err := sb.AddAccount(ctx, name, accounts.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddStream(ctx, "bank", operator.StreamSpec{Name: "PAYMENTS", Subjects: []string{"payments.>"}}); err != nil {
		t.Fatal(err)
	}
	checkoutCreds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "checkout", Publish: []string{"orders.created"}})
	if err != nil {
		t.Fatal(err)
	}
	billingCreds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ledgerCreds, err := sb.AddService(ctx, "bank", accounts.ServiceSpec{Name: "ledger", Publish: []string{"payments.>"}, Subscribe: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{checkoutCreds, billingCreds, ledgerCreds} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, fi.Mode().Perm())
		}
		c, err := accounts.ReadCredsFile(p)
		if err != nil || c.CurveSeed == nil {
			t.Errorf("%s is not a sealbus creds file with a curve seed: %v", p, err)
		}
	}

	// A service connects with its generated creds over TLS and publishes within its rights.
	checkoutErrs := make(errorSink, 4)
	checkout, err := connectService(t, sb, checkoutCreds, nats.ErrorHandler(checkoutErrs.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer checkout.Close()
	if !checkout.TLSRequired() {
		t.Fatal("connection is not TLS")
	}
	js, _ := jetstream.New(checkout)
	if _, err := js.Publish(ctx, "orders.created", []byte("order 1")); err != nil {
		t.Fatalf("JetStream publish within permissions: %v", err)
	}

	// 1. Publishing outside its permissions is refused by the server.
	if err := checkout.Publish("orders.cancelled", []byte("nope")); err != nil {
		t.Fatal(err)
	}
	checkoutErrs.wait(t, "permissions violation")

	// 2. Creating a stream as a service is refused.
	billing, err := connectService(t, sb, billingCreds)
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	bjs, _ := jetstream.New(billing)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = bjs.CreateStream(cctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
	cancel()
	if err == nil {
		t.Fatal("a service created a stream")
	}
	adm, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ajs, _ := jetstream.New(adm)
	if _, err := ajs.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream EVIL exists or lookup failed: %v", err)
	}

	// The service reads its durable: the message published by checkout is there.
	cons, err := bjs.Consumer(ctx, "ORDERS", "billing")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("billing fetched %d messages: %v", n, batch.Error())
	}

	// 3. Account B cannot read account A's stream.
	ledger, err := connectService(t, sb, ledgerCreds)
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	sub, err := ledger.SubscribeSync("orders.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkout.Publish("orders.created", []byte("order 3")); err != nil {
		t.Fatal(err)
	}
	checkout.Flush()
	if m, err := sub.NextMsg(time.Second); err == nil {
		t.Fatalf("account bank received %q from account shop", m.Data)
	}
	bankAdm, err := sb.AdminConn(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	defer bankAdm.Close()
	bankJS, _ := jetstream.New(bankAdm)
	if _, err := bankJS.Stream(ctx, "ORDERS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("account bank sees stream ORDERS: %v", err)
	}
	ljs, _ := jetstream.New(ledger)
	cctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	_, err = ljs.Consumer(cctx, "ORDERS", "billing")
	cancel()
	if err == nil {
		t.Fatal("a service of account bank looked up a consumer of account shop")
	}

	// 4. A plaintext connection is refused.
	assertPlaintextRefused(t, sb.URL())

	// 5. After revoke + push the revoked service can no longer connect, and its open
	// connection is closed.
	closed := make(chan struct{})
	billing.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := sb.RevokeService(ctx, "shop", "billing"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked service's open connection was not closed by the server")
	}
	if nc, err := connectService(t, sb, billingCreds); err == nil {
		nc.Close()
		t.Fatal("revoked service connected")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("revoked service refused with %v, want an authorization error", err)
	}
	// Others are unaffected.
	if nc, err := connectService(t, sb, checkoutCreds); err != nil {
		t.Fatalf("checkout after billing's revocation: %v", err)
	} else {
		nc.Close()
	}
	// The directory view carries the new account JWT with the revocation.
	acct, err := sb.Keystore().LoadAccount("shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := viewValue(t, ctx, adm, acct.PublicKey(), accounts.DirectoryAccountKey); string(got) != acct.JWT {
		t.Fatal("directory does not hold the reissued account JWT")
	}
	svc, err := sb.Service("shop", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if !accounts.IsRevoked(acct.Claims, svc.UserPublicKey(), time.Now().Add(-time.Minute)) {
		t.Fatal("billing is not revoked in the account claims")
	}
}

func assertPlaintextRefused(t *testing.T, url string) {
	t.Helper()
	if err := sealbustest.RefusesPlaintext(url, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestRotateService(t *testing.T) {
	ctx := testCtx(t)
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	spec := accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"}, Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}}
	oldPath, err := sb.AddService(ctx, "shop", spec)
	if err != nil {
		t.Fatal(err)
	}
	oldCreds, err := accounts.ReadCredsFile(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	newPath, err := sb.RotateService(ctx, "shop", "billing", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newCreds, err := accounts.ReadCredsFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := accounts.ReadCredsFile(sb.PreviousCredsPath("shop", "billing"))
	if err != nil {
		t.Fatal(err)
	}
	if string(prev.CurveSeed) != string(oldCreds.CurveSeed) || string(newCreds.CurveSeed) == string(oldCreds.CurveSeed) {
		t.Fatal("previous creds do not hold the old curve key, or the new creds kept it")
	}
	if nc, err := connectService(t, sb, sb.PreviousCredsPath("shop", "billing")); err == nil {
		nc.Close()
		t.Fatal("old key still connects after rotation")
	}
	nc, err := connectService(t, sb, newPath)
	if err != nil {
		t.Fatalf("new key: %v", err)
	}
	defer nc.Close()
	// The new card, listing the old curve key, is in the directory.
	adm, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	svc, err := sb.Service("shop", "billing")
	if err != nil {
		t.Fatal(err)
	}
	card, err := accounts.DecodeCard(string(viewValue(t, ctx, adm, svc.Account, accounts.DirectoryCardKey("billing", svc.UserPublicKey()))))
	if err != nil {
		t.Fatal(err)
	}
	if len(card.PreviousCurveKeys) != 1 {
		t.Fatalf("card lists %d previous curve keys", len(card.PreviousCurveKeys))
	}
	// The durable still works with the new key.
	sjs, _ := jetstream.New(nc)
	if _, err := sjs.Consumer(ctx, "ORDERS", "billing"); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsHome(t *testing.T) {
	ctx := testCtx(t)
	home := t.TempDir()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{Home: home, Passphrase: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		sb.Close()
		t.Fatal(err)
	}
	creds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "svc", Publish: []string{"a.b"}})
	if err != nil {
		sb.Close()
		t.Fatal(err)
	}
	opKey := sb.OperatorKey()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home); err != nil {
		t.Fatal("Close removed a home it did not create")
	}
	if _, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{Home: home, Passphrase: []byte("wrong")}); !errors.Is(err, accounts.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	sb2, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{Home: home, Passphrase: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	defer sb2.Close()
	if sb2.OperatorKey() != opKey {
		t.Fatal("operator changed across restarts")
	}
	nc, err := connectService(t, sb2, creds)
	if err != nil {
		t.Fatalf("service after restart: %v", err)
	}
	nc.Close()
	if _, err := sb2.AddAccount(ctx, "shop", accounts.DefaultLimits()); !errors.Is(err, accounts.ErrExists) {
		t.Fatalf("adding an existing account: %v", err)
	}
}

func TestMTLSSandbox(t *testing.T) {
	ctx := testCtx(t)
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{MTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	creds, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "svc", Publish: []string{"a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := connectService(t, sb, creds); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	cert, key, err := sb.ClientCert("svc")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := connectService(t, sb, creds, nats.ClientCert(cert, key))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestTempHomeRemoved(t *testing.T) {
	ctx := testCtx(t)
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	home := sb.Home()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary home left behind: %v", err)
	}
}

// viewValue reads key from the account's directory view with a single-key direct get, as a
// service does.
func viewValue(t *testing.T, ctx context.Context, nc *nats.Conn, account, key string) []byte {
	t.Helper()
	m, err := nc.RequestWithContext(ctx, accounts.DirectoryGetSubject(account, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Header.Get("Status"); st != "" {
		t.Fatalf("get %s: status %s", key, st)
	}
	return m.Data
}
