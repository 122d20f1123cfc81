package envelope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sealbus/sealbus/envelope/internal/format"
	"github.com/sealbus/sealbus/envelope/internal/merkle"
	"github.com/sealbus/sealbus/envelope/internal/suite"
)

type world struct {
	alice, bob, carol, mallory *Identity
	account                    string
	sealer                     *Sealer
	delivery                   Delivery
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{
		alice:   testIdentity(t, "alice"),
		bob:     testIdentity(t, "bob"),
		carol:   testIdentity(t, "carol"),
		mallory: testIdentity(t, "mallory"),
		account: testAccount(t, "tenant"),
	}
	var err error
	w.sealer, err = NewSealer(w.alice, WithRand(detRand("world")), WithClock(fixedClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	w.delivery = Delivery{Account: w.account, Subject: "orders.created", Stored: t0.Add(time.Second)}
	return w
}

func (w *world) header() Header {
	return Header{Account: w.account, Subject: "orders.created", ContentType: "application/json"}
}

func (w *world) opener(t testing.TB, id *Identity, opts ...Option) *Opener {
	t.Helper()
	o, err := NewOpener([]*Identity{id}, allowOnly(w.alice.SigningKey()), append([]Option{WithClock(fixedClock(t0.Add(time.Second)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// resign re-encodes a modified envelope as a batch of one signed by id, so that a test can
// reach the checks after the signature.
func resign(id *Identity, e *format.Envelope) []byte {
	b := e.AppendHeader(nil)
	b = e.AppendPayload(b)
	root := merkle.LeafHash(b)
	e.LeafIndex, e.TreeSize, e.Path = 0, 1, nil
	copy(e.Signature[:], ed25519.Sign(id.signPriv, suite.Statement(1, root)))
	return e.AppendSignature(b)
}

func mustParse(t testing.TB, b []byte) *format.Envelope {
	t.Helper()
	e, err := format.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEveryReason(t *testing.T) {
	w := newWorld(t)
	payload := []byte(`{"order":42}`)
	sealed, err := w.sealer.Seal(w.header(), payload, []Recipient{w.bob.Recipient(), w.carol.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	good := sealed.Data
	bobKey := w.bob.curvePub
	bobEntry := func(e *format.Envelope) *format.Recipient { return findRecipient(e.Recipients, &bobKey) }

	policy := func(err error) SenderPolicy {
		return SenderPolicyFunc(func(string, string, string, time.Time) error { return err })
	}
	type tc struct {
		name     string
		data     func() []byte
		delivery func(d Delivery) Delivery
		opener   func() *Opener
		want     Reason
	}
	mod := func(f func(e *format.Envelope)) func() []byte {
		return func() []byte {
			e := mustParse(t, good)
			f(e)
			return resign(w.alice, e)
		}
	}
	flip := func(off int) func() []byte {
		return func() []byte {
			b := bytes.Clone(good)
			b[off] ^= 0x01
			return b
		}
	}
	cases := []tc{
		{name: "too large", data: func() []byte { return make([]byte, MinMaxSize+1) }, opener: func() *Opener { return w.opener(t, w.bob, WithMaxSize(MinMaxSize)) }, want: ReasonTooLarge},
		{name: "truncated", data: func() []byte { return good[:len(good)-1] }, want: ReasonMalformed},
		{name: "trailing", data: func() []byte { return append(bytes.Clone(good), 0) }, want: ReasonMalformed},
		{name: "empty", data: func() []byte { return nil }, want: ReasonMalformed},
		{name: "version", data: func() []byte { b := bytes.Clone(good); b[0] = 2; return b }, want: ReasonVersion},
		{name: "version before parse", data: func() []byte { return []byte{0} }, want: ReasonVersion},
		{name: "suite", data: func() []byte { b := bytes.Clone(good); b[1] = 0; return b }, want: ReasonSuite},
		{name: "account", data: func() []byte { return good }, delivery: func(d Delivery) Delivery { d.Account = testAccount(t, "other"); return d }, want: ReasonAccountMismatch},
		{name: "subject", data: func() []byte { return good }, delivery: func(d Delivery) Delivery { d.Subject = "orders.deleted"; return d }, want: ReasonSubjectMismatch},
		{name: "stale past", data: func() []byte { return good }, delivery: func(d Delivery) Delivery { d.Stored = t0.Add(DefaultFreshness + time.Millisecond); return d }, want: ReasonStale},
		{name: "stale future", data: func() []byte { return good }, delivery: func(d Delivery) Delivery { d.Stored = t0.Add(-DefaultFreshness - time.Millisecond); return d }, want: ReasonStale},
		{name: "expired at stored", data: mod(func(e *format.Envelope) { e.Expires = e.Created + 500 }), want: ReasonExpired},
		{name: "expired now", data: mod(func(e *format.Envelope) { e.Expires = e.Created + 1500 }), delivery: func(d Delivery) Delivery { d.Stored = t0.Add(time.Millisecond); return d },
			opener: func() *Opener { return w.opener(t, w.bob, WithClock(fixedClock(t0.Add(2*time.Second)))) }, want: ReasonExpired},
		{name: "sender unknown", data: func() []byte { return good }, opener: func() *Opener {
			o, _ := NewOpener([]*Identity{w.bob}, policy(errors.New("no card")), WithClock(fixedClock(t0)))
			return o
		}, want: ReasonSenderUnknown},
		{name: "sender revoked", data: func() []byte { return good }, opener: func() *Opener {
			o, _ := NewOpener([]*Identity{w.bob}, policy(fmt.Errorf("card: %w", ErrSenderRevoked)), WithClock(fixedClock(t0)))
			return o
		}, want: ReasonSenderRevoked},
		{name: "sender forbidden", data: func() []byte { return good }, opener: func() *Opener {
			o, _ := NewOpener([]*Identity{w.bob}, policy(fmt.Errorf("card: %w", ErrSenderForbidden)), WithClock(fixedClock(t0)))
			return o
		}, want: ReasonSenderForbidden},
		{name: "sender substituted", data: func() []byte {
			e := mustParse(t, good)
			e.Sender = w.mallory.signPub
			return resign(w.mallory, e)
		}, want: ReasonSenderUnknown},
		{name: "not recipient", data: func() []byte { return good }, opener: func() *Opener { return w.opener(t, w.mallory) }, want: ReasonNotRecipient},
		{name: "signature", data: flip(len(good) - 1), want: ReasonBadSignature},
		{name: "header byte", data: flip(2), want: ReasonBadSignature},
		{name: "ciphertext byte", data: flip(len(good) - 64 - 9 - 20), want: ReasonBadSignature},
		{name: "proof index", data: func() []byte {
			e := mustParse(t, good)
			e.LeafIndex = 1
			return e.Marshal()
		}, want: ReasonBadProof},
		{name: "proof size", data: func() []byte {
			e := mustParse(t, good)
			e.TreeSize = 2
			return e.Marshal()
		}, want: ReasonBadProof},
		{name: "low-order epoch", data: mod(func(e *format.Envelope) { e.EpochKey = [32]byte{1} }), want: ReasonBadKey},
		{name: "zero epoch", data: mod(func(e *format.Envelope) { e.EpochKey = [32]byte{} }), want: ReasonBadKey},
		{name: "unwrap", data: mod(func(e *format.Envelope) { bobEntry(e).Wrapped[0] ^= 1 }), want: ReasonUnwrap},
		{name: "unwrap other epoch", data: mod(func(e *format.Envelope) { e.EpochKey = w.carol.curvePub }), want: ReasonUnwrap},
		{name: "commitment", data: mod(func(e *format.Envelope) { e.Commitment[0] ^= 1 }), want: ReasonKeyCommitment},
		{name: "decrypt", data: mod(func(e *format.Envelope) { e.Ciphertext = bytes.Clone(e.Ciphertext); e.Ciphertext[0] ^= 1 }), want: ReasonDecrypt},
		{name: "decrypt tag", data: mod(func(e *format.Envelope) {
			e.Ciphertext = bytes.Clone(e.Ciphertext)
			e.Ciphertext[len(e.Ciphertext)-1] ^= 1
		}), want: ReasonDecrypt},
		{name: "decrypt header as AD", data: mod(func(e *format.Envelope) { e.ContentType = "text/plain" }), want: ReasonDecrypt},
	}
	seen := map[Reason]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := w.opener(t, w.bob)
			if c.opener != nil {
				o = c.opener()
			}
			d := w.delivery
			if c.delivery != nil {
				d = c.delivery(d)
			}
			got, err := o.Open(c.data(), d)
			if got != nil {
				t.Fatalf("opened, want rejection %s", c.want)
			}
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RejectError", err)
			}
			if re.Reason != c.want {
				t.Fatalf("reason %s (%v), want %s", re.Reason, err, c.want)
			}
			if !errors.Is(err, &RejectError{Reason: c.want}) {
				t.Fatalf("errors.Is with the reason fails")
			}
			seen[c.want] = true
		})
	}
	for _, r := range AllReasons() {
		if !seen[r] {
			t.Errorf("reason %s not exercised", r)
		}
	}
	// The honest envelope still opens for both recipients.
	for _, id := range []*Identity{w.bob, w.carol} {
		got, err := w.opener(t, id).Open(good, w.delivery)
		if err != nil || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("honest open failed: %v", err)
		}
	}
}

func TestCachesAvoidCrypto(t *testing.T) {
	w := newWorld(t)
	to := []Recipient{w.bob.Recipient(), w.carol.Recipient(), w.mallory.Recipient()}
	before := x25519Ops.Load()
	for i := 0; i < 50; i++ {
		if _, err := w.sealer.Seal(w.header(), []byte("x"), to); err != nil {
			t.Fatal(err)
		}
	}
	if got := x25519Ops.Load() - before; got != 3 {
		t.Fatalf("50 seals to 3 recipients did %d X25519 operations, want 3 (one per recipient per epoch)", got)
	}

	msgs := make([]Message, 64)
	for i := range msgs {
		msgs[i] = Message{Header: w.header(), Payload: []byte{byte(i)}, To: to}
	}
	batch, err := w.sealer.SealBatch(msgs)
	if err != nil {
		t.Fatal(err)
	}
	o := w.opener(t, w.bob)
	before = x25519Ops.Load()
	for i, s := range batch {
		got, err := o.Open(s.Data, w.delivery)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if got.LeafIndex != uint32(i) || got.TreeSize != 64 || got.Payload[0] != byte(i) {
			t.Fatalf("member %d: wrong index, size or payload", i)
		}
	}
	if got := x25519Ops.Load() - before; got != 1 {
		t.Fatalf("opening 64 members did %d X25519 operations, want 1", got)
	}
	if n := o.roots.len(); n != 1 {
		t.Fatalf("root cache holds %d entries after one batch, want 1", n)
	}

	// A member whose signature bytes differ from the cached one is verified again (and fails).
	bad := bytes.Clone(batch[5].Data)
	bad[len(bad)-1] ^= 1
	if _, err := o.Open(bad, w.delivery); !errors.Is(err, &RejectError{Reason: ReasonBadSignature}) {
		t.Fatalf("altered signature of a cached batch: %v, want bad_signature", err)
	}

	// With the cache disabled nothing is remembered and every member still opens.
	o0 := w.opener(t, w.bob, WithRootCache(0))
	for _, s := range batch[:3] {
		if _, err := o0.Open(s.Data, w.delivery); err != nil {
			t.Fatal(err)
		}
	}
	if o0.roots.len() != 0 {
		t.Fatalf("disabled root cache holds entries")
	}
}

func TestEpochRotation(t *testing.T) {
	w := newWorld(t)
	now := t0
	s, err := NewSealer(w.alice, WithClock(func() time.Time { return now }), WithEpoch(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	epochOf := func() string {
		sl, err := s.Seal(w.header(), nil, []Recipient{w.bob.Recipient()})
		if err != nil {
			t.Fatal(err)
		}
		info, err := Inspect(sl.Data)
		if err != nil {
			t.Fatal(err)
		}
		return info.EpochKey
	}
	e1 := epochOf()
	now = now.Add(59 * time.Second)
	if epochOf() != e1 {
		t.Fatalf("epoch key changed inside the epoch")
	}
	now = now.Add(time.Second)
	if epochOf() == e1 {
		t.Fatalf("epoch key did not change after the epoch")
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[int, int](2)
	c.add(1, 1)
	c.add(2, 2)
	c.get(1)
	c.add(3, 3)
	if _, ok := c.get(2); ok {
		t.Fatalf("least recently used entry not evicted")
	}
	if _, ok := c.get(1); !ok {
		t.Fatalf("recently used entry evicted")
	}
	if c.len() != 2 {
		t.Fatalf("len %d", c.len())
	}
}
