package bench

import (
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// sample is what a phase's figures are computed from, read at its start and at its end.
type sample struct {
	wall       time.Time
	cpu        time.Duration // this process, user + system
	serverCPU  time.Duration // server process, user + system; -1 when unknown
	mallocs    uint64
	allocated  uint64
	writes     int64 // write syscalls of this process; -1 when unknown
	cpus       int   // CPUs this process may run on; 0 when unknown
	serverCPUs int   // CPUs the server process may run on; 0 when unknown or in process
}

func takeSample(serverPID int) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{mallocs: ms.Mallocs, allocated: ms.TotalAlloc, cpu: selfCPU(), serverCPU: -1, writes: selfWrites()}
	s.cpus = affinityCPUs()
	if serverPID > 0 {
		s.serverCPU = procCPU(serverPID)
		s.serverCPUs = affinityCPUsOf(serverPID)
	}
	s.wall = time.Now()
	return s
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// procCPU reads utime + stime of every thread of a process from /proc/PID/stat, or -1.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+s) * time.Second / userHZ
}

// selfWrites reads the write syscall count of this process (syscw in /proc/self/io), or -1.
func selfWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// loadAverage reads /proc/loadavg (zeros where unavailable).
func loadAverage() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		out[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return out
}

// figures computes the per-message figures of a phase of n messages between a and b.
func figures(n, size int, a, b sample) Figures {
	secs := b.wall.Sub(a.wall).Seconds()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	f := Figures{
		Msgs:             n,
		Seconds:          secs,
		MsgsPerSec:       float64(n) / secs,
		MBPerSec:         float64(n) * float64(size) / secs / 1e6,
		ClientCPUPerMsg:  per(b.cpu - a.cpu),
		AllocsPerMsg:     float64(b.mallocs-a.mallocs) / float64(n),
		AllocBytesPerMsg: float64(b.allocated-a.allocated) / float64(n),
	}
	if a.serverCPU >= 0 && b.serverCPU >= 0 {
		v := per(b.serverCPU - a.serverCPU)
		f.ServerCPUPerMsg = &v
	}
	if a.writes >= 0 && b.writes >= 0 {
		v := float64(b.writes-a.writes) / float64(n)
		f.WritesPerMsg = &v
	}
	busy := func(cpu time.Duration, cpus int) *float64 {
		if cpus <= 0 || secs <= 0 {
			return nil
		}
		v := cpu.Seconds() / secs / float64(cpus)
		return &v
	}
	f.ClientCPUBusy = busy(b.cpu-a.cpu, b.cpus)
	if f.ServerCPUPerMsg != nil {
		f.ServerCPUBusy = busy(b.serverCPU-a.serverCPU, b.serverCPUs)
	}
	return f
}

// histogram records latencies from many goroutines.
type histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newHistogram() *histogram {
	// 1 µs to 10 minutes, 3 significant digits.
	return &histogram{h: hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)}
}

func (h *histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 1)
	h.mu.Lock()
	_ = h.h.RecordValue(min(us, h.h.HighestTrackableValue()))
	h.mu.Unlock()
}

func (h *histogram) latency(of string) *Percentiles {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return nil
	}
	return &Percentiles{
		Of: of, Count: h.h.TotalCount(),
		P50: float64(h.h.ValueAtQuantile(50)), P90: float64(h.h.ValueAtQuantile(90)),
		P99: float64(h.h.ValueAtQuantile(99)), Max: float64(h.h.Max()),
	}
}

// median returns the median of each figure over runs (the mean of the middle two for an
// even count).
func median(runs []Figures) Figures {
	if len(runs) == 1 {
		return runs[0]
	}
	med := func(get func(*Figures) float64) float64 {
		v := make([]float64, len(runs))
		for i := range runs {
			v[i] = get(&runs[i])
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	medOpt := func(get func(*Figures) *float64) *float64 {
		for i := range runs {
			if get(&runs[i]) == nil {
				return nil
			}
		}
		m := med(func(f *Figures) float64 { return *get(f) })
		return &m
	}
	out := Figures{
		Msgs:              runs[0].Msgs,
		Seconds:           med(func(f *Figures) float64 { return f.Seconds }),
		MsgsPerSec:        med(func(f *Figures) float64 { return f.MsgsPerSec }),
		MBPerSec:          med(func(f *Figures) float64 { return f.MBPerSec }),
		ClientCPUPerMsg:   med(func(f *Figures) float64 { return f.ClientCPUPerMsg }),
		ServerCPUPerMsg:   medOpt(func(f *Figures) *float64 { return f.ServerCPUPerMsg }),
		ClientCPUBusy:     medOpt(func(f *Figures) *float64 { return f.ClientCPUBusy }),
		ServerCPUBusy:     medOpt(func(f *Figures) *float64 { return f.ServerCPUBusy }),
		AllocsPerMsg:      med(func(f *Figures) float64 { return f.AllocsPerMsg }),
		AllocBytesPerMsg:  med(func(f *Figures) float64 { return f.AllocBytesPerMsg }),
		WritesPerMsg:      medOpt(func(f *Figures) *float64 { return f.WritesPerMsg }),
		SignaturesPerMsg:  medOpt(func(f *Figures) *float64 { return f.SignaturesPerMsg }),
		StoredBytesPerMsg: medOpt(func(f *Figures) *float64 { return f.StoredBytesPerMsg }),
		MsgsOutPerMsg:     medOpt(func(f *Figures) *float64 { return f.MsgsOutPerMsg }),
		MsgsInPerMsg:      medOpt(func(f *Figures) *float64 { return f.MsgsInPerMsg }),
	}
	if runs[0].Latency != nil {
		l := *runs[0].Latency
		ok := true
		for i := range runs {
			ok = ok && runs[i].Latency != nil
		}
		if ok {
			l.Count = 0
			for i := range runs {
				l.Count += runs[i].Latency.Count
			}
			l.P50 = med(func(f *Figures) float64 { return f.Latency.P50 })
			l.P90 = med(func(f *Figures) float64 { return f.Latency.P90 })
			l.P99 = med(func(f *Figures) float64 { return f.Latency.P99 })
			l.Max = med(func(f *Figures) float64 { return f.Latency.Max })
			out.Latency = &l
		}
	}
	return out
}
