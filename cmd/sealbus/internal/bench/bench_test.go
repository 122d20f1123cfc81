package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestModesInProcess runs every mode on a tiny load with the server in process: every message
// is counted once, the figures of each mode are there (latency where the mode times it,
// signatures for sealbus only) and the table prints. It asserts no timing.
func TestModesInProcess(t *testing.T) {
	for _, mode := range Modes {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var notices bytes.Buffer
			rep, err := Run(ctx, Config{Mode: mode, Msgs: 120, Warmup: 10, Size: 64, Rate: 2000, Raw: true, InProcess: true, Notices: &notices})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(notices.String(), "UNSEALED") {
				t.Fatalf("raw run not announced: %q", notices.String())
			}
			if rep.Raw == nil || rep.Ratio == nil || rep.Ratio.MsgsPerSec <= 0 {
				t.Fatalf("raw side or ratio missing: %+v", rep)
			}
			for name, f := range map[string]Figures{"sealbus": rep.Sealbus, "raw": *rep.Raw} {
				if f.Msgs != 120 || f.MsgsPerSec <= 0 || f.Seconds <= 0 {
					t.Fatalf("%s: %+v", name, f)
				}
				if (f.Latency != nil) != (mode != ModeSub) {
					t.Fatalf("%s in %s mode: latency %+v", name, mode, f.Latency)
				}
				if f.Latency != nil && f.Latency.Count != 120 {
					t.Fatalf("%s: %d latencies for 120 messages", name, f.Latency.Count)
				}
				if f.StoredBytesPerMsg == nil {
					t.Fatalf("%s: stored bytes not measured", name)
				}
			}
			if rep.Sealbus.SignaturesPerMsg == nil || *rep.Sealbus.SignaturesPerMsg <= 0 || rep.Raw.SignaturesPerMsg != nil {
				t.Fatalf("signatures: sealbus %v, raw %v", rep.Sealbus.SignaturesPerMsg, rep.Raw.SignaturesPerMsg)
			}
			if rep.Sealbus.ServerCPUPerMsg != nil {
				t.Fatal("server CPU reported for an in-process server")
			}
			var out bytes.Buffer
			if err := rep.Print(&out); err != nil || !strings.Contains(out.String(), "ratio") {
				t.Fatalf("table: %v\n%s", err, out.String())
			}
		})
	}
}

func TestConfigRefusals(t *testing.T) {
	for name, cfg := range map[string]Config{
		"mode":                {Mode: "sideways", InProcess: true},
		"tiny payload":        {Size: 4, InProcess: true},
		"latency, two pubs":   {Mode: ModeLatency, Publishers: 2, InProcess: true},
		"in flight < workers": {Workers: 8, InFlight: 4, InProcess: true},
		"pinned in process":   {InProcess: true, ServerCPUs: "0"},
		"no server":           {},
		"recipients":          {Recipients: 300, InProcess: true},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestMedian(t *testing.T) {
	v := func(x float64) *float64 { return &x }
	runs := []Figures{
		{Msgs: 10, MsgsPerSec: 3, ServerCPUPerMsg: v(30), Latency: &Percentiles{Count: 10, P50: 5}},
		{Msgs: 10, MsgsPerSec: 1, ServerCPUPerMsg: v(10), Latency: &Percentiles{Count: 10, P50: 1}},
		{Msgs: 10, MsgsPerSec: 2, ServerCPUPerMsg: v(20), Latency: &Percentiles{Count: 10, P50: 9}},
	}
	m := median(runs)
	if m.MsgsPerSec != 2 || *m.ServerCPUPerMsg != 20 || m.Latency.P50 != 5 || m.Latency.Count != 30 {
		t.Fatalf("median of three: %+v %+v", m, m.Latency)
	}
	m = median(runs[:2])
	if m.MsgsPerSec != 2 || *m.ServerCPUPerMsg != 20 {
		t.Fatalf("median of two: %+v", m)
	}
	runs[1].ServerCPUPerMsg = nil
	if median(runs).ServerCPUPerMsg != nil {
		t.Fatal("a figure missing from one run has a median")
	}
}

func TestBitset(t *testing.T) {
	b := newBitset(130)
	if !b.set(0) || !b.set(129) || b.set(129) || b.set(0) || !b.set(64) {
		t.Fatal("set does not report duplicates")
	}
	if !b.set(1000) || !b.set(-1) {
		t.Fatal("out of range index refused")
	}
}

func TestProcCPU(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	if d := procCPU(os.Getpid()); d <= 0 {
		t.Fatalf("own CPU time from /proc: %v", d)
	}
	if procCPU(1<<30) != -1 {
		t.Fatal("CPU time of a process that does not exist")
	}
}
