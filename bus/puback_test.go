package bus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestParsePubAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PubAck
		fast bool
	}{
		{`{"stream":"ORDERS","seq":42}`, PubAck{Stream: "ORDERS", Sequence: 42}, true},
		{`{"stream":"ORDERS","seq":42,"duplicate":true}`, PubAck{Stream: "ORDERS", Sequence: 42, Duplicate: true}, true},
		{`{"stream":"ORDERS","seq":7,"duplicate":false,"domain":"hub"}`, PubAck{Stream: "ORDERS", Sequence: 7}, true},
		{`{"stream":"O","seq":18446744073709551615}`, PubAck{Stream: "O", Sequence: 18446744073709551615}, true},
		// Other shapes go through encoding/json and mean the same.
		{`{"seq":42,"stream":"ORDERS"}`, PubAck{Stream: "ORDERS", Sequence: 42}, false},
		{`{"stream":"OR\u0044ERS","seq":42}`, PubAck{Stream: "ORDERS", Sequence: 42}, false},
		{` {"stream":"ORDERS","seq":42} `, PubAck{Stream: "ORDERS", Sequence: 42}, false},
		{`{"stream":"ORDERS","seq":42,"duplicate":true,"val":"x"}`, PubAck{Stream: "ORDERS", Sequence: 42, Duplicate: true}, false},
	} {
		got, err := parsePubAck([]byte(tc.in), "")
		if err != nil || got != tc.want {
			t.Errorf("parsePubAck(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if _, fast := parsePubAckFast([]byte(tc.in), ""); fast != tc.fast {
			t.Errorf("parsePubAckFast(%s) took the fast path: %v, want %v", tc.in, fast, tc.fast)
		}
	}
	// Errors are jetstream's API errors, matched by jetstream's sentinels.
	_, err := parsePubAck([]byte(`{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`), "")
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream not found: %v", err)
	}
	var apiErr *jetstream.APIError
	_, err = parsePubAck([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`), "")
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10077 || retryable(err) {
		t.Fatalf("a stream limit must be a final API error: %v", err)
	}
	for _, bad := range []string{``, `{}`, `{"stream":"","seq":1}`, `{"stream":"A","seq":-1}`, `{"stream":"A","seq":1`, `nonsense`, `{"stream":"A","seq":12345678901234567890123}`, `{"stream":"A","seq":1,"duplicate":true}x`} {
		if a, err := parsePubAck([]byte(bad), ""); !errors.Is(err, jetstream.ErrInvalidJSAck) {
			t.Errorf("parsePubAck(%q) = %+v, %v; want ErrInvalidJSAck", bad, a, err)
		}
	}
	// The fast path agrees with encoding/json on what it accepts.
	for seq := uint64(0); seq < 2000; seq += 37 {
		in := fmt.Sprintf(`{"stream":"S%d","seq":%d,"duplicate":%v}`, seq, seq, seq%2 == 0)
		fast, ok := parsePubAckFast([]byte(in), "")
		var slow PubAck
		if ok {
			slow, _ = parsePubAck([]byte(" "+in), "") // the leading space forces encoding/json
		}
		if !ok || fast != slow {
			t.Fatalf("%s: fast %+v (%v), json %+v", in, fast, ok, slow)
		}
	}
	ack := []byte(`{"stream":"ORDERS","seq":42}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = parsePubAck(ack, "ORDERS") }); n != 0 {
		t.Fatalf("the usual ack costs %v allocations", n)
	}
	for _, bad := range []string{`{"stream":"A","seq":007}`, `{"stream":"A","seq":18446744073709551616}`} {
		if _, ok := parsePubAckFast([]byte(bad), ""); ok {
			t.Errorf("fast path accepted %s", bad)
		}
	}
}
