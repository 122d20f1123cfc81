package consumers

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestAnswer: what the reply subscription makes of an answer: none (the sweeper's nil) and
// status messages are errors, a "no responders" status the one nats.go callers know; an
// answer with a body, or an ack's empty confirmation, is the answer.
func TestAnswer(t *testing.T) {
	status := func(code, desc string) *nats.Msg {
		return &nats.Msg{Header: nats.Header{"Status": {code}, "Description": {desc}}}
	}
	if _, err := answer(nil); !errors.Is(err, errNoAnswer) {
		t.Fatalf("no answer: %v", err)
	}
	if _, err := answer(status("503", "")); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("no responders: %v", err)
	}
	if _, err := answer(status("408", "Request Timeout")); err == nil {
		t.Fatal("a 408 status was taken for an answer")
	}
	for _, m := range []*nats.Msg{{}, {Data: []byte(`{"stream":"S","seq":3}`)}, {Data: []byte("x"), Header: nats.Header{"Nats-Msg-Id": {"a"}}}} {
		if got, err := answer(m); err != nil || got != m {
			t.Fatalf("answer %+v: %v", m, err)
		}
	}
}
