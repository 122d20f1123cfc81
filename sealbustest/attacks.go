package sealbustest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
)

// The insider attacks of the security review, as checks any harness can run (the embedded
// sandbox and the container deployments of the integration module run the same ones). Each
// plays one finding as a hostile service ([Insider]) while honest services work, returns what
// it measured, and an error when a defence did not hold (or the set-up failed). Deadlines are
// generous bounds, not performance figures: what was measured is in the report.

// StartDeadline bounds how long a fresh client may take to start (connect, verify, publish,
// consume) during an attack before the check fails. The target, measured and recorded in
// docs/PERFORMANCE.md, is well below it.
const StartDeadline = 10 * time.Second

// FreshStart times one fresh start of the world's order flow: a new checkout client connects
// (TLS, creds, the whole directory read and verified), publishes one envelope on
// orders.<tag>, and a new billing client connects and consumes it from its durable. It returns
// the time from the first Connect to the handled message.
func FreshStart(ctx context.Context, w *World, tag string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, StartDeadline)
	defer cancel()
	start := time.Now()
	pub, err := w.Connect(ctx, Shop, Checkout)
	if err != nil {
		return 0, fmt.Errorf("sealbustest: fresh checkout: %w", err)
	}
	defer pub.Close()
	ack, err := pub.Publish(ctx, "orders.eu."+tag, []byte("fresh start "+tag))
	if err != nil {
		return 0, fmt.Errorf("sealbustest: fresh publish: %w", err)
	}
	sub, err := w.Connect(ctx, Shop, Billing)
	if err != nil {
		return 0, fmt.Errorf("sealbustest: fresh billing: %w", err)
	}
	defer sub.Close()
	got := make(chan struct{})
	var once sync.Once
	cs, err := consumers.Consume(ctx, sub, OrdersStream, Billing, func(_ context.Context, m *consumers.Message) error {
		if m.ID == ack.ID {
			once.Do(func() { close(got) })
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sealbustest: fresh consume: %w", err)
	}
	defer func() { cs.Stop(); <-cs.Done() }()
	select {
	case <-got:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("sealbustest: fresh start: envelope %s not consumed within %v", ack.ID, StartDeadline)
	}
}

// DirectoryAttack is what [AttackDirectory] measured.
type DirectoryAttack struct {
	ConsumersCreated int             // consumers the insider got created on the directory (0: finding 1 defended)
	FloodRequests    int             // requests and publishes it aimed at directory subjects (finding 2)
	ViewMessages     [2]uint64       // messages in the account's directory view before and after
	Starts           []time.Duration // fresh starts ([FreshStart]) during the attack
	Revocation       time.Duration   // from a revocation's push to a running client refusing the key, during the attack
}

func (r DirectoryAttack) String() string {
	return fmt.Sprintf("consumers created %d, flood requests %d, view messages %d -> %d, fresh starts %v (max %v), revocation seen after %v",
		r.ConsumersCreated, r.FloodRequests, r.ViewMessages[0], r.ViewMessages[1], r.Starts, slices.Max(append([]time.Duration{0}, r.Starts...)), r.Revocation)
}

// AttackDirectory plays findings 1 and 2 on the world: service insider of account Shop
// (Shipping is a good one: it holds a durable, whose pulls it can aim anywhere) creates
// consumers on the directory in every form the JetStream API has, and floods directory
// subjects through the reply-subject trick, in a loop, while starts fresh starts run
// ([FreshStart]) and the world's Legacy service is revoked. It fails when a consumer was
// created, when the view took anything but the operator's writes, when a fresh start failed or
// took longer than [StartDeadline], or when a running client did not refuse the revoked key
// within 5 s.
func AttackDirectory(ctx context.Context, w *World, insider string, starts int) (DirectoryAttack, error) {
	var r DirectoryAttack
	in, err := NewInsider(ctx, w.Harness, Shop, insider)
	if err != nil {
		return r, err
	}
	defer in.Close()
	admin, err := w.Admin(ctx, Shop)
	if err != nil {
		return r, err
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	view, err := js.Stream(ctx, accounts.DirectoryView)
	if err != nil {
		return r, fmt.Errorf("sealbustest: directory view: %w", err)
	}
	r.ViewMessages[0] = view.CachedInfo().State.Msgs
	consumersBefore, err := consumerCounts(ctx, js)
	if err != nil {
		return r, err
	}
	svc, err := w.Harness.Provisioner().Keystore.LoadService(Shop, insider)
	if err != nil {
		return r, err
	}
	legacy, err := w.Harness.Provisioner().Keystore.LoadService(Shop, Legacy)
	if err != nil {
		return r, err
	}
	watcher, err := w.Connect(ctx, Shop, Support)
	if err != nil {
		return r, err
	}
	defer watcher.Close()
	if _, ok := watcher.Directory().CardByKey(legacy.UserPublicKey()); !ok {
		return r, errors.New("sealbustest: legacy's card not in use before the attack")
	}

	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var attackErr error
	wg.Go(func() {
		for actx.Err() == nil {
			n, err := in.CreateDirectoryConsumers(actx, 16)
			mu.Lock()
			r.ConsumersCreated += n
			if err != nil && actx.Err() == nil && attackErr == nil {
				attackErr = err
			}
			mu.Unlock()
		}
	})
	wg.Go(func() {
		keys := []string{accounts.DirectoryAccountKey, accounts.DirectoryIndexKey, accounts.DirectoryCardKey(Checkout, svc.UserPublicKey())}
		for actx.Err() == nil {
			n, err := in.FloodDirectory(actx, 70, keys...)
			for _, c := range svc.Spec.Consumers {
				// Its durable's messages, pulled with a directory subject as the reply.
				for _, k := range keys {
					_ = in.Conn.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+c.Stream+"."+c.Durable, accounts.DirectorySubject(in.Account, k), []byte(`{"batch":16,"no_wait":true}`))
					n++
				}
			}
			mu.Lock()
			r.FloodRequests += n
			if err != nil && actx.Err() == nil && attackErr == nil {
				attackErr = err
			}
			mu.Unlock()
		}
	})
	fail := func(err error) (DirectoryAttack, error) {
		stop()
		wg.Wait()
		return r, err
	}
	time.Sleep(200 * time.Millisecond) // the attack is under way
	for i := range starts {
		d, err := FreshStart(ctx, w, fmt.Sprintf("attack%d", i))
		if err != nil {
			return fail(fmt.Errorf("sealbustest: fresh start %d under attack: %w", i, err))
		}
		r.Starts = append(r.Starts, d)
	}
	revoked := time.Now()
	if err := w.Harness.RevokeService(ctx, Shop, Legacy); err != nil {
		return fail(err)
	}
	for {
		if _, ok := watcher.Directory().CardByKey(legacy.UserPublicKey()); !ok {
			r.Revocation = time.Since(revoked)
			break
		}
		if time.Since(revoked) > 5*time.Second {
			return fail(errors.New("sealbustest: the revocation did not reach a running client within 5s during the attack"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if attackErr != nil {
		return r, fmt.Errorf("sealbustest: the attack itself failed: %w", attackErr)
	}
	if r.ConsumersCreated > 0 {
		return r, fmt.Errorf("sealbustest: the insider created %d consumers on the directory", r.ConsumersCreated)
	}
	consumersAfter, err := consumerCounts(ctx, js)
	if err != nil {
		return r, err
	}
	for name, n := range consumersAfter {
		if n > consumersBefore[name] {
			return r, fmt.Errorf("sealbustest: stream %s has %d consumers after the attack, %d before", name, n, consumersBefore[name])
		}
	}
	// Everything in the view is the operator's: the revocation's account JWT, index and
	// version are the only new messages, and every value under a key is a signed token or
	// the index/version the operator wrote.
	vi, err := view.Info(ctx)
	if err != nil {
		return r, err
	}
	r.ViewMessages[1] = vi.State.Msgs
	if err := viewHoldsOnlyOperatorWrites(ctx, admin, in.Account); err != nil {
		return r, err
	}
	return r, nil
}

// consumerCounts returns the number of consumers of every stream of the account.
func consumerCounts(ctx context.Context, js jetstream.JetStream) (map[string]int, error) {
	out := map[string]int{}
	l := js.ListStreams(ctx)
	for si := range l.Info() {
		out[si.Config.Name] = si.State.Consumers
	}
	return out, l.Err()
}

// viewHoldsOnlyOperatorWrites reads every key of the account's directory view that the index
// lists, plus the subjects an attacker aims at, and checks each value is a token (JWT), the
// index or the version.
func viewHoldsOnlyOperatorWrites(ctx context.Context, nc *nats.Conn, account string) error {
	get := func(key string) (*nats.Msg, error) {
		m, err := nc.RequestWithContext(ctx, accounts.DirectoryGetSubject(account, key), nil)
		if err != nil {
			return nil, err
		}
		if m.Header.Get("Status") == "404" {
			return nil, nil
		}
		return m, nil
	}
	idx, err := get(accounts.DirectoryIndexKey)
	if err != nil || idx == nil {
		return fmt.Errorf("sealbustest: directory index: %v", err)
	}
	if !strings.HasPrefix(string(idx.Data), `{"keys":`) {
		return fmt.Errorf("sealbustest: the directory index holds %q", idx.Data)
	}
	var keys map[string]uint64
	if err := jsonUnmarshalKeys(idx.Data, &keys); err != nil {
		return err
	}
	for k := range keys {
		m, err := get(k)
		if err != nil {
			return err
		}
		if m != nil && m.Header.Get("KV-Operation") == "" && !strings.HasPrefix(string(m.Data), "eyJ") {
			return fmt.Errorf("sealbustest: directory key %s holds %q, not a token", k, m.Data)
		}
	}
	return nil
}

// ConnectionAttack is what [AttackConnections] measured.
type ConnectionAttack struct {
	AccountLimit   int             // the account's connection limit
	Quota          int             // the insider's connection quota (its user JWT)
	Opened         int             // connections the insider opened one after the other
	StillOpen      int             // of those, open once the guard acted
	Reopened       int             // connections the server accepted while the insider kept reopening
	Subscriptions  int             // subscriptions the server accepted on one connection
	SubsAsked      int             // subscriptions asked for
	HonestConnects []time.Duration // honest clients' connects (SDK, directory loaded) during the attack
	Kicked         uint64          // connections the guard closed
}

func (r ConnectionAttack) String() string {
	return fmt.Sprintf("account limit %d, quota %d: opened %d, still open %d; kept reopening: %d accepted; subscriptions %d of %d; honest connects %v; guard closed %d",
		r.AccountLimit, r.Quota, r.Opened, r.StillOpen, r.Reopened, r.Subscriptions, r.SubsAsked, r.HonestConnects, r.Kicked)
}

// Names of the account and services AttackConnections and AttackStream provision.
const (
	CrowdAccount  = "crowd"
	Hog           = "hog"
	Neighbour     = "neighbour"
	LedgerAccount = "ledger"
	LedgerStream  = "LEDGER"
	Writer        = "writer"
	LedgerReader  = "reader"
	Flooder       = "flooder"
)

// AttackConnections plays finding 4 on h: it provisions account [CrowdAccount] with a limit of
// limit connections and services [Hog] (the insider, with connection quota quota) and
// [Neighbour], then the hog opens limit connections one after the other, keeps workers
// goroutines reopening connections as fast as the server accepts them, and opens 2×128
// subscriptions on one connection; meanwhile the neighbour connects with the SDK, honest
// times. guard is the deployment's connection guard (its counters go in the report). It fails
// when the hog holds more than its quota once the guard acted, when a neighbour's connect
// failed or took longer than [StartDeadline], or when a connection got more subscriptions
// than its user JWT allows.
func AttackConnections(ctx context.Context, h Harness, guard *operator.ConnectionGuard, limit, quota, workers, honest int) (ConnectionAttack, error) {
	r := ConnectionAttack{AccountLimit: limit, Quota: quota}
	lim := accounts.DefaultLimits()
	lim.Connections = int64(limit)
	if _, err := h.AddAccount(ctx, CrowdAccount, lim); err != nil {
		return r, err
	}
	if _, err := h.AddService(ctx, CrowdAccount, accounts.ServiceSpec{Name: Hog, Publish: []string{"hog.>"},
		Limits: accounts.ServiceLimits{Connections: int64(quota)}}); err != nil {
		return r, err
	}
	if _, err := h.AddService(ctx, CrowdAccount, accounts.ServiceSpec{Name: Neighbour, Publish: []string{"neighbour.>"}}); err != nil {
		return r, err
	}
	in, err := NewInsider(ctx, h, CrowdAccount, Hog)
	if err != nil {
		return r, err
	}
	defer in.Close()
	// One after the other: the account's limit is never reached, because the guard closes
	// what is beyond the quota as each connection arrives.
	// Refusals are expected: the guard may close a connection before nats.go has finished
	// opening it.
	r.Opened, _ = in.OpenConnections(ctx, limit)
	deadline := time.Now().Add(5 * time.Second)
	for r.StillOpen = in.Connected(); r.StillOpen+1 > quota && time.Now().Before(deadline); r.StillOpen = in.Connected() {
		time.Sleep(20 * time.Millisecond)
	}
	// +1: the insider's own control connection counts against its quota too.
	if r.StillOpen+1 > quota {
		return r, fmt.Errorf("sealbustest: the insider still holds %d connections (quota %d) after 5s", r.StillOpen+1, quota)
	}
	connect := func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, StartDeadline)
		defer cancel()
		start := time.Now()
		c, err := Connect(cctx, h, CrowdAccount, Neighbour)
		if err != nil {
			return fmt.Errorf("sealbustest: neighbour connect %d during the attack: %w", i, err)
		}
		r.HonestConnects = append(r.HonestConnects, time.Since(start))
		c.Close()
		return nil
	}
	if err := connect(0); err != nil {
		return r, err
	}
	// The insider keeps reopening connections as fast as it can.
	actx, stop := context.WithCancel(ctx)
	held := make(chan int, 1)
	go func() { held <- in.HoldConnections(actx, workers) }()
	time.Sleep(200 * time.Millisecond)
	for i := 1; i < honest; i++ {
		if err := connect(i); err != nil {
			stop()
			<-held
			return r, err
		}
	}
	stop()
	r.Reopened = <-held
	r.SubsAsked = 2 * int(accounts.DefaultServiceLimits().Subscriptions)
	if r.Subscriptions, err = in.Subscribe(ctx, r.SubsAsked); err != nil {
		return r, err
	}
	if r.Subscriptions > int(accounts.DefaultServiceLimits().Subscriptions) {
		return r, fmt.Errorf("sealbustest: one connection holds %d subscriptions, the service's limit is %d", r.Subscriptions, accounts.DefaultServiceLimits().Subscriptions)
	}
	if guard != nil {
		r.Kicked = guard.Stats().Kicked
	}
	return r, nil
}

// StreamAttack is what [AttackStream] measured.
type StreamAttack struct {
	Kept          int   // of the writer's acknowledged, unconsumed envelopes, those the reader handled
	FloodSent     int   // messages the flooder tried
	FloodAcked    int   // of those, stored before the stream refused
	FloodRefusal  error // what the flooder got
	WriterRefusal error // what the writer got on the full stream (bus.ErrStreamFull)
	Audited       bool  // the writer's refused publish is in the account's audit stream
	CapAcked      int   // with a per-subject cap: flood messages stored before the cap
	CapRefusal    error // and what the flooder got
	WriterAfter   bool  // the writer still published on its own subject after the capped flood
}

func (r StreamAttack) String() string {
	return fmt.Sprintf("kept %d of 3; flood %d sent, %d stored, refused with %v; writer on the full stream: %v (audited %v); with a per-subject cap: %d stored, refused with %v, writer still publishes: %v",
		r.Kept, r.FloodSent, r.FloodAcked, r.FloodRefusal, r.WriterRefusal, r.Audited, r.CapAcked, r.CapRefusal, r.WriterAfter)
}

// AttackStream plays finding 3 on h: in account [LedgerAccount], stream [LedgerStream]
// (ledger.>, 16 MiB) holds three envelopes the writer published on ledger.entries, acknowledged
// and not yet consumed; the flooder, a service that may publish on the sibling subject
// ledger.flood, sends 40 messages of 1 MB. Then a reader consumes. It fails unless the reader
// handles all three, the flood was refused at the flooder with JetStream's 10077, and the
// writer's next publish on the full stream fails with bus.ErrStreamFull and is audited. A
// second stream (ledger2.>, a per-subject cap of 8) shows the flood refused at the flooder's
// subject while the writer keeps publishing.
func AttackStream(ctx context.Context, h Harness) (StreamAttack, error) {
	var r StreamAttack
	if _, err := h.AddAccount(ctx, LedgerAccount, accounts.DefaultLimits()); err != nil {
		return r, err
	}
	for _, s := range []operator.StreamSpec{
		{Name: LedgerStream, Subjects: []string{"ledger.>"}, MaxBytes: 16 << 20, Storage: jetstream.FileStorage},
		{Name: LedgerStream + "2", Subjects: []string{"ledger2.>"}, MaxBytes: 64 << 20, MaxMsgsPerSubject: 8, Storage: jetstream.FileStorage},
	} {
		if err := h.AddStream(ctx, LedgerAccount, s); err != nil {
			return r, err
		}
	}
	for _, s := range []accounts.ServiceSpec{
		{Name: Writer, Publish: []string{"ledger.entries", "ledger2.entries"}},
		{Name: LedgerReader, Subscribe: []string{"ledger.entries", "ledger2.entries"}, Consumers: []accounts.ConsumerRef{{Stream: LedgerStream, Durable: LedgerReader}}},
		{Name: Flooder, Publish: []string{"ledger.flood", "ledger2.flood"}},
	} {
		if _, err := h.AddService(ctx, LedgerAccount, s); err != nil {
			return r, err
		}
	}
	writer, err := Connect(ctx, h, LedgerAccount, Writer)
	if err != nil {
		return r, err
	}
	defer writer.Close()
	var ids []string
	for i := range 3 {
		ack, err := writer.Publish(ctx, "ledger.entries", fmt.Appendf(nil, "entry %d", i))
		if err != nil {
			return r, err
		}
		ids = append(ids, ack.ID)
	}
	in, err := NewInsider(ctx, h, LedgerAccount, Flooder)
	if err != nil {
		return r, err
	}
	defer in.Close()
	r.FloodSent = 40
	r.FloodAcked, r.FloodRefusal = in.Flood(ctx, "ledger.flood", r.FloodSent, 1_000_000)
	var apiErr *jetstream.APIError
	if !errors.As(r.FloodRefusal, &apiErr) || apiErr.ErrorCode != 10077 {
		return r, fmt.Errorf("sealbustest: the flood of %d x 1 MB got %v after %d stored, want JetStream's 10077 refusal", r.FloodSent, r.FloodRefusal, r.FloodAcked)
	}
	// The flooder fills what is left (the stream refuses even small messages then), and the
	// writer's next publish is refused too: nothing is removed to make room.
	if n, err := in.Fill(ctx, "ledger.flood", 512<<10); !errors.As(err, &apiErr) || apiErr.ErrorCode != 10077 {
		return r, fmt.Errorf("sealbustest: filling the stream: %d stored, %v", n, err)
	}
	_, r.WriterRefusal = writer.Publish(ctx, "ledger.entries", []byte("after the flood"))
	if !errors.Is(r.WriterRefusal, bus.ErrStreamFull) {
		return r, fmt.Errorf("sealbustest: the writer's publish on the full stream: %v, want bus.ErrStreamFull", r.WriterRefusal)
	}

	reader, err := Connect(ctx, h, LedgerAccount, LedgerReader)
	if err != nil {
		return r, err
	}
	defer reader.Close()
	var mu sync.Mutex
	handled := map[string]bool{}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := consumers.Consume(cctx, reader, LedgerStream, LedgerReader, func(_ context.Context, m *consumers.Message) error {
		mu.Lock()
		handled[m.ID] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		return r, err
	}
	for {
		mu.Lock()
		r.Kept = 0
		for _, id := range ids {
			if handled[id] {
				r.Kept++
			}
		}
		mu.Unlock()
		if r.Kept == len(ids) || cctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cs.Stop()
	<-cs.Done()
	if r.Kept != len(ids) {
		return r, fmt.Errorf("sealbustest: the reader handled %d of the %d acknowledged envelopes after the flood", r.Kept, len(ids))
	}

	// The refusal is in the writer's audit trail.
	log, done, err := h.Provisioner().AuditLog(ctx, LedgerAccount)
	if err != nil {
		return r, err
	}
	defer done()
	for deadline := time.Now().Add(10 * time.Second); !r.Audited && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, _, err := log.Tail(ctx, 0)
		if err != nil {
			return r, err
		}
		for _, rec := range recs {
			if e := rec.Event; rec.Verified() && e.Type == bus.EventPublishRefused && e.Subject == "ledger.entries" && e.Data.Reason == "stream_full" {
				r.Audited = true
			}
		}
	}
	if !r.Audited {
		return r, errors.New("sealbustest: the writer's refused publish was not audited")
	}

	// With a per-subject cap, the flood stops at the flooder's own subject.
	r.CapAcked, r.CapRefusal = in.Flood(ctx, "ledger2.flood", 20, 1_000_000)
	if !errors.As(r.CapRefusal, &apiErr) || apiErr.ErrorCode != 10077 || r.CapAcked != 8 {
		return r, fmt.Errorf("sealbustest: flood on a capped subject: %d stored, %v; want 8 then JetStream's 10077", r.CapAcked, r.CapRefusal)
	}
	if _, err := writer.Publish(ctx, "ledger2.entries", []byte("after the capped flood")); err != nil {
		return r, fmt.Errorf("sealbustest: the writer cannot publish after a capped flood on another subject: %w", err)
	}
	r.WriterAfter = true
	return r, nil
}

func jsonUnmarshalKeys(b []byte, keys *map[string]uint64) error {
	var idx struct {
		Keys map[string]uint64 `json:"keys"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("sealbustest: the directory index does not parse: %w", err)
	}
	*keys = idx.Keys
	return nil
}
