package sealbusprom_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/sealbusprom"
	"github.com/sealbus/sealbus/sealbustest"
)

// scrape fetches url and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestCollectorsOverHTTP registers the client and consumption collectors of a publisher and
// a consumer in a registry of the test's own, serves it like a service would, and scrapes it
// with the Prometheus text parser while messages flow: the counters move with the traffic, an
// insider's junk shows as a rejection and a dead letter by reason, and no label holds a
// subject, a message id or a key.
func TestCollectorsOverHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := sealbustest.NewWorld(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	checkout, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer checkout.Close()
	billing, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Billing)
	if err != nil {
		t.Fatal(err)
	}
	defer billing.Close()
	handled := make(chan string, 100)
	cs, err := consumers.Consume(ctx, billing, sealbustest.OrdersStream, sealbustest.Billing, func(_ context.Context, m *consumers.Message) error {
		handled <- m.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(sealbusprom.NewClientCollector(checkout), sealbusprom.NewClientCollector(billing), sealbusprom.NewConsumptionCollector(cs))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	pub := map[string]string{"account": sealbustest.Shop, "service": sealbustest.Checkout}
	cons := map[string]string{"service": sealbustest.Billing, "stream": sealbustest.OrdersStream, "consumer": sealbustest.Billing}

	before := scrape(t, srv.URL)
	if v, ok := value(before, "sealbus_client_sent_messages_total", pub); !ok || v != 0 {
		t.Fatalf("sent before publishing: %v %v", v, ok)
	}
	if v, ok := value(before, "sealbus_client_directory_cards", pub); !ok || v == 0 {
		t.Fatalf("directory cards: %v %v", v, ok)
	}

	const n = 20
	var ids []string
	for i := range n {
		ack, err := checkout.Publish(ctx, fmt.Sprintf("orders.eu.%d", i), []byte(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ID)
	}
	insider, err := w.InsiderConn(ctx, sealbustest.Shop, sealbustest.Checkout)
	if err != nil {
		t.Fatal(err)
	}
	defer insider.Close()
	ijs, err := jetstream.New(insider)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ijs.Publish(ctx, "orders.eu.junk", []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("messages not handled")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var after map[string]*dto.MetricFamily
	for {
		after = scrape(t, srv.URL)
		// Acks of handled messages are confirmed a window at a time, after the handler returned:
		// the count catches up within a window (20 ms), so it is waited for with the dead letter.
		dl, _ := value(after, "sealbus_consumer_dead_letters_total", cons)
		acked, _ := value(after, "sealbus_consumer_acks_total", merge(cons, map[string]string{"result": "confirmed"}))
		if dl == 1 && acked >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %v dead letters (want 1 for the junk message), %v acks confirmed (want %d)", dl, acked, n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
	}{
		{"sealbus_client_sent_messages_total", pub, func(v float64) bool { return v == n }},
		{"sealbus_client_batch_signatures_total", pub, func(v float64) bool { return v >= 1 && v <= n }},
		{"sealbus_client_batch_size_messages", pub, func(v float64) bool { return v >= 1 }},
		{"sealbus_client_epoch_age_seconds", pub, func(v float64) bool { return v >= 0 }},
		{"sealbus_client_connected", pub, func(v float64) bool { return v == 1 }},
		{"sealbus_client_opened_messages_total", map[string]string{"service": sealbustest.Billing}, func(v float64) bool { return v == n }},
		{"sealbus_client_consumed_messages_total", cons, func(v float64) bool { return v >= n+1 }},
		{"sealbus_consumer_handled_messages_total", cons, func(v float64) bool { return v == n }},
		{"sealbus_process_duration_seconds", cons, func(v float64) bool { return v == n }},
		{"sealbus_consumer_rejected_total", merge(cons, map[string]string{"reason": "unknown_version"}), func(v float64) bool { return v == 1 }},
		{"sealbus_consumer_acks_total", merge(cons, map[string]string{"result": "confirmed"}), func(v float64) bool { return v >= n }},
		{"sealbus_client_audit_events_total", map[string]string{"service": sealbustest.Billing, "result": "written"}, func(v float64) bool { return v >= 1 }},
	}
	for _, c := range checks {
		v, ok := value(after, c.name, c.labels)
		if !ok || !c.want(v) {
			t.Errorf("%s%v = %v (present %v)", c.name, c.labels, v, ok)
		}
	}

	// Labels: a fixed set of names, and no value that is a subject, a message id or a key.
	allowed := map[string]bool{"account": true, "service": true, "stream": true, "consumer": true, "reason": true, "result": true}
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for name, f := range after {
		if !strings.HasPrefix(name, "sealbus_") {
			t.Errorf("metric %s lacks the sealbus_ prefix", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				v := l.GetValue()
				switch {
				case !allowed[l.GetName()]:
					t.Errorf("%s has label %s=%q", name, l.GetName(), v)
				case strings.Contains(v, "."), hexID.MatchString(v), len(v) == 56, slicesContains(ids, v):
					t.Errorf("%s label %s=%q looks like a subject, message id or user key", name, l.GetName(), v)
				}
			}
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
