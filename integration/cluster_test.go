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
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
)

// Consumer processes of the cluster tests: each its own container, with these settings.
const (
	fleetSize     = 3
	fleetWorkers  = 4
	fleetInFlight = 256
	// publishRate is the publisher's rate in messages per second (~67 s for 100,000), so that
	// publishing lasts long enough for the faults to happen while it goes on: unthrottled, the
	// SDK publishes 100,000 messages faster than a fault sequence runs.
	publishRate = 1500
)

// clusterRun is a sealed workload on an R3 stream of a three-node cluster: a publisher in
// this process and a fleet of consumer containers on one durable.
type clusterRun struct {
	c       *natstest.Cluster
	adminNC *nats.Conn
	adminJS jetstream.JetStream
	st      jetstream.Stream
	cons    jetstream.Consumer
	pub     *bus.Client
	fleet   *fleet
	w       *workload
	start   time.Time
}

// startClusterRun starts the cluster, provisions account A (stream EVENTS, R3, durable
// processor), starts the fleet and connects the publisher. The clients (publisher and consumer
// processes) are given n1 and n2 only: n3 tests the group's failover, not the clients'.
func startClusterRun(t *testing.T, ctx context.Context, total int) *clusterRun {
	t.Helper()
	c := natstest.StartCluster(t, 3)
	if _, err := natstest.ExamplesImage(ctx); err != nil { // built before the timings below
		t.Fatal(err)
	}
	lim := accounts.DefaultLimits()
	lim.DiskStorage = 4 << 30
	pubCreds, conCreds := provisionWorkload(t, ctx, c.Deployment, lim,
		operator.StreamSpec{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3, Storage: jetstream.FileStorage}, "processor", "publisher")
	r := &clusterRun{c: c}
	// The admin connection, like the clients, uses n1 and n2 only, so a frozen or cut-off n3
	// does not hang it (nats.go's default pings would take minutes to notice).
	acct, err := c.Account("A")
	if err != nil {
		t.Fatal(err)
	}
	target := c.Target()
	target.URLs = []string{c.Node(0).URL, c.Node(1).URL}
	if r.adminNC, err = operator.ConnectAdmin(ctx, target, acct); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.adminNC.Close)
	r.adminJS, _ = jetstream.New(r.adminNC)
	if r.st, err = r.adminJS.Stream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	if r.cons, err = r.adminJS.Consumer(ctx, "EVENTS", "processor"); err != nil {
		t.Fatal(err)
	}
	r.fleet = startFleet(t, ctx, c.Deployment, conCreds, fleetSize, []string{c.Node(0).InternalURL, c.Node(1).InternalURL},
		"EVENTS", "processor", fleetWorkers, fleetInFlight)
	r.pub = connectSDK(t, ctx, c.Deployment, pubCreds, []string{c.Node(0).URL, c.Node(1).URL}, bus.WithPublishRate(publishRate, publishRate/10))
	r.w = &workload{Subject: "events.created", Total: total, Size: 1024}
	r.start = time.Now()
	return r
}

func (r *clusterRun) note(t *testing.T, format string, args ...any) {
	t.Logf("%6.1fs acked %6d  %s", time.Since(r.start).Seconds(), r.w.Acked(), fmt.Sprintf(format, args...))
}

// run publishes the workload while faults runs, then waits until the durable is settled,
// stops the fleet and checks the counts: every acknowledged publish handled, no duplicate
// handler call across the processes, nothing stored dropped silently.
func (r *clusterRun) run(t *testing.T, ctx context.Context, name string, faults func(ctx context.Context) error) {
	t.Helper()
	// Publishing must end within this; at the measured rate (docs/TESTING.md) it takes well
	// under half of it.
	const publishBound = 3 * time.Minute
	fctx, cancelFaults := context.WithCancel(ctx)
	defer cancelFaults()
	done := make(chan error, 1)
	go func() { done <- faults(fctx) }()
	stopProgress := r.w.logProgress(t, 10*time.Second, r.cons)
	defer stopProgress()
	pctx, pcancel := context.WithTimeout(ctx, publishBound)
	err := r.w.publish(pctx, r.pub)
	pcancel()
	if err != nil {
		t.Errorf("publishing did not finish within %v: %d of %d acknowledged", publishBound, r.w.Acked(), r.w.Total)
	}
	r.note(t, "publishing done")
	// The faults must happen while publishing goes on: when publishing ends first, the fault
	// sequence is cancelled and reported incomplete.
	cancelFaults()
	if err := <-done; err != nil {
		t.Errorf("fault sequence incomplete when publishing ended: %v", err)
		r.heal(ctx)
	}
	res := r.w.waitSettledFleet(t, ctx, r.cons, r.fleet, r.st, verifyingDeadLetters(t, r.c.Provisioner(), "A", r.adminJS), 3*time.Minute)
	r.note(t, "settled")
	res.check(t, name, time.Since(r.start))
	if res.acked < r.w.Total*70/100 {
		t.Errorf("only %d of %d publishes acknowledged", res.acked, r.w.Total)
	}
}

// heal resumes every node a failed fault sequence left down, so the counts are complete.
func (r *clusterRun) heal(ctx context.Context) {
	for i, n := range r.c.Nodes {
		switch n.State() {
		case natstest.Paused:
			_ = r.c.Unpause(ctx, i)
		case natstest.Stopped:
			_ = r.c.Start(ctx, i)
		case natstest.Partitioned:
			_ = r.c.Reconnect(ctx, i)
		}
	}
}

// TestClusterFaults runs a sealed workload on an R3 stream of a three-node cluster, consumed
// by three consumer processes (containers) on one durable, while one node is stopped and
// started again, and later while one node is frozen (docker pause), and counts across the
// processes: every acknowledged publish is handled exactly once. Each fault lasts ten
// seconds; they start when 15% and 55% of the publishes are acknowledged.
//
// Fault 1 moves the stream, consumer and replay guard store leaders to the publisher's node
// (n1 or n2, which consumer processes use too) and stops it: the clients fail over and the
// groups elect new leaders. Fault 2 moves the leaders to n3 and freezes it: the leaders
// hang with connections open and the groups must elect new ones.
//
// SEALBUS_FAULT_MESSAGES sets the number of 1 KiB messages (default 100000).
func TestClusterFaults(t *testing.T) {
	total := envInt(t, "SEALBUS_FAULT_MESSAGES", 100_000)
	ctx := testContext(t, 12*time.Minute)
	r := startClusterRun(t, ctx, total)
	c := r.c
	stopped := nodeIndex(t, r.pub.Connection().ServerName)
	const frozen = 2 // n3: no client was given its URL
	// Each fault lasts this long, while publishing goes on.
	const outage = 10 * time.Second
	r.run(t, ctx, "cluster faults", func(ctx context.Context) error {
		if err := waitAcked(ctx, r.w, total*15/100); err != nil {
			return err
		}
		if err := moveLeaders(ctx, r.adminNC, r.adminJS, c.Node(stopped).Name); err != nil {
			return err
		}
		r.note(t, "leaders on %s; stopping it", c.Node(stopped).Name)
		if err := c.Stop(ctx, stopped); err != nil {
			return err
		}
		if err := sleepCtx(ctx, outage); err != nil {
			return err
		}
		r.note(t, "starting %s", c.Node(stopped).Name)
		if err := c.Start(ctx, stopped); err != nil {
			return err
		}
		r.note(t, "%s healthy again", c.Node(stopped).Name)
		if err := waitAcked(ctx, r.w, total*55/100); err != nil {
			return err
		}
		if err := moveLeaders(ctx, r.adminNC, r.adminJS, c.Node(frozen).Name); err != nil {
			return err
		}
		r.note(t, "leaders on %s; pausing it", c.Node(frozen).Name)
		if err := c.Pause(ctx, frozen); err != nil {
			return err
		}
		if err := sleepCtx(ctx, outage); err != nil {
			return err
		}
		r.note(t, "unpausing %s", c.Node(frozen).Name)
		if err := c.Unpause(ctx, frozen); err != nil {
			return err
		}
		if err := c.Node(frozen).WaitReady(ctx); err != nil {
			return err
		}
		r.note(t, "%s healthy again", c.Node(frozen).Name)
		return nil
	})
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

// moveLeaders asks the stream EVENTS, its consumer processor and the consumer's replay guard
// store to elect server as leader and waits until all three report it.
func moveLeaders(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, server string) error {
	guard := accounts.GuardStream("EVENTS", "processor")
	body := []byte(fmt.Sprintf(`{"placement":{"preferred":%q}}`, server))
	for _, subj := range []string{
		"$JS.API.STREAM.LEADER.STEPDOWN.EVENTS",
		"$JS.API.CONSUMER.LEADER.STEPDOWN.EVENTS.processor",
		"$JS.API.STREAM.LEADER.STEPDOWN." + guard,
	} {
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
		gs, err := js.Stream(ctx, guard)
		if err != nil {
			return err
		}
		leaders := []string{st.CachedInfo().Cluster.Leader, co.CachedInfo().Cluster.Leader, gs.CachedInfo().Cluster.Leader}
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
