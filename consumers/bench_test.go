package consumers_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// BenchmarkPublishConsume1KiB measures end-to-end throughput of 1 KiB messages on the embedded
// dev server (TLS, encrypted JetStream file storage): published asynchronously from one
// goroutine and consumed from a durable pull consumer with explicit acks.
//
//   - sdk: bus.PublishAsync (sealed to one recipient, batch-signed) and consumers.Consume
//     (verify, replay guard, decrypt, ack).
//   - raw: plain nats.go jetstream PublishAsync and Consume with Ack, same server setup.
//
// Run: go test -run '^$' -bench PublishConsume1KiB -benchtime 20000x ./consumers/
func BenchmarkPublishConsume1KiB(b *testing.B) {
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i)
	}
	var sdk, raw benchRig
	b.Run("sdk", func(b *testing.B) {
		sdk.once.Do(func() { sdk.setupSDK(b) })
		if sdk.err != nil {
			b.Fatal(sdk.err)
		}
		target := sdk.handled.Load() + int64(b.N)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		futures := make([]bus.PubAckFuture, 0, b.N)
		for range b.N {
			f, err := sdk.pub.PublishAsync("orders.us.bench", payload)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			if _, err := f.Wait(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		sdk.wait(b, target)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		raw.once.Do(func() { raw.setupRaw(b) })
		if raw.err != nil {
			b.Fatal(raw.err)
		}
		target := raw.handled.Load() + int64(b.N)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		for range b.N {
			if _, err := raw.js.PublishAsync("orders.us.raw", payload); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-raw.js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publish acks timed out")
		}
		raw.wait(b, target)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Cleanup(func() { sdk.close(); raw.close() })
}

type benchRig struct {
	once    sync.Once
	err     error
	world   *sealbustest.World
	pub     *bus.Client
	sub     *bus.Client
	cs      *consumers.Consumption
	js      jetstream.JetStream
	cc      jetstream.ConsumeContext
	closers []func()
	handled atomic.Int64
}

func (r *benchRig) setupSDK(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r.world, r.err = sealbustest.NewWorld(ctx, nil); r.err != nil {
		return
	}
	if r.pub, r.err = r.world.Connect(ctx, sealbustest.Shop, sealbustest.Checkout); r.err != nil {
		return
	}
	if r.sub, r.err = r.world.Connect(ctx, sealbustest.Shop, sealbustest.Billing); r.err != nil {
		return
	}
	r.cs, r.err = consumers.Consume(context.Background(), r.sub, sealbustest.OrdersStream, sealbustest.Billing, func(context.Context, *consumers.Message) error {
		r.handled.Add(1)
		return nil
	}, consumers.WithWorkers(2), consumers.WithMaxInFlight(512))
}

func (r *benchRig) setupRaw(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r.world, r.err = sealbustest.NewWorld(ctx, nil); r.err != nil {
		return
	}
	pubConn, err := r.world.Admin(ctx, sealbustest.Shop)
	if err != nil {
		r.err = err
		return
	}
	subConn, err := r.world.Admin(ctx, sealbustest.Shop)
	if err != nil {
		r.err = err
		return
	}
	r.closers = append(r.closers, pubConn.Close, subConn.Close)
	if r.js, r.err = jetstream.New(pubConn, jetstream.WithPublishAsyncMaxPending(4096)); r.err != nil {
		return
	}
	subJS, err := jetstream.New(subConn)
	if err != nil {
		r.err = err
		return
	}
	cons, err := subJS.CreateOrUpdateConsumer(ctx, sealbustest.OrdersStream, jetstream.ConsumerConfig{
		Durable: "rawbench", FilterSubject: "orders.us.raw", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		r.err = err
		return
	}
	r.cc, r.err = cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		r.handled.Add(1)
	}, jetstream.PullMaxMessages(512))
}

func (r *benchRig) wait(b *testing.B, target int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for r.handled.Load() < target {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d", r.handled.Load(), target)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (r *benchRig) close() {
	if r.cs != nil {
		r.cs.Stop()
		<-r.cs.Done()
	}
	if r.cc != nil {
		r.cc.Stop()
	}
	for _, c := range []*bus.Client{r.pub, r.sub} {
		if c != nil {
			c.Close()
		}
	}
	for _, f := range r.closers {
		f()
	}
	if r.world != nil {
		r.world.Close()
	}
}

// BenchmarkGuard measures the cross-process replay guard alone, per message: the claim written
// to the durable's guard store (a compare-and-set publish whose ack the worker waits for),
// then, after a handler that returns nil, the handled record (a second compare-and-set
// publish, which the ack waits for). The embedded dev server (TLS, encrypted JetStream file
// storage, R1), billing's store, fresh ids. workers goroutines run messages concurrently, as
// Consume's workers do, so the server pipelines their writes.
//
// Run: go test -run '^$' -bench Guard -benchtime 20000x ./consumers/
func BenchmarkGuard(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	// A store large enough for every run (the default holds ~160,000 ids for a 1 GiB account).
	admin, err := w.Admin(ctx, sealbustest.Shop)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	if err := operator.AddConsumer(ctx, admin, operator.ConsumerSpec{
		Stream: sealbustest.OrdersStream, Durable: sealbustest.Billing, FilterSubjects: []string{"orders.>"},
		AckWait: 30 * time.Second, GuardMaxBytes: 256 << 20,
	}); err != nil {
		b.Fatal(err)
	}
	c, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	run, stop, err := consumers.NewGuardRun(ctx, c, sealbustest.OrdersStream, sealbustest.Billing)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	ajs, _ := jetstream.New(admin)
	var seq atomic.Uint64
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range workers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						s := seq.Add(1)
						handled, err := run(context.Background(), fmt.Sprintf("%032x", s), s)
						if err != nil || !handled {
							b.Errorf("message %d: handled %v, %v", s, handled, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if st, err := ajs.Stream(ctx, accounts.GuardStream(sealbustest.OrdersStream, sealbustest.Billing)); err == nil && st.CachedInfo().State.Msgs > 0 {
				state := st.CachedInfo().State
				b.ReportMetric(float64(state.Bytes)/float64(state.Msgs), "store-B/id")
			}
		})
	}
}
