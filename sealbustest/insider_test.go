package sealbustest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/sealbustest"
)

// The insider review's findings 1 to 4, played on the embedded server by a hostile service
// with raw NATS access (sealbustest.Insider). The integration module plays the same checks on
// a container deployment.

// TestInsiderCannotTouchTheDirectory: findings 1 (consumers on the directory until the
// account's limit starves every fresh client) and 2 (junk stored under directory keys pushes
// the valid entries out) as shipping, which also pulls its durable with directory subjects as
// the reply; fresh clients start and a revocation reaches a running client meanwhile.
func TestInsiderCannotTouchTheDirectory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := sealbustest.AttackDirectory(ctx, w, sealbustest.Shipping, 5)
	t.Log(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.FloodRequests == 0 {
		t.Fatal("the attack sent nothing")
	}
}

// TestInsiderCannotExhaustConnections: finding 4. The account allows 48 connections; the hog's
// quota is 8. With the connection guard running, the hog cannot hold more than its quota, and
// its neighbour connects while the hog keeps reopening. Without the guard (the residual: NATS
// has no per-user connection limit), the hog locks the neighbour out.
func TestInsiderCannotExhaustConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	r, err := sealbustest.AttackConnections(ctx, sb, sb.Guard(), 48, 8, 8, 5)
	t.Log(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened < 8 || r.Kicked == 0 || r.Reopened == 0 || r.Subscriptions == 0 {
		t.Fatalf("the attack did not run as planned: %+v", r)
	}

	// Without the guard, the same hog takes every connection the account allows.
	sb.Guard().Close()
	in, err := sealbustest.NewInsider(ctx, sb, sealbustest.CrowdAccount, sealbustest.Hog)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	opened, refusal := in.OpenConnections(ctx, 48)
	if refusal == nil || !strings.Contains(strings.ToLower(refusal.Error()), "maximum account active connections") {
		t.Fatalf("without the guard the hog opened %d connections and then got %v", opened, refusal)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if c, err := sealbustest.Connect(cctx, sb, sealbustest.CrowdAccount, sealbustest.Neighbour); err == nil {
		c.Close()
		t.Fatal("the neighbour connected although the hog holds every connection")
	} else {
		t.Logf("without the guard: the hog holds %d connections; the neighbour is refused: %v", opened+1, err)
	}
}

// TestFloodDoesNotEvict: finding 3. 40 × 1 MB on a sibling subject of a 16 MiB stream do not
// remove three acknowledged, unconsumed envelopes: the flood fails at the flooder, the writer
// sees its next publish refused (and audited), the reader handles the three; with a
// per-subject cap the flood stops at the flooder's subject and the writer keeps publishing.
func TestFloodDoesNotEvict(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	r, err := sealbustest.AttackStream(ctx, sb)
	t.Log(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.FloodAcked >= r.FloodSent || r.FloodAcked == 0 {
		t.Fatalf("flood %d of %d stored", r.FloodAcked, r.FloodSent)
	}
}

// TestServiceLimitsReachTheServer: a service's per-service limits are in its user JWT as the
// server reads them.
func TestServiceLimitsReachTheServer(t *testing.T) {
	ctx := testCtx(t)
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	lim := accounts.ServiceLimits{Connections: 2, Subscriptions: 10, MaxPayload: 4096}
	if _, err := sb.AddService(ctx, "shop", accounts.ServiceSpec{Name: "small", Publish: []string{"small.x"}, Limits: lim}); err != nil {
		t.Fatal(err)
	}
	in, err := sealbustest.NewInsider(ctx, sb, "shop", "small")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if n, err := in.Subscribe(ctx, 20); err != nil || n > 10 {
		t.Fatalf("%d of 20 subscriptions accepted (limit 10): %v", n, err)
	}
	pubErr := in.Conn.Publish("small.x", make([]byte, 5000))
	if pubErr == nil {
		pubErr = in.Conn.FlushTimeout(5 * time.Second)
	}
	t.Logf("a 5000-byte publish with a 4096-byte limit: %v", pubErr)
	if pubErr == nil {
		t.Fatal("a 5000-byte message was accepted with a 4096-byte limit")
	}
	if n, _ := in.OpenConnections(ctx, 4); n < 2 {
		t.Fatalf("opened %d connections", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for in.Connected()+1 > 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := in.Connected() + 1; got > 2 {
		t.Fatalf("the service holds %d connections, quota 2", got)
	}
}

// BenchmarkFreshStart measures a fresh start of the order flow (sealbustest.FreshStart: a new
// publisher connects, reads and verifies the directory, publishes one envelope; a new reader
// connects and consumes it), alone and while shipping, as an insider, does everything its
// permissions allow against the directory and the account's connections: consumer creation in
// every API form, reply-subject floods of directory subjects (its durable's pulls included)
// and connection hoarding beyond its quota. docs/PERFORMANCE.md records the figures.
func BenchmarkFreshStart(b *testing.B) {
	for _, attacked := range []bool{false, true} {
		name := "quiet"
		if attacked {
			name = "under_attack"
		}
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			w, err := sealbustest.NewWorld(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			if attacked {
				in, err := sealbustest.NewInsider(ctx, w.Harness, sealbustest.Shop, sealbustest.Shipping)
				if err != nil {
					b.Fatal(err)
				}
				defer in.Close()
				actx, stop := context.WithCancel(ctx)
				defer stop()
				go func() {
					for actx.Err() == nil {
						_, _ = in.CreateDirectoryConsumers(actx, 16)
					}
				}()
				go func() {
					for actx.Err() == nil {
						_, _ = in.FloodDirectory(actx, 70)
						_ = in.Conn.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+sealbustest.OrdersStream+"."+sealbustest.Shipping,
							accounts.DirectorySubject(w.Accounts[sealbustest.Shop].PublicKey(), accounts.DirectoryAccountKey), []byte(`{"batch":16,"no_wait":true}`))
					}
				}()
				go in.HoldConnections(actx, 8)
				time.Sleep(200 * time.Millisecond)
			}
			var worst time.Duration
			b.ResetTimer()
			for i := range b.N {
				d, err := sealbustest.FreshStart(ctx, w, "bench"+strconv.Itoa(i))
				if err != nil {
					b.Fatal(err)
				}
				worst = max(worst, d)
			}
			b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
		})
	}
}

// BenchmarkConnectsWhileHoarding measures a neighbour's SDK connects while the hog of
// AttackConnections (account limit 48, quota 8, the connection guard running) keeps workers
// goroutines reopening connections as fast as the server accepts them; "refused/op" is the
// share of connects the full account refused. It shows where the guard's reaction stops being
// enough (docs/PERMISSIONS.md, "Per-service limits").
func BenchmarkConnectsWhileHoarding(b *testing.B) {
	for _, workers := range []int{8, 32, 64, 128} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer sb.Close()
			if _, err := sealbustest.AttackConnections(ctx, sb, sb.Guard(), 48, 8, 1, 1); err != nil {
				b.Fatal(err) // provisions the account and services
			}
			in, err := sealbustest.NewInsider(ctx, sb, sealbustest.CrowdAccount, sealbustest.Hog)
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close()
			actx, stop := context.WithCancel(ctx)
			held := make(chan int, 1)
			go func() { held <- in.HoldConnections(actx, workers) }()
			time.Sleep(500 * time.Millisecond)
			refused := 0
			b.ResetTimer()
			for range b.N {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				c, err := sealbustest.Connect(cctx, sb, sealbustest.CrowdAccount, sealbustest.Neighbour)
				ccancel()
				if err != nil {
					refused++
					continue
				}
				c.Close()
			}
			b.StopTimer()
			stop()
			b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
			b.ReportMetric(float64(<-held), "hog-accepted")
		})
	}
}
