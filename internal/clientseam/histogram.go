package clientseam

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Bucket upper bounds of the histograms a client and its consumptions keep.
var (
	// DurationBuckets are in seconds: the boundaries OpenTelemetry's messaging semantic
	// conventions recommend for messaging.process.duration.
	DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	// BatchBuckets are envelopes per batch signature (powers of two up to 1024, the largest
	// batch bus accepts).
	BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// Histogram counts observations in fixed buckets, lock-free. Safe for concurrent use. The
// zero value is not usable: make one with [NewHistogram].
type Histogram struct {
	bounds []float64       // upper bounds, ascending; an implicit +Inf bucket follows
	counts []atomic.Uint64 // per bucket (not cumulative), len(bounds)+1
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

// NewHistogram returns a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: slices.Clone(bounds), counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // first bound >= v: buckets are "less or equal"
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// HistogramSnapshot is a copy of a histogram. Counts are cumulative, as Prometheus reports
// them: Counts[i] is the number of observations less than or equal to Bounds[i]; Count
// includes those above the last bound.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Snapshot copies the histogram. Concurrent observations may be partly included.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: slices.Clone(h.bounds), Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.bounds {
		cum += h.counts[i].Load()
		s.Counts[i] = cum
	}
	s.Count = cum + h.counts[len(h.bounds)].Load()
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}

// Add returns the sum of two snapshots of histograms with the same bounds (b's bounds are
// assumed equal to s's; an empty s takes b's).
func (s HistogramSnapshot) Add(b HistogramSnapshot) HistogramSnapshot {
	if len(s.Bounds) == 0 {
		return HistogramSnapshot{Bounds: slices.Clone(b.Bounds), Counts: slices.Clone(b.Counts), Count: b.Count, Sum: b.Sum}
	}
	out := HistogramSnapshot{Bounds: s.Bounds, Counts: slices.Clone(s.Counts), Count: s.Count + b.Count, Sum: s.Sum + b.Sum}
	for i := range out.Counts {
		if i < len(b.Counts) {
			out.Counts[i] += b.Counts[i]
		}
	}
	return out
}
