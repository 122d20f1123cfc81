package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/sealbustest"
)

// The same provisioning code runs on the embedded server and on a nats-server container: both
// are sealbustest.Harness.
func TestRunOnEveryHarness(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) sealbustest.Harness
	}{
		{"embedded", func(t *testing.T) sealbustest.Harness {
			sb, err := sealbustest.StartSandbox(context.Background(), sealbustest.SandboxOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sb.Close() })
			return sb
		}},
		{"container", func(t *testing.T) sealbustest.Harness { return natstest.StartServer(t).Deployment }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := run(ctx, &out, h, 3); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 4 {
				t.Fatalf("want the provisioning line and 3 handled messages:\n%s", out.String())
			}
			for i, l := range lines[1:] {
				if !strings.HasPrefix(l, "ledger handled invoices.eu.") || !strings.Contains(l, " from issuer: {\"invoice\":") {
					t.Errorf("line %d: %q", i+1, l)
				}
			}
		})
	}
}
