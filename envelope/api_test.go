package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

func seed(t testing.TB, p nkeys.PrefixByte, label string) []byte {
	t.Helper()
	k := sha256.Sum256([]byte("api test " + label))
	s, err := nkeys.EncodeSeed(p, k[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ident(t testing.TB, name string) *envelope.Identity {
	t.Helper()
	id, err := envelope.NewIdentity(seed(t, nkeys.PrefixByteUser, name+"u"), seed(t, nkeys.PrefixByteCurve, name+"x"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func account(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pk, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func trust(keys ...string) envelope.SenderPolicy {
	return envelope.SenderPolicyFunc(func(_, sender, _ string, _ time.Time) error {
		for _, k := range keys {
			if k == sender {
				return nil
			}
		}
		return envelope.ErrSenderUnknown
	})
}

func TestIdentityFromNkeys(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	curve, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	us, _ := user.Seed()
	cs, _ := curve.Seed()
	id, err := envelope.NewIdentity(us, cs)
	if err != nil {
		t.Fatal(err)
	}
	upk, _ := user.PublicKey()
	cpk, _ := curve.PublicKey()
	if id.SigningKey() != upk || id.EncryptionKey() != cpk {
		t.Fatalf("public keys differ from nkeys: %s %s vs %s %s", id.SigningKey(), id.EncryptionKey(), upk, cpk)
	}
	if id.Recipient().String() != cpk {
		t.Fatalf("Recipient().String() = %s", id.Recipient().String())
	}
	r, err := envelope.ParseRecipient(cpk)
	if err != nil || r != id.Recipient() {
		t.Fatalf("ParseRecipient: %v", err)
	}

	for _, c := range []struct{ u, x []byte }{{cs, us}, {us, us}, {cs, cs}, {[]byte("SUxx"), cs}, {us, nil}} {
		if _, err := envelope.NewIdentity(c.u, c.x); !errors.Is(err, envelope.ErrInvalidKey) {
			t.Errorf("NewIdentity(%.3s, %.3s): %v, want ErrInvalidKey", c.u, c.x, err)
		}
	}
	id.Wipe()
	if _, err := envelope.NewSealer(id); !errors.Is(err, envelope.ErrInvalidKey) {
		t.Fatalf("NewSealer with wiped identity: %v", err)
	}
}

func TestParseRecipientRejects(t *testing.T) {
	enc := func(raw []byte) string {
		s, err := nkeys.Encode(nkeys.PrefixByteCurve, raw)
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	p := append(bytes.Repeat([]byte{0xff}, 31), 0x7f)
	p[0] = 0xed // 2^255-19, non-canonical zero
	top := make([]byte, 32)
	top[0], top[31] = 9, 0x80 // base point with the top bit set
	one := make([]byte, 32)
	one[0] = 1
	user, _ := nkeys.CreateUser()
	upk, _ := user.PublicKey()
	for name, k := range map[string]string{
		"zero":        enc(make([]byte, 32)),
		"one":         enc(one),
		"p":           enc(p),
		"top bit":     enc(top),
		"user key":    upk,
		"garbage":     "Xnotakey",
		"empty":       "",
		"order eight": enc([]byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}),
	} {
		if _, err := envelope.ParseRecipient(k); !errors.Is(err, envelope.ErrInvalidKey) {
			t.Errorf("%s: %v, want ErrInvalidKey", name, err)
		}
	}
	nine := make([]byte, 32)
	nine[0] = 9
	if _, err := envelope.ParseRecipient(enc(nine)); err != nil {
		t.Errorf("base point rejected: %v", err)
	}
}

func TestRoundTripAndInspect(t *testing.T) {
	alice, bob, carol := ident(t, "alice"), ident(t, "bob"), ident(t, "carol")
	acct := account(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	s, err := envelope.NewSealer(alice, envelope.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	h := envelope.Header{Account: acct, Subject: "billing.invoice.paid", ContentType: "application/json; charset=utf-8", Expires: now.Add(time.Hour)}
	payload := []byte(`{"invoice":7}`)
	sl, err := s.Seal(h, payload, []envelope.Recipient{carol.Recipient(), bob.Recipient(), bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	if len(sl.ID.String()) != 32 || strings.ToLower(sl.ID.String()) != sl.ID.String() {
		t.Fatalf("message id string %q", sl.ID)
	}
	if id, err := envelope.ParseMessageID(sl.ID.String()); err != nil || id != sl.ID {
		t.Fatalf("ParseMessageID: %v", err)
	}
	if b, err := sl.ID.AppendText([]byte("id=")); err != nil || string(b) != "id="+sl.ID.String() {
		t.Fatalf("AppendText = %q, %v", b, err)
	}
	d := envelope.Delivery{Account: acct, Subject: h.Subject, Stored: now.Add(20 * time.Millisecond)}
	for _, id := range []*envelope.Identity{bob, carol} {
		o, err := envelope.NewOpener([]*envelope.Identity{id}, trust(alice.SigningKey()), envelope.WithClock(func() time.Time { return now }))
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.Open(sl.Data, d)
		if err != nil {
			t.Fatal(err)
		}
		want := envelope.Opened{ID: sl.ID, Account: acct, Subject: h.Subject, Sender: alice.SigningKey(), ContentType: h.ContentType,
			Created: now.Truncate(time.Millisecond), Expires: h.Expires.Truncate(time.Millisecond), Payload: payload, LeafIndex: 0, TreeSize: 1}
		if !bytes.Equal(got.Payload, want.Payload) || got.ID != want.ID || got.Account != want.Account || got.Subject != want.Subject ||
			got.Sender != want.Sender || got.ContentType != want.ContentType || !got.Created.Equal(want.Created) ||
			!got.Expires.Equal(want.Expires) || got.LeafIndex != 0 || got.TreeSize != 1 {
			t.Fatalf("opened %+v\nwant   %+v", got, want)
		}

		// OpenInto writes the same into a reused Opened, and leaves it alone when it refuses.
		into := envelope.Opened{Subject: "left.over", Payload: []byte("old")}
		if err := o.OpenInto(&into, sl.Data, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(into.Payload, got.Payload) || into.ID != got.ID || into.Subject != got.Subject || into.Sender != got.Sender ||
			!into.Created.Equal(got.Created) || !into.Expires.Equal(got.Expires) || into.TreeSize != got.TreeSize {
			t.Fatalf("OpenInto %+v\nOpen     %+v", into, *got)
		}
		kept := into
		wrong := d
		wrong.Subject = "billing.invoice.void"
		if err := o.OpenInto(&into, sl.Data, wrong); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonSubjectMismatch}) {
			t.Fatalf("OpenInto on another subject: %v", err)
		}
		if into.Subject != kept.Subject || &into.Payload[0] != &kept.Payload[0] {
			t.Fatalf("a refused OpenInto wrote its destination: %+v", into)
		}
	}

	info, err := envelope.Inspect(sl.Data)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 1 || info.Suite != 1 || info.ID != sl.ID || info.Account != acct || info.Subject != h.Subject ||
		info.Sender != alice.SigningKey() || info.ContentType != h.ContentType || info.PayloadLen != len(payload) ||
		info.TreeSize != 1 || info.PathLen != 0 || info.Size != len(sl.Data) || len(info.Recipients) != 2 ||
		!info.Created.Equal(now.Truncate(time.Millisecond)) || !strings.HasPrefix(info.EpochKey, "X") {
		t.Fatalf("inspect: %+v", info)
	}
	for _, r := range info.Recipients {
		if r != bob.EncryptionKey() && r != carol.EncryptionKey() {
			t.Fatalf("inspect lists unexpected recipient %s", r)
		}
	}
	if _, err := envelope.Inspect(sl.Data[:40]); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonMalformed}) {
		t.Fatalf("inspect of truncated data: %v", err)
	}
}

func TestBatchesOpenIndividually(t *testing.T) {
	alice, bob := ident(t, "alice"), ident(t, "bob")
	acct := account(t)
	s, _ := envelope.NewSealer(alice)
	o, _ := envelope.NewOpener([]*envelope.Identity{bob}, trust(alice.SigningKey()))
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64} {
		msgs := make([]envelope.Message, n)
		for i := range msgs {
			msgs[i] = envelope.Message{
				Header:  envelope.Header{Account: acct, Subject: "s.n" + string(rune('a'+i%26))},
				Payload: []byte{byte(n), byte(i)},
				To:      []envelope.Recipient{bob.Recipient()},
			}
		}
		out, err := s.SealBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		// Open in reverse so the cached root is used for all but the first.
		for i := n - 1; i >= 0; i-- {
			got, err := o.Open(out[i].Data, envelope.Delivery{Account: acct, Subject: msgs[i].Header.Subject})
			if err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if got.LeafIndex != uint32(i) || got.TreeSize != uint32(n) || !bytes.Equal(got.Payload, msgs[i].Payload) || got.ID != out[i].ID {
				t.Fatalf("n=%d i=%d: wrong member", n, i)
			}
		}
	}
}

func TestRotationGraceWindow(t *testing.T) {
	alice, oldBob, newBob := ident(t, "alice"), ident(t, "bob-2025"), ident(t, "bob-2026")
	acct := account(t)
	s, _ := envelope.NewSealer(alice)
	sl, err := s.Seal(envelope.Header{Account: acct, Subject: "a.b"}, []byte("hi"), []envelope.Recipient{oldBob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	d := envelope.Delivery{Account: acct, Subject: "a.b"}
	o, _ := envelope.NewOpener([]*envelope.Identity{newBob, oldBob}, trust(alice.SigningKey()))
	if _, err := o.Open(sl.Data, d); err != nil {
		t.Fatalf("previous identity inside grace window: %v", err)
	}
	o2, _ := envelope.NewOpener([]*envelope.Identity{newBob}, trust(alice.SigningKey()))
	if _, err := o2.Open(sl.Data, d); !errors.Is(err, &envelope.RejectError{Reason: envelope.ReasonNotRecipient}) {
		t.Fatalf("after grace window: %v", err)
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	alice, bob := ident(t, "alice"), ident(t, "bob")
	acct := account(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := envelope.NewSealer(alice, envelope.WithClock(func() time.Time { return now }), envelope.WithMaxSize(envelope.MinMaxSize))
	to := []envelope.Recipient{bob.Recipient()}
	ok := envelope.Header{Account: acct, Subject: "a.b"}
	cases := map[string]struct {
		h       envelope.Header
		payload []byte
		to      []envelope.Recipient
	}{
		"user key as account": {envelope.Header{Account: alice.SigningKey(), Subject: "a.b"}, nil, to},
		"wildcard *":          {envelope.Header{Account: acct, Subject: "a.*"}, nil, to},
		"wildcard >":          {envelope.Header{Account: acct, Subject: "a.>"}, nil, to},
		"empty token":         {envelope.Header{Account: acct, Subject: "a..b"}, nil, to},
		"space":               {envelope.Header{Account: acct, Subject: "a b"}, nil, to},
		"empty subject":       {envelope.Header{Account: acct}, nil, to},
		"control in type":     {envelope.Header{Account: acct, Subject: "a", ContentType: "a\nb"}, nil, to},
		"expiry = created":    {envelope.Header{Account: acct, Subject: "a", Expires: now}, nil, to},
		"no recipients":       {ok, nil, nil},
		"zero recipient":      {ok, nil, []envelope.Recipient{{}}},
		"too large":           {ok, make([]byte, envelope.MinMaxSize), to},
	}
	for name, c := range cases {
		if _, err := s.Seal(c.h, c.payload, c.to); !errors.Is(err, envelope.ErrInvalidMessage) {
			t.Errorf("%s: %v, want ErrInvalidMessage", name, err)
		}
	}
	if _, err := s.SealBatch(nil); !errors.Is(err, envelope.ErrInvalidMessage) {
		t.Errorf("empty batch: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	alice := ident(t, "alice")
	p := trust()
	ids := []*envelope.Identity{alice}
	sealerBad := []envelope.Option{
		envelope.WithFreshness(time.Minute), envelope.WithRootCache(1), envelope.WithRand(nil),
		envelope.WithClock(nil), envelope.WithMaxSize(10), envelope.WithMaxSize(envelope.HardMaxSize + 1),
		envelope.WithEpoch(0), envelope.WithEpoch(envelope.MaxEpoch + 1), nil,
	}
	for i, o := range sealerBad {
		if _, err := envelope.NewSealer(alice, o); !errors.Is(err, envelope.ErrInvalidOption) {
			t.Errorf("sealer option %d: %v, want ErrInvalidOption", i, err)
		}
	}
	openerBad := []envelope.Option{
		envelope.WithEpoch(time.Minute), envelope.WithRand(bytes.NewReader(nil)), envelope.WithFreshness(0),
		envelope.WithFreshness(envelope.MaxFreshness + 1), envelope.WithRootCache(-1), envelope.WithMaxSize(1),
	}
	for i, o := range openerBad {
		if _, err := envelope.NewOpener(ids, p, o); !errors.Is(err, envelope.ErrInvalidOption) {
			t.Errorf("opener option %d: %v, want ErrInvalidOption", i, err)
		}
	}
	if _, err := envelope.NewOpener(nil, p); !errors.Is(err, envelope.ErrInvalidOption) {
		t.Errorf("no identities: %v", err)
	}
	if _, err := envelope.NewOpener(ids, nil); !errors.Is(err, envelope.ErrInvalidOption) {
		t.Errorf("nil policy: %v", err)
	}
	if _, err := envelope.NewOpener(ids, p, envelope.WithClock(time.Now), envelope.WithMaxSize(envelope.HardMaxSize),
		envelope.WithFreshness(time.Second), envelope.WithRootCache(0)); err != nil {
		t.Errorf("valid opener options: %v", err)
	}
}

func TestReasons(t *testing.T) {
	seen := map[envelope.Reason]bool{}
	for _, r := range envelope.AllReasons() {
		if !r.Valid() || seen[r] {
			t.Errorf("reason %q invalid or repeated", r)
		}
		seen[r] = true
	}
	if len(seen) != 18 || envelope.Reason("nope").Valid() {
		t.Errorf("reason set wrong")
	}
	err := &envelope.RejectError{Reason: envelope.ReasonStale, Err: errors.New("created long ago")}
	if err.Error() != "envelope: rejected (stale): created long ago" {
		t.Errorf("Error() = %q", err.Error())
	}
	if r, ok := envelope.ReasonOf(err); !ok || r != envelope.ReasonStale {
		t.Errorf("ReasonOf = %v %v", r, ok)
	}
}
