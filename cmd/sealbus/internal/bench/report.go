package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Schema names the layout of Report's JSON; it changes only when a field changes meaning or
// is removed.
const Schema = "sealbus-bench/1"

// Report is the outcome of Run: the configuration, the layout it ran in, the median figures
// of each side, their ratio, and every run.
type Report struct {
	Schema   string            `json:"schema"`
	Mode     Mode              `json:"mode"`
	Config   ReportConfig      `json:"config"`
	Layout   Layout            `json:"layout"`
	Sealbus  Figures           `json:"sealbus"`
	Raw      *Figures          `json:"raw"`   // nil without Config.Raw
	Ratio    *Ratio            `json:"ratio"` // sealbus / raw; nil without Config.Raw
	Runs     []RunFigures      `json:"runs"`
	Measures map[string]string `json:"measures"` // what each figure of Figures measured
	Notes    []string          `json:"notes"`
}

// ReportConfig is the part of Config that shapes the figures.
type ReportConfig struct {
	Size       int  `json:"size"`
	Msgs       int  `json:"msgs"`
	Publishers int  `json:"publishers"`
	Consumers  int  `json:"consumers"`
	Workers    int  `json:"workers"`
	InFlight   int  `json:"in_flight"`
	MaxPending int  `json:"max_pending"`
	Recipients int  `json:"recipients"`
	Cards      int  `json:"cards"`
	Rate       int  `json:"rate,omitempty"`
	Runs       int  `json:"runs"`
	Warmup     int  `json:"warmup"`
	Raw        bool `json:"raw"`
}

// Layout says where the server and the clients ran.
type Layout struct {
	Server      string     `json:"server"` // "process", "in-process" or "remote"
	ServerPID   int        `json:"server_pid,omitempty"`
	ServerCPUs  string     `json:"server_cpus,omitempty"`
	ClientCPUs  string     `json:"client_cpus,omitempty"`
	URL         string     `json:"url"`
	NumCPU      int        `json:"num_cpu"`
	GOMAXPROCS  int        `json:"gomaxprocs"` // of the bench process, after pinning
	GoVersion   string     `json:"go_version"`
	LoadBefore  [3]float64 `json:"load_average_before"`
	LoadAfter   [3]float64 `json:"load_average_after"`
	Stream      string     `json:"stream"`
	RawStream   string     `json:"raw_stream,omitempty"`
	StreamStore string     `json:"stream_storage"`
}

// RunFigures is one measured run of both sides.
type RunFigures struct {
	Sealbus Figures  `json:"sealbus"`
	Raw     *Figures `json:"raw"`
}

// Figures are the measurements of one side of one run (or their medians). A figure that was
// not measured is null in JSON (nil here).
type Figures struct {
	Msgs              int          `json:"msgs"`
	Seconds           float64      `json:"seconds"`
	MsgsPerSec        float64      `json:"msgs_per_s"`
	MBPerSec          float64      `json:"mb_per_s"`
	Latency           *Percentiles `json:"latency_us"`
	ClientCPUPerMsg   float64      `json:"client_cpu_us_per_msg"`
	ServerCPUPerMsg   *float64     `json:"server_cpu_us_per_msg"`
	ClientCPUBusy     *float64     `json:"client_cpu_busy"`
	ServerCPUBusy     *float64     `json:"server_cpu_busy"`
	AllocsPerMsg      float64      `json:"allocs_per_msg"`
	AllocBytesPerMsg  float64      `json:"alloc_bytes_per_msg"`
	WritesPerMsg      *float64     `json:"write_syscalls_per_msg"`
	SignaturesPerMsg  *float64     `json:"signatures_per_msg"`
	StoredBytesPerMsg *float64     `json:"stored_bytes_per_msg"`
	MsgsOutPerMsg     *float64     `json:"client_msgs_out_per_msg"`
	MsgsInPerMsg      *float64     `json:"client_msgs_in_per_msg"`
}

// Percentiles is a latency distribution in microseconds.
type Percentiles struct {
	Of    string  `json:"of"` // what was timed
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Ratio is sealbus's figure over raw's for the throughput and latency figures.
type Ratio struct {
	MsgsPerSec float64 `json:"msgs_per_s"` // median sealbus msgs/s over median raw msgs/s
	// PairedMsgsPerSec is the median of the runs' own ratios: each run measures sealbus and
	// raw one right after the other, so this one is the least moved by load that comes and
	// goes on a shared machine.
	PairedMsgsPerSec float64   `json:"paired_msgs_per_s"`
	RunMsgsPerSec    []float64 `json:"run_msgs_per_s"` // each run's ratio
	AddedP50         *float64  `json:"added_p50_us"`   // sealbus p50 − raw p50 (medians)
	AddedP99         *float64  `json:"added_p99_us"`
}

// measures describes each figure, for the mode.
func measures(m Mode) map[string]string {
	counted := map[Mode]string{
		ModePub:     "from the first publish call to the last JetStream ack",
		ModeSub:     "from the start of consumption (stream already filled) to the last handler call",
		ModePubSub:  "from the first publish call to the last handler call, publishing and consuming at once",
		ModeLatency: "from the first publish call to the last handler call, publishing at the fixed rate",
	}[m]
	return map[string]string{
		"msgs":                    "messages counted: acknowledged by JetStream (pub) or handled by a consumer (sub, pubsub, latency)",
		"seconds":                 "wall time " + counted,
		"msgs_per_s":              "msgs / seconds",
		"mb_per_s":                "payload megabytes (10^6 bytes, before sealing) per second",
		"latency_us":              latencyOf(m) + ", microseconds, HDR histogram (3 significant digits)",
		"client_cpu_us_per_msg":   "user + system CPU time of the bench process (getrusage: every publisher and consumer client, and the server too when it runs in process) over the phase, per message",
		"server_cpu_us_per_msg":   "user + system CPU time of the server process over the phase (/proc/PID/stat), per message; null when the server is not a process of this bench",
		"client_cpu_busy":         "the bench process's CPU time over the phase's wall time, as a fraction of the CPUs it may run on (sched_getaffinity): near 1, the clients' CPUs bound the throughput; null where unknown",
		"server_cpu_busy":         "the server process's CPU time over the phase's wall time, as a fraction of the CPUs it may run on: near 1, the server's CPUs bound the throughput; null when the server is not a process of this bench",
		"allocs_per_msg":          "heap allocations of the bench process over the phase (runtime.MemStats.Mallocs), per message: publish and consume together in pubsub and latency mode",
		"alloc_bytes_per_msg":     "heap bytes allocated by the bench process over the phase (runtime.MemStats.TotalAlloc), per message",
		"write_syscalls_per_msg":  "write system calls of the bench process over the phase (/proc/self/io syscw), per message; null where unavailable",
		"signatures_per_msg":      "Ed25519 batch signatures made by the publishers (bus.Client.Metrics Signatures) per message published; null for raw (nothing is signed)",
		"stored_bytes_per_msg":    "bytes the stream stored per message (JetStream stream state, after the run: envelope or raw payload plus headers and the store's per-message overhead)",
		"client_msgs_out_per_msg": "NATS messages the side's clients sent over the phase (nats.Conn statistics OutMsgs: publishes, guard writes, acks, pull and API requests), per message",
		"client_msgs_in_per_msg":  "NATS messages the side's clients received over the phase (nats.Conn statistics InMsgs: deliveries, publish acks, guard answers, ack confirmations, heartbeats), per message",
	}
}

func latencyOf(m Mode) string {
	switch m {
	case ModePub:
		return "time from each publish call to its JetStream ack"
	case ModeSub:
		return "not measured in sub mode (the messages wait in the stream before consumption starts)"
	}
	return "time from each publish call to its handler call (one process, one clock)"
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) error {
	c := r.Config
	fmt.Fprintf(w, "sealbus bench %s: %d msgs × %d B, %d publisher(s), %d consumer(s) × %d workers, %d recipient(s), %d cards in the directory",
		r.Mode, c.Msgs, c.Size, c.Publishers, c.Consumers, c.Workers, c.Recipients, c.Cards)
	if r.Mode == ModeLatency {
		fmt.Fprintf(w, ", %d msgs/s", c.Rate)
	}
	fmt.Fprintf(w, "; %d run(s)%s\n", c.Runs, map[bool]string{true: ", medians", false: ""}[c.Runs > 1])
	l := r.Layout
	fmt.Fprintf(w, "server: %s", l.Server)
	if l.ServerPID != 0 {
		fmt.Fprintf(w, " (pid %d)", l.ServerPID)
	}
	fmt.Fprintf(w, ", cpus %s; clients: cpus %s, GOMAXPROCS %d; %d CPUs; load average %.2f before, %.2f after\n",
		orAll(l.ServerCPUs, l.Server), orAll(l.ClientCPUs, "client"), l.GOMAXPROCS, l.NumCPU, l.LoadBefore[0], l.LoadAfter[0])
	if !c.Raw {
		fmt.Fprintln(w, "raw nats.go: not run (add --raw to measure raw JetStream on the same server and the ratio)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "figure\tsealbus\t"
	if r.Raw != nil {
		head += "raw nats.go\tratio\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, s, raw *float64, ratio string, format string) {
		line := name + "\t" + fmtOpt(s, format) + "\t"
		if r.Raw != nil {
			line += fmtOpt(raw, format) + "\t" + ratio + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	s, x := &r.Sealbus, r.Raw
	get := func(f func(*Figures) *float64) *float64 {
		if x == nil {
			return nil
		}
		return f(x)
	}
	ratio := ""
	if r.Ratio != nil {
		ratio = fmt.Sprintf("%.2f", r.Ratio.MsgsPerSec)
		if len(r.Ratio.RunMsgsPerSec) > 1 {
			ratio += fmt.Sprintf(" (paired %.2f)", r.Ratio.PairedMsgsPerSec)
		}
	}
	row("msgs/s", &s.MsgsPerSec, get(func(f *Figures) *float64 { return &f.MsgsPerSec }), ratio, "%.0f")
	row("MB/s (payload)", &s.MBPerSec, get(func(f *Figures) *float64 { return &f.MBPerSec }), "", "%.1f")
	lat := func(f *Figures, p func(*Percentiles) float64) *float64 {
		if f == nil || f.Latency == nil {
			return nil
		}
		v := p(f.Latency)
		return &v
	}
	for _, q := range []struct {
		name  string
		p     func(*Percentiles) float64
		added func(*Ratio) *float64
	}{
		{"latency p50 (µs)", func(l *Percentiles) float64 { return l.P50 }, func(r *Ratio) *float64 { return r.AddedP50 }},
		{"latency p90 (µs)", func(l *Percentiles) float64 { return l.P90 }, nil},
		{"latency p99 (µs)", func(l *Percentiles) float64 { return l.P99 }, func(r *Ratio) *float64 { return r.AddedP99 }},
		{"latency max (µs)", func(l *Percentiles) float64 { return l.Max }, nil},
	} {
		extra := ""
		if r.Ratio != nil && q.added != nil && q.added(r.Ratio) != nil {
			extra = fmt.Sprintf("%+.0f µs", *q.added(r.Ratio))
		}
		row(q.name, lat(s, q.p), lat(x, q.p), extra, "%.0f")
	}
	row("client CPU µs/msg", &s.ClientCPUPerMsg, get(func(f *Figures) *float64 { return &f.ClientCPUPerMsg }), "", "%.1f")
	row("server CPU µs/msg", s.ServerCPUPerMsg, get(func(f *Figures) *float64 { return f.ServerCPUPerMsg }), "", "%.1f")
	row("client CPUs busy", s.ClientCPUBusy, get(func(f *Figures) *float64 { return f.ClientCPUBusy }), "", "%.2f")
	row("server CPUs busy", s.ServerCPUBusy, get(func(f *Figures) *float64 { return f.ServerCPUBusy }), "", "%.2f")
	row("allocs/msg", &s.AllocsPerMsg, get(func(f *Figures) *float64 { return &f.AllocsPerMsg }), "", "%.1f")
	row("alloc bytes/msg", &s.AllocBytesPerMsg, get(func(f *Figures) *float64 { return &f.AllocBytesPerMsg }), "", "%.0f")
	row("write syscalls/msg", s.WritesPerMsg, get(func(f *Figures) *float64 { return f.WritesPerMsg }), "", "%.2f")
	row("signatures/msg", s.SignaturesPerMsg, get(func(f *Figures) *float64 { return f.SignaturesPerMsg }), "", "%.4f")
	row("stored bytes/msg", s.StoredBytesPerMsg, get(func(f *Figures) *float64 { return f.StoredBytesPerMsg }), "", "%.0f")
	row("client msgs out/msg", s.MsgsOutPerMsg, get(func(f *Figures) *float64 { return f.MsgsOutPerMsg }), "", "%.2f")
	row("client msgs in/msg", s.MsgsInPerMsg, get(func(f *Figures) *float64 { return f.MsgsInPerMsg }), "", "%.2f")
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	keys := make([]string, 0, len(r.Measures))
	for k := range r.Measures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "what each figure measured:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-23s %s\n", k, r.Measures[k])
	}
	if r.Ratio != nil && len(r.Ratio.RunMsgsPerSec) > 1 {
		fmt.Fprintf(w, "ratio of each run (sealbus msgs/s over raw msgs/s, measured one after the other):")
		for _, v := range r.Ratio.RunMsgsPerSec {
			fmt.Fprintf(w, " %.2f", v)
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func orAll(cpus, who string) string {
	if cpus != "" {
		return cpus
	}
	if who == "remote" {
		return "n/a"
	}
	return "unpinned"
}

func fmtOpt(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return strings.TrimSpace(fmt.Sprintf(format, *v))
}
