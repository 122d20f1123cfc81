package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
)

// TestClusterFaults runs a sealed workload on an R3 stream of a three-node cluster while one
// node is stopped and started again, and later while one node is frozen (docker pause), and
// counts: every acknowledged publish is handled exactly once. Each fault lasts ten seconds;
// they start when 15% and 55% of the publishes are acknowledged.
//
// The clients (publisher and consumer, each its own SDK connection) are given the URLs of n1
// and n2. Fault 1 moves the stream and consumer leaders to the publisher's node and stops it:
// the publisher fails over, and the group elects a new leader. Fault 2 moves both leaders to
// n3 and freezes it: the leader hangs with connections open and the group must elect a new
// one. The clients are not given n3's URL, so the freeze tests the group's failover, not the
// clients' (the SDK detects a frozen server of its own within about 15 s by its pings).
//
// The publisher is rate-limited (publishRate) so that publishing lasts long enough for both
// faults to happen while it goes on: unthrottled, the SDK publishes 100,000 messages faster
// than the fault sequence runs.
//
// SEALBUS_FAULT_MESSAGES sets the number of 1 KiB messages (default 100000).
func TestClusterFaults(t *testing.T) {
	total := envInt(t, "SEALBUS_FAULT_MESSAGES", 100_000)
	c := natstest.StartCluster(t, 3)
	ctx := testContext(t, 10*time.Minute)

	lim := accounts.DefaultLimits()
	lim.DiskStorage = 4 << 30
	pubCreds, conCreds := provisionWorkload(t, ctx, c.Deployment, lim,
		operator.StreamSpec{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3, Storage: jetstream.FileStorage}, "processor", "publisher")
	adminNC, err := c.AdminConn(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	adminJS, _ := jetstream.New(adminNC)
	st, err := adminJS.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := adminJS.Consumer(ctx, "EVENTS", "processor")
	if err != nil {
		t.Fatal(err)
	}

	clientURLs := []string{c.Node(0).URL, c.Node(1).URL}
	const publishRate = 1500 // messages per second: ~67 s for the default 100,000
	pub := connectSDK(t, ctx, c.Deployment, pubCreds, clientURLs, bus.WithPublishRate(publishRate, publishRate/10))
	sub := connectSDK(t, ctx, c.Deployment, conCreds, clientURLs)
	w := &workload{Subject: "events.created", Total: total, Size: 1024}
	cs, err := consumers.Consume(ctx, sub, "EVENTS", "processor", w.handler, consumers.WithWorkers(4), consumers.WithMaxInFlight(1024))
	if err != nil {
		t.Fatal(err)
	}

	pubNode := nodeIndex(t, pub.Connection().ServerName)
	const frozen = 2 // n3: no client was given its URL
	// Each fault lasts this long, while publishing goes on.
	const outage = 10 * time.Second
	// Publishing must end within this; at the rate measured here (docs/TESTING.md) it takes
	// well under half of it.
	const publishBound = 3 * time.Minute
	faults := make(chan error, 1)
	start := time.Now()
	note := func(format string, args ...any) {
		l := fmt.Sprintf("%6.1fs acked %6d  %s", time.Since(start).Seconds(), w.Acked(), fmt.Sprintf(format, args...))
		t.Log(l)
	}
	// The faults must happen while publishing goes on: when publishing ends first, the fault
	// sequence is cancelled and reported incomplete.
	fctx, cancelFaults := context.WithCancel(ctx)
	defer cancelFaults()
	go func() {
		ctx := fctx
		faults <- func() error {
			if err := waitAcked(ctx, w, total*15/100); err != nil {
				return err
			}
			if err := moveLeaders(ctx, adminNC, adminJS, c.Node(pubNode).Name); err != nil {
				return err
			}
			note("leaders on %s; stopping it", c.Node(pubNode).Name)
			if err := c.Stop(ctx, pubNode); err != nil {
				return err
			}
			note("%s stopped", c.Node(pubNode).Name)
			if err := sleepCtx(ctx, outage); err != nil {
				return err
			}
			note("starting %s", c.Node(pubNode).Name)
			if err := c.Start(ctx, pubNode); err != nil {
				return err
			}
			note("%s healthy again", c.Node(pubNode).Name)
			if err := waitAcked(ctx, w, total*55/100); err != nil {
				return err
			}
			if err := moveLeaders(ctx, adminNC, adminJS, c.Node(frozen).Name); err != nil {
				return err
			}
			note("leaders on %s; pausing it", c.Node(frozen).Name)
			if err := c.Pause(ctx, frozen); err != nil {
				return err
			}
			if err := sleepCtx(ctx, outage); err != nil {
				return err
			}
			note("unpausing %s", c.Node(frozen).Name)
			if err := c.Unpause(ctx, frozen); err != nil {
				return err
			}
			if err := c.Node(frozen).WaitReady(ctx); err != nil {
				return err
			}
			note("%s healthy again", c.Node(frozen).Name)
			return nil
		}()
	}()

	stopProgress := w.logProgress(t, 10*time.Second)
	defer stopProgress()
	// Publishing is bounded so a stalled client fails the test instead of the CI run.
	pctx, pcancel := context.WithTimeout(ctx, publishBound)
	err = w.publish(pctx, pub)
	pcancel()
	if err != nil {
		t.Errorf("publishing did not finish within %v: %d of %d acknowledged", publishBound, w.Acked(), total)
	}
	note("publishing done")
	cancelFaults()
	if err := <-faults; err != nil {
		t.Errorf("fault sequence incomplete when publishing ended: %v", err)
		// Resume every node so the counts below are complete.
		for i, n := range c.Nodes {
			switch n.State() {
			case natstest.Paused:
				_ = c.Unpause(ctx, i)
			case natstest.Stopped:
				_ = c.Start(ctx, i)
			}
		}
	}
	r := w.waitSettled(t, ctx, cons, cs, st, verifyingDeadLetters(t, c.Provisioner(), "A", adminJS), 90*time.Second)
	note("settled")
	elapsed := time.Since(start)
	t.Logf("longest pause in delivery ended %.1fs after the start", r.longestPauseAt.Sub(start).Seconds())
	r.check(t, "cluster faults", elapsed)
	if r.acked < total*70/100 {
		t.Errorf("only %d of %d publishes acknowledged", r.acked, total)
	}
}

// nodeIndex maps a server name (n1, n2, n3) to its node index.
func nodeIndex(t *testing.T, serverName string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(serverName, "n%d", &i); err != nil || i < 1 {
		t.Fatalf("connected to an unexpected server %q", serverName)
	}
	return i - 1
}

// waitAcked waits until the workload has n acknowledged publishes.
func waitAcked(ctx context.Context, w *workload, n int) error {
	for w.Acked() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d acknowledged publishes (have %d): %w", n, w.Acked(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// moveLeaders asks the stream EVENTS and its consumer processor to elect server as leader
// and waits until both report it.
func moveLeaders(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, server string) error {
	body := []byte(fmt.Sprintf(`{"placement":{"preferred":%q}}`, server))
	for _, subj := range []string{"$JS.API.STREAM.LEADER.STEPDOWN.EVENTS", "$JS.API.CONSUMER.LEADER.STEPDOWN.EVENTS.processor"} {
		err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
			msg, err := nc.RequestWithContext(ctx, subj, body)
			if err != nil {
				return err
			}
			var resp struct {
				Success bool `json:"success"`
				Error   *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if err := json.Unmarshal(msg.Data, &resp); err != nil {
				return err
			}
			if resp.Error != nil && !strings.Contains(resp.Error.Description, "already leader") {
				return fmt.Errorf("%s: %s", subj, resp.Error.Description)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return poll(ctx, 30*time.Second, func(ctx context.Context) error {
		st, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			return err
		}
		co, err := js.Consumer(ctx, "EVENTS", "processor")
		if err != nil {
			return err
		}
		leaders := []string{st.CachedInfo().Cluster.Leader, co.CachedInfo().Cluster.Leader}
		if slices.ContainsFunc(leaders, func(l string) bool { return l != server }) {
			return fmt.Errorf("leaders %v, want %s", leaders, server)
		}
		return nil
	})
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
