package consumers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/clientseam"
)

func noClaims() *jwt.AccountClaims { return nil }

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
	h := verify(opener, func(s string) (string, string) { return acct, s }, func(string) string { return "alice" }, replayAuthority{claims: noClaims}, nil)(func(_ context.Context, m *Message) error {
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

// replayFixture is an account (identity and signing key), a sender and a receiver, and an
// envelope sealed at t0 and delivered ten minutes later: stale on the live path.
type replayFixture struct {
	acctKey, sk nkeys.KeyPair
	acct        string
	claims      *jwt.AccountClaims
	opener      *envelope.Opener
	env         []byte
	t0, stored  time.Time
	k           *clientseam.Counters
	handled     []*Message
	h           Handler
}

func newReplayFixture(t *testing.T) *replayFixture {
	t.Helper()
	f := &replayFixture{t0: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), k: new(clientseam.Counters)}
	f.stored = f.t0.Add(10 * time.Minute)
	f.acctKey, _ = nkeys.CreateAccount()
	f.acct, _ = f.acctKey.PublicKey()
	f.sk, _ = nkeys.CreateAccount()
	skPub, _ := f.sk.PublicKey()
	f.claims = jwt.NewAccountClaims(f.acct)
	f.claims.SigningKeys.Add(skPub)
	alice, bob := identity(t), identity(t)
	sealer, err := envelope.NewSealer(alice, envelope.WithClock(func() time.Time { return f.t0 }))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealer.Seal(envelope.Header{Account: f.acct, Subject: "orders.new"}, []byte("late"), []envelope.Recipient{bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	f.env = s.Data
	policy := envelope.SenderPolicyFunc(func(_, sender, _ string, _ time.Time) error {
		if sender != alice.SigningKey() {
			return envelope.ErrSenderUnknown
		}
		return nil
	})
	f.opener, err = envelope.NewOpener([]*envelope.Identity{bob}, policy, envelope.WithClock(func() time.Time { return f.stored }))
	if err != nil {
		t.Fatal(err)
	}
	auth := replayAuthority{account: f.acct, claims: func() *jwt.AccountClaims { return f.claims }, window: envelope.DefaultFreshness}
	g, err := newGuard(guardConfig{store: newMemStore(), hmacKey: testGuardKey, window: envelope.DefaultFreshness,
		ackWait: time.Second, lease: time.Second, storeWait: 200 * time.Millisecond, capacity: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	f.h = Chain(func(_ context.Context, m *Message) error {
		f.handled = append(f.handled, m)
		return nil
	}, verify(f.opener, func(s string) (string, string) { return f.acct, s }, func(string) string { return "alice" }, auth, f.k),
		g.middleware)
	return f
}

// grant signs a replay authorization with key (nil: the signing key) after mutate.
func (f *replayFixture) grant(t *testing.T, key nkeys.KeyPair, issued time.Time, mutate func(*ReplayGrant)) string {
	t.Helper()
	sum := sha256.Sum256(f.env)
	g := ReplayGrant{DeadLetter: 12, Stream: "ORDERS", Durable: "billing", Subject: "orders.new",
		EnvelopeSHA256: hex.EncodeToString(sum[:]), Expires: issued.Add(2 * time.Minute)}
	if mutate != nil {
		mutate(&g)
	}
	payload, _ := json.Marshal(g)
	if key == nil {
		key = f.sk
	}
	rec, err := envelope.SignRecord(key, envelope.Record{Kind: envelope.RecordReplayAuthorization, Time: issued, Account: f.acct, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(rec)
}

func (f *replayFixture) deliver(seq uint64, header string) (*fakeMsg, error) {
	m := newFakeMsg("orders.new", f.env, seq, 1)
	m.md.Timestamp = f.stored
	if header != "" {
		m.header.Set(HeaderReplayAuthorization, header)
	}
	return m, f.h(context.Background(), message(m))
}

// TestVerifyAuthorizedReplay: a stale envelope is handled only with a valid replay
// authorization, once, marked as a replay with its original creation time; without one, or
// with one that does not verify or does not bind this delivery, it stays stale.
func TestVerifyAuthorizedReplay(t *testing.T) {
	f := newReplayFixture(t)
	issued := f.stored.Add(-time.Second)
	stale := func(name string, header string) {
		t.Helper()
		before := len(f.handled)
		_, err := f.deliver(100, header)
		if r, _ := envelope.ReasonOf(err); r != envelope.ReasonStale || len(f.handled) != before {
			t.Errorf("%s: %v (handled %d)", name, err, len(f.handled)-before)
		}
	}
	stale("no authorization", "")
	other, _ := nkeys.CreateAccount()
	stale("signed by a key the account does not list", f.grant(t, other, issued, nil))
	stale("for other envelope bytes", f.grant(t, nil, issued, func(g *ReplayGrant) { g.EnvelopeSHA256 = hex.EncodeToString(make([]byte, 32)) }))
	stale("for another subject", f.grant(t, nil, issued, func(g *ReplayGrant) { g.Subject = "orders.other" }))
	stale("for another stream", f.grant(t, nil, issued, func(g *ReplayGrant) { g.Stream = "OTHER" }))
	stale("issued long before the replay was stored", f.grant(t, nil, f.stored.Add(-time.Hour), func(g *ReplayGrant) { g.Expires = f.stored.Add(time.Hour) }))
	stale("expired", f.grant(t, nil, issued, func(g *ReplayGrant) { g.Expires = f.stored }))
	stale("not base64", "!!!")
	stale("a record of another kind", base64.StdEncoding.EncodeToString(must(envelope.SignRecord(f.sk, envelope.Record{Kind: envelope.RecordAudit, Time: issued, Account: f.acct, Payload: []byte(`{}`)}))))
	scopedClaims := *f.claims
	skPub, _ := f.sk.PublicKey()
	scopedClaims.SigningKeys = jwt.SigningKeys{}
	scopedClaims.SigningKeys.AddScopedSigner(&jwt.UserScope{Kind: jwt.UserScopeType, Key: skPub, Role: "x"})
	real := f.claims
	f.claims = &scopedClaims
	stale("signed by a scoped signing key", f.grant(t, nil, issued, nil))
	f.claims = real

	// Valid: handled once, marked, with the original creation time.
	auth := f.grant(t, nil, issued, nil)
	if _, err := f.deliver(101, auth); err != nil {
		t.Fatalf("authorized replay: %v", err)
	}
	if len(f.handled) != 1 {
		t.Fatalf("handled %d", len(f.handled))
	}
	m := f.handled[0]
	skPub, _ = f.sk.PublicKey()
	if m.Replay == nil || m.Replay.OrderedBy != skPub || m.Replay.DeadLetter != 12 || !m.Created.Equal(f.t0) || !m.Replay.Issued.Equal(issued) || string(m.Payload) != "late" {
		t.Fatalf("replayed message %+v / %+v", m, m.Replay)
	}
	// The same authorization again, at another stream position: a replay of the replay.
	if _, err := f.deliver(102, auth); !isReason(err, ReasonReplay) {
		t.Fatalf("second use of the authorization: %v", err)
	}
	// The same position again (a redelivery): acknowledged, not handled again.
	if _, err := f.deliver(101, auth); err != nil || len(f.handled) != 1 {
		t.Fatalf("redelivery: %v, handled %d", err, len(f.handled))
	}
	// For another durable of the stream: acknowledged without calling the handler.
	if _, err := f.deliver(103, f.grant(t, nil, issued, func(g *ReplayGrant) { g.Durable = "shipping" })); err != nil || len(f.handled) != 1 || f.k.ReplaysSkipped.Load() != 1 {
		t.Fatalf("replay for another durable: %v, handled %d, skipped %d", err, len(f.handled), f.k.ReplaysSkipped.Load())
	}
}

func isReason(err error, r string) bool {
	got, ok := DeadLetterReason(err)
	return ok && got == r
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVerifyConcurrentMessagesKeepTheirOwnFields opens envelopes on many goroutines at once,
// genuine ones and tampered copies interleaved: verify opens into pooled scratch, so a handler
// must still see only its own envelope's payload, id and subject, and a refused envelope must
// reach no handler.
func TestVerifyConcurrentMessagesKeepTheirOwnFields(t *testing.T) {
	acct := account(t)
	alice, bob := identity(t), identity(t)
	sealer := must(envelope.NewSealer(alice))
	opener := must(envelope.NewOpener([]*envelope.Identity{bob}, envelope.SenderPolicyFunc(func(string, string, string, time.Time) error { return nil })))
	h := verify(opener, func(s string) (string, string) { return acct, s }, func(string) string { return "alice" }, replayAuthority{claims: noClaims}, nil)(func(_ context.Context, m *Message) error {
		if want := "payload of " + m.Subject; string(m.Payload) != want {
			return fmt.Errorf("subject %s got payload %q", m.Subject, m.Payload)
		}
		if m.ID != m.UnverifiedHeaders.Get(jetstream.MsgIDHeader) {
			return fmt.Errorf("subject %s got id %s", m.Subject, m.ID)
		}
		return nil
	})
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each*2)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				subject := fmt.Sprintf("orders.g%d.m%d", g, i)
				s, err := sealer.Seal(envelope.Header{Account: acct, Subject: subject}, []byte("payload of "+subject), []envelope.Recipient{bob.Recipient()})
				if err != nil {
					errs <- err
					return
				}
				fm := newFakeMsg(subject, s.Data, uint64(g*each+i+1), 1)
				fm.header.Set(jetstream.MsgIDHeader, s.ID.String())
				if err := h(context.Background(), message(fm)); err != nil {
					errs <- err
				}
				bad := append([]byte(nil), s.Data...)
				bad[len(bad)-80] ^= 1
				if err := h(context.Background(), message(newFakeMsg(subject, bad, 1, 1))); err == nil {
					errs <- fmt.Errorf("tampered copy of %s reached the handler", subject)
				} else if _, ok := DeadLetterReason(err); !ok {
					errs <- fmt.Errorf("tampered copy of %s: %v", subject, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
