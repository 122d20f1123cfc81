package bus

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBatchesLoneItemFlushedAlone(t *testing.T) {
	in := make(chan int)
	got := make(chan []int, 4)
	go func() {
		batches(in, 64, time.Hour, func(b []int) { got <- slices.Clone(b) })
		close(got)
	}()
	// Even with a long delay configured, a lone item is flushed without waiting.
	in <- 1
	if b := <-got; !slices.Equal(b, []int{1}) {
		t.Fatalf("batch %v, want [1]", b)
	}
	close(in)
	if _, ok := <-got; ok {
		t.Fatal("extra batch")
	}
}

func TestBatchesTakesEverythingWaitingUpToMax(t *testing.T) {
	in := make(chan int, 100)
	for i := range 100 {
		in <- i
	}
	close(in)
	var sizes []int
	var all []int
	batches(in, 32, 0, func(b []int) {
		sizes = append(sizes, len(b))
		all = append(all, b...)
	})
	if !slices.Equal(sizes, []int{32, 32, 32, 4}) {
		t.Fatalf("batch sizes %v", sizes)
	}
	for i, v := range all {
		if v != i {
			t.Fatalf("order broken at %d: %v", i, all)
		}
	}
}

func TestBatchesConcurrentProducersLoseNothing(t *testing.T) {
	in := make(chan int, 16)
	var mu sync.Mutex
	seen := map[int]bool{}
	done := make(chan struct{})
	go func() {
		batches(in, 8, time.Millisecond, func(b []int) {
			if len(b) > 8 {
				t.Errorf("batch of %d exceeds max", len(b))
			}
			mu.Lock()
			for _, v := range b {
				if seen[v] {
					t.Errorf("%d flushed twice", v)
				}
				seen[v] = true
			}
			mu.Unlock()
		})
		close(done)
	}()
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := range 500 {
				in <- p*1000 + i
			}
		})
	}
	wg.Wait()
	close(in)
	<-done
	if len(seen) != 4000 {
		t.Fatalf("%d items flushed, want 4000", len(seen))
	}
}
