package envelope

import (
	"testing"
	"time"
)

// TestEpochStart reports the start of the live epoch by the sealer's clock, a new start after
// rotation, and nothing before the first seal or after Close.
func TestEpochStart(t *testing.T) {
	w := newWorld(t)
	clk := newTestClock(t0)
	s, err := NewSealer(w.alice, WithClock(clk.now), WithEpoch(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.EpochStart(); ok {
		t.Fatal("an epoch before the first seal")
	}
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.EpochStart(); !ok || !got.Equal(t0) {
		t.Fatalf("epoch start %v %v, want %v", got, ok, t0)
	}
	clk.advance(time.Hour + time.Second)
	if _, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.EpochStart(); !ok || !got.Equal(t0.Add(time.Hour+time.Second)) {
		t.Fatalf("after rotation: epoch start %v %v", got, ok)
	}
	s.Close()
	if _, ok := s.EpochStart(); ok {
		t.Fatal("an epoch after Close")
	}
}
