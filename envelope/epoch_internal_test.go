package envelope

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a settable clock that is safe to read from the sealer's timer goroutine.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// current returns the sealer's epoch, or nil.
func (s *Sealer) current() *epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// holdsKey reports whether e still holds its private key or any wrap key.
func (e *epoch) holdsKey() bool {
	e.use.RLock()
	defer e.use.RUnlock()
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.priv != nil || e.wrap != nil
}

func (e *epoch) wrapKeys() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.wrap)
}

// TestEpochKeyDiscardedWhenIdle shows that an idle sealer does not keep an expired epoch key:
// no seal happens after the epoch ends, yet the key and the wrap keys are gone. It also shows
// that the decision follows the sealer's clock: while that clock says the epoch is live, the
// timer's check keeps the key.
func TestEpochKeyDiscardedWhenIdle(t *testing.T) {
	w := newWorld(t)
	clk := newTestClock(t0)
	const epochLen = 20 * time.Millisecond
	s, err := NewSealer(w.alice, WithClock(clk.now), WithEpoch(epochLen))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, err := s.Seal(w.header(), []byte("x"), []Recipient{w.bob.Recipient(), w.carol.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	ep := s.current()
	if ep == nil || !ep.holdsKey() || ep.wrapKeys() != 2 {
		t.Fatalf("after a seal the sealer should hold the epoch key and two wrap keys")
	}

	// The timer fires after epochLen of real time; the clock has not moved, so the key stays.
	checks := epochChecks.Load()
	waitFor(t, "an epoch timer check", func() bool { return epochChecks.Load() > checks })
	if s.current() != ep || !ep.holdsKey() {
		t.Fatalf("epoch key discarded while the sealer's clock says the epoch is live")
	}

	// The clock passes the end of the epoch; nothing is sealed; the key goes.
	clk.advance(epochLen)
	waitFor(t, "the idle epoch key to be discarded", func() bool { return s.current() == nil })
	if ep.holdsKey() {
		t.Fatalf("discarded epoch still holds its private key or wrap keys")
	}

	// The next seal draws a fresh epoch key and works.
	second, err := s.Seal(w.header(), []byte("y"), []Recipient{w.bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	i1, _ := Inspect(first.Data)
	i2, _ := Inspect(second.Data)
	if i1.EpochKey == i2.EpochKey {
		t.Fatalf("epoch key reused after it was discarded")
	}
	if _, err := w.opener(t, w.bob, WithClock(clk.now)).Open(second.Data, Delivery{Account: w.account, Subject: "orders.created"}); err != nil {
		t.Fatalf("envelope sealed after the discard: %v", err)
	}
}

// TestEpochKeyDiscardedAtRotation shows that the seal that rotates the epoch discards the old
// key and its wrap keys.
func TestEpochKeyDiscardedAtRotation(t *testing.T) {
	w := newWorld(t)
	clk := newTestClock(t0)
	s, err := NewSealer(w.alice, WithClock(clk.now), WithEpoch(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	old := s.current()
	clk.advance(time.Hour)
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if cur := s.current(); cur == old || cur == nil || !cur.holdsKey() {
		t.Fatalf("no fresh epoch after the old one ended")
	}
	if old.holdsKey() {
		t.Fatalf("rotated-out epoch still holds its private key or wrap keys")
	}
	// A clock set back before the epoch's start also ends it.
	cur := s.current()
	clk.advance(-time.Minute)
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if cur.holdsKey() || s.current() == cur {
		t.Fatalf("epoch kept after the clock went back before its start")
	}
}

func TestSealerClose(t *testing.T) {
	w := newWorld(t)
	s, err := NewSealer(w.alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	ep := s.current()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.current() != nil || ep.holdsKey() {
		t.Fatalf("Close left the epoch key or wrap keys")
	}
	if s.timer != nil {
		t.Fatalf("Close left the epoch timer armed")
	}
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Seal after Close: %v, want ErrClosed", err)
	}
	if _, err := s.SealBatch([]Message{{Header: w.header(), To: []Recipient{w.bob.Recipient()}}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SealBatch after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !w.alice.usable() {
		t.Fatalf("Close wiped the caller's identity")
	}
	unused, _ := NewSealer(w.alice)
	if err := unused.Close(); err != nil {
		t.Fatalf("Close of an unused sealer: %v", err)
	}
}

// TestEpochDiscardDuringSeals seals from several goroutines with a very short epoch while the
// timer discards keys and, at the end, Close runs: every seal either succeeds with an envelope
// that opens or fails with ErrClosed (run with -race to check the locking).
func TestEpochDiscardDuringSeals(t *testing.T) {
	w := newWorld(t)
	s, err := NewSealer(w.alice, WithEpoch(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener([]*Identity{w.bob}, allowOnly(w.alice.SigningKey()))
	if err != nil {
		t.Fatal(err)
	}
	d := Delivery{Account: w.account, Subject: "orders.created"}
	var wg sync.WaitGroup
	var closedSeen atomic.Bool
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sl, err := s.Seal(w.header(), []byte("p"), []Recipient{w.bob.Recipient(), w.carol.Recipient()})
				if errors.Is(err, ErrClosed) {
					closedSeen.Store(true)
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if _, err := o.Open(sl.Data, d); err != nil {
					errs <- err
					return
				}
				if i == 100 {
					s.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !closedSeen.Load() || s.current() != nil {
		t.Fatalf("sealer not closed at the end")
	}
}
