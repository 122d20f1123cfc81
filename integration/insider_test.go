package integration

import (
	"testing"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestInsiderAttacksInContainers plays the insider review's findings 1 to 4 against a real
// nats-server in a container, with the same checks the in-process tests run on the embedded
// server (sealbustest.AttackDirectory, AttackConnections, AttackStream): a hostile service
// with raw NATS access cannot create consumers on the directory or get anything stored in it,
// fresh clients start and a revocation reaches a running client meanwhile (1, 2); a flood on
// a sibling subject fails at the flooder and removes nothing (3); the connection guard, run
// on the host as an operator runs `sealbus guard`, keeps a service within its connection
// quota while its neighbour connects (4). Each prints what it measured.
func TestInsiderAttacksInContainers(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 5*time.Minute)
	w, err := sealbustest.ProvisionWorld(ctx, s.Deployment, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("directory", func(t *testing.T) {
		r, err := sealbustest.AttackDirectory(ctx, w, sealbustest.Shipping, 5)
		t.Log(r)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stream flood", func(t *testing.T) {
		r, err := sealbustest.AttackStream(ctx, s.Deployment)
		t.Log(r)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("connections", func(t *testing.T) {
		r, err := sealbustest.AttackConnections(ctx, s.Deployment, s.Guard(), 48, 8, 8, 5)
		t.Log(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kicked == 0 {
			t.Fatal("the guard closed nothing")
		}
	})
}
