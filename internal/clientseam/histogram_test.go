package clientseam

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1, 1.5, 2, 3, 4, 100} {
		h.Observe(v)
	}
	s := h.Snapshot()
	// Buckets are "less than or equal", cumulative; Count includes the +Inf bucket.
	if want := []uint64{2, 4, 6}; !slices.Equal(s.Counts, want) || s.Count != 7 || s.Sum != 112 {
		t.Fatalf("snapshot %+v, want counts %v, count 7, sum 112", s, want)
	}
	sum := s.Add(s)
	if want := []uint64{4, 8, 12}; !slices.Equal(sum.Counts, want) || sum.Count != 14 || sum.Sum != 224 {
		t.Fatalf("sum %+v", sum)
	}
	if s.Counts[0] != 2 {
		t.Fatal("Add changed its receiver's counts")
	}
}

func TestHistogramConcurrent(t *testing.T) {
	h := NewHistogram(DurationBuckets)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				h.ObserveDuration(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != 8000 || s.Counts[len(s.Counts)-1] != 8000 {
		t.Fatalf("count %d, last bucket %d", s.Count, s.Counts[len(s.Counts)-1])
	}
	if s.Sum < 79.99 || s.Sum > 80.01 {
		t.Fatalf("sum %v, want 80", s.Sum)
	}
	// 10ms falls in the 0.01 bucket (less or equal), not the one below.
	if s.Counts[0] != 0 || s.Counts[1] != 8000 {
		t.Fatalf("buckets %v", s.Counts)
	}
}

// TestChildCountsInSnapshot: a consumption's counters (a child) show in the client's
// snapshot and stay apart in their own.
func TestChildCountsInSnapshot(t *testing.T) {
	var client Counters
	client.Published.Add(3)
	client.BatchSize(3)
	a, b := client.Child(), client.Child()
	a.Delivered.Add(2)
	a.Reject("stale")
	a.HandlerDuration(time.Millisecond)
	b.Delivered.Add(5)
	b.DeadLetter("max_deliveries")
	b.AckConfirmed.Add(5)

	s := client.Snapshot()
	if s.Published != 3 || s.Delivered != 7 || s.AckConfirmed != 5 || s.Rejected["stale"] != 1 || s.DeadLettered["max_deliveries"] != 1 {
		t.Fatalf("client snapshot %+v", s)
	}
	if s.HandlerDuration.Count != 1 || s.BatchSizes.Count != 1 {
		t.Fatalf("histograms: handler %d, batches %d", s.HandlerDuration.Count, s.BatchSizes.Count)
	}
	if sa := a.Snapshot(); sa.Delivered != 2 || sa.Published != 0 || sa.DeadLettered["max_deliveries"] != 0 {
		t.Fatalf("child snapshot %+v", sa)
	}
}
