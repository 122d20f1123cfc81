// Package demo runs the sealbus demo (`make demo`, `sealbus demo`): a dev server in a temporary
// home with an operator, two accounts, their services and streams; sealed messages flowing
// between services; then an attacker whose every attempt fails with its reason, ending in the
// dead-letter stream with an audit event while valid messages keep flowing; a summary; and the
// view of the operator's monitor, which watched it all: the attacks as alerts, with counts.
//
// [Run] returns nil only if every attack failed as expected and every valid message reached
// every service allowed to read it. The package also provides the [sealbustest.World] the SDK's in-process
// tests use.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// Options configure [Run].
type Options struct {
	// Messages is how many valid orders are sent before and after the attacks (default 6).
	Messages int
	// Logger receives the SDK's and server's logs; nil discards them.
	Logger *slog.Logger
	// Timeout bounds the whole demo (default 50s).
	Timeout time.Duration
}

// ErrFailed is returned when an attack was not refused as expected or a valid message was not
// delivered.
var ErrFailed = errors.New("demo: failed")

// Run runs the demo and writes its narration to w.
func Run(ctx context.Context, w io.Writer, opts Options) error {
	if opts.Messages <= 0 {
		opts.Messages = 6
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 50 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	d := &run{out: w, opts: opts, received: map[string]map[string]bool{}}
	err := d.run(ctx)
	d.close()
	if err != nil {
		fmt.Fprintf(w, "\ndemo FAILED: %v\n", err)
		return err
	}
	fmt.Fprintf(w, "\nevery attack failed with its reason and every valid message was delivered (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

type run struct {
	out  io.Writer
	opts Options

	sb       *sealbustest.Sandbox
	world    *sealbustest.World
	clients  []*bus.Client
	consumes []*consumers.Consumption
	shopJS   jetstream.JetStream
	partJS   jetstream.JetStream
	conns    []*nats.Conn
	dlqs     map[jetstream.JetStream]*operator.DeadLetters // verifying readers, by the admin JS of their account
	audits   map[jetstream.JetStream]*operator.AuditLog
	closers  []func()
	monitor  *operator.Monitor

	forged int // forged records the attacker got stored in the audit streams

	mu       sync.Mutex
	received map[string]map[string]bool // service -> message ids handled
	sent     []sentMsg
	attacks  []attackResult
}

type sentMsg struct {
	id, subject string
	audience    []string
}

type attackResult struct {
	name, outcome string
	reason        string
	ok            bool
}

func (d *run) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *run) close() {
	for _, cs := range d.consumes {
		cs.Stop()
		<-cs.Done()
	}
	for _, c := range d.clients {
		c.Close()
	}
	for _, nc := range d.conns {
		nc.Close()
	}
	for _, c := range d.closers {
		c()
	}
	if d.sb != nil {
		d.sb.Close()
	}
}

func (d *run) run(ctx context.Context) error {
	d.printf("sealbus demo: sealed envelopes over NATS JetStream, then an attacker\n\n")
	d.printf("1. set up\n")
	var err error
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		return fmt.Errorf("demo: start sandbox: %w", err)
	}
	d.sb = sb
	if d.world, err = sealbustest.ProvisionWorld(ctx, sb, d.opts.Logger); err != nil {
		return err
	}
	d.printf("   dev server %s (TLS only, operator mode, encrypted JetStream), home %s\n", sb.URL(), sb.Home())
	d.printf("   operator %s\n", sb.OperatorKey())
	for _, name := range []string{sealbustest.Shop, sealbustest.Partner} {
		d.printf("   account %-8s %s\n", name, d.world.Accounts[name].PublicKey())
	}
	for _, s := range sealbustest.Services() {
		d.printf("   service %-9s in %-7s publish %-22s subscribe %s\n", s.Spec.Name, s.Account, strings.Join(s.Spec.Publish, ","), strings.Join(s.Spec.Subscribe, ","))
	}
	d.printf("   streams ORDERS (orders.>, tickets.>) in shop, PARTNER (partner.>) in partner\n\n")

	checkout, err := d.connect(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		return err
	}
	for _, svc := range []string{sealbustest.Billing, sealbustest.Shipping} {
		c, err := d.connect(ctx, sealbustest.Shop, svc)
		if err != nil {
			return err
		}
		if err := d.consume(ctx, c, sealbustest.OrdersStream, svc); err != nil {
			return err
		}
	}
	reader, err := d.connect(ctx, sealbustest.Partner, sealbustest.Reader)
	if err != nil {
		return err
	}
	if err := d.consume(ctx, reader, sealbustest.PartnerStream, sealbustest.Reader); err != nil {
		return err
	}
	if d.shopJS, err = d.adminJS(ctx, sealbustest.Shop); err != nil {
		return err
	}
	if d.partJS, err = d.adminJS(ctx, sealbustest.Partner); err != nil {
		return err
	}
	if err := d.openReaders(ctx); err != nil {
		return err
	}
	if err := d.startMonitor(ctx); err != nil {
		return err
	}

	d.printf("2. sealed messages flowing (checkout -> billing reads orders.>, shipping reads orders.eu.>)\n")
	if err := d.sendOrders(ctx, checkout, 0); err != nil {
		return err
	}
	if err := d.waitDelivered(ctx); err != nil {
		return err
	}
	d.printDelivered(0)

	d.printf("\n3. the attacker (full access to the broker's streams, no service keys unless stolen)\n")
	for _, a := range []func(context.Context, *bus.Client) error{
		d.attackTamper, d.attackReplay, d.attackMove, d.attackRevoked, d.attackPermissions, d.attackCrossAccount,
		d.attackForgedAudit, d.attackHijackReplay, d.attackGuessing, d.attackJunk,
	} {
		if err := a(ctx, checkout); err != nil {
			return err
		}
	}
	for _, a := range d.attacks {
		verdict := "refused"
		if !a.ok {
			verdict = "NOT REFUSED AS EXPECTED"
		}
		d.printf("   [%s] %s\n             %s\n", verdict, a.name, a.outcome)
	}

	d.printf("\n4. valid messages keep flowing after the attacks\n")
	n := len(d.sent)
	if err := d.sendOrders(ctx, checkout, d.opts.Messages); err != nil {
		return err
	}
	if err := d.waitDelivered(ctx); err != nil {
		return err
	}
	d.printDelivered(n)

	if err := d.summary(ctx); err != nil {
		return err
	}
	if err := d.monitorView(ctx); err != nil {
		return err
	}
	for _, a := range d.attacks {
		if !a.ok {
			return fmt.Errorf("%w: attack %q: %s", ErrFailed, a.name, a.outcome)
		}
	}
	return nil
}

func (d *run) connect(ctx context.Context, account, service string) (*bus.Client, error) {
	c, err := d.world.Connect(ctx, account, service)
	if err != nil {
		return nil, fmt.Errorf("demo: connect %s: %w", service, err)
	}
	d.clients = append(d.clients, c)
	return c, nil
}

func (d *run) consume(ctx context.Context, c *bus.Client, stream, durable string) error {
	name := c.Name()
	cs, err := consumers.Consume(context.WithoutCancel(ctx), c, stream, durable, func(_ context.Context, m *consumers.Message) error {
		d.mu.Lock()
		if d.received[name] == nil {
			d.received[name] = map[string]bool{}
		}
		d.received[name][m.ID] = true
		d.mu.Unlock()
		return nil
	}, consumers.WithWorkers(2))
	if err != nil {
		return fmt.Errorf("demo: consume %s: %w", durable, err)
	}
	d.consumes = append(d.consumes, cs)
	return nil
}

func (d *run) adminJS(ctx context.Context, account string) (jetstream.JetStream, error) {
	nc, err := d.world.Admin(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("demo: admin connection: %w", err)
	}
	d.conns = append(d.conns, nc)
	return jetstream.New(nc)
}

// openReaders opens the operator's verifying readers of both accounts' audit and dead-letter
// streams (they verify every record up to the trusted operator).
func (d *run) openReaders(ctx context.Context) error {
	d.dlqs, d.audits = map[jetstream.JetStream]*operator.DeadLetters{}, map[jetstream.JetStream]*operator.AuditLog{}
	p := d.world.Harness.Provisioner()
	for account, js := range map[string]jetstream.JetStream{sealbustest.Shop: d.shopJS, sealbustest.Partner: d.partJS} {
		dl, done, err := p.DeadLetters(ctx, account)
		if err != nil {
			return fmt.Errorf("demo: dead letters of %s: %w", account, err)
		}
		d.closers = append(d.closers, done)
		log, done, err := p.AuditLog(ctx, account)
		if err != nil {
			return fmt.Errorf("demo: audit log of %s: %w", account, err)
		}
		d.closers = append(d.closers, done)
		d.dlqs[js], d.audits[js] = dl, log
	}
	return nil
}

func (d *run) sendOrders(ctx context.Context, c *bus.Client, from int) error {
	for i := from; i < from+d.opts.Messages; i++ {
		region := "eu"
		if i%2 == 1 {
			region = "us"
		}
		subject := fmt.Sprintf("orders.%s.%d", region, i+1)
		ack, err := bus.PublishJSON(ctx, c, subject, map[string]any{"order": i + 1, "total": 10 * (i + 1)})
		if err != nil {
			return fmt.Errorf("demo: publish: %w", err)
		}
		var aud []string
		for _, card := range c.Directory().Audience(subject) {
			aud = append(aud, card.Name)
		}
		d.mu.Lock()
		d.sent = append(d.sent, sentMsg{id: ack.ID, subject: subject, audience: aud})
		d.mu.Unlock()
	}
	return nil
}

func (d *run) delivered(m sentMsg) bool {
	for _, svc := range m.audience {
		if !d.received[svc][m.id] {
			return false
		}
	}
	return true
}

func (d *run) waitDelivered(ctx context.Context) error {
	return poll(ctx, "every valid message to be delivered", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, m := range d.sent {
			if !d.delivered(m) {
				return false
			}
		}
		return true
	})
}

func (d *run) printDelivered(from int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.sent[from:] {
		d.printf("   checkout -> %-13s id %s…  opened by %s\n", m.subject, m.id[:12], strings.Join(m.audience, ", "))
	}
}

// poll waits for cond (checked every 20ms) until ctx ends.
func poll(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: timed out waiting for %s", ErrFailed, what)
		case <-t.C:
		}
	}
	return nil
}

// lastOrder returns a stored valid envelope on an orders.us.* subject (billing's only).
func (d *run) lastOrder(ctx context.Context) (*jetstream.RawStreamMsg, error) {
	d.mu.Lock()
	var id string
	for _, m := range d.sent {
		if strings.HasPrefix(m.subject, "orders.us.") {
			id = m.id
		}
	}
	d.mu.Unlock()
	s, err := d.shopJS.Stream(ctx, sealbustest.OrdersStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Header.Get(jetstream.MsgIDHeader) == id {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: stored order %s not found", ErrFailed, id)
}

// inject publishes raw bytes as the attacker, with a fresh Nats-Msg-Id.
func inject(ctx context.Context, js jetstream.JetStream, subject string, data []byte) (*jetstream.PubAck, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "attacker-"+hex.EncodeToString(b[:]))
	return js.PublishMsg(ctx, msg)
}

// expectRejected waits for the dead letter of the message at (stream, seq) and its audit event,
// and records the attack's outcome.
func (d *run) expectRejected(ctx context.Context, js jetstream.JetStream, name, stream string, seq uint64, want string, prefix string) error {
	dl, err := waitDeadLetter(ctx, d.dlqs[js], stream, seq)
	if err != nil {
		d.attacks = append(d.attacks, attackResult{name: name, outcome: prefix + "no dead letter", reason: want})
		return nil
	}
	audited := waitAudit(ctx, d.audits[js], stream, seq, dl.Reason) == nil
	outcome := fmt.Sprintf("%srejected: %s -> SEALBUS_DLQ #%d", prefix, dl.Reason, dl.Sequence)
	if audited {
		outcome += ", audit event"
	} else {
		outcome += ", NO audit event"
	}
	d.attacks = append(d.attacks, attackResult{name: name, outcome: outcome, reason: dl.Reason, ok: dl.Reason == want && audited})
	return nil
}

// waitDeadLetter waits for the verified dead letter of the message at (stream, seq).
func waitDeadLetter(ctx context.Context, dlq *operator.DeadLetters, stream string, seq uint64) (*operator.DeadLetterEntry, error) {
	var found *operator.DeadLetterEntry
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := poll(ctx, "a dead letter", func() bool {
		list, err := dlq.List(ctx, 0)
		if err != nil {
			return false
		}
		for i := range list {
			if list[i].Verified() && list[i].SourceStream == stream && list[i].SourceSequence == seq {
				found = &list[i]
				return true
			}
		}
		return false
	})
	return found, err
}

// waitAudit waits for the verified rejection event about the message at (stream, seq).
func waitAudit(ctx context.Context, log *operator.AuditLog, stream string, seq uint64, reason string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return poll(ctx, "an audit event", func() bool {
		recs, _, err := log.Tail(ctx, 0)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.Verified() && r.Event.Type == bus.EventRejected && r.Event.Data.Stream == stream && r.Event.Data.Sequence == seq && r.Event.Data.Reason == reason {
				return true
			}
		}
		return false
	})
}

func (d *run) attackTamper(ctx context.Context, _ *bus.Client) error {
	m, err := d.lastOrder(ctx)
	if err != nil {
		return err
	}
	info, err := envelope.Inspect(m.Data)
	if err != nil {
		return fmt.Errorf("demo: inspect: %w", err)
	}
	bad := slices.Clone(m.Data)
	// The last byte of the payload's authentication tag, just before the signature block.
	bad[info.Size-(4+4+1+32*info.PathLen+64)-1] ^= 0x01
	ack, err := inject(ctx, d.shopJS, m.Subject, bad)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	return d.expectRejected(ctx, d.shopJS, "tampered envelope (one bit of the tag flipped)", sealbustest.OrdersStream, ack.Sequence, string(envelope.ReasonBadSignature), "")
}

func (d *run) attackReplay(ctx context.Context, _ *bus.Client) error {
	m, err := d.lastOrder(ctx)
	if err != nil {
		return err
	}
	ack, err := inject(ctx, d.shopJS, m.Subject, m.Data)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	return d.expectRejected(ctx, d.shopJS, "replay under a new Nats-Msg-Id", sealbustest.OrdersStream, ack.Sequence, consumers.ReasonReplay, "")
}

func (d *run) attackMove(ctx context.Context, _ *bus.Client) error {
	m, err := d.lastOrder(ctx)
	if err != nil {
		return err
	}
	ack, err := inject(ctx, d.shopJS, "orders.us.refunds", m.Data)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	return d.expectRejected(ctx, d.shopJS, "envelope moved to another subject", sealbustest.OrdersStream, ack.Sequence, string(envelope.ReasonSubjectMismatch), "")
}

// stolenSeal seals as a service whose credentials the attacker stole.
func (d *run) stolenSeal(service, subject string, to []string) ([]byte, error) {
	creds, err := accounts.ReadCredsFile(d.world.CredsPath(sealbustest.Shop, service))
	if err != nil {
		return nil, err
	}
	id, err := envelope.NewIdentity(creds.UserSeed, creds.CurveSeed)
	clear(creds.UserSeed)
	clear(creds.CurveSeed)
	if err != nil {
		return nil, err
	}
	defer id.Wipe()
	s, err := envelope.NewSealer(id)
	if err != nil {
		return nil, err
	}
	var rs []envelope.Recipient
	for _, k := range to {
		r, err := envelope.ParseRecipient(k)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	sealed, err := s.Seal(envelope.Header{Account: d.world.Accounts[sealbustest.Shop].PublicKey(), Subject: subject}, []byte(`{"refund":1000000}`), rs)
	if err != nil {
		return nil, err
	}
	return sealed.Data, nil
}

func (d *run) billingKey(c *bus.Client) ([]string, error) {
	card, ok := c.Directory().Card(sealbustest.Billing)
	if !ok {
		return nil, fmt.Errorf("%w: billing card missing", ErrFailed)
	}
	return []string{card.CurveKey}, nil
}

func (d *run) attackRevoked(ctx context.Context, checkout *bus.Client) error {
	legacy, err := d.connect(ctx, sealbustest.Shop, sealbustest.Legacy)
	if err != nil {
		return err
	}
	if _, err := legacy.Publish(ctx, "orders.legacy.1", []byte(`{"legacy":1}`)); err != nil {
		return fmt.Errorf("demo: legacy publish before revocation: %w", err)
	}
	if err := d.world.Harness.RevokeService(ctx, sealbustest.Shop, sealbustest.Legacy); err != nil {
		return fmt.Errorf("demo: revoke: %w", err)
	}
	if err := poll(ctx, "the revocation to reach checkout's directory", func() bool {
		_, ok := checkout.Directory().Card(sealbustest.Legacy)
		return !ok
	}); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	_, perr := legacy.Publish(pctx, "orders.legacy.2", []byte(`{"legacy":2}`))
	cancel()
	prefix := "server disconnected it"
	if perr == nil {
		prefix = "PUBLISHED AFTER REVOCATION"
	}
	// Its supervisor restarts it, again and again.
	retried := 0
	for range 3 {
		nc, err := sealbustest.InsiderConn(ctx, d.sb, sealbustest.Shop, sealbustest.Legacy, nats.NoReconnect())
		if err == nil {
			nc.Close()
			perr = nil
			prefix = "CONNECTED AFTER REVOCATION"
			break
		}
		retried++
	}
	prefix += fmt.Sprintf(" and refused its %d reconnects; ", retried)
	to, err := d.billingKey(checkout)
	if err != nil {
		return err
	}
	data, err := d.stolenSeal(sealbustest.Legacy, "orders.legacy.3", to)
	if err != nil {
		return fmt.Errorf("demo: stolen key: %w", err)
	}
	ack, err := inject(ctx, d.shopJS, "orders.legacy.3", data)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	if err := d.expectRejected(ctx, d.shopJS, "message from a revoked service (stolen key)", sealbustest.OrdersStream, ack.Sequence, string(envelope.ReasonSenderRevoked), prefix); err != nil {
		return err
	}
	if perr == nil {
		d.attacks[len(d.attacks)-1].ok = false
	}
	return nil
}

func (d *run) attackPermissions(ctx context.Context, checkout *bus.Client) error {
	intern, err := d.connect(ctx, sealbustest.Shop, sealbustest.Intern)
	if err != nil {
		return err
	}
	var prefix []string
	_, sdkErr := intern.Publish(ctx, "orders.us.77", []byte(`{"refund":1}`))
	if errors.Is(sdkErr, bus.ErrForbidden) {
		prefix = append(prefix, "SDK refused before sending")
	}
	raw, err := d.world.InsiderConn(ctx, sealbustest.Shop, sealbustest.Intern)
	if err != nil {
		return fmt.Errorf("demo: intern's raw connection: %w", err)
	}
	d.conns = append(d.conns, raw)
	rawJS, err := jetstream.New(raw)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, srvErr := rawJS.Publish(pctx, "orders.us.77", []byte("raw"))
	cancel()
	if srvErr != nil {
		prefix = append(prefix, "server refused the raw publish")
	}
	to, err := d.billingKey(checkout)
	if err != nil {
		return err
	}
	data, err := d.stolenSeal(sealbustest.Intern, "orders.us.77", to)
	if err != nil {
		return fmt.Errorf("demo: seal: %w", err)
	}
	ack, err := inject(ctx, d.shopJS, "orders.us.77", data)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	if err := d.expectRejected(ctx, d.shopJS, "publishing outside its permissions (intern)", sealbustest.OrdersStream, ack.Sequence, string(envelope.ReasonSenderForbidden), strings.Join(prefix, "; ")+"; injected: "); err != nil {
		return err
	}
	if len(prefix) != 2 {
		d.attacks[len(d.attacks)-1].ok = false
	}
	return nil
}

func (d *run) attackCrossAccount(ctx context.Context, _ *bus.Client) error {
	reader := d.clients[slices.IndexFunc(d.clients, func(c *bus.Client) bool { return c.Name() == sealbustest.Reader })]
	var prefix []string
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	_, cerr := consumers.Consume(cctx, reader, sealbustest.OrdersStream, sealbustest.Billing, func(context.Context, *consumers.Message) error { return nil })
	cancel()
	if cerr != nil {
		prefix = append(prefix, "partner cannot reach shop's stream")
	}
	m, err := d.lastOrder(ctx)
	if err != nil {
		return err
	}
	ack, err := inject(ctx, d.partJS, "partner.orders.1", m.Data)
	if err != nil {
		return fmt.Errorf("demo: inject: %w", err)
	}
	if err := d.expectRejected(ctx, d.partJS, "cross-account read (shop envelope copied to partner)", sealbustest.PartnerStream, ack.Sequence, string(envelope.ReasonAccountMismatch), strings.Join(prefix, "; ")+"; copied: "); err != nil {
		return err
	}
	if len(prefix) != 1 {
		d.attacks[len(d.attacks)-1].ok = false
	}
	return nil
}

func (d *run) summary(ctx context.Context) error {
	d.printf("\n5. summary\n")
	d.mu.Lock()
	sent := len(d.sent)
	deliveries, expected := 0, 0
	for _, m := range d.sent {
		expected += len(m.audience)
		for _, svc := range m.audience {
			if d.received[svc][m.id] {
				deliveries++
			}
		}
	}
	d.mu.Unlock()
	rejected := map[string]uint64{}
	var deadLettered uint64
	for _, c := range d.clients {
		m := c.Metrics()
		for r, n := range m.Rejected {
			rejected[r] += n
		}
		for _, n := range m.DeadLettered {
			deadLettered += n
		}
	}
	var dlqStored int
	dlqCounts, auditCounts := operator.Counts{}, operator.Counts{}
	for _, js := range []jetstream.JetStream{d.shopJS, d.partJS} {
		list, err := d.dlqs[js].List(ctx, 0)
		if err != nil {
			return fmt.Errorf("demo: dead letters: %w", err)
		}
		dlqStored += len(list)
		for _, e := range list {
			dlqCounts.Add(e.Verification.State)
		}
		recs, _, err := d.audits[js].Tail(ctx, 0)
		if err != nil {
			return fmt.Errorf("demo: audit log: %w", err)
		}
		for _, r := range recs {
			auditCounts.Add(r.Verification.State)
		}
	}
	reasons := make([]string, 0, len(rejected))
	for r := range rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var parts []string
	var total uint64
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", r, rejected[r]))
		total += rejected[r]
	}
	d.printf("   sent           %d valid envelopes\n", sent)
	d.printf("   delivered      %d of %d (each message to every service allowed to read it)\n", deliveries, expected)
	d.printf("   rejected       %d (%s)\n", total, strings.Join(parts, ", "))
	d.printf("   dead-lettered  %d (%d stored in the accounts' SEALBUS_DLQ streams: %s)\n", deadLettered, dlqStored, countsText(dlqCounts))
	d.printf("   audit log      %s\n", countsText(auditCounts))
	if auditCounts.Unverified() != d.forged {
		return fmt.Errorf("%w: %d unverified audit records, the attacker forged %d", ErrFailed, auditCounts.Unverified(), d.forged)
	}
	if auditCounts.Verified() == 0 {
		return fmt.Errorf("%w: no verified audit record", ErrFailed)
	}
	if deliveries != expected {
		return fmt.Errorf("%w: %d of %d deliveries", ErrFailed, deliveries, expected)
	}
	return nil
}
