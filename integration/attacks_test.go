package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/integration/natstest"
	"github.com/sealbus/sealbus/operator"
)

// TestAttacksEndToEnd plays an attacker against a real server. The attacker holds write access
// to the stream (it injects with an admin connection) and, for some attacks, a service's stolen
// keys; it never holds a trusted key of the account. Each forged or altered envelope must be
// rejected by the consumer with its reason, copied byte for byte to the account's dead-letter
// stream, and audited, while valid messages published between the attacks are all handled,
// each once.
func TestAttacksEndToEnd(t *testing.T) {
	const maxPayload = 2 << 20 // so an envelope above the 1 MiB receiver limit can be stored
	s := natstest.StartServer(t, natstest.WithMaxPayload(maxPayload))
	ctx := testContext(t, 5*time.Minute)

	lim := accounts.DefaultLimits()
	lim.MaxPayload = maxPayload
	for _, a := range []string{"shop", "bank"} {
		if _, err := s.AddAccount(ctx, a, lim); err != nil {
			t.Fatal(err)
		}
	}
	// shop exports orders.public.> as a stream; bank imports it as shop.orders.>.
	if _, err := s.EditAccount(ctx, "shop", func(a *accounts.Account) error {
		a.Claims.Exports.Add(&jwt.Export{Name: "public orders", Subject: "orders.public.>", Type: jwt.Stream})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	shop, err := s.Account("shop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EditAccount(ctx, "bank", func(a *accounts.Account) error {
		a.Claims.Imports.Add(&jwt.Import{Name: "shop orders", Account: shop.PublicKey(), Subject: "orders.public.>", LocalSubject: "shop.orders.>", Type: jwt.Stream})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		account string
		spec    operator.StreamSpec
	}{
		{"shop", operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}},
		{"bank", operator.StreamSpec{Name: "SHOPFEED", Subjects: []string{"shop.orders.>"}, Storage: jetstream.FileStorage}},
		{"bank", operator.StreamSpec{Name: "LEDGER", Subjects: []string{"ledger.>"}, Storage: jetstream.FileStorage}},
	} {
		if err := s.AddStream(ctx, st.account, st.spec); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(account string, spec accounts.ServiceSpec) string {
		t.Helper()
		p, err := s.AddService(ctx, account, spec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	checkoutCreds := svc("shop", accounts.ServiceSpec{Name: "checkout", Publish: []string{"orders.>"}})
	billingCreds := svc("shop", accounts.ServiceSpec{Name: "billing", Subscribe: []string{"orders.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}}})
	svc("shop", accounts.ServiceSpec{Name: "rogue", Publish: []string{"orders.>"}})
	tellerCreds := svc("bank", accounts.ServiceSpec{Name: "teller", Publish: []string{"ledger.>"}})
	ledgerCreds := svc("bank", accounts.ServiceSpec{Name: "ledger", Subscribe: []string{"shop.orders.>", "ledger.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "SHOPFEED", Durable: "ledger"}}})

	checkout := connectSDK(t, ctx, s.Deployment, checkoutCreds, []string{s.URL})
	billing := connectSDK(t, ctx, s.Deployment, billingCreds, []string{s.URL})
	teller := connectSDK(t, ctx, s.Deployment, tellerCreds, []string{s.URL})
	ledger := connectSDK(t, ctx, s.Deployment, ledgerCreds, []string{s.URL})

	var mu sync.Mutex
	handled := map[string]int{}
	record := func(_ context.Context, m *consumers.Message) error {
		mu.Lock()
		handled[m.ID]++
		mu.Unlock()
		return nil
	}
	for _, c := range []struct {
		client          *bus.Client
		stream, durable string
	}{{billing, "ORDERS", "billing"}, {ledger, "SHOPFEED", "ledger"}} {
		cs, err := consumers.Consume(ctx, c.client, c.stream, c.durable, record)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cs.Stop)
	}

	shopNC, err := s.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer shopNC.Close()
	shopJS, _ := jetstream.New(shopNC)
	bankNC, err := s.AdminConn(ctx, "bank")
	if err != nil {
		t.Fatal(err)
	}
	defer bankNC.Close()
	bankJS, _ := jetstream.New(bankNC)

	// valid publishes one sealed order through the SDK and returns its id and stored bytes.
	var validIDs []string
	valid := func(subject string) (string, []byte) {
		t.Helper()
		ack, err := checkout.Publish(ctx, subject, []byte(`{"order":42}`), bus.WithContentType("application/json"))
		if err != nil {
			t.Fatal(err)
		}
		validIDs = append(validIDs, ack.ID)
		raw, err := shopJS.Stream(ctx, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		m, err := raw.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		return ack.ID, m.Data
	}
	waitHandled := func(id string) {
		t.Helper()
		if err := poll(ctx, 30*time.Second, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if handled[id] == 0 {
				return fmt.Errorf("message %s not handled", id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// A sealer with a stolen or forged identity, encrypting to billing as a real sender would.
	billingCard, ok := billing.Card()
	if !ok {
		t.Fatal("billing has no card")
	}
	billingRecipient, err := envelope.ParseRecipient(billingCard.CurveKey)
	if err != nil {
		t.Fatal(err)
	}
	sealAs := func(userSeed, curveSeed []byte, subject string) []byte {
		t.Helper()
		id, err := envelope.NewIdentity(userSeed, curveSeed)
		if err != nil {
			t.Fatal(err)
		}
		sealer, err := envelope.NewSealer(id)
		if err != nil {
			t.Fatal(err)
		}
		defer sealer.Close()
		sealed, err := sealer.Seal(envelope.Header{Account: shop.PublicKey(), Subject: subject, ContentType: "application/json"},
			[]byte(`{"order":666}`), []envelope.Recipient{billingRecipient})
		if err != nil {
			t.Fatal(err)
		}
		return sealed.Data
	}

	type attack struct {
		name   string
		reason string
		// make returns the bytes to inject and the subject of shop's to inject them on.
		make func(t *testing.T) (data []byte, subject string)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	attacks := []attack{
		{"tampered header", string(envelope.ReasonBadSignature), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			return flip(b, 2), "orders.eu.new" // a bit of the signed message id
		}},
		{"tampered ciphertext", string(envelope.ReasonBadSignature), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			return flip(b, ciphertextOffset(t, b)+3), "orders.eu.new"
		}},
		{"tampered signature", string(envelope.ReasonBadSignature), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			return flip(b, len(b)-1), "orders.eu.new"
		}},
		{"replay with a fresh Nats-Msg-Id", consumers.ReasonReplay, func(t *testing.T) ([]byte, string) {
			id, b := valid("orders.eu.new")
			waitHandled(id) // the original was handled; the copy comes at a new stream position
			return b, "orders.eu.new"
		}},
		{"subject swap", string(envelope.ReasonSubjectMismatch), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			return b, "orders.us.new"
		}},
		{"account swap via an import", string(envelope.ReasonAccountMismatch), func(t *testing.T) ([]byte, string) {
			// A bank envelope, sent on shop's exported subject, reaches bank again through
			// its import: the import says it comes from shop, the envelope says bank.
			ack, err := teller.Publish(ctx, "ledger.entry", []byte(`{"entry":1}`))
			if err != nil {
				t.Fatal(err)
			}
			st, err := bankJS.Stream(ctx, "LEDGER")
			if err != nil {
				t.Fatal(err)
			}
			m, err := st.GetMsg(ctx, ack.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			return m.Data, "orders.public.eu.1"
		}},
		{"revoked sender", string(envelope.ReasonSenderRevoked), func(t *testing.T) ([]byte, string) {
			rogue, err := s.Service("shop", "rogue")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.RevokeService(ctx, "shop", "rogue"); err != nil {
				t.Fatal(err)
			}
			// Wait until billing's directory knows (it watches the bucket).
			if err := poll(ctx, 10*time.Second, func(context.Context) error {
				if _, ok := billing.Directory().CardByKey(rogue.UserPublicKey()); ok {
					return fmt.Errorf("billing still trusts rogue's card")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			us, _ := rogue.UserKey.Seed()
			cs, _ := rogue.CurveKey.Seed()
			return sealAs(us, cs, "orders.eu.new"), "orders.eu.new"
		}},
		// The directory keeps a card that verified once; past its expiry the SDK refuses its
		// holder as it refuses a revoked one.
		{"expired card", string(envelope.ReasonSenderRevoked), func(t *testing.T) ([]byte, string) {
			us, cs := forgedCard(t, ctx, s.Deployment, shop.SigningKeys[0], "expired", time.Now().Add(-time.Hour))
			upub := userKeyOf(t, us)
			// Wait until billing's directory holds the card (it watches the bucket): before
			// that the sender is merely unknown.
			if err := poll(ctx, 10*time.Second, func(context.Context) error {
				err := billing.Directory().CheckSender(shop.PublicKey(), upub, "orders.eu.new", time.Now())
				if !errors.Is(err, envelope.ErrSenderRevoked) {
					return fmt.Errorf("billing's directory does not hold the expired card yet: %v", err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return sealAs(us, cs, "orders.eu.new"), "orders.eu.new"
		}},
		{"card signed by an unlisted key", string(envelope.ReasonSenderUnknown), func(t *testing.T) ([]byte, string) {
			unlisted, _ := nkeys.CreateAccount()
			us, cs := forgedCard(t, ctx, s.Deployment, unlisted, "unlisted", time.Now().Add(time.Hour))
			return sealAs(us, cs, "orders.eu.new"), "orders.eu.new"
		}},
		{"truncated", string(envelope.ReasonMalformed), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			return b[:len(b)-10], "orders.eu.new"
		}},
		{"oversized", string(envelope.ReasonTooLarge), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			big := make([]byte, envelope.DefaultMaxSize+1)
			copy(big, b)
			return big, "orders.eu.new"
		}},
		{"unknown version", string(envelope.ReasonVersion), func(t *testing.T) ([]byte, string) {
			_, b := valid("orders.eu.new")
			c := bytes.Clone(b)
			c[0] = 2
			return c, "orders.eu.new"
		}},
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			data, subject := a.make(t)
			msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, randomID(t))
			ack, err := shopJS.PublishMsg(ctx, msg)
			if err != nil {
				t.Fatalf("injecting: %v", err)
			}
			// Where the consumer meets it: shop's ORDERS, or bank's SHOPFEED through the import.
			stream, dlqJS := ack.Stream, shopJS
			seq := ack.Sequence
			if a.reason == string(envelope.ReasonAccountMismatch) {
				stream, dlqJS = "SHOPFEED", bankJS
				seq = lastSeq(t, ctx, bankJS, "SHOPFEED")
			}
			account := "shop"
			if dlqJS == bankJS {
				account = "bank"
			}
			dl := waitDeadLetter(t, ctx, verifyingDeadLetters(t, s.Provisioner(), account, dlqJS), stream, seq)
			if dl.Reason != a.reason {
				t.Errorf("dead-lettered with reason %q (%s), want %q", dl.Reason, dl.Error, a.reason)
			}
			sum := sha256.Sum256(data)
			switch {
			case dl.EnvelopeOmitted:
				// Too large to carry: named by its hash and size, kept in its stream.
				if dl.EnvelopeSHA256 != hex.EncodeToString(sum[:]) || dl.EnvelopeSize != len(data) || len(data) <= consumers.MaxDeadLetterEnvelope {
					t.Errorf("omitted envelope named as %s (%d bytes), injected %d bytes", dl.EnvelopeSHA256, dl.EnvelopeSize, len(data))
				}
			case !bytes.Equal(dl.Envelope, data):
				t.Errorf("dead letter is not the injected bytes (%d vs %d bytes)", len(dl.Envelope), len(data))
			}
			waitAuditEvent(t, ctx, verifyingAuditLog(t, s.Provisioner(), account, dlqJS), stream, seq, a.reason)
			// Valid traffic is unaffected: the next valid message is handled.
			id, _ := valid("orders.eu.new")
			waitHandled(id)
			t.Logf("%s: rejected %q, dead letter %d, audited", a.name, dl.Reason, dl.Sequence)
		})
	}

	// Every valid message was handled exactly once, and none was dead-lettered.
	mu.Lock()
	defer mu.Unlock()
	for _, id := range validIDs {
		if handled[id] != 1 {
			t.Errorf("valid message %s handled %d times", id, handled[id])
		}
	}
	if len(handled) != len(validIDs) {
		t.Errorf("%d messages handled, %d valid ones published", len(handled), len(validIDs))
	}
}

// ciphertextOffset returns the offset of the ciphertext in an envelope (SPEC.md §3):
// H + 4 with H = 167 + subject + content type + 104 per recipient.
func ciphertextOffset(t *testing.T, b []byte) int {
	t.Helper()
	info, err := envelope.Inspect(b)
	if err != nil {
		t.Fatal(err)
	}
	return 167 + len(info.Subject) + len(info.ContentType) + 104*len(info.Recipients) + 4
}

// forgedCard makes keys for a service that does not exist, signs a card for them with signer
// (valid until expires, issued an hour before), publishes it in shop's directory as an
// attacker with write access to it (the operator account's credentials) would, and returns
// the user and curve seeds.
func forgedCard(t *testing.T, ctx context.Context, d *natstest.Deployment, signer nkeys.KeyPair, name string, expires time.Time) (userSeed, curveSeed []byte) {
	t.Helper()
	shop, err := d.Account("shop")
	if err != nil {
		t.Fatal(err)
	}
	uk, _ := nkeys.CreateUser()
	ck, _ := nkeys.CreateCurveKeys()
	upub, _ := uk.PublicKey()
	cpub, _ := ck.PublicKey()
	issued := expires.Add(-2 * time.Hour).Truncate(time.Second)
	tok, err := accounts.IssueCard(signer, accounts.Card{
		Name: name, Account: shop.PublicKey(), UserKey: upub, CurveKey: cpub,
		Publish: []string{"orders.>"}, IssuedAt: issued, NotBefore: issued, Expires: expires.Truncate(time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := d.Provisioner().DirectoryAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := operator.PublishCard(ctx, dir, name, tok); err != nil {
		t.Fatal(err)
	}
	nc, err := d.AdminConn(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := operator.WaitView(ctx, dir, nc, shop.PublicKey()); err != nil {
		t.Fatal(err)
	}
	us, _ := uk.Seed()
	cs, _ := ck.Seed()
	return us, cs
}

func userKeyOf(t *testing.T, seed []byte) string {
	t.Helper()
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

func randomID(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lastSeq waits for a message in stream and returns the last sequence.
func lastSeq(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	var seq uint64
	if err := poll(ctx, 10*time.Second, func(ctx context.Context) error {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if seq = st.CachedInfo().State.LastSeq; seq == 0 {
			return fmt.Errorf("%s is empty", stream)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// verifyingDeadLetters returns a dead-letter reader over js that verifies records with the
// provisioner's keystore (account JWT, trusted operator).
func verifyingDeadLetters(t *testing.T, p *operator.Provisioner, account string, js jetstream.JetStream) *operator.DeadLetters {
	t.Helper()
	v, err := p.RecordVerifier(account)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := operator.NewDeadLetters(js, v)
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

// verifyingAuditLog is verifyingDeadLetters for the audit log.
func verifyingAuditLog(t *testing.T, p *operator.Provisioner, account string, js jetstream.JetStream) *operator.AuditLog {
	t.Helper()
	v, err := p.RecordVerifier(account)
	if err != nil {
		t.Fatal(err)
	}
	log, err := operator.NewAuditLog(js, v)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// waitDeadLetter waits for the verified dead letter of stream's message seq.
func waitDeadLetter(t *testing.T, ctx context.Context, dl *operator.DeadLetters, stream string, seq uint64) operator.DeadLetterEntry {
	t.Helper()
	var found *operator.DeadLetterEntry
	if err := pollEvery(ctx, 30*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
		entries, err := dl.List(ctx, 0)
		if err != nil {
			return err
		}
		for i := range entries {
			if entries[i].Verified() && entries[i].SourceStream == stream && entries[i].SourceSequence == seq {
				found = &entries[i]
				return nil
			}
		}
		return fmt.Errorf("no dead letter for %s sequence %d among %d", stream, seq, len(entries))
	}); err != nil {
		t.Fatal(err)
	}
	return *found
}

// waitAuditEvent waits for a verified rejection audit event about stream's message seq with
// reason.
func waitAuditEvent(t *testing.T, ctx context.Context, log *operator.AuditLog, stream string, seq uint64, reason string) {
	t.Helper()
	if err := pollEvery(ctx, 30*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
		recs, _, err := log.Tail(ctx, 0)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if e := r.Event; r.Verified() && e.Data.Stream == stream && e.Data.Sequence == seq {
				if e.Data.Reason != reason || e.Type != bus.EventRejected {
					return fmt.Errorf("audit event %s with reason %q, want %s with %q", e.Type, e.Data.Reason, bus.EventRejected, reason)
				}
				return nil
			}
		}
		return fmt.Errorf("no audit event for %s sequence %d", stream, seq)
	}); err != nil {
		t.Fatal(err)
	}
}
