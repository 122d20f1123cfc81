package integration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
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
	ackedDeadLettered             int             // acknowledged, then dead-lettered by the consumer
	processes                     []processCounts // per consumer process, for a fleet
}

// waitSettled waits until every acknowledged message was handled and the consumer has
// nothing pending or unacknowledged (so no redelivery is still coming), then stops the
// consumption and returns the counts.
func (w *workload) waitSettled(t *testing.T, ctx context.Context, cons jetstream.Consumer, cs *consumers.Consumption, st jetstream.Stream, dl *operator.DeadLetters, timeout time.Duration) result {
	t.Helper()
	w.waitDurable(t, ctx, cons, timeout, true)
	go cs.Drain() // waits for Done; bounded below
	select {
	case <-cs.Done():
	case <-time.After(30 * time.Second):
		t.Error("consumption did not finish draining")
	}
	return w.result(t, ctx, st, dl)
}

// waitSettledFleet is waitSettled for handlers in other processes: it waits until the durable
// has nothing pending or unacknowledged, stops the fleet, and counts the handler calls every
// process printed.
func (w *workload) waitSettledFleet(t *testing.T, ctx context.Context, cons jetstream.Consumer, f *fleet, st jetstream.Stream, dl *operator.DeadLetters, timeout time.Duration) result {
	t.Helper()
	w.waitDurable(t, ctx, cons, timeout, false)
	calls, procs := f.stop(t, ctx)
	w.mu.Lock()
	w.handled = map[string]int{}
	w.calls = 0
	for id, n := range calls {
		w.handled[id] = n
		w.calls += n
	}
	w.mu.Unlock()
	r := w.result(t, ctx, st, dl)
	r.processes = procs
	return r
}

// waitDurable waits until the durable has nothing pending or unacknowledged and, with
// inProcess, every acknowledged message reached this process's handler.
func (w *workload) waitDurable(t *testing.T, ctx context.Context, cons jetstream.Consumer, timeout time.Duration, inProcess bool) {
	t.Helper()
	err := poll(ctx, timeout, func(ctx context.Context) error {
		missing := 0
		w.mu.Lock()
		w.acked.Range(func(k, _ any) bool {
			if inProcess && w.handled[k.(string)] == 0 {
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
}

// result counts what the workload's handlers did against what was acknowledged, stored and
// dead-lettered.
func (w *workload) result(t *testing.T, ctx context.Context, st jetstream.Stream, dl *operator.DeadLetters) result {
	t.Helper()
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
		"dead letters %v (%d of them acknowledged publishes); %s; %v (%.0f msg/s acknowledged)",
		name, r.attempted, r.acked, r.pubFailed, r.handledUnique, r.calls, r.unackedSeen, r.lost, r.duplicates,
		r.streamMsgs, r.deadLetters, r.ackedDeadLettered, r.pause(), elapsed.Round(time.Millisecond), float64(r.acked)/elapsed.Seconds())
	for i, p := range r.processes {
		t.Logf("%s: consumer process %d: %d handler calls; its own counts: %s", name, i+1, p.calls, p.summary)
	}
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

// pause describes the longest pause in delivery, measured only for handlers in this process.
func (r result) pause() string {
	if len(r.processes) > 0 {
		return fmt.Sprintf("handled by %d consumer processes", len(r.processes))
	}
	return fmt.Sprintf("longest pause in delivery %v", r.longestPause.Round(time.Millisecond))
}

// logProgress logs the counts every interval until the returned function is called; with a
// durable (cons, for handlers in other processes), its pending and unacknowledged counts too.
func (w *workload) logProgress(t *testing.T, interval time.Duration, cons ...jetstream.Consumer) (stop func()) {
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
				durable := ""
				for _, c := range cons {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					if info, err := c.Info(ctx); err == nil {
						durable = fmt.Sprintf(", durable: %d pending, %d unacknowledged, ack floor %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
					}
					cancel()
				}
				t.Logf("%6.1fs progress: acknowledged %d, publish failures %d, handled here %d (%d calls)%s",
					time.Since(start).Seconds(), w.Acked(), w.pubFailed.Load(), handled, calls, durable)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// fleet is a set of consumer processes on one durable, each the example consumer
// (examples/consumer) in its own container: they share nothing but the bus.
type fleet struct {
	ctrs []*natstest.ServiceContainer
}

// processCounts is what one process of a fleet did.
type processCounts struct {
	calls   int    // handler calls (lines "verified <id> ...")
	summary string // its final counts line
}

// startFleet starts n consumer containers with the durable's service creds, each connected to
// urls (Docker network addresses), handling with workers concurrent calls.
func startFleet(t *testing.T, ctx context.Context, d *natstest.Deployment, creds string, n int, urls []string, stream, durable string, workers, inFlight int) *fleet {
	t.Helper()
	f := &fleet{}
	for range n {
		c, err := natstest.RunService(t, ctx, d, natstest.ServiceSpec{
			Example: "consumer", Creds: creds,
			Env: map[string]string{
				"SEALBUS_URL": strings.Join(urls, ","), "SEALBUS_STREAM": stream, "SEALBUS_DURABLE": durable,
				"SEALBUS_WORKERS": strconv.Itoa(workers), "SEALBUS_MAX_IN_FLIGHT": strconv.Itoa(inFlight),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.ctrs = append(f.ctrs, c)
	}
	return f
}

var (
	verifiedLine = regexp.MustCompile(`(?m)^verified ([0-9a-f]{32}) from `)
	summaryLine  = regexp.MustCompile(`(?m)^consumer: handled .*$`)
)

// stop stops every process (SIGTERM: each drains, confirms its acks and prints its counts)
// and returns the handler calls by message id across all of them, and each one's counts.
func (f *fleet) stop(t *testing.T, ctx context.Context) (map[string]int, []processCounts) {
	t.Helper()
	calls := map[string]int{}
	var procs []processCounts
	for i, c := range f.ctrs {
		if err := c.Stop(ctx, 60*time.Second); err != nil {
			t.Errorf("stopping consumer process %d: %v", i+1, err)
		}
		logs, err := c.Logs(ctx)
		if err != nil {
			t.Errorf("logs of consumer process %d: %v", i+1, err)
		}
		p := processCounts{summary: summaryLine.FindString(logs)}
		for _, m := range verifiedLine.FindAllStringSubmatch(logs, -1) {
			calls[m[1]]++
			p.calls++
		}
		if p.summary == "" {
			t.Errorf("consumer process %d printed no counts; last lines:\n%s", i+1, lastLogLines(logs, 20))
		}
		procs = append(procs, p)
	}
	return calls, procs
}

// lastLogLines returns the last n lines of s.
func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
