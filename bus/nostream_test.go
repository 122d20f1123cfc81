package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestPublishWithoutStreamFailsFast: a service reads alerts.> but no stream stores it; a
// publish there fails with ErrNoStream in well under 2 s instead of retrying for seconds.
func TestPublishWithoutStreamFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "ops", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []accounts.ServiceSpec{{Name: "pager", Publish: []string{"alerts.>"}}, {Name: "oncall", Subscribe: []string{"alerts.>"}}} {
		if _, err := sb.AddService(ctx, "ops", spec); err != nil {
			t.Fatal(err)
		}
	}
	pager, err := sealbustest.Connect(ctx, sb, "ops", "pager")
	if err != nil {
		t.Fatal(err)
	}
	defer pager.Close()
	start := time.Now()
	_, err = pager.Publish(ctx, "alerts.disk", []byte("x"))
	if !errors.Is(err, bus.ErrNoStream) {
		t.Fatalf("publish without a stream: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("ErrNoStream after %v", took)
	}
}
