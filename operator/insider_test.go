package operator_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

func newWorld(t *testing.T) *sealbustest.World {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestEvidenceAttacks plays the findings of the evidence review (see
// sealbustest.RunEvidenceAttacks), each as a hostile service holding only its own creds and raw
// NATS access, against the in-process sandbox; integration/evidence_test.go plays them against
// a nats-server container. The escapes finding is TestEvidenceOutputIsEscapedAndVerified in
// cmd/sealbus.
func TestEvidenceAttacks(t *testing.T) {
	sealbustest.RunEvidenceAttacks(t, newWorld(t))
}

// TestReplayConnectionCannotReachTheAPI: the connection a replay publishes on may publish on
// its one subject and nothing else: no JetStream API request, no other subject, no admin
// subject. (The confused deputy of finding 1 executed JetStream API requests with the operator's
// admin connection.)
func TestReplayConnectionCannotReachTheAPI(t *testing.T) {
	w := newWorld(t)
	p := w.Harness.Provisioner()
	acct, err := p.Keystore.LoadAccount(sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := w.Admin(ctx(t), sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	audit, _ := js.Stream(ctx(t), accounts.AuditStream)
	before := audit.CachedInfo().State.Msgs

	var mu sync.Mutex
	var violations []string
	rc, err := operator.ReplayConn(ctx(t), p.Target, acct, "orders.eu.1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		violations = append(violations, err.Error())
		mu.Unlock()
	})
	forbidden := []string{"$JS.API.STREAM.PURGE." + accounts.AuditStream, "$JS.API.STREAM.DELETE." + sealbustest.OrdersStream,
		"$JS.API.INFO", "$JS.API.STREAM.INFO.ORDERS", "$KV.SEALBUS_DIRECTORY.account", "orders.eu.2"}
	for _, subj := range forbidden {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rc.RequestWithContext(c, subj, []byte("{}"))
		cancel()
		if err == nil {
			t.Errorf("the replay connection reached %s", subj)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(violations)
		mu.Unlock()
		if n >= len(forbidden) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d permission violations, want %d: %v", n, len(forbidden), violations)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its one subject works (the ack comes back on its own inbox).
	rjs, _ := jetstream.New(rc)
	if _, err := rjs.Publish(ctx(t), "orders.eu.1", []byte("x"), jetstream.WithExpectStream(sealbustest.OrdersStream)); err != nil {
		t.Fatalf("the replay connection's own subject: %v", err)
	}
	if info, err := audit.Info(ctx(t)); err != nil || info.State.Msgs < before {
		t.Fatalf("audit stream %v, %v", info, err)
	}
}
