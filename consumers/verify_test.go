package consumers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

func identity(t *testing.T) *envelope.Identity {
	t.Helper()
	u, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	x, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	us, _ := u.Seed()
	xs, _ := x.Seed()
	id, err := envelope.NewIdentity(us, xs)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func account(t *testing.T) string {
	t.Helper()
	a, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := a.PublicKey()
	return pub
}

func TestVerify(t *testing.T) {
	acct := account(t)
	alice, bob := identity(t), identity(t)
	sealer, err := envelope.NewSealer(alice)
	if err != nil {
		t.Fatal(err)
	}
	policy := envelope.SenderPolicyFunc(func(_, sender, _ string, _ time.Time) error {
		if sender != alice.SigningKey() {
			return envelope.ErrSenderUnknown
		}
		return nil
	})
	opener, err := envelope.NewOpener([]*envelope.Identity{bob}, policy)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealer.Seal(envelope.Header{Account: acct, Subject: "orders.new", ContentType: "text/plain"}, []byte("hello"), []envelope.Recipient{bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	var got *Message
	h := verify(opener, func(s string) (string, string) { return acct, s }, func(string) string { return "alice" })(func(_ context.Context, m *Message) error {
		got = m
		return nil
	})
	if err := h(context.Background(), message(newFakeMsg("orders.new", s.Data, 1, 1))); err != nil {
		t.Fatal(err)
	}
	if got == nil || string(got.Payload) != "hello" || got.Sender != "alice" || got.SenderKey != alice.SigningKey() ||
		got.ID != s.ID.String() || got.ContentType != "text/plain" || got.Account != acct || !got.Verified() {
		t.Fatalf("verified message: %+v", got)
	}

	// Moved to another subject: rejected before the handler, with the envelope's reason.
	got = nil
	err = h(context.Background(), message(newFakeMsg("orders.other", s.Data, 2, 1)))
	if r, ok := DeadLetterReason(err); !ok || r != string(envelope.ReasonSubjectMismatch) || got != nil {
		t.Fatalf("moved envelope: %v (handler called: %v)", err, got != nil)
	}
	// Tampered.
	bad := append([]byte(nil), s.Data...)
	bad[len(bad)/2] ^= 1
	err = h(context.Background(), message(newFakeMsg("orders.new", bad, 3, 1)))
	var re *envelope.RejectError
	if !errors.As(err, &re) || got != nil {
		t.Fatalf("tampered envelope: %v", err)
	}
}
