package bus

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
)

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestEventFillAndRoundTrip(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	e := Event{Type: EventRejected, Subject: "orders.new", Data: EventData{
		Reason: "bad_signature", Stream: "ORDERS", Sequence: 7, Consumer: "billing",
		Sender: "UABC", MessageID: "00ff", Error: strings.Repeat("e", 2000),
	}}
	if err := e.Fill(EventSource("AACC", "billing"), now, zeroReader{}); err != nil {
		t.Fatal(err)
	}
	if e.SpecVersion != "1.0" || e.ID != strings.Repeat("0", 32) || e.Source != "sealbus://AACC/billing" ||
		e.Time.Location() != time.UTC || !e.Time.Equal(now) || e.DataContentType != "application/json" {
		t.Fatalf("fill: %+v", e)
	}
	if len(e.Data.Error) > maxEventError+3 {
		t.Fatalf("error text not truncated: %d bytes", len(e.Data.Error))
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	data := m["data"].(map[string]any)
	if data["seq"].(float64) != 7 || data["reason"] != "bad_signature" {
		t.Errorf("data: %v", data)
	}
	back, err := ParseEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != e.ID || !reflect.DeepEqual(back.Data, e.Data) || !back.Time.Equal(e.Time) {
		t.Fatalf("round trip: %+v vs %+v", back, e)
	}
}

func TestEventValidate(t *testing.T) {
	good := Event{SpecVersion: "1.0", ID: "1", Source: "s", Type: "sealbus.x", Time: time.Now()}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Event){
		"version": func(e *Event) { e.SpecVersion = "0.3" },
		"id":      func(e *Event) { e.ID = "" },
		"source":  func(e *Event) { e.Source = "" },
		"type":    func(e *Event) { e.Type = "other.x" },
		"type2":   func(e *Event) { e.Type = "sealbus." },
		"upper":   func(e *Event) { e.Type = "sealbus.X" },
		"time":    func(e *Event) { e.Time = time.Time{} },
	} {
		e := good
		mut(&e)
		if err := e.Validate(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestEvidenceMsgID: the Nats-Msg-Id of a record is keyed by the writer's secret token, so no
// other writer (without the token) can compute it and occupy it first; it is stable for
// retries.
func TestEvidenceMsgID(t *testing.T) {
	const tok, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	a := EvidenceMsgID(tok, "dlq", "ORDERS.42")
	if a != EvidenceMsgID(tok, "dlq", "ORDERS.42") || len(a) != 32 {
		t.Fatalf("id %q not stable", a)
	}
	for _, b := range []string{EvidenceMsgID(other, "dlq", "ORDERS.42"), EvidenceMsgID(tok, "audit", "ORDERS.42"), EvidenceMsgID(tok, "dlq", "ORDERS.43"),
		"dlq.ORDERS.42"} {
		if a == b {
			t.Fatalf("ids collide: %s", b)
		}
	}
	if accounts.AuditSubject("billing", tok) == accounts.AuditSubject("shipping", tok) {
		t.Fatal("subjects of two writers collide")
	}
}
