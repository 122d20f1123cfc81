package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestEvidenceRefusedIsReported: when a service's audit subject is full, the server refuses its
// records; the client counts each refusal and reports them on its overflow subject, at most one
// report per OverflowInterval, and Drain writes a report still pending.
func TestEvidenceRefusedIsReported(t *testing.T) {
	w, err := sealbustest.NewWorld(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Fill the intern's audit subject as the intern itself could, with raw publishes.
	in, err := sealbustest.NewInsider(ctx, w.Harness, sealbustest.Shop, sealbustest.Intern)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	own := accounts.AuditSubject(in.Name, in.Token)
	for {
		_, err := in.Publish(ctx, own, []byte("filler"), nil)
		var ae *jetstream.APIError
		if errors.As(err, &ae) && ae.ErrorCode == 10077 {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := w.Connect(ctx, sealbustest.Shop, sealbustest.Intern)
	if err != nil {
		t.Fatal(err)
	}
	refused := func() {
		t.Helper()
		if err := c.Audit(ctx, bus.Event{Type: "sealbus.test.over"}); !errors.Is(err, bus.ErrEvidenceRefused) {
			t.Fatalf("audit over quota: %v", err)
		}
	}
	// The first refusal is reported at once.
	refused()
	for deadline := time.Now().Add(10 * time.Second); c.Metrics().OverflowWritten != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no overflow report")
		}
	}
	// The next ones, within the interval, wait; Drain writes them.
	refused()
	refused()
	if n := c.Metrics().OverflowWritten; n != 1 {
		t.Fatalf("%d overflow reports within the interval", n)
	}
	if err := c.Drain(); err != nil {
		t.Fatal(err)
	}
	m := c.Metrics()
	if m.EvidenceRefused != 3 || m.AuditFailed != 3 {
		t.Fatalf("metrics %+v", m)
	}
	log, done, err := w.Harness.Provisioner().AuditLog(ctx, sealbustest.Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	recs, _, err := log.Tail(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var reports []map[string]uint64
	for _, r := range recs {
		if r.Verified() && r.Verification.Writer == sealbustest.Intern && r.Event.Type == bus.EventEvidenceRefused {
			if r.Subject != accounts.AuditOverflowSubject(in.Name, in.Token) {
				t.Fatalf("overflow report on %s", r.Subject)
			}
			reports = append(reports, r.Event.Data.Refused)
		}
	}
	if len(reports) != 2 || reports[0]["audit"] != 1 || reports[1]["audit"] != 2 || m.OverflowWritten != 2 {
		t.Fatalf("overflow reports %v (written %d)", reports, m.OverflowWritten)
	}
}
