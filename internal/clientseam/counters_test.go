package clientseam

import (
	"sync"
	"testing"
)

func TestCountersByReason(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Reject("stale")
				c.DeadLetter("max_deliveries")
				c.Published.Add(1)
			}
		})
	}
	wg.Wait()
	rej, dl := c.ByReason()
	if rej["stale"] != 800 || dl["max_deliveries"] != 800 || c.Published.Load() != 800 {
		t.Fatalf("counts: rejected %v, dead-lettered %v, published %d", rej, dl, c.Published.Load())
	}
	rej["stale"] = 0
	if again, _ := c.ByReason(); again["stale"] != 800 {
		t.Fatal("ByReason returned the internal map, not a copy")
	}
}

func TestIgnoredByReason(t *testing.T) {
	var c Counters
	if got := c.IgnoredByReason(); got == nil || len(got) != 0 {
		t.Fatalf("zero counters: %v", got)
	}
	c.Ignore("unsigned_delete")
	c.Ignore("unsigned_delete")
	c.Ignore("rollback")
	got := c.IgnoredByReason()
	if got["unsigned_delete"] != 2 || got["rollback"] != 1 || c.Unverifiable.Load() != 3 {
		t.Fatalf("ignored %v, total %d", got, c.Unverifiable.Load())
	}
	got["rollback"] = 0
	if c.IgnoredByReason()["rollback"] != 1 {
		t.Fatal("IgnoredByReason returned the internal map, not a copy")
	}
}
