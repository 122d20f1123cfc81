package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestRestartMidStream stops a single server (file storage) while a sealed workload runs,
// starts it again on the same address, and checks that both SDK clients reconnect and that no
// acknowledged message is lost or handled twice; then that replay protection survived the
// restart (replayAfterRestart).
//
// fsync: the server runs with nats-server's default sync_interval (2 minutes): JetStream
// writes every message to its block file before acknowledging it and fsyncs on that interval
// and on shutdown. That is the setting operators run, so it is the one to test, and it is
// enough here because stopping a container (SIGTERM, or even SIGKILL) does not drop the host
// kernel's page cache: written data survives a process restart. Only a host crash or power loss
// could lose the writes of the last interval; surviving that needs sync_interval: always (a
// per-write fsync, at a large cost in throughput), which this test cannot simulate and
// operator.ServerConfig does not set.
//
// SEALBUS_RESTART_MESSAGES sets the number of 1 KiB messages (default 20000).
func TestRestartMidStream(t *testing.T) {
	total := envInt(t, "SEALBUS_RESTART_MESSAGES", 20_000)
	s := natstest.StartServer(t)
	ctx := testContext(t, 8*time.Minute)

	pubCreds, conCreds := provisionWorkload(t, ctx, s.Deployment, accounts.DefaultLimits(),
		operator.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}, Storage: jetstream.FileStorage}, "worker", "scheduler")

	pub := connectSDK(t, ctx, s.Deployment, pubCreds, []string{s.URL})
	sub := connectSDK(t, ctx, s.Deployment, conCreds, []string{s.URL})
	w := &workload{Subject: "jobs.run", Total: total, Size: 1024}
	cs, err := consumers.Consume(ctx, sub, "JOBS", "worker", w.handler, consumers.WithWorkers(4), consumers.WithMaxInFlight(1024))
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	note := func(format string, args ...any) {
		t.Logf("%6.1fs acked %6d  %s", time.Since(start).Seconds(), w.Acked(), fmt.Sprintf(format, args...))
	}
	rctx, cancelRestart := context.WithCancel(ctx)
	defer cancelRestart()
	restarted := make(chan error, 1)
	go func() {
		ctx := rctx
		restarted <- func() error {
			if err := waitAcked(ctx, w, total*30/100); err != nil {
				return err
			}
			note("stopping the server")
			if err := s.Node.Stop(ctx); err != nil {
				return err
			}
			if err := sleepCtx(ctx, 5*time.Second); err != nil {
				return err
			}
			note("starting the server")
			if err := s.Node.Start(ctx); err != nil {
				return err
			}
			note("server healthy again")
			return nil
		}()
	}()
	stopProgress := w.logProgress(t, 10*time.Second)
	defer stopProgress()
	const publishBound = 90 * time.Second
	pctx, pcancel := context.WithTimeout(ctx, publishBound)
	err = w.publish(pctx, pub)
	pcancel()
	if err != nil {
		t.Errorf("publishing did not finish within %v: %d of %d acknowledged", publishBound, w.Acked(), total)
	}
	note("publishing done")
	cancelRestart()
	if err := <-restarted; err != nil {
		t.Errorf("restart incomplete when publishing ended: %v", err)
		if s.Node.State() == natstest.Stopped {
			if err := s.Node.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	adminNC, err := s.AdminConn(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	adminJS, _ := jetstream.New(adminNC)
	st, err := adminJS.Stream(ctx, "JOBS")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := adminJS.Consumer(ctx, "JOBS", "worker")
	if err != nil {
		t.Fatal(err)
	}
	r := w.waitSettled(t, ctx, cons, cs, st, verifyingDeadLetters(t, s.Provisioner(), "A", adminJS), 90*time.Second)
	t.Logf("longest pause in delivery ended %.1fs after the start", r.longestPauseAt.Sub(start).Seconds())
	r.check(t, "restart", time.Since(start))
	if n := pub.Connection().Reconnects; n < 1 {
		t.Errorf("publisher reconnected %d times, want at least 1", n)
	}
	if n := sub.Connection().Reconnects; n < 1 {
		t.Errorf("consumer reconnected %d times, want at least 1", n)
	}
	replayAfterRestart(t, ctx, s.Deployment, adminJS, "JOBS", "worker", conCreds, "scheduler")
}

// replayAfterRestart checks that replay protection survived the server's restart and the
// consumer's: the publisher, with raw NATS and its own creds, republishes the newest handled
// envelope under a new Nats-Msg-Id; a new consumer process (a fresh SDK client, nothing in
// memory) dead-letters it as a replay and never calls its handler.
func replayAfterRestart(t *testing.T, ctx context.Context, d *natstest.Deployment, adminJS jetstream.JetStream, stream, durable, conCreds, publisher string) {
	t.Helper()
	st, err := adminJS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := st.GetMsg(ctx, st.CachedInfo().State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	insider, err := sealbustest.InsiderConn(ctx, d, "A", publisher)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, _ := jetstream.New(insider)
	republish(t, ctx, ijs, orig, "replay-after-restart")
	c := connectSDK(t, ctx, d, conCreds, d.URLs())
	var calls atomic.Int64
	cs, err := consumers.Consume(ctx, c, stream, durable, func(context.Context, *consumers.Message) error { calls.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cs.Stop(); <-cs.Done() }()
	if err := poll(ctx, 20*time.Second, func(context.Context) error {
		if c.Metrics().DeadLettered[consumers.ReasonReplay] != 1 {
			return fmt.Errorf("replay not dead-lettered yet")
		}
		return nil
	}); err != nil {
		t.Errorf("after the restarts: %v (metrics %+v)", err, c.Metrics())
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the replay reached the handler of the restarted consumer %d times", n)
	}
	t.Logf("after the server and consumer restarts, the replay of sequence %d was dead-lettered as %s", orig.Sequence, consumers.ReasonReplay)
}
