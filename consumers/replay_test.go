package consumers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go/jetstream"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is a guardStore in memory, shared by the guards of several "processes". fail makes
// the next operations fail; lostReply makes the next put be applied but report an error, as
// when the server's reply is lost.
type memStore struct {
	mu        sync.Mutex
	seq       uint64
	entries   map[string]memEntry
	fail      int
	lostReply int
	puts      int
	ttls      map[string]time.Duration
}

type memEntry struct {
	val []byte
	rev uint64
}

func newMemStore() *memStore {
	return &memStore{entries: map[string]memEntry{}, ttls: map[string]time.Duration{}}
}

var errDown = errors.New("store down")

func (s *memStore) keyPrefix() string { return "" }

func (s *memStore) put(_ context.Context, key string, val []byte, ttl time.Duration, last uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.fail > 0 {
		s.fail--
		return 0, errDown
	}
	if s.entries[key].rev != last {
		return 0, errConflict
	}
	s.seq++
	s.entries[key] = memEntry{val: append([]byte(nil), val...), rev: s.seq}
	s.ttls[key] = ttl
	if s.lostReply > 0 {
		s.lostReply--
		return 0, errDown
	}
	return s.seq, nil
}

func (s *memStore) beat(_ context.Context, key string, val []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.entries[key] = memEntry{val: append([]byte(nil), val...), rev: s.seq}
	return nil
}

func (s *memStore) get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return nil, 0, errDown
	}
	e, ok := s.entries[key]
	if !ok {
		return nil, 0, errNoEntry
	}
	return e.val, e.rev, nil
}

// expire removes a key, as its TTL would.
func (s *memStore) expire(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
}

// inject writes val under key without any check (what only an admin could do).
func (s *memStore) inject(key string, val []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.entries[key] = memEntry{val: val, rev: s.seq}
}

func (s *memStore) entry(t *testing.T, g *guard, id string) guardEntry {
	t.Helper()
	_, _, sk := g.keyOf(&Message{ID: id})
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := decodeEntry(s.entries[sk].val)
	if !ok {
		t.Fatalf("no entry for %s", id)
	}
	return e
}

var testGuardKey = bytes.Repeat([]byte{7}, 32)

// process is one consumer process on a durable: its guard and its handler calls.
type process struct {
	g     *guard
	h     Handler
	calls atomic.Int32
}

func newProcess(t *testing.T, s guardStore, handler func(context.Context, *Message) error) *process {
	t.Helper()
	g, err := newGuard(guardConfig{store: s, hmacKey: testGuardKey, window: time.Minute, ackWait: time.Second, lease: time.Second, storeWait: 200 * time.Millisecond, capacity: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	p := &process{g: g}
	p.h = g.middleware(func(ctx context.Context, m *Message) error {
		p.calls.Add(1)
		if handler != nil {
			return handler(ctx, m)
		}
		return nil
	})
	return p
}

// deliverConfirmed runs a delivery through the process as Consume does when the server
// confirms the ack at once: the guard, no record.
func (p *process) deliverConfirmed(t *testing.T, m *Message) error {
	t.Helper()
	return p.h(context.Background(), m)
}

// deliver runs a delivery through the process as Consume does when the ack is not confirmed at
// once: the guard, then (on success) the handled record written before the ack is sent again.
func (p *process) deliver(t *testing.T, m *Message) error {
	t.Helper()
	err := p.h(context.Background(), m)
	if err == nil && m.toRecord != nil {
		if rerr := m.toRecord.record(context.Background(), m.Sequence); rerr != nil {
			t.Fatalf("record: %v", rerr)
		}
	}
	return err
}

func verifiedMessage(id string, seq uint64, created, stored time.Time) *Message {
	f := newFakeMsg("orders.new", nil, seq, 1)
	f.header.Set(jetstream.MsgIDHeader, id) // as publishers store it
	m := message(f)
	m.ID, m.Created, m.Stored, m.verified = id, created, stored, true
	return m
}

func redelivery(id string, seq uint64, now time.Time) *Message {
	m := verifiedMessage(id, seq, now, now)
	m.Delivered = 2
	return m
}

func isReplay(err error) bool {
	r, ok := DeadLetterReason(err)
	return ok && r == ReasonReplay
}

// TestGuardOnceAcrossProcesses: what one process handled is neither handled again by another
// process that gets the redelivery, nor accepted from either when replayed at another
// position.
func TestGuardOnceAcrossProcesses(t *testing.T) {
	s := newMemStore()
	a, b := newProcess(t, s, nil), newProcess(t, s, nil)
	now := time.Now()
	if err := a.deliver(t, verifiedMessage("x", 1, now, now)); err != nil {
		t.Fatal(err)
	}
	if e := s.entry(t, a.g, "x"); e.state != stateHandled || e.seq != 1 || e.owner != a.g.owner {
		t.Fatalf("entry after a's call: %+v", e)
	}
	m := redelivery("x", 1, now)
	if err := b.deliver(t, m); err != nil || !m.duplicate {
		t.Fatalf("redelivery to b: %v, duplicate %v", err, m.duplicate)
	}
	if err := b.deliver(t, verifiedMessage("x", 2, now, now.Add(time.Second))); !isReplay(err) {
		t.Fatalf("replay at b: %v", err)
	}
	if err := a.deliver(t, verifiedMessage("x", 3, now, now.Add(time.Second))); !isReplay(err) {
		t.Fatalf("replay at a: %v", err)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 0 {
		t.Fatalf("handler calls a %d, b %d", a.calls.Load(), b.calls.Load())
	}
	// A restarted process (new owner, empty memory) knows it too.
	c := newProcess(t, s, nil)
	if err := c.deliver(t, verifiedMessage("x", 4, now, now.Add(2*time.Second))); !isReplay(err) || c.calls.Load() != 0 {
		t.Fatalf("replay after a restart: %v, %d calls", err, c.calls.Load())
	}
}

// TestGuardFailureDoesNotBurnID: a handler failure releases the id, so the retry is handled
// wherever it is delivered, and a replay of the failed message is still refused.
func TestGuardFailureDoesNotBurnID(t *testing.T) {
	s := newMemStore()
	a := newProcess(t, s, func(context.Context, *Message) error { return errors.New("handler failed") })
	b := newProcess(t, s, nil)
	now := time.Now()
	if err := a.deliver(t, verifiedMessage("y", 1, now, now)); err == nil {
		t.Fatal("handler error lost")
	}
	a.g.writes.Wait() // the release is written in the background
	if e := s.entry(t, a.g, "y"); e.state != stateReleased {
		t.Fatalf("entry after the failure: %+v", e)
	}
	m := redelivery("y", 1, now)
	if err := b.deliver(t, m); err != nil || m.duplicate || b.calls.Load() != 1 {
		t.Fatalf("retry at b: %v, duplicate %v, %d calls", err, m.duplicate, b.calls.Load())
	}
	if err := b.deliver(t, verifiedMessage("y", 9, now, now)); !isReplay(err) {
		t.Fatalf("replay of a retried message: %v", err)
	}
	// The same process retries its own failure too, even if the release was not written.
	s2 := newMemStore()
	fails := atomic.Int32{}
	p := newProcess(t, s2, func(context.Context, *Message) error {
		if fails.Add(1) == 1 {
			return errors.New("first call fails")
		}
		return nil
	})
	s2.fail = 0
	if err := p.deliver(t, verifiedMessage("z", 1, now, now)); err == nil {
		t.Fatal("first call succeeded")
	}
	p.g.writes.Wait()
	s2.inject(p.g.keyOfID("z"), guardEntry{state: stateClaimed, owner: p.g.owner, seq: 1}.encode()) // as if the release were lost
	if err := p.deliver(t, redelivery("z", 1, now)); err != nil || p.calls.Load() != 2 {
		t.Fatalf("own retry: %v, %d calls", err, p.calls.Load())
	}
}

// keyOfID returns the store key of a message id.
func (g *guard) keyOfID(id string) string {
	_, _, sk := g.keyOf(&Message{ID: id})
	return sk
}

// TestGuardWaitsForLiveOwner: a redelivery that reaches another process while the first is
// still calling the handler waits for its outcome instead of calling the handler again.
func TestGuardWaitsForLiveOwner(t *testing.T) {
	s := newMemStore()
	entered, release := make(chan struct{}), make(chan struct{})
	a := newProcess(t, s, func(context.Context, *Message) error { close(entered); <-release; return nil })
	b := newProcess(t, s, nil)
	now := time.Now()
	first := make(chan error, 1)
	go func() { first <- a.deliver(t, verifiedMessage("w", 1, now, now)) }()
	<-entered
	m := redelivery("w", 1, now)
	second := make(chan error, 1)
	go func() { second <- b.deliver(t, m) }()
	select {
	case err := <-second:
		t.Fatalf("b finished while a's call was in progress: %v", err)
	case <-time.After(a.g.lease / 2):
	}
	// After a lease without an outcome, b returns the delivery (a nak: it may reach a).
	if err := <-second; !errors.Is(err, errClaimHeld) || b.calls.Load() != 0 {
		t.Fatalf("b while a's call went on past the lease: %v, %d calls", err, b.calls.Load())
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// a's ack was not confirmed at once, so a recorded the outcome: b's next delivery is a
	// duplicate.
	m = redelivery("w", 1, now)
	if err := b.deliver(t, m); err != nil || !m.duplicate || b.calls.Load() != 0 {
		t.Fatalf("b after a finished: %v, duplicate %v, %d calls", err, m.duplicate, b.calls.Load())
	}
}

// TestGuardConfirmedAckLostByServer: a confirmed ack needs no handled record, so if the server
// loses it after all (a single server's crash before it wrote its consumer state), the
// redelivery finds only the owner's claim. Another process returns it to the server instead of
// calling the handler; when it reaches the owner, the owner acknowledges it from memory.
func TestGuardConfirmedAckLostByServer(t *testing.T) {
	s := newMemStore()
	a := newProcess(t, s, nil)
	b := newProcess(t, s, nil)
	now := time.Now()
	if err := a.deliverConfirmed(t, verifiedMessage("x", 3, now, now)); err != nil || a.calls.Load() != 1 {
		t.Fatalf("first delivery: %v, %d calls", err, a.calls.Load())
	}
	if e := s.entry(t, a.g, "x"); e.state != stateClaimed || e.owner != a.g.owner {
		t.Fatalf("entry after a confirmed ack: %+v", e)
	}
	if err := b.deliverConfirmed(t, redelivery("x", 3, now)); !errors.Is(err, errClaimHeld) || b.calls.Load() != 0 {
		t.Fatalf("redelivery to b: %v, %d calls", err, b.calls.Load())
	}
	m := redelivery("x", 3, now)
	if err := a.deliverConfirmed(t, m); err != nil || !m.duplicate || a.calls.Load() != 1 {
		t.Fatalf("redelivery to a: %v, duplicate %v, %d calls", err, m.duplicate, a.calls.Load())
	}
	// A replay of it is still refused, by either process.
	for _, p := range []*process{a, b} {
		if err := p.deliverConfirmed(t, verifiedMessage("x", 9, now, now)); !isReplay(err) {
			t.Fatalf("replay: %v", err)
		}
	}
	if a.calls.Load()+b.calls.Load() != 1 {
		t.Fatalf("%d handler calls", a.calls.Load()+b.calls.Load())
	}
}

// TestGuardLastDeliveryWhileClaimHeld: the last allowed delivery of a message whose live owner
// holds the claim without an outcome cannot go back to the server (it would not come again):
// after three leases it is dead-lettered as max_deliveries, saying the owner may have handled
// it, instead of being held forever. A claim released meanwhile is handled at once.
func TestGuardLastDeliveryWhileClaimHeld(t *testing.T) {
	s := newMemStore()
	a := newProcess(t, s, nil)
	b := newProcess(t, s, nil)
	now := time.Now()
	if err := a.deliverConfirmed(t, verifiedMessage("y", 4, now, now)); err != nil {
		t.Fatal(err)
	}
	m := redelivery("y", 4, now)
	m.last = true
	err := b.deliverConfirmed(t, m)
	if r, ok := DeadLetterReason(err); !ok || r != ReasonMaxDeliveries || !strings.Contains(err.Error(), "may have handled it") || b.calls.Load() != 0 {
		t.Fatalf("last delivery to b: %v, %d calls", err, b.calls.Load())
	}

	failing := newProcess(t, s, func(context.Context, *Message) error { return errors.New("not now") })
	if err := failing.deliver(t, verifiedMessage("z", 5, now, now)); err == nil {
		t.Fatal("the failing handler succeeded")
	}
	failing.g.writes.Wait() // its release
	m = redelivery("z", 5, now)
	m.last = true
	if err := b.deliverConfirmed(t, m); err != nil || b.calls.Load() != 1 {
		t.Fatalf("last delivery of a released claim: %v, %d calls", err, b.calls.Load())
	}
}

// TestGuardTakesOverFromCrashedOwner: a process that claimed a message and died (its heartbeat
// expired) does not take the message with it: another process takes the claim over.
func TestGuardTakesOverFromCrashedOwner(t *testing.T) {
	s := newMemStore()
	entered := make(chan struct{})
	a := newProcess(t, s, func(ctx context.Context, _ *Message) error { close(entered); <-ctx.Done(); return ctx.Err() })
	b := newProcess(t, s, nil)
	now := time.Now()
	ctx, crash := context.WithCancel(context.Background())
	aDone := make(chan struct{})
	defer func() { crash(); <-aDone }() // a's call returns before its guard is stopped
	go func() { defer close(aDone); _ = a.h(ctx, verifiedMessage("v", 1, now, now)) }()
	<-entered
	// a crashes: its heartbeat stops and expires; nothing it would have written is written.
	a.g.stopOnce.Do(func() { close(a.g.stopBeat) })
	a.g.beating.Wait()
	s.expire(beatKey(s.keyPrefix(), a.g.owner))
	m := redelivery("v", 1, now)
	if err := b.deliver(t, m); err != nil || m.duplicate || b.calls.Load() != 1 {
		t.Fatalf("b after a crashed: %v, duplicate %v, %d calls", err, m.duplicate, b.calls.Load())
	}
	if e := s.entry(t, b.g, "v"); e.state != stateHandled || e.owner != b.g.owner {
		t.Fatalf("entry %+v", e)
	}
	// A process that stopped cleanly says so: its claims are taken over at once.
	c := newProcess(t, s, func(context.Context, *Message) error { return nil })
	d := newProcess(t, s, nil)
	s.inject(c.g.keyOfID("u"), guardEntry{state: stateClaimed, owner: c.g.owner, seq: 5}.encode())
	c.g.stop()
	if err := d.deliver(t, redelivery("u", 5, now)); err != nil || d.calls.Load() != 1 {
		t.Fatalf("claim of a stopped process: %v, %d calls", err, d.calls.Load())
	}
}

// TestGuardBeforeVerification: an unverified message never reaches the store, so a forged
// envelope can neither claim a genuine id nor be acknowledged as its duplicate.
func TestGuardBeforeVerification(t *testing.T) {
	s := newMemStore()
	p := newProcess(t, s, nil)
	puts := s.puts
	m := message(newFakeMsg("orders.new", nil, 1, 1))
	m.ID = "genuine" // what a forger would claim
	if err := p.h(context.Background(), m); err == nil {
		t.Fatal("unverified message accepted")
	}
	if s.puts != puts || p.calls.Load() != 0 {
		t.Fatalf("the unverified message wrote %d entries, %d handler calls", s.puts-puts, p.calls.Load())
	}
	now := time.Now()
	if err := p.deliver(t, verifiedMessage("genuine", 2, now, now)); err != nil || p.calls.Load() != 1 {
		t.Fatalf("the genuine message after the forgery: %v", err)
	}
}

// TestGuardStoreUnavailable: without the store, no handler is called; the delivery fails
// with ErrGuardUnavailable and is handled once the store is back.
func TestGuardStoreUnavailable(t *testing.T) {
	s := newMemStore()
	p := newProcess(t, s, nil)
	s.fail = 1 << 30
	now := time.Now()
	err := p.deliver(t, verifiedMessage("s", 1, now, now))
	if !errors.Is(err, ErrGuardUnavailable) || p.calls.Load() != 0 {
		t.Fatalf("store down: %v, %d calls", err, p.calls.Load())
	}
	s.mu.Lock()
	s.fail = 0
	s.mu.Unlock()
	if err := p.deliver(t, redelivery("s", 1, now)); err != nil || p.calls.Load() != 1 {
		t.Fatalf("store back: %v, %d calls", err, p.calls.Load())
	}
	// On the last allowed delivery a nak would lose the message (the server does not deliver
	// it again): it is dead-lettered instead, once the guard has waited as long as it may.
	s.mu.Lock()
	s.fail = 1 << 30
	s.mu.Unlock()
	m := verifiedMessage("t", 2, now, now)
	m.Delivered, m.last = 5, true
	err = p.deliver(t, m)
	if r, ok := DeadLetterReason(err); !ok || r != ReasonMaxDeliveries || !errors.Is(err, ErrGuardUnavailable) || p.calls.Load() != 1 {
		t.Fatalf("store down on the last delivery: %v, %d calls", err, p.calls.Load())
	}
}

// TestGuardLostReplies: a claim or an outcome the store applied but whose reply was lost is
// recognised on retry; the handler runs once.
func TestGuardLostReplies(t *testing.T) {
	s := newMemStore()
	p := newProcess(t, s, nil)
	q := newProcess(t, s, nil)
	now := time.Now()
	s.lostReply = 2 // the claim, then the handled record
	if err := p.deliver(t, verifiedMessage("r", 1, now, now)); err != nil || p.calls.Load() != 1 {
		t.Fatalf("lost replies: %v, %d calls", err, p.calls.Load())
	}
	if e := s.entry(t, p.g, "r"); e.state != stateHandled {
		t.Fatalf("entry %+v", e)
	}
	m := redelivery("r", 1, now)
	if err := q.deliver(t, m); err != nil || !m.duplicate {
		t.Fatalf("redelivery elsewhere: %v", err)
	}
}

// TestGuardJunkAndExpiredEntries: an entry that does not parse (only an admin could write
// one) is replaced; an entry that expired between the claim and its outcome is written anew.
func TestGuardJunkAndExpiredEntries(t *testing.T) {
	s := newMemStore()
	p := newProcess(t, s, func(context.Context, *Message) error { return nil })
	s.inject(p.g.keyOfID("j"), []byte(`{"type":"io.nats.jetstream.api.v1.account_info_response"}`))
	now := time.Now()
	if err := p.deliver(t, verifiedMessage("j", 1, now, now)); err != nil || p.calls.Load() != 1 {
		t.Fatalf("junk entry: %v, %d calls", err, p.calls.Load())
	}
	m := verifiedMessage("k", 2, now, now)
	if err := p.h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	s.expire(p.g.keyOfID("k"))
	if err := m.toRecord.record(context.Background(), m.Sequence); err != nil {
		t.Fatalf("record after expiry: %v", err)
	}
	if e := s.entry(t, p.g, "k"); e.state != stateHandled {
		t.Fatalf("entry %+v", e)
	}
}

// TestGuardKeysAreKeyedHashes: the store key of an id depends on the guard key, so whoever
// lacks it cannot name (and so cannot pre-claim) the entry of an id it knows.
func TestGuardKeysAreKeyedHashes(t *testing.T) {
	k := deliveryKey{kind: kindMessage, name: "0123456789abcdef0123456789abcdef"}
	_, a := storeKey(testGuardKey, k)
	_, b := storeKey(bytes.Repeat([]byte{8}, 32), k)
	if a == b || strings.Contains(a, k.name) {
		t.Fatalf("store keys %q and %q", a, b)
	}
	_, c := storeKey(testGuardKey, deliveryKey{kind: kindAuthorization, name: k.name})
	if c == a {
		t.Fatal("an authorization key and a message id with the same name share an entry")
	}
}

// TestEntryTTL: an id is kept until no copy of its envelope can be stored any more (signed
// creation time plus the window), then one window and the AckWait more, measured from the
// server's stored time, whatever the publisher's clock.
func TestEntryTTL(t *testing.T) {
	const w, ack = 2 * time.Minute, 30 * time.Second
	stored := time.Now()
	for _, tc := range []struct {
		name string
		skew time.Duration // publisher clock minus server clock
		want time.Duration
	}{
		{"in sync", 0, w + w + ack},
		{"publisher 30s ahead", 30 * time.Second, w + 30*time.Second + w + ack},
		{"publisher 30s behind", -30 * time.Second, w - 30*time.Second + w + ack},
		{"at the future edge", w, 2*w + w + ack},
		{"at the past edge", -w, w + ack},
	} {
		if got := entryTTL(stored.Add(tc.skew), stored, w, ack); got != tc.want {
			t.Errorf("%s: ttl %v, want %v", tc.name, got, tc.want)
		}
		if got := entryTTL(stored.Add(tc.skew), stored, w, ack); got > GuardHorizon(w, ack) {
			t.Errorf("%s: ttl %v beyond the store's horizon %v", tc.name, got, GuardHorizon(w, ack))
		}
	}
}

func TestEntryEncoding(t *testing.T) {
	e := guardEntry{state: stateHandled, seq: 1<<40 + 7}
	copy(e.owner[:], "0123456789abcdef")
	got, ok := decodeEntry(e.encode())
	if !ok || got != e {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	bad := [][]byte{nil, []byte("sbg1"), append(e.encode(), 0), append([]byte("sbg2"), e.encode()[4:]...)}
	x := e.encode()
	x[4] = 'x'
	bad = append(bad, x)
	for i, b := range bad {
		if _, ok := decodeEntry(b); ok {
			t.Errorf("case %d decoded", i)
		}
	}
	var o ownerID
	copy(o[:], "0123456789abcdef")
	if !decodeBeat(encodeBeat(beatAlive, o), o) || decodeBeat(encodeBeat(beatStopped, o), o) || decodeBeat(encodeBeat(beatAlive, ownerID{}), o) {
		t.Fatal("heartbeat decoding")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(guardEntry{state: stateClaimed, seq: 3}.encode())
	f.Add([]byte("sbg1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := decodeEntry(b)
		if ok && !bytes.Equal(e.encode(), b) {
			t.Fatalf("accepted %x re-encodes as %x", b, e.encode())
		}
	})
}

// TestGuardWaitsForCallInProgressLocally: a redelivery that arrives at the same process while
// its handler is still working on the first delivery waits for its outcome, with no store
// round trip, and is not handled twice.
func TestGuardWaitsForCallInProgressLocally(t *testing.T) {
	s := newMemStore()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := newProcess(t, s, func(context.Context, *Message) error { once.Do(func() { close(entered); <-release }); return nil })
	now := time.Now()
	first := make(chan error, 1)
	go func() { first <- p.deliver(t, verifiedMessage("a", 1, now, now)) }()
	<-entered
	second := make(chan error, 1)
	m := redelivery("a", 1, now)
	go func() { second <- p.deliver(t, m) }()
	select {
	case err := <-second:
		t.Fatalf("the redelivery finished while the first call was in progress: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil || !m.duplicate || p.calls.Load() != 1 {
		t.Fatalf("redelivery: %v, duplicate %v, %d handler calls", err, m.duplicate, p.calls.Load())
	}
	// A waiting redelivery gives up when its context ends.
	entered2, release2 := make(chan struct{}), make(chan struct{})
	q := newProcess(t, s, func(context.Context, *Message) error { close(entered2); <-release2; return nil })
	go func() { _ = q.h(context.Background(), verifiedMessage("c", 1, now, now)) }()
	<-entered2
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.h(ctx, verifiedMessage("c", 1, now, now)); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting redelivery with an ended context: %v", err)
	}
	close(release2)
}

func (g *replaySet) check(m *Message) (position, bool) {
	e, v, _ := g.enter(context.Background(), keyOf(m.ID), m)
	if v == deliver {
		g.settle(e, m.Sequence, false)
	}
	return e.pos, v != replayed
}

func TestReplaySetForgetsOutsideWindow(t *testing.T) {
	g := newReplaySet(time.Minute, 1000)
	t0 := time.Now()
	for i := range 10 {
		g.check(verifiedMessage(fmt.Sprint(i), uint64(i+1), t0, t0))
	}
	if g.size() != 10 {
		t.Fatalf("size %d", g.size())
	}
	later := t0.Add(3 * time.Minute)
	g.check(verifiedMessage("new", 100, later, later))
	if g.size() != 1 {
		t.Fatalf("size %d after the window moved, want 1", g.size())
	}
}

func TestReplaySetCapacity(t *testing.T) {
	g := newReplaySet(time.Hour, 5)
	now := time.Now()
	for i := range 20 {
		g.check(verifiedMessage(fmt.Sprint(i), uint64(i+1), now, now))
	}
	if g.size() != 5 {
		t.Fatalf("size %d, want capacity 5", g.size())
	}
	if _, ok := g.check(verifiedMessage("19", 99, now, now)); ok {
		t.Fatal("a recent id was forgotten")
	}
}

// storeKey is keyWith with a new keyed hash of hmacKey.
func storeKey(hmacKey []byte, k deliveryKey) (msgKey, string) {
	return newKeyHasher(hmacKey).keyWith(k, "")
}
