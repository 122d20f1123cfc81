package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
)

// sealbusDriver publishes with bus.Client.PublishAsync and consumes with consumers.Consume.
type sealbusDriver struct {
	cfg  *Config
	pubs []*bus.Client
	subs []*bus.Client
}

func newSealbusDriver(ctx context.Context, e *env, cfg *Config) (_ *sealbusDriver, err error) {
	d := &sealbusDriver{cfg: cfg}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	opts := []bus.Option{bus.WithLogger(cfg.Log)}
	for range cfg.Publishers {
		c, err := e.connect(ctx, pubService, append(opts, bus.WithMaxPending(cfg.MaxPending))...)
		if err != nil {
			return nil, fmt.Errorf("bench: connecting %s: %w", pubService, err)
		}
		d.pubs = append(d.pubs, c)
	}
	if cfg.Mode != ModePub || cfg.Warmup > 0 {
		for range cfg.Consumers {
			c, err := e.connect(ctx, subService, opts...)
			if err != nil {
				return nil, fmt.Errorf("bench: connecting %s: %w", subService, err)
			}
			d.subs = append(d.subs, c)
		}
	}
	// Every card the bench published is in the publisher's directory before the first
	// publish (Connect reads the whole directory), so the audience is complete.
	if got := len(d.pubs[0].Directory().Audience(subject)); got != cfg.Recipients {
		return nil, fmt.Errorf("bench: the audience of %s has %d cards, want %d", subject, got, cfg.Recipients)
	}
	return d, nil
}

func (d *sealbusDriver) name() string   { return "sealbus" }
func (d *sealbusDriver) stream() string { return Stream }

func (d *sealbusDriver) publish(i int, payload []byte) (ack, error) {
	f, err := d.pubs[i].PublishAsync(subject, payload)
	return ack{sealbus: f}, err
}

func (d *sealbusDriver) consume(ctx context.Context, onMsg func([]byte)) (func(), error) {
	var cs []*consumers.Consumption
	stop := func() {
		for _, c := range cs {
			c.Stop()
		}
		for _, c := range cs {
			<-c.Done()
		}
	}
	for _, c := range d.subs {
		con, err := consumers.Consume(ctx, c, Stream, subService, func(_ context.Context, m *consumers.Message) error {
			onMsg(m.Payload)
			return nil
		}, consumers.WithWorkers(d.cfg.Workers), consumers.WithMaxInFlight(d.cfg.InFlight))
		if err != nil {
			stop()
			return nil, err
		}
		cs = append(cs, con)
	}
	return stop, nil
}

func (d *sealbusDriver) signed() (uint64, uint64, bool) {
	var sig, pub uint64
	for _, c := range d.pubs {
		m := c.Metrics()
		sig += m.Signatures
		pub += m.Published
	}
	return sig, pub, true
}

func (d *sealbusDriver) traffic() (out, in uint64) {
	for _, cs := range [][]*bus.Client{d.pubs, d.subs} { // no append: it could write into d.pubs' array
		for _, c := range cs {
			st := c.Connection()
			out, in = out+st.OutMsgs, in+st.InMsgs
		}
	}
	return out, in
}

func (d *sealbusDriver) close() {
	for _, c := range append(d.pubs, d.subs...) {
		c.Close()
	}
}

// rawDriver publishes with jetstream.PublishAsync and consumes with jetstream's Consume and a
// plain Ack, on admin connections of the bench account: no sealing, no signature, no
// confirmation of acks, no Nats-Msg-Id.
type rawDriver struct {
	cfg   *Config
	conns []*nats.Conn
	pubs  []jetstream.JetStream
	subs  []jetstream.JetStream
}

func newRawDriver(ctx context.Context, e *env, cfg *Config) (_ *rawDriver, err error) {
	d := &rawDriver{cfg: cfg}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	open := func() (jetstream.JetStream, error) {
		nc, err := e.prov.Admin(ctx, e.account)
		if err != nil {
			return nil, err
		}
		d.conns = append(d.conns, nc)
		// The same bound on pending publishes as the SDK's.
		return jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending), jetstream.WithPublishAsyncTimeout(bus.DefaultTimeout))
	}
	for range cfg.Publishers {
		js, err := open()
		if err != nil {
			return nil, err
		}
		d.pubs = append(d.pubs, js)
	}
	for range cfg.Consumers {
		js, err := open()
		if err != nil {
			return nil, err
		}
		d.subs = append(d.subs, js)
	}
	return d, nil
}

func (d *rawDriver) name() string   { return "raw" }
func (d *rawDriver) stream() string { return RawStream }

func (d *rawDriver) publish(i int, payload []byte) (ack, error) {
	// jetstream blocks a publish for its stall wait (200ms) when the pending window is full,
	// then refuses it; wait as the SDK does, up to its default timeout, without a per-call
	// option (which would allocate on every publish).
	deadline := time.Now().Add(bus.DefaultTimeout)
	for {
		f, err := d.pubs[i].PublishAsync(rawSubject, payload)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && time.Now().Before(deadline) {
			continue
		}
		return ack{raw: f}, err
	}
}

func (d *rawDriver) consume(ctx context.Context, onMsg func([]byte)) (func(), error) {
	var ccs []jetstream.ConsumeContext
	stop := func() {
		for _, cc := range ccs {
			cc.Drain()
		}
		for _, cc := range ccs {
			select {
			case <-cc.Closed():
			case <-time.After(10 * time.Second):
			}
		}
	}
	for _, js := range d.subs {
		cons, err := js.Consumer(ctx, RawStream, rawDurable)
		if err != nil {
			stop()
			return nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			onMsg(m.Data())
			if err := m.Ack(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				d.cfg.Log.Warn("bench: raw ack failed", "error", err)
			}
		}, jetstream.PullMaxMessages(d.cfg.InFlight))
		if err != nil {
			stop()
			return nil, err
		}
		ccs = append(ccs, cc)
	}
	return stop, nil
}

func (d *rawDriver) signed() (uint64, uint64, bool) { return 0, 0, false }

func (d *rawDriver) traffic() (out, in uint64) {
	for _, nc := range d.conns {
		st := nc.Stats()
		out, in = out+st.OutMsgs, in+st.InMsgs
	}
	return out, in
}

func (d *rawDriver) close() {
	for _, nc := range d.conns {
		nc.Close()
	}
}
