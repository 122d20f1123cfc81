package operator_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestLastReadsInOrderAndLeavesNoConsumer: Last returns the last n messages in order, and
// repeated reads leave no consumer behind on the server.
func TestLastReadsInOrderAndLeavesNoConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.AddAccount(ctx, "shop", accounts.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddStream(ctx, "shop", operator.StreamSpec{Name: "LOG", Subjects: []string{"log.>"}}); err != nil {
		t.Fatal(err)
	}
	nc, err := sb.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "log.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		var got []byte
		last, err := operator.ReadLast(ctx, js, "LOG", 3, func(m jetstream.Msg) error {
			got = append(got, m.Data()[0])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if last != 10 || string(got) != string([]byte{7, 8, 9}) {
			t.Fatalf("last %d, read %v; want 10 and [7 8 9]", last, got)
		}
	}
	st, err := js.Stream(ctx, "LOG")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left on the stream after the reads, want 0", info.State.Consumers)
	}
}
