package consumers

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

type auditLog struct{ events []bus.Event }

func (a *auditLog) write(_ context.Context, e bus.Event) error {
	a.events = append(a.events, e)
	return nil
}

func TestDeadLetterCopiesBytesAndTerminates(t *testing.T) {
	at := time.Date(2025, 5, 6, 7, 8, 9, 10, time.UTC)
	for _, tc := range []struct {
		name      string
		err       error
		reason    string
		eventType string
	}{
		{"envelope rejection", &envelope.RejectError{Reason: envelope.ReasonBadSignature, Err: errors.New("sig\nfails")}, "bad_signature", bus.EventRejected},
		{"replay", &DeadLetterError{Reason: ReasonReplay, Err: errors.New("seen")}, "replay", bus.EventRejected},
		{"max deliveries", &DeadLetterError{Reason: ReasonMaxDeliveries, Err: errors.New("db")}, "max_deliveries", bus.EventDeadLettered},
		{"handler reject", Reject("poison", nil), "poison", bus.EventDeadLettered},
		{"bad reason", Reject("Bad Reason!", nil), "rejected", bus.EventDeadLettered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := new(fakePublisher)
			var audit auditLog
			k := new(clientseam.Counters)
			h := deadLetter(pub, audit.write, k, func() time.Time { return at }, slog.New(slog.DiscardHandler))(
				func(context.Context, *Message) error { return tc.err })
			body := []byte("\x01\x01 the envelope bytes \x00\xff")
			f := newFakeMsg("orders.new", body, 42, 3)
			if err := h(context.Background(), message(f)); err != nil {
				t.Fatal(err)
			}
			if len(pub.msgs) != 1 {
				t.Fatalf("%d dead letters", len(pub.msgs))
			}
			dl := pub.msgs[0]
			if dl.Subject != "sealbus.dlq."+tc.reason || string(dl.Data) != string(body) {
				t.Fatalf("dead letter %q %q", dl.Subject, dl.Data)
			}
			for hdr, want := range map[string]string{
				HeaderReason: tc.reason, HeaderSourceStream: "ORDERS", HeaderSourceSequence: "42",
				HeaderSourceSubject: "orders.new", HeaderConsumer: "billing", HeaderTime: at.Format(time.RFC3339Nano),
				HeaderDelivered: "3", "Nats-Msg-Id": "dlq.ORDERS.42",
			} {
				if got := dl.Header.Get(hdr); got != want {
					t.Errorf("%s = %q, want %q", hdr, got, want)
				}
			}
			if e := dl.Header.Get(HeaderError); e == "" || strings.ContainsAny(e, "\r\n") {
				t.Errorf("error header %q", e)
			}
			if _, _, terms := f.settlements(); terms != 1 || !strings.Contains(f.reason, tc.reason) {
				t.Fatalf("source not terminated: %d terms, reason %q", terms, f.reason)
			}
			if len(audit.events) != 1 {
				t.Fatalf("%d audit events", len(audit.events))
			}
			ev := audit.events[0]
			if ev.Type != tc.eventType || ev.Data.Reason != tc.reason || ev.Data.Sequence != 42 || ev.Data.Stream != "ORDERS" || ev.Data.DLQSeq != 1 {
				t.Fatalf("audit event %+v", ev)
			}
			_, dls := k.ByReason()
			if dls[tc.reason] != 1 {
				t.Fatalf("dead-letter counter %v", dls)
			}
		})
	}
}

func TestDeadLetterFailureLeavesMessageForRedelivery(t *testing.T) {
	pub := &fakePublisher{fail: dlqAttempts}
	var audit auditLog
	k := new(clientseam.Counters)
	h := deadLetter(pub, audit.write, k, time.Now, nil)(func(context.Context, *Message) error {
		return Reject("poison", nil)
	})
	f := newFakeMsg("orders.new", []byte("x"), 1, 1)
	if err := h(context.Background(), message(f)); err != nil {
		t.Fatal(err)
	}
	if _, naks, terms := f.settlements(); naks != 1 || terms != 0 {
		t.Fatalf("naks %d terms %d: a message whose dead letter failed must be redelivered, not terminated", naks, terms)
	}
	if k.DLQFailed.Load() != 1 || len(audit.events) != 0 {
		t.Fatal("failure not counted, or audited as dead-lettered")
	}
}

// TestDeadLetterOnLastDeliveryKeepsTrying: the server will not redeliver a message after its
// last allowed delivery, so its dead letter is retried past dlqAttempts until written.
func TestDeadLetterOnLastDeliveryKeepsTrying(t *testing.T) {
	pub := &fakePublisher{fail: dlqAttempts + 2}
	var audit auditLog
	k := new(clientseam.Counters)
	h := deadLetter(pub, audit.write, k, time.Now, nil)(func(context.Context, *Message) error {
		return Reject("poison", nil)
	})
	f := newFakeMsg("orders.new", []byte("x"), 1, 5)
	m := message(f)
	m.last = true
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, naks, terms := f.settlements(); naks != 0 || terms != 1 {
		t.Fatalf("naks %d terms %d: the dead letter must be written, then the source terminated", naks, terms)
	}
	if len(pub.msgs) != 1 || k.DLQFailed.Load() != 0 || len(audit.events) != 1 {
		t.Fatalf("%d dead letters, %d failures counted, %d audit events; want 1, 0, 1", len(pub.msgs), k.DLQFailed.Load(), len(audit.events))
	}
}

// TestDeadLetterOnLastDeliveryStopsWithTheConsumption: the retries end when the consumption's
// context ends; the failure is then counted and logged.
func TestDeadLetterOnLastDeliveryStopsWithTheConsumption(t *testing.T) {
	pub := &fakePublisher{fail: 1 << 30}
	k := new(clientseam.Counters)
	h := deadLetter(pub, (&auditLog{}).write, k, time.Now, nil)(func(context.Context, *Message) error {
		return Reject("poison", nil)
	})
	f := newFakeMsg("orders.new", []byte("x"), 1, 5)
	m := message(f)
	m.last = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h(ctx, m); err != nil {
		t.Fatal(err)
	}
	if k.DLQFailed.Load() != 1 {
		t.Fatal("a dead letter never written was not counted")
	}
}

func TestDeadLetterPassesOtherErrors(t *testing.T) {
	pub := new(fakePublisher)
	plain := errors.New("plain")
	h := deadLetter(pub, (&auditLog{}).write, new(clientseam.Counters), time.Now, nil)(func(context.Context, *Message) error { return plain })
	if err := h(context.Background(), message(newFakeMsg("s", nil, 1, 1))); err != plain || len(pub.msgs) != 0 {
		t.Fatalf("plain error: %v, %d dead letters", err, len(pub.msgs))
	}
}
