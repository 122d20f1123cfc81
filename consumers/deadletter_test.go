package consumers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// fakeDLQ records dead-letter records as the client's writer would be asked to write them.
type fakeDLQ struct {
	mu      sync.Mutex
	metas   [][]byte
	envs    [][]byte
	keys    []string
	fail    int  // fail this many writes first
	refused bool // the server refuses every write (quota full)
}

func (f *fakeDLQ) write(_ context.Context, key, _ string, meta, env []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused {
		return 0, fmt.Errorf("%w: quota", bus.ErrEvidenceRefused)
	}
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("timeout")
	}
	f.metas, f.envs, f.keys = append(f.metas, meta), append(f.envs, env), append(f.keys, key)
	return uint64(len(f.metas)), nil
}

func TestDeadLetterWritesSignedRecordAndTerminates(t *testing.T) {
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
			dlq := new(fakeDLQ)
			var audit auditLog
			k := new(clientseam.Counters)
			h := deadLetter(dlq.write, audit.write, k, slog.New(slog.DiscardHandler))(
				func(context.Context, *Message) error { return tc.err })
			body := []byte("\x01\x01 the envelope bytes \x00\xff")
			f := newFakeMsg("orders.new", body, 42, 3)
			if err := h(context.Background(), message(f)); err != nil {
				t.Fatal(err)
			}
			if len(dlq.metas) != 1 || !bytes.Equal(dlq.envs[0], body) || dlq.keys[0] != "ORDERS.42" {
				t.Fatalf("dead letters %d, key %v", len(dlq.metas), dlq.keys)
			}
			meta, err := ParseDeadLetterMeta(dlq.metas[0])
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			if meta.Reason != tc.reason || meta.Stream != "ORDERS" || meta.Sequence != 42 || meta.Subject != "orders.new" ||
				meta.Consumer != "billing" || meta.Delivered != 3 || meta.EnvelopeSize != len(body) || meta.EnvelopeSHA256 != hex.EncodeToString(sum[:]) ||
				meta.EnvelopeOmitted || meta.Error == "" || strings.ContainsAny(meta.Error, "\r\n") {
				t.Fatalf("metadata %+v", meta)
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

// TestDeadLetterLabelsClaims: an envelope that did not verify names a sender, account and
// message id only as claims, in the dead letter and in its audit event; verified fields stay
// empty (finding: the audit event named the claimed sender as if it were verified).
func TestDeadLetterLabelsClaims(t *testing.T) {
	v := loadEnvelopeVector(t, "ok-single")
	dlq := new(fakeDLQ)
	var audit auditLog
	h := deadLetter(dlq.write, audit.write, new(clientseam.Counters), nil)(func(context.Context, *Message) error {
		return &envelope.RejectError{Reason: envelope.ReasonBadSignature}
	})
	if err := h(context.Background(), message(newFakeMsg("orders.created", v, 7, 1))); err != nil {
		t.Fatal(err)
	}
	info, _ := envelope.Inspect(v)
	meta, err := ParseDeadLetterMeta(dlq.metas[0])
	if err != nil {
		t.Fatal(err)
	}
	ev := audit.events[0]
	for _, c := range []*bus.Claimed{meta.Claimed, ev.Data.Claimed} {
		if c == nil || c.Sender != info.Sender || c.Account != info.Account || c.MessageID != info.ID.String() || c.Subject != info.Subject {
			t.Fatalf("claims %+v", c)
		}
	}
	if meta.MessageID != "" || ev.Data.Sender != "" || ev.Data.MessageID != "" {
		t.Fatalf("an unverified envelope's fields presented as verified: %+v / %+v", meta, ev.Data)
	}
}

// TestDeadLetterOmitsLargeEnvelopes: an envelope above MaxDeadLetterEnvelope is named by its
// size and hash, not copied (it stays in its stream).
func TestDeadLetterOmitsLargeEnvelopes(t *testing.T) {
	dlq := new(fakeDLQ)
	h := deadLetter(dlq.write, (&auditLog{}).write, new(clientseam.Counters), nil)(func(context.Context, *Message) error {
		return &envelope.RejectError{Reason: envelope.ReasonTooLarge}
	})
	big := bytes.Repeat([]byte{1}, MaxDeadLetterEnvelope+1)
	if err := h(context.Background(), message(newFakeMsg("orders.new", big, 9, 1))); err != nil {
		t.Fatal(err)
	}
	meta, err := ParseDeadLetterMeta(dlq.metas[0])
	if err != nil {
		t.Fatal(err)
	}
	if dlq.envs[0] != nil || !meta.EnvelopeOmitted || meta.EnvelopeSize != len(big) {
		t.Fatalf("large envelope copied or not named: %+v", meta)
	}
}

// TestDeadLetterRefusedByQuota: when the server refuses the record (this service's quota is
// full), the message is terminated (it stays in its stream), the refusal counted, and the
// rejection still audited.
func TestDeadLetterRefusedByQuota(t *testing.T) {
	dlq := &fakeDLQ{refused: true}
	var audit auditLog
	k := new(clientseam.Counters)
	h := deadLetter(dlq.write, audit.write, k, nil)(func(context.Context, *Message) error {
		return &envelope.RejectError{Reason: envelope.ReasonMalformed}
	})
	f := newFakeMsg("orders.new", []byte("junk"), 3, 1)
	if err := h(context.Background(), message(f)); err != nil {
		t.Fatal(err)
	}
	if _, naks, terms := f.settlements(); naks != 0 || terms != 1 {
		t.Fatalf("naks %d terms %d", naks, terms)
	}
	if k.DLQRefused.Load() != 1 || len(audit.events) != 1 || audit.events[0].Data.DLQSeq != 0 {
		t.Fatalf("refused %d, events %+v", k.DLQRefused.Load(), audit.events)
	}
}

func TestDeadLetterFailureLeavesMessageForRedelivery(t *testing.T) {
	dlq := &fakeDLQ{fail: dlqAttempts}
	var audit auditLog
	k := new(clientseam.Counters)
	h := deadLetter(dlq.write, audit.write, k, nil)(func(context.Context, *Message) error {
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
	dlq := &fakeDLQ{fail: dlqAttempts + 2}
	var audit auditLog
	k := new(clientseam.Counters)
	h := deadLetter(dlq.write, audit.write, k, nil)(func(context.Context, *Message) error {
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
	if len(dlq.metas) != 1 || k.DLQFailed.Load() != 0 || len(audit.events) != 1 {
		t.Fatalf("%d dead letters, %d failures counted, %d audit events; want 1, 0, 1", len(dlq.metas), k.DLQFailed.Load(), len(audit.events))
	}
}

// TestDeadLetterOnLastDeliveryStopsWithTheConsumption: the retries end when the consumption's
// context ends; the failure is then counted and logged.
func TestDeadLetterOnLastDeliveryStopsWithTheConsumption(t *testing.T) {
	dlq := &fakeDLQ{fail: 1 << 30}
	k := new(clientseam.Counters)
	h := deadLetter(dlq.write, (&auditLog{}).write, k, nil)(func(context.Context, *Message) error {
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
	dlq := new(fakeDLQ)
	plain := errors.New("plain")
	h := deadLetter(dlq.write, (&auditLog{}).write, new(clientseam.Counters), nil)(func(context.Context, *Message) error { return plain })
	if err := h(context.Background(), message(newFakeMsg("s", nil, 1, 1))); err != plain || len(dlq.metas) != 0 {
		t.Fatalf("plain error: %v, %d dead letters", err, len(dlq.metas))
	}
}

func TestParseDeadLetterMetaIsStrict(t *testing.T) {
	good := `{"reason":"stale","stream":"ORDERS","seq":1,"subject":"a","consumer":"b","delivered":1,"stored":"2026-01-01T00:00:00Z","envelope_size":1,"envelope_sha256":"` + strings.Repeat("0", 64) + `"}`
	if _, err := ParseDeadLetterMeta([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"unknown field": strings.Replace(good, `"seq":1`, `"seq":1,"extra":1`, 1),
		"trailing":      good + "{}",
		"bad reason":    strings.Replace(good, "stale", "Stale!", 1),
		"no stream":     strings.Replace(good, `"ORDERS"`, `""`, 1),
		"short hash":    strings.Replace(good, strings.Repeat("0", 64), "00", 1),
		"not json":      "x",
	} {
		if _, err := ParseDeadLetterMeta([]byte(b)); !errors.Is(err, ErrBadDeadLetter) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// loadEnvelopeVector reads the envelope of one of envelope/testdata's conformance vectors (a
// well-formed envelope for tests that need one).
func loadEnvelopeVector(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "envelope", "testdata", name+".vec"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(data), "\n\n")
	env, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return env
}
