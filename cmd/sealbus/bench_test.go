package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestBenchJSONSchema runs `sealbus bench pubsub --raw --json` on a tiny load with the server in
// a process of its own (this test binary acting as the sealbus command) and checks the JSON
// schema: every field is there with its type, both sides and the ratio are reported, and
// every figure says what it measured. It checks no timing.
func TestBenchJSONSchema(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SEALBUS_TEST_AS_MAIN", "1") // the server child process is this binary, as main
	r := sb(t, t.TempDir(), "bench", "pubsub", "--raw", "--json", "--msgs", "200", "--warmup", "50", "--runs", "2", "--recipients", "2", "--cards", "5")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "UNSEALED") {
		t.Fatalf("the raw run was not announced on stderr: %s", r.stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	want := func(m map[string]any, path, key, kind string) any {
		t.Helper()
		v, ok := m[key]
		if !ok {
			t.Fatalf("%s.%s missing", path, key)
		}
		if got := jsonKind(v); got != kind {
			t.Fatalf("%s.%s is %s (%v), want %s", path, key, got, v, kind)
		}
		return v
	}
	if want(doc, "", "schema", "string") != "sealbus-bench/1" || want(doc, "", "mode", "string") != "pubsub" {
		t.Fatalf("schema or mode: %v %v", doc["schema"], doc["mode"])
	}
	cfg := want(doc, "", "config", "object").(map[string]any)
	for _, k := range []string{"size", "msgs", "publishers", "consumers", "workers", "in_flight", "max_pending", "recipients", "cards", "runs", "warmup"} {
		want(cfg, "config", k, "number")
	}
	if cfg["msgs"] != 200.0 || cfg["recipients"] != 2.0 || cfg["cards"] != 5.0 || cfg["raw"] != true {
		t.Fatalf("config: %v", cfg)
	}
	layout := want(doc, "", "layout", "object").(map[string]any)
	if want(layout, "layout", "server", "string") != "process" {
		t.Fatalf("layout: %v", layout)
	}
	for _, k := range []string{"server_pid", "num_cpu", "gomaxprocs"} {
		want(layout, "layout", k, "number")
	}
	for _, k := range []string{"url", "go_version", "stream", "raw_stream"} {
		want(layout, "layout", k, "string")
	}
	want(layout, "layout", "load_average_before", "array")

	figureKeys := map[string]string{
		"msgs": "number", "seconds": "number", "msgs_per_s": "number", "mb_per_s": "number",
		"latency_us": "object", "client_cpu_us_per_msg": "number", "server_cpu_us_per_msg": "number",
		"allocs_per_msg": "number", "alloc_bytes_per_msg": "number", "stored_bytes_per_msg": "number",
		"client_msgs_out_per_msg": "number", "client_msgs_in_per_msg": "number",
		"client_cpu_busy": "number", "server_cpu_busy": "number",
	}
	checkFigures := func(path string, f map[string]any, sealbus bool) {
		t.Helper()
		for k, kind := range figureKeys {
			want(f, path, k, kind)
		}
		if f["msgs"] != 200.0 {
			t.Fatalf("%s.msgs = %v", path, f["msgs"])
		}
		// Each message was published once and delivered once at least: a side whose traffic
		// reads below that counts the wrong connections.
		for _, k := range []string{"client_msgs_out_per_msg", "client_msgs_in_per_msg"} {
			if v, _ := f[k].(float64); v < 1 {
				t.Fatalf("%s.%s = %v, want at least 1", path, k, f[k])
			}
		}
		// The clients worked during the phase; the server's CPU time comes in clock ticks, so a
		// phase this short may read zero there.
		if v, _ := f["client_cpu_busy"].(float64); v <= 0 {
			t.Fatalf("%s.client_cpu_busy = %v, want above 0", path, f["client_cpu_busy"])
		}
		if v, _ := f["server_cpu_busy"].(float64); v < 0 {
			t.Fatalf("%s.server_cpu_busy = %v", path, f["server_cpu_busy"])
		}
		if _, ok := f["write_syscalls_per_msg"]; !ok {
			t.Fatalf("%s.write_syscalls_per_msg missing", path)
		}
		if sealbus {
			want(f, path, "signatures_per_msg", "number")
		} else if f["signatures_per_msg"] != nil {
			t.Fatalf("%s.signatures_per_msg = %v for raw", path, f["signatures_per_msg"])
		}
		lat := f["latency_us"].(map[string]any)
		want(lat, path+".latency_us", "of", "string")
		for _, k := range []string{"count", "p50", "p90", "p99", "max"} {
			want(lat, path+".latency_us", k, "number")
		}
	}
	checkFigures("sealbus", want(doc, "", "sealbus", "object").(map[string]any), true)
	checkFigures("raw", want(doc, "", "raw", "object").(map[string]any), false)
	ratio := want(doc, "", "ratio", "object").(map[string]any)
	if v := want(ratio, "ratio", "msgs_per_s", "number").(float64); v <= 0 {
		t.Fatalf("ratio %v", v)
	}
	want(ratio, "ratio", "added_p50_us", "number")
	want(ratio, "ratio", "paired_msgs_per_s", "number")
	if rs := want(ratio, "ratio", "run_msgs_per_s", "array").([]any); len(rs) != 2 {
		t.Fatalf("ratio.run_msgs_per_s has %d entries for 2 runs", len(rs))
	}
	runs := want(doc, "", "runs", "array").([]any)
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	for i, run := range runs {
		m := run.(map[string]any)
		checkFigures(fmt.Sprintf("runs[%d].sealbus", i), want(m, "runs", "sealbus", "object").(map[string]any), true)
		checkFigures(fmt.Sprintf("runs[%d].raw", i), want(m, "runs", "raw", "object").(map[string]any), false)
	}
	meas := want(doc, "", "measures", "object").(map[string]any)
	for k := range figureKeys {
		if s, _ := meas[k].(string); s == "" {
			t.Fatalf("measures.%s does not say what was measured", k)
		}
	}
	want(doc, "", "notes", "array")
}

// TestBenchTable prints the table without --json and says when raw was not run.
func TestBenchTable(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SEALBUS_TEST_AS_MAIN", "1")
	r := sb(t, t.TempDir(), "bench", "pub", "--msgs", "100", "--warmup", "20")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{"msgs/s", "client CPU µs/msg", "signatures/msg", "raw nats.go: not run", "what each figure measured:"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("table lacks %q:\n%s", s, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "raw nats.go is not run") {
		t.Fatalf("stderr does not say raw is not run: %s", r.stderr)
	}
	if r := sb(t, t.TempDir(), "bench", "sideways"); r.code != exitUsage {
		t.Fatalf("unknown mode: exit %d, %s", r.code, r.stderr)
	}
	if r := sb(t, t.TempDir(), "bench", "pub", "--in-process", "--server-cpus", "0"); r.code != exitUsage {
		t.Fatalf("pinning an in-process server: exit %d, %s", r.code, r.stderr)
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// TestBenchRunningServer runs `sealbus bench --server URL --account` against a running dev
// server with the home's keystore, twice: the second run reuses the bench's services and
// streams. The account's own streams are left alone.
func TestBenchRunningServer(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	di := startDev(t, home)
	for i := range 2 {
		var rep struct {
			Layout struct {
				Server string `json:"server"`
			} `json:"layout"`
			Sealbus struct {
				Msgs      int      `json:"msgs"`
				ServerCPU *float64 `json:"server_cpu_us_per_msg"`
			} `json:"sealbus"`
			Ratio *struct{} `json:"ratio"`
		}
		okJSON(t, home, &rep, "bench", "pubsub", "--raw", "--server", di.URL, "--ca", di.CAFile, "--account", "shop", "--msgs", "100", "--warmup", "10")
		if rep.Layout.Server != "remote" || rep.Sealbus.Msgs != 100 || rep.Ratio == nil {
			t.Fatalf("run %d: %+v", i, rep)
		}
		if rep.Sealbus.ServerCPU != nil {
			t.Fatalf("run %d: server CPU reported for a server the bench did not start", i)
		}
	}
	if r := sb(t, home, "bench", "pub", "--server", di.URL, "--ca", di.CAFile); r.code != exitUsage {
		t.Fatalf("--server without --account: exit %d, %s", r.code, r.stderr)
	}
}
