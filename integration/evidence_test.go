package integration

import (
	"testing"
	"time"

	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/sealbustest"
)

// TestEvidenceAttacksInContainers plays the findings of the evidence review against a real
// nats-server container (operator mode, TLS, encrypted JetStream), each as a hostile service
// holding only its own creds and raw NATS access: a crafted dead letter cannot make the
// operator's replay act with its rights; forged audit and dead-letter records are marked and
// counted, never verified; deduplication ids cannot be taken first; a flood is refused at the
// flooder and every other writer's records stay; a replay ten minutes after the envelope's
// creation is handled once and marked; claimed senders are labelled; admin actions are verified
// events. The same suite runs in-process in operator.TestEvidenceAttacks.
func TestEvidenceAttacksInContainers(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 5*time.Minute)
	w, err := sealbustest.ProvisionWorld(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealbustest.RunEvidenceAttacks(t, w)
}
