package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"

	"github.com/sealbus/sealbus/bus"
)

// driver is one side of the bench: sealbus's SDK or raw nats.go.
type driver interface {
	name() string
	stream() string
	// publish publishes payload with publisher i and returns its pending ack.
	publish(i int, payload []byte) (ack, error)
	// consume starts every consuming client; each message's payload is passed to onMsg in
	// the handler. stop ends the consumption and waits until its acks are settled.
	consume(ctx context.Context, onMsg func([]byte)) (stop func(), err error)
	// signed returns the signatures made and messages published so far (sealbus only).
	signed() (signatures, published uint64, ok bool)
	// traffic returns the NATS messages every client of the side has sent and received.
	traffic() (out, in uint64)
	close()
}

// ack is one publish's pending ack, of either side (a struct, not an interface, so that
// handing it to the waiter allocates nothing on either side).
type ack struct {
	sealbus bus.PubAckFuture
	raw     jetstream.PubAckFuture
}

func (a ack) wait(ctx context.Context) error {
	if a.sealbus != nil {
		_, err := a.sealbus.Wait(ctx)
		return err
	}
	select {
	case <-a.raw.Ok():
		return nil
	case err := <-a.raw.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run provisions the bench on its server, runs cfg.Runs measured runs of each side (sealbus,
// then raw with cfg.Raw) after a warm-up, and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	rep := &Report{
		Schema: Schema, Mode: cfg.Mode, Measures: measures(cfg.Mode), Notes: []string{},
		Config: ReportConfig{
			Size: cfg.Size, Msgs: cfg.Msgs, Publishers: cfg.Publishers, Consumers: cfg.Consumers, Workers: cfg.Workers,
			InFlight: cfg.InFlight, MaxPending: cfg.MaxPending, Recipients: cfg.Recipients, Cards: max(cfg.Cards, cfg.minCards()), Runs: cfg.Runs, Warmup: cfg.Warmup, Raw: cfg.Raw,
		},
	}
	if cfg.Mode == ModeLatency {
		rep.Config.Rate = cfg.Rate
	}
	if cfg.Raw {
		fmt.Fprintf(cfg.Notices, "sealbus: --raw: also publishing UNSEALED payloads with raw nats.go (an admin connection of the bench account) on %s, stream %s, for comparison; nothing of it is signed or encrypted\n", rawSubject, RawStream)
	} else {
		fmt.Fprintln(cfg.Notices, "sealbus: measuring sealbus only; raw nats.go is not run (add --raw for raw JetStream on the same server and the ratio)")
	}
	rep.Layout.LoadBefore = loadAverage()
	e, err := startEnv(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer e.close()
	rep.Layout = Layout{
		Server: e.layout.Server, ServerPID: e.layout.ServerPID, ServerCPUs: e.layout.ServerCPUs, ClientCPUs: e.layout.ClientCPUs,
		URL: e.url, NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), LoadBefore: rep.Layout.LoadBefore,
		Stream: e.layout.Stream, RawStream: e.layout.RawStream, StreamStore: e.layout.StreamStore,
	}
	switch {
	case e.layout.Server == "in-process":
		rep.Notes = append(rep.Notes, "the server runs inside the bench process: client CPU, allocations and write syscalls include the server's")
	case e.layout.Server == "remote":
		rep.Notes = append(rep.Notes, "the server is not a process of this bench: its CPU time is not measured")
	}
	if cfg.Workers > 1 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("sealbus consumers run %d handler workers each; raw nats.go Consume calls its handler on one goroutine", cfg.Workers))
	}

	sides := []driver{}
	sb, err := newSealbusDriver(ctx, e, &cfg)
	if err != nil {
		return nil, err
	}
	defer sb.close()
	sides = append(sides, sb)
	if cfg.Raw {
		raw, err := newRawDriver(ctx, e, &cfg)
		if err != nil {
			return nil, err
		}
		defer raw.close()
		sides = append(sides, raw)
	}

	r := &runner{cfg: &cfg, env: e, t0: time.Now()}
	if cfg.Warmup > 0 {
		for _, d := range sides {
			if _, err := r.phase(ctx, d, ModePubSub, cfg.Warmup, "warm-up "+d.name()); err != nil {
				return nil, fmt.Errorf("bench: warm-up of %s: %w", d.name(), err)
			}
		}
	}
	var sealed, raws []Figures
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	for i := 1; i <= cfg.Runs; i++ {
		run := RunFigures{}
		for _, d := range sides {
			f, err := r.phase(ctx, d, cfg.Mode, cfg.Msgs, fmt.Sprintf("%s run %d/%d", d.name(), i, cfg.Runs))
			if err != nil {
				return nil, fmt.Errorf("bench: %s run %d: %w", d.name(), i, err)
			}
			if d == driver(sb) {
				run.Sealbus, sealed = f, append(sealed, f)
			} else {
				run.Raw, raws = &f, append(raws, f)
			}
		}
		rep.Runs = append(rep.Runs, run)
	}
	if cfg.MemProfile != nil {
		if err := pprof.Lookup("allocs").WriteTo(cfg.MemProfile, 0); err != nil {
			return nil, fmt.Errorf("bench: memory profile: %w", err)
		}
	}
	rep.Sealbus = median(sealed)
	if cfg.Raw {
		m := median(raws)
		rep.Raw = &m
		rep.Ratio = &Ratio{MsgsPerSec: rep.Sealbus.MsgsPerSec / m.MsgsPerSec}
		paired := make([]Figures, len(sealed))
		for i := range sealed {
			v := sealed[i].MsgsPerSec / raws[i].MsgsPerSec
			rep.Ratio.RunMsgsPerSec = append(rep.Ratio.RunMsgsPerSec, v)
			paired[i].MsgsPerSec = v
		}
		rep.Ratio.PairedMsgsPerSec = median(paired).MsgsPerSec
		if s, x := rep.Sealbus.Latency, m.Latency; s != nil && x != nil {
			p50, p99 := s.P50-x.P50, s.P99-x.P99
			rep.Ratio.AddedP50, rep.Ratio.AddedP99 = &p50, &p99
		}
	}
	rep.Layout.LoadAfter = loadAverage()
	return rep, nil
}

type runner struct {
	cfg *Config
	env *env
	t0  time.Time // payloads carry their send time as nanoseconds since t0
}

// stamp writes the send time and the message index into a new payload.
func (r *runner) payload(idx int) []byte {
	p := make([]byte, r.cfg.Size)
	binary.LittleEndian.PutUint64(p, uint64(time.Since(r.t0)))
	if len(p) >= 16 {
		binary.LittleEndian.PutUint64(p[8:], uint64(idx))
	}
	return p
}

// phase runs n messages through d in mode and measures them.
func (r *runner) phase(ctx context.Context, d driver, mode Mode, n int, label string) (Figures, error) {
	cfg := r.cfg
	if err := r.env.purge(ctx, d.stream()); err != nil {
		return Figures{}, err
	}
	runtime.GC()
	var handled atomic.Int64
	seen := newBitset(n)
	var dups atomic.Int64
	done := make(chan struct{})
	hist := newHistogram()
	timeE2E := mode == ModePubSub || mode == ModeLatency
	onMsg := func(p []byte) {
		if timeE2E {
			hist.record(time.Since(r.t0) - time.Duration(binary.LittleEndian.Uint64(p)))
		}
		if len(p) >= 16 && !seen.set(int(binary.LittleEndian.Uint64(p[8:]))) {
			dups.Add(1)
			return
		}
		if handled.Add(1) == int64(n) {
			close(done)
		}
	}
	var acked atomic.Int64
	bar := r.progress(label, n, func() int64 {
		if mode == ModePub {
			return acked.Load()
		}
		return handled.Load()
	})
	defer bar.stop()

	publishAll := func(recordAcks bool) error {
		return r.publish(ctx, d, mode, n, func(sent time.Duration) {
			acked.Add(1)
			if recordAcks {
				hist.record(time.Since(r.t0) - sent)
			}
		})
	}
	var stop func()
	var err error
	if mode == ModeSub {
		if err := publishAll(false); err != nil {
			return Figures{}, err
		}
	} else if mode != ModePub {
		if stop, err = d.consume(ctx, onMsg); err != nil {
			return Figures{}, err
		}
	}
	sig0, pub0, signs := d.signed()
	out0, in0 := d.traffic()
	a := takeSample(r.env.layout.ServerPID)
	if mode == ModeSub {
		if stop, err = d.consume(ctx, onMsg); err != nil {
			return Figures{}, err
		}
	}
	if mode != ModeSub {
		if err := publishAll(mode == ModePub); err != nil {
			if stop != nil {
				stop()
			}
			return Figures{}, err
		}
	}
	if mode != ModePub {
		limit := 2*time.Minute + time.Duration(n)*time.Millisecond
		select {
		case <-done:
		case <-time.After(limit):
			stop()
			return Figures{}, fmt.Errorf("%d of %d messages handled within %v", handled.Load(), n, limit)
		case <-ctx.Done():
			stop()
			return Figures{}, ctx.Err()
		}
	}
	b := takeSample(r.env.layout.ServerPID)
	out1, in1 := d.traffic()
	if stop != nil {
		stop()
	}
	f := figures(n, cfg.Size, a, b)
	sent, received := float64(out1-out0)/float64(n), float64(in1-in0)/float64(n)
	f.MsgsOutPerMsg, f.MsgsInPerMsg = &sent, &received
	if mode != ModeSub {
		f.Latency = hist.latency(latencyOf(mode))
	}
	if sig1, pub1, ok := d.signed(); ok && signs {
		if mode == ModeSub {
			// Signatures were made while filling the stream, before the phase.
			sig1, pub1 = sig0, pub0
			sig0, pub0 = 0, 0
		}
		if pub1 > pub0 {
			v := float64(sig1-sig0) / float64(pub1-pub0)
			f.SignaturesPerMsg = &v
		}
	}
	f.StoredBytesPerMsg = r.env.storedPerMsg(ctx, d.stream())
	if dups.Load() > 0 {
		return f, fmt.Errorf("%d duplicate handler calls", dups.Load())
	}
	return f, nil
}

// publish publishes n messages over the publishers (paced at cfg.Rate in latency mode) and
// waits for every ack; onAck is called with each message's send time as its ack arrives.
func (r *runner) publish(ctx context.Context, d driver, mode Mode, n int, onAck func(sent time.Duration)) error {
	cfg := r.cfg
	var wg sync.WaitGroup
	errs := make(chan error, 2*cfg.Publishers)
	per, extra := n/cfg.Publishers, n%cfg.Publishers
	next := 0
	for i := range cfg.Publishers {
		count := per
		if i < extra {
			count++
		}
		first := next
		next += count
		type pend struct {
			a    ack
			sent time.Duration
		}
		acks := make(chan pend, 8192)
		wg.Go(func() {
			defer close(acks)
			interval := time.Second / time.Duration(cfg.Rate)
			start := time.Now()
			for k := range count {
				if mode == ModeLatency {
					if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
						time.Sleep(wait)
					}
				}
				p := r.payload(first + k)
				sent := time.Duration(binary.LittleEndian.Uint64(p))
				a, err := d.publish(i, p)
				if err != nil {
					errs <- fmt.Errorf("publish %d: %w", first+k, err)
					return
				}
				acks <- pend{a, sent}
			}
		})
		wg.Go(func() {
			// One deadline for all of this publisher's acks (not a timer per message, which
			// would count in the figures).
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(count)*time.Millisecond)
			defer cancel()
			failed := false
			for p := range acks {
				if failed {
					continue
				}
				if err := p.a.wait(wctx); err != nil {
					errs <- fmt.Errorf("ack: %w", err)
					failed = true
					continue
				}
				onAck(p.sent)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// bitset records which message indexes were handled.
type bitset []atomic.Uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

// set marks i and reports whether it was unset (an index out of range counts as new).
func (b bitset) set(i int) bool {
	if i < 0 || i/64 >= len(b) {
		return true
	}
	w, bit := &b[i/64], uint64(1)<<(i%64)
	for {
		old := w.Load()
		if old&bit != 0 {
			return false
		}
		if w.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// bar shows a phase's progress on cfg.Progress, updated from a counter ten times a second
// (never from the message path).
type bar struct {
	count func() int64
	quit  chan struct{}
	done  chan struct{}
}

func (r *runner) progress(label string, n int, count func() int64) *bar {
	b := &bar{count: count, quit: make(chan struct{}), done: make(chan struct{})}
	if r.cfg.Progress == nil {
		close(b.done)
		return b
	}
	pb := progressbar.NewOptions64(int64(n),
		progressbar.OptionSetWriter(r.cfg.Progress),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msgs"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	go func() {
		defer close(b.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = pb.Set64(b.count())
			case <-b.quit:
				_ = pb.Finish()
				_ = pb.Clear()
				return
			}
		}
	}()
	return b
}

func (b *bar) stop() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.done
}
