package bus

import "time"

// batches reads items from in and calls flush with up to max of them at a time, in arrival
// order. Every item already waiting is taken at once; a lone item is flushed immediately
// (no added latency when idle). When at least two are waiting and delay > 0, it waits up to
// delay for more before flushing. flush runs on the calling goroutine, so while it runs new
// items accumulate for the next batch. batches returns when in is closed and drained.
func batches[T any](in <-chan T, max int, delay time.Duration, flush func([]T)) {
	buf := make([]T, 0, max)
	var timer *time.Timer
	for first := range in {
		buf = append(buf[:0], first)
	drain:
		for len(buf) < max {
			select {
			case it, ok := <-in:
				if !ok {
					break drain
				}
				buf = append(buf, it)
			default:
				break drain
			}
		}
		if delay > 0 && len(buf) >= 2 && len(buf) < max {
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
		linger:
			for len(buf) < max {
				select {
				case it, ok := <-in:
					if !ok {
						break linger
					}
					buf = append(buf, it)
				case <-timer.C:
					break linger
				}
			}
			timer.Stop()
		}
		flush(buf)
		clear(buf)
	}
}
