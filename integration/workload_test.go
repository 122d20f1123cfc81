package integration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
)

// envInt reads a positive integer from the environment, or returns def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// connectSDK connects a service with the SDK to the given URLs.
func connectSDK(t *testing.T, ctx context.Context, d *natstest.Deployment, creds string, urls []string, extra ...bus.Option) *bus.Client {
	t.Helper()
	opts := append([]bus.Option{
		bus.WithURL(urls...),
		bus.WithCredsFile(creds),
		bus.WithRootCA(d.CAFile()),
		bus.WithTrustedOperator(d.OperatorKey()),
	}, extra...)
	c, err := bus.Connect(ctx, opts...)
	if err != nil {
		t.Fatalf("connect with %s: %v", creds, err)
	}
	t.Cleanup(c.Close)
	return c
}

// provisionWorkload sets up account A for a workload on d: the stream, a durable sized for a
// high-throughput consumer (redelivery after 30 s without an ack, no server BackOff, up to
// 8192 unacknowledged), a service publishing on the stream's subjects and one consuming the
// durable. It returns the two services' creds files.
func provisionWorkload(t *testing.T, ctx context.Context, d *natstest.Deployment, lim accounts.Limits, stream operator.StreamSpec, durable, publisher string) (pubCreds, conCreds string) {
	t.Helper()
	if _, err := d.AddAccount(ctx, "A", lim); err != nil {
		t.Fatal(err)
	}
	if err := d.AddStream(ctx, "A", stream); err != nil {
		t.Fatal(err)
	}
	if err := d.AddConsumer(ctx, "A", operator.ConsumerSpec{
		Stream: stream.Name, Durable: durable, FilterSubjects: stream.Subjects,
		MaxDeliver: 10, AckWait: 30 * time.Second, MaxAckPending: 8192,
	}); err != nil {
		t.Fatal(err)
	}
	pubCreds, err := d.AddService(ctx, "A", accounts.ServiceSpec{Name: publisher, Publish: stream.Subjects})
	if err != nil {
		t.Fatal(err)
	}
	conCreds, err = d.AddService(ctx, "A", accounts.ServiceSpec{
		Name: durable, Subscribe: stream.Subjects,
		Consumers: []accounts.ConsumerRef{{Stream: stream.Name, Durable: durable}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pubCreds, conCreds
}

// workload publishes sealed messages through the SDK while a durable consumer handles them,
// and counts what matters for "no loss, no duplicate": which publishes were acknowledged,
// which messages reached the handler and how often, and the longest pause between two
// handler calls.
type workload struct {
	Subject string
	Total   int // messages to publish
	Size    int // payload bytes

	acked     sync.Map // message id -> struct{}
	ackedN    atomic.Int64
	pubFailed atomic.Int64

	mu          sync.Mutex
	handled     map[string]int
	calls       int
	last        time.Time
	longest     time.Duration
	longestAt   time.Time
	firstHandle time.Time
}

// Acked returns the number of acknowledged publishes so far.
func (w *workload) Acked() int { return int(w.ackedN.Load()) }

// handler records one handler call.
func (w *workload) handler(_ context.Context, m *consumers.Message) error {
	if len(m.Payload) != w.Size {
		return fmt.Errorf("payload of %d bytes, want %d", len(m.Payload), w.Size)
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.handled == nil {
		w.handled = map[string]int{}
	}
	w.handled[m.ID]++
	w.calls++
	if !w.last.IsZero() {
		if gap := now.Sub(w.last); gap > w.longest {
			w.longest, w.longestAt = gap, now
		}
	} else {
		w.firstHandle = now
	}
	w.last = now
	return nil
}

// publish sends Total messages with PublishAsync and waits for every outcome. A failed
// publish is counted and not retried: a new publish would be a new message (new id).
func (w *workload) publish(ctx context.Context, c *bus.Client) error {
	futures := make(chan bus.PubAckFuture, 8192)
	var wg sync.WaitGroup
	wg.Go(func() {
		for f := range futures {
			ack, err := f.Wait(ctx)
			if err != nil {
				w.pubFailed.Add(1)
				continue
			}
			w.acked.Store(ack.ID, struct{}{})
			w.ackedN.Add(1)
		}
	})
	payload := make([]byte, w.Size)
	if _, err := rand.Read(payload); err != nil {
		return err
	}
	var err error
	for i := 0; i < w.Total && ctx.Err() == nil; i++ {
		p := make([]byte, w.Size)
		copy(p, payload)
		binary.BigEndian.PutUint64(p, uint64(i))
		f, perr := c.PublishAsync(w.Subject, p)
		if perr != nil {
			w.pubFailed.Add(1)
			continue
		}
		futures <- f
	}
	close(futures)
	wg.Wait()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

// result is the outcome of a workload, checked by verify.
type result struct {
	attempted, acked, pubFailed   int
	handledUnique, calls          int
	duplicates, lost, unackedSeen int
	streamMsgs                    uint64
	longestPause                  time.Duration
	longestPauseAt                time.Time
	deadLetters                   map[string]int // by reason
	deadLettered                  int
	ackedDeadLettered             int // acknowledged, then dead-lettered by the consumer
}

// waitSettled waits until every acknowledged message was handled and the consumer has
// nothing pending or unacknowledged (so no redelivery is still coming), then stops the
// consumption and returns the counts.
func (w *workload) waitSettled(t *testing.T, ctx context.Context, cons jetstream.Consumer, cs *consumers.Consumption, st jetstream.Stream, dl *operator.DeadLetters, timeout time.Duration) result {
	t.Helper()
	err := poll(ctx, timeout, func(ctx context.Context) error {
		missing := 0
		w.mu.Lock()
		w.acked.Range(func(k, _ any) bool {
			if w.handled[k.(string)] == 0 {
				missing++
			}
			return true
		})
		w.mu.Unlock()
		if missing > 0 {
			return fmt.Errorf("%d acknowledged messages not handled yet", missing)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer has %d pending and %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if err != nil {
		t.Errorf("not settled after %v: %v", timeout, err)
	}
	go cs.Drain() // waits for Done; bounded below
	select {
	case <-cs.Done():
	case <-time.After(30 * time.Second):
		t.Error("consumption did not finish draining")
	}
	var r result
	r.attempted = w.Total
	r.acked = w.Acked()
	r.pubFailed = int(w.pubFailed.Load())
	w.mu.Lock()
	defer w.mu.Unlock()
	r.handledUnique = len(w.handled)
	r.calls = w.calls
	r.longestPause, r.longestPauseAt = w.longest, w.longestAt
	for id, n := range w.handled {
		if n > 1 {
			r.duplicates += n - 1
		}
		if _, ok := w.acked.Load(id); !ok {
			r.unackedSeen++
		}
	}
	w.acked.Range(func(k, _ any) bool {
		if w.handled[k.(string)] == 0 {
			r.lost++
		}
		return true
	})
	ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
	defer icancel()
	name := st.CachedInfo().Config.Name
	if info, err := st.Info(ictx); err == nil {
		r.streamMsgs = info.State.Msgs
	} else {
		t.Errorf("stream info: %v", err)
	}
	r.deadLetters = map[string]int{}
	if dl != nil {
		entries, err := dl.List(ictx, 0)
		if err != nil {
			t.Errorf("dead letters: %v", err)
		}
		for i, e := range entries {
			if e.SourceStream != name {
				continue
			}
			r.deadLetters[e.Reason]++
			r.deadLettered++
			id := e.MessageID // set only for verified envelopes; else read it, unverified
			if info, err := envelope.Inspect(e.Envelope); id == "" && err == nil {
				id = info.ID.String()
			}
			if _, ok := w.acked.Load(id); ok {
				r.ackedDeadLettered++
				if r.ackedDeadLettered <= 3 {
					t.Logf("acknowledged message %s dead-lettered: reason %s, delivered %d, error %q (entry %d)", id, e.Reason, e.Delivered, e.Error, i)
				}
			}
		}
	}
	return r
}

// check asserts zero loss, zero duplicate handler calls, that every stored message was handled
// or dead-lettered, and that no acknowledged message was dead-lettered, and logs the counts.
func (r result) check(t *testing.T, name string, elapsed time.Duration) {
	t.Helper()
	t.Logf("%s: attempted %d, acknowledged %d, publish failures %d; handled %d distinct in %d handler calls "+
		"(%d stored without an ack reached the handler); lost %d, duplicate calls %d; stream holds %d; "+
		"dead letters %v (%d of them acknowledged publishes); longest pause in delivery %v; %v (%.0f msg/s acknowledged)",
		name, r.attempted, r.acked, r.pubFailed, r.handledUnique, r.calls, r.unackedSeen, r.lost, r.duplicates,
		r.streamMsgs, r.deadLetters, r.ackedDeadLettered, r.longestPause.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(r.acked)/elapsed.Seconds())
	if r.lost != 0 {
		t.Errorf("%d acknowledged messages were never handled", r.lost)
	}
	if r.duplicates != 0 {
		t.Errorf("%d duplicate handler calls", r.duplicates)
	}
	// Nothing stored is silently dropped: every message in the stream was handled or
	// dead-lettered with a reason.
	if r.streamMsgs != uint64(r.handledUnique+r.deadLettered) {
		t.Errorf("stream holds %d messages but %d distinct were handled and %d dead-lettered", r.streamMsgs, r.handledUnique, r.deadLettered)
	}
	if r.acked == 0 {
		t.Error("nothing was acknowledged")
	}
	if r.ackedDeadLettered != 0 {
		t.Errorf("%d acknowledged messages were dead-lettered instead of handled", r.ackedDeadLettered)
	}
}

// logProgress logs the counts every interval until the returned function is called.
func (w *workload) logProgress(t *testing.T, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				w.mu.Lock()
				handled, calls := len(w.handled), w.calls
				w.mu.Unlock()
				t.Logf("%6.1fs progress: acknowledged %d, publish failures %d, handled %d (%d calls)",
					time.Since(start).Seconds(), w.Acked(), w.pubFailed.Load(), handled, calls)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
