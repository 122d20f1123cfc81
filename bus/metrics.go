package bus

import "github.com/sealbus/sealbus/internal/clientseam"

// Histogram is a snapshot of a distribution, cumulative as Prometheus reports it:
// Counts[i] observations were less than or equal to Bounds[i]; Count includes those above the
// last bound, and Sum is the sum of every observation.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

func histogramOf(s clientseam.HistogramSnapshot) Histogram {
	return Histogram{Bounds: s.Bounds, Counts: s.Counts, Count: s.Count, Sum: s.Sum}
}
