package consumers

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/envelope"
)

func TestParseAckSubject(t *testing.T) {
	ts := time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)
	tn := "1796378400123456789"
	if time.Unix(0, 1796378400123456789).UTC() != ts {
		t.Fatal("test timestamp")
	}
	good := map[string]ackSubject{
		"$JS.ACK.ORDERS.billing.3.41.40." + tn + ".7":                    {stream: "ORDERS", consumer: "billing", delivered: 3, seq: 41, stored: ts},
		"$JS.ACK._.AHASH.ORDERS.billing.1.2.2." + tn + ".0.Xr4nd":        {stream: "ORDERS", consumer: "billing", delivered: 1, seq: 2, stored: ts},
		"$JS.ACK.hub.AHASH.ORDERS.billing.1.2.2." + tn + ".0":            {stream: "ORDERS", consumer: "billing", delivered: 1, seq: 2, stored: ts},
		"$JS.ACK.hub.AHASH.ORDERS.billing.1.2.2." + tn + ".0.tok.future": {stream: "ORDERS", consumer: "billing", delivered: 1, seq: 2, stored: ts},
	}
	for s, want := range good {
		got, ok := parseAckSubject(s)
		if !ok || got.stream != want.stream || got.consumer != want.consumer || got.delivered != want.delivered || got.seq != want.seq || !got.stored.Equal(want.stored) {
			t.Errorf("parseAckSubject(%q) = %+v, %v; want %+v", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"",
		"_INBOX.x.y",
		"$JS.ACK.ORDERS.billing.3.41.40." + tn, // 8 tokens
		"$JS.ACK.d.h.ORDERS.billing.3.41.40." + tn,              // 10 tokens
		"$JS.ACK.ORDERS.billing.x.41.40." + tn + ".7",           // delivered not a number
		"$JS.ACK.ORDERS.billing.3.-41.40." + tn + ".7",          // sign
		"$JS.ACK.ORDERS.billing.3.41.40.99999999999999999999.7", // time too long
		"$JS.ACK.ORDERS.billing.3.41.40.9999999999999999999.7",  // time past int64
		"$JS.ACK.ORDERS..3.41.40." + tn + ".7",                  // empty consumer
		"$JS.ACK.ORDERS.billing.3.41.40." + tn + ".",            // empty pending
		"$JS.ACKX.ORDERS.billing.3.41.40." + tn + ".7",
	} {
		if d, ok := parseAckSubject(s); ok {
			t.Errorf("parseAckSubject(%q) = %+v, accepted", s, d)
		}
	}
}

func TestIDStringReusesOnlyTheExactHeader(t *testing.T) {
	var id envelope.MessageID
	for i := range id {
		id[i] = byte(0xa0 + i)
	}
	want := id.String()
	for _, h := range []nats.Header{
		nil,
		{},
		{jetstream.MsgIDHeader: {want}},
		{jetstream.MsgIDHeader: {"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"}}, // same id, other case: not reused
		{jetstream.MsgIDHeader: {"another"}},
	} {
		if got := idString(id, h); got != want {
			t.Errorf("idString with header %v = %q, want %q", h, got, want)
		}
	}
	exact := nats.Header{jetstream.MsgIDHeader: {want}}
	upper := nats.Header{jetstream.MsgIDHeader: {"A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"}}
	if n := testing.AllocsPerRun(100, func() { _ = idString(id, exact) }); n != 0 {
		t.Errorf("idString with the exact header allocates %v times: the header's string is not reused", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = idString(id, upper) }); n != 1 {
		t.Errorf("idString with another header allocates %v times, want 1 (a string of its own)", n)
	}
}
