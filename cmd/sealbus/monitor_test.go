package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sealbus/sealbus/operator"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func scrapeText(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: the exposition does not parse: %v", url, err)
	}
	return fams
}

func sample(fams map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		match := label == ""
		for _, l := range m.Label {
			match = match || l.GetName() == label && l.GetValue() == value
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
		return m.Gauge.GetValue(), true
	}
	return 0, false
}

// TestMonitorCommand runs `sealbus dev --metrics` and `sealbus monitor --setup --json`: 20 bad
// logins become one brute-force incident, printed as JSON, counted on the monitor's /metrics
// (parsed with the Prometheus text parser), recorded in the operator-owned account; /healthz
// answers ok on both; dev's /metrics shows the server's connections; a --config file with an
// unknown field is a usage error.
func TestMonitorCommand(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	devAddr := freeAddr(t)
	di := startDev(t, home, "--metrics", devAddr)

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"brute_force":{"failures":5},"nonsense":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCode(t, sb(t, home, "monitor", "--config", bad, "--for", "1s"), exitUsage, "nonsense")

	monAddr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"--home", home, "monitor", "--setup", "--json",
			"--metrics", monAddr, "--poll", "1s", "--quiet", "2s"}, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + monAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor never healthy: %v\n%s", err, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 20 {
		if nc, err := nats.Connect(di.URL, nats.RootCAs(di.CAFile), nats.UserInfo("admin", "guess"), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("a password login connected")
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		fams := scrapeText(t, "http://"+monAddr+"/metrics")
		alerts, _ := sample(fams, "sealbus_monitor_alerts_total", "kind", "brute_force")
		events, _ := sample(fams, "sealbus_monitor_events_total", "source", "auth_error")
		if alerts > 1 {
			t.Fatalf("%v brute-force alerts counted, want 1", alerts)
		}
		if alerts == 1 && events >= 20 {
			checkLabels(t, fams)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("brute-force alerts %v, auth_error events %v counted on /metrics, want 1 and 20\n%s", alerts, events, errb.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		devFams := scrapeText(t, "http://"+devAddr+"/metrics")
		if v, ok := sample(devFams, "sealbus_server_connections", "server", "sealbus-dev"); ok && v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev's /metrics shows no server connections")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + devAddr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("dev /healthz: %v %v", resp, err)
	}
	// Stopped (as by Ctrl-C) once the incident is resolved.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), `"state":"resolved"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the brute-force incident never resolved:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("monitor exited %d\n%s", code, errb.String())
	}
	var opened, resolved int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var a operator.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("not a JSON alert: %q", line)
		}
		if a.Kind == operator.AlertBruteForce {
			switch a.State {
			case operator.AlertOpen:
				opened++
			case operator.AlertResolved:
				resolved++
				if a.Count != 20 || len(a.Causes) != 1 || a.Causes[0] != operator.CausePassword {
					t.Fatalf("resolved alert %+v", a)
				}
			}
		}
	}
	if opened != 1 || resolved != 1 {
		t.Fatalf("brute force opened %d, resolved %d times:\n%s", opened, resolved, out.String())
	}

	// Both reports are signed audit events of the operator account in the operator-wide view.
	var alerts []viewJSON
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		alerts = alerts[:0]
		for _, line := range strings.Split(strings.TrimSpace(ok(t, home, "audit", "tail", "--all", "--json", "--account", "SEALBUS",
			"--type", operator.AlertEventPrefix+string(operator.AlertBruteForce))), "\n") {
			var v viewJSON
			if line != "" && json.Unmarshal([]byte(line), &v) == nil {
				alerts = append(alerts, v)
			}
		}
		if len(alerts) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(alerts) != 2 {
		t.Fatalf("%d brute-force alerts in the view, want the open and the resolved report; the monitor's log:\n%s", len(alerts), errb.String())
	}
	for _, v := range alerts {
		if v.Verification.State != operator.StateVerified || v.StoredBy != "_admin" || v.Event == nil || v.Event.Data.Key == "" {
			t.Fatalf("alert record %+v, want verified, stored by the operator account's admin", v)
		}
	}
	if v := alerts[1]; v.Event.Data.Reason != string(operator.AlertResolved) || v.Event.Data.Sequence != 20 {
		t.Fatalf("resolved alert record %+v, want count 20", v.Event)
	}
	human := ok(t, home, "audit", "tail", "--all", "--account", "SEALBUS", "--type", operator.AlertEventPrefix+string(operator.AlertBruteForce))
	if !strings.Contains(human, "verified  _admin") || !strings.Contains(human, "(count 20: ") {
		t.Fatalf("audit tail --all:\n%s", human)
	}
}

// checkLabels fails on a label outside the monitor's low-cardinality set or a value that is a
// key, a subject or an address.
func checkLabels(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	allowed := map[string]bool{"kind": true, "source": true, "account": true, "stream": true, "consumer": true, "server": true}
	for name, f := range fams {
		if !strings.HasPrefix(name, "sealbus_") {
			t.Errorf("metric %s lacks the sealbus_ prefix", name)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				v := l.GetValue()
				if !allowed[l.GetName()] || len(v) >= 56 || strings.Contains(v, ".") {
					t.Errorf("%s: label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
}
