package operator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
)

// TestConnectionGuard: connections of a service beyond its quota are closed, newest first,
// both those found when the guard starts and those that arrive later; a closed connection
// frees its place; users without a quota (admins) are left alone.
func TestConnectionGuard(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	tn := setupTenant(t, e, c, "shop")
	svc, err := tn.acct.NewService(accounts.ServiceSpec{Name: "small", Publish: []string{"small.x"}, Limits: accounts.ServiceLimits{Connections: 2}})
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := svc.UserKey.Seed()
	dial := func() (*nats.Conn, error) {
		return nats.Connect(e.srv.URL(), nats.RootCAs(e.srv.CAFile()), nats.UserJWTAndSeed(svc.UserJWT, string(seed)),
			nats.NoReconnect(), nats.CustomInboxPrefix(accounts.InboxPrefix(svc.UserPublicKey())))
	}
	var conns []*nats.Conn // nil: a connection the guard closed before nats.go finished opening it
	t.Cleanup(func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	})
	open := func(n int, beyondQuota bool) {
		t.Helper()
		for range n {
			nc, err := dial()
			if err != nil && !beyondQuota {
				t.Fatal(err)
			}
			conns = append(conns, nc)
			time.Sleep(5 * time.Millisecond) // distinct start times: the newest are closed
		}
	}
	alive := func() []bool {
		out := make([]bool, len(conns))
		for i, nc := range conns {
			out[i] = nc != nil && !nc.IsClosed()
		}
		return out
	}
	waitAlive := func(want ...bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := alive()
			same := len(got) == len(want)
			for i := range got {
				same = same && got[i] == want[i]
			}
			if same {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("connections open %v, want %v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Four connections before the guard starts: it closes the two newest at once.
	open(4, false)
	admins := make([]*nats.Conn, 3)
	for i := range admins {
		if admins[i], err = operator.ConnectAdmin(c, e.t, tn.acct); err != nil {
			t.Fatal(err)
		}
		defer admins[i].Close()
	}
	if _, err := operator.StartConnectionGuard(c, nil); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("nil connection: %v", err)
	}
	sys, err := operator.ConnectSystem(c, e.t, e.op)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := operator.StartConnectionGuard(c, sys, operator.WithGuardReconcile(time.Millisecond)); !errors.Is(err, operator.ErrInvalidSpec) {
		t.Fatalf("reconcile interval of 1ms: %v", err)
	}
	// A context without a deadline gets the default timeout (the sandbox starts it so).
	g, err := operator.StartConnectionGuard(context.Background(), sys, operator.WithGuardReconcile(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	waitAlive(true, true, false, false)
	// A new one beyond the quota is closed as it arrives (sometimes before nats.go has
	// finished opening it).
	open(1, true)
	waitAlive(true, true, false, false, false)
	// Closing one frees its place.
	conns[0].Close()
	time.Sleep(100 * time.Millisecond) // the disconnect event
	open(1, false)
	waitAlive(false, true, false, false, false, true)
	for i, a := range admins {
		if a.IsClosed() {
			t.Fatalf("admin connection %d closed: admins have no quota", i)
		}
	}
	if st := g.Stats(); st.Kicked != 3 || st.Tracked != 2 || st.LostEvents != 0 {
		t.Fatalf("stats %+v, want 3 kicked and 2 tracked", st)
	}
	g.Close()
	g.Close() // idempotent
}
