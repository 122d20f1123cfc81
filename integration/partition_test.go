package integration

import (
	"context"
	"testing"
	"time"
)

// TestPartition runs the sealed workload of TestClusterFaults (R3, three consumer processes
// on one durable) while one node is cut off from the other two and from every client
// (docker network disconnect) for ten seconds, then healed. Before the cut the stream,
// consumer and replay guard store leaders are moved to that node, so each group loses its
// leader to the minority side: the majority elects new leaders and goes on, the old leader's
// proposals fail, and after the heal the node catches up. Every acknowledged publish is
// handled exactly once across the processes, and nothing stored is dropped silently.
//
// The cut node is n3, which no client was given (the clients fail over between n1 and n2);
// the cut starts when 30% of the publishes are acknowledged.
//
// SEALBUS_PARTITION_MESSAGES sets the number of 1 KiB messages (default 50000).
func TestPartition(t *testing.T) {
	total := envInt(t, "SEALBUS_PARTITION_MESSAGES", 50_000)
	ctx := testContext(t, 10*time.Minute)
	r := startClusterRun(t, ctx, total)
	const cut = 2
	const outage = 10 * time.Second
	r.run(t, ctx, "partition", func(ctx context.Context) error {
		if err := waitAcked(ctx, r.w, total*30/100); err != nil {
			return err
		}
		if err := moveLeaders(ctx, r.adminNC, r.adminJS, r.c.Node(cut).Name); err != nil {
			return err
		}
		r.note(t, "leaders on %s; cutting it off", r.c.Node(cut).Name)
		if err := r.c.Disconnect(ctx, cut); err != nil {
			return err
		}
		if err := sleepCtx(ctx, outage); err != nil {
			return err
		}
		r.note(t, "healing %s", r.c.Node(cut).Name)
		if err := r.c.Reconnect(ctx, cut); err != nil {
			return err
		}
		if err := r.c.Node(cut).WaitReady(ctx); err != nil {
			return err
		}
		r.note(t, "%s healthy (caught up) again", r.c.Node(cut).Name)
		return nil
	})
}
