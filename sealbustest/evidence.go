package sealbustest

// The attacks of a hostile service on sealbus's evidence, as one suite any harness runs: the
// operator package runs it on the in-process sandbox, the integration module on nats-server
// containers. Each attack holds only a service's own creds and raw NATS access (an Insider),
// with the admin's view (an admin connection) used only to inject into application streams, as
// the broker-level attacker of the other attack tests does, and to observe.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
)

// RunEvidenceAttacks plays, on a world provisioned with [ProvisionWorld], the attacks of the
// evidence review, each as a subtest, in an order where none spoils the next (the flood comes
// last): a crafted dead letter making the operator's replay act with its rights; forged audit
// and dead-letter records; dead-letter deduplication ids taken first; a claimed sender
// presented as verified; a replay after the freshness window; unaudited admin actions; a flood
// of one writer's subject. Each checks the defence holds. The world's shop account is used up
// by it (quotas filled, a service revoked): give it a world of its own.
func RunEvidenceAttacks(t *testing.T, w *World) {
	for _, a := range []struct {
		name string
		run  func(*testing.T, *World)
	}{
		{"replay is never a deputy", attackReplayDeputy},
		{"forged records are marked, never verified", attackForgedRecords},
		{"dead letters cannot be pre-empted", attackPreemptDeadLetters},
		{"claimed senders are labelled", attackClaimedSender},
		{"a replay after the window is handled once", attackLateReplay},
		{"admin actions are audited", attackAdminActions},
		{"a flood keeps every other writer's records", attackFlood},
	} {
		t.Run(a.name, func(t *testing.T) { a.run(t, w) })
	}
}

// Publish publishes through JetStream as the insider and waits at most a second for the ack: a
// publish its permissions refuse comes back as an error.
func (in *Insider) Publish(ctx context.Context, subject string, data []byte, hdr nats.Header) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if hdr == nil {
		hdr = nats.Header{}
	}
	return in.JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: hdr})
}

// SignRecord signs r as the insider's own service (its name, card and key).
func (in *Insider) SignRecord(r envelope.Record) ([]byte, error) {
	r.Account, r.WriterName, r.Credential = in.Account, in.Name, in.Card
	return in.ID.SignRecord(r)
}

// Seal seals payload with the insider's own keys on subject of its account, created at
// created, for the recipients ("X..." keys).
func (in *Insider) Seal(subject string, created time.Time, payload []byte, to ...string) ([]byte, error) {
	var rs []envelope.Recipient
	for _, k := range to {
		r, err := envelope.ParseRecipient(k)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	s, err := envelope.NewSealer(in.ID, envelope.WithClock(func() time.Time { return created }))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	sealed, err := s.Seal(envelope.Header{Account: in.Account, Subject: subject}, payload, rs)
	if err != nil {
		return nil, err
	}
	return sealed.Data, nil
}

// Helpers of the suite.

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func insiderOf(t *testing.T, w *World, service string) *Insider {
	t.Helper()
	in, err := NewInsider(testCtx(t), w.Harness, Shop, service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

func publishAs(t *testing.T, in *Insider, subject string, data []byte, hdr nats.Header) (*jetstream.PubAck, error) {
	t.Helper()
	return in.Publish(context.Background(), subject, data, hdr)
}

func signAs(t *testing.T, in *Insider, r envelope.Record) []byte {
	t.Helper()
	b, err := in.SignRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealAs seals with the insider's keys, to billing, on subject.
func sealAs(t *testing.T, w *World, in *Insider, subject string, created time.Time) []byte {
	t.Helper()
	return sealFor(t, w, in, Billing, subject, created)
}

// sealFor seals {"x":1} as the insider to one reader of the shop.
func sealFor(t *testing.T, w *World, in *Insider, reader, subject string, created time.Time) []byte {
	t.Helper()
	svc, err := w.Harness.Provisioner().Keystore.LoadService(Shop, reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := in.Seal(subject, created, []byte(`{"x":1}`), svc.CurvePublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func connectAs(t *testing.T, w *World, service string, opts ...bus.Option) *bus.Client {
	t.Helper()
	c, err := w.Connect(testCtx(t), Shop, service, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", service, err)
	}
	t.Cleanup(c.Close)
	return c
}

func deadLetterMeta(t *testing.T, env []byte, stream string, seq uint64, subject, consumer string) []byte {
	t.Helper()
	sum := sha256.Sum256(env)
	b, err := json.Marshal(consumers.DeadLetterMeta{Reason: "max_deliveries", Stream: stream, Sequence: seq, Subject: subject, Consumer: consumer,
		Delivered: 5, Stored: time.Now().UTC(), EnvelopeSize: len(env), EnvelopeSHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func adminJS(t *testing.T, w *World) jetstream.JetStream {
	t.Helper()
	nc, err := w.Admin(testCtx(t), Shop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}

func auditRecords(t *testing.T, w *World) []operator.AuditRecord {
	t.Helper()
	log, done, err := w.Harness.Provisioner().AuditLog(testCtx(t), Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	recs, _, err := log.Tail(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isAPIError(err error, code jetstream.ErrorCode) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == code
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Finding 1, critical: a dead letter crafted by a service made `dlq replay` run JetStream API
// requests with the operator's rights (purge the audit stream, delete a stream). Now replay
// refuses every crafted dead letter with a reason, audits the refusal, and the connection it
// publishes on cannot reach the JetStream API at all.
func attackReplayDeputy(t *testing.T, w *World) {
	js := adminJS(t, w)
	ship := insiderOf(t, w, Shipping) // a consumer: it may write dead letters
	own := accounts.DLQSubject(ship.Name, ship.Token)
	purge := "$JS.API.STREAM.PURGE." + accounts.AuditStream
	del := "$JS.API.STREAM.DELETE." + OrdersStream

	store := func(data []byte, hdr nats.Header) uint64 {
		t.Helper()
		ack, err := publishAs(t, ship, own, data, hdr)
		if err != nil {
			t.Fatalf("the insider could not store its dead letter: %v", err)
		}
		return ack.Sequence
	}
	// The old format: envelope bytes with headers naming the target.
	oldHdr := nats.Header{}
	oldHdr.Set("Sealbus-Source-Subject", purge)
	oldHdr.Set("Sealbus-Source-Stream", accounts.AuditStream)
	unsigned := store([]byte("{}"), oldHdr)
	// Signed by the insider itself (genuine records): an envelope it sealed for the purge
	// subject; one for the delete subject claiming ORDERS; one for a real subject but a
	// stream and durable it does not use; one whose envelope was moved to another subject.
	env := sealAs(t, w, ship, purge, time.Now())
	signedPurge := store(signAs(t, ship, envelope.Record{Kind: envelope.RecordDeadLetter, Payload: deadLetterMeta(t, env, OrdersStream, 1, purge, ship.Name), Attachment: env}), nil)
	env = sealAs(t, w, ship, del, time.Now())
	signedDelete := store(signAs(t, ship, envelope.Record{Kind: envelope.RecordDeadLetter, Payload: deadLetterMeta(t, env, OrdersStream, 1, del, ship.Name), Attachment: env}), nil)
	env = sealAs(t, w, ship, "orders.eu.9", time.Now())
	otherDurable := store(signAs(t, ship, envelope.Record{Kind: envelope.RecordDeadLetter, Payload: deadLetterMeta(t, env, accounts.AuditStream, 1, "orders.eu.9", "billing"), Attachment: env}), nil)
	moved := store(signAs(t, ship, envelope.Record{Kind: envelope.RecordDeadLetter, Payload: deadLetterMeta(t, env, OrdersStream, 1, "orders.eu.10", ship.Name), Attachment: env}), nil)
	junkEnv := []byte("\x01\x01 not an envelope")
	junk := store(signAs(t, ship, envelope.Record{Kind: envelope.RecordDeadLetter, Payload: deadLetterMeta(t, junkEnv, OrdersStream, 1, "orders.eu.9", ship.Name), Attachment: junkEnv}), nil)

	auditBefore := streamMsgs(t, js, accounts.AuditStream)
	dl, done, err := w.Harness.Provisioner().DeadLetters(testCtx(t), Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, c := range []struct {
		name   string
		seq    uint64
		reason string
	}{
		{"unsigned, old headers naming a purge", unsigned, operator.ReplayRecordUnverified},
		{"signed, its envelope bound to the purge subject", signedPurge, operator.ReplaySubjectForbidden},
		{"signed, its envelope bound to a stream delete", signedDelete, operator.ReplaySubjectForbidden},
		{"signed, naming a stream and durable it does not use", otherDurable, operator.ReplayConsumerUnknown},
		{"signed, the envelope delivered on another subject", moved, operator.ReplaySubjectMismatch},
		{"signed, carrying junk instead of an envelope", junk, operator.ReplayEnvelopeUnverified},
	} {
		_, err := dl.Replay(testCtx(t), c.seq)
		var re *operator.ReplayError
		if !errors.As(err, &re) || re.Reason != c.reason || !errors.Is(err, operator.ErrReplayRefused) {
			t.Errorf("%s: %v, want refusal %s", c.name, err, c.reason)
		}
	}
	// Nothing was purged or deleted; each refusal is a verified admin event with its reason.
	if n := streamMsgs(t, js, accounts.AuditStream); n < auditBefore+6 {
		t.Errorf("audit stream held %d records before, %d after six refused replays", auditBefore, n)
	}
	streamMsgs(t, js, OrdersStream) // still there
	refusals := map[uint64]string{}
	for _, r := range auditRecords(t, w) {
		if r.Verified() && r.Event.Type == operator.EventReplayRefused {
			refusals[r.Event.Data.DLQSeq] = r.Event.Data.Reason
		}
	}
	for seq, want := range map[uint64]string{unsigned: operator.ReplayRecordUnverified, signedPurge: operator.ReplaySubjectForbidden,
		signedDelete: operator.ReplaySubjectForbidden, otherDurable: operator.ReplayConsumerUnknown, moved: operator.ReplaySubjectMismatch,
		junk: operator.ReplayEnvelopeUnverified} {
		if refusals[seq] != want {
			t.Errorf("dead letter %d: audited refusal %q, want %q", seq, refusals[seq], want)
		}
	}
}

// Finding 2: any service could publish into the audit and dead-letter subjects, and the readers
// printed those entries like genuine ones, naming another service as their source. Now a
// service may publish only on its own subjects, and whatever it stores there in another's
// name is marked and counted, never verified.
func attackForgedRecords(t *testing.T, w *World) {
	intern := insiderOf(t, w, Intern)
	billingSvc, _ := w.Harness.Provisioner().Keystore.LoadService(Shop, Billing)
	forged := bus.Event{Type: bus.EventRejected, Data: bus.EventData{Reason: "bad_signature", Stream: "ORDERS", Sequence: 1}}
	if err := forged.Fill(bus.EventSource(intern.Account, Billing), time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	event, _ := json.Marshal(forged)
	// Refused by the server: the account-wide subjects of old, another writer's subject (even
	// with the right token), the admin subject, a wildcard-looking neighbour of its own.
	for _, subj := range []string{"sealbus.audit.rejected", "sealbus.dlq.bad_signature", accounts.AuditSubject(Billing, billingSvc.Spec.EvidenceToken),
		accounts.DLQSubject(Billing, billingSvc.Spec.EvidenceToken), accounts.AdminAuditSubject(intern.Token), accounts.AuditSubject(intern.Name, intern.Token) + ".x",
		accounts.DLQSubject(intern.Name, intern.Token)} {
		if _, err := publishAs(t, intern, subj, event, nil); err == nil {
			t.Errorf("the server stored the intern's publish on %s", subj)
		}
	}
	own := accounts.AuditSubject(intern.Name, intern.Token)
	forgeries := map[string][]byte{
		"unsigned JSON naming billing":     event,
		"signed by intern, naming billing": signAs(t, intern, envelope.Record{Kind: envelope.RecordAudit, Payload: event}),
		"billing's name on intern's card": func() []byte {
			r := envelope.Record{Kind: envelope.RecordAudit, Account: intern.Account, WriterName: Billing, Credential: intern.Card, Payload: event}
			b, _ := intern.ID.SignRecord(r)
			return b
		}(),
		"billing's card, intern's signature": func() []byte {
			r := envelope.Record{Kind: envelope.RecordAudit, Account: intern.Account, WriterName: Billing, Credential: billingSvc.Card, Payload: event}
			b, _ := intern.ID.SignRecord(r)
			return b
		}(),
	}
	for name, data := range forgeries {
		if _, err := publishAs(t, intern, own, data, nil); err != nil {
			t.Fatalf("%s: the intern could not write on its own subject: %v", name, err)
		}
	}
	// The reply-subject trick: a JetStream API answer stored on its own subject.
	if err := intern.Conn.PublishRequest("$JS.API.INFO", own, nil); err != nil {
		t.Fatal(err)
	}
	// A genuine event, to see the reader still shows it.
	billing := connectAs(t, w, Billing)
	if err := billing.Audit(testCtx(t), bus.Event{Type: "sealbus.test.genuine", Data: bus.EventData{Reason: "ok"}}); err != nil {
		t.Fatal(err)
	}
	var recs []operator.AuditRecord
	counts := operator.Counts{}
	waitFor(t, "the forgeries and the genuine event", func() bool {
		recs = auditRecords(t, w)
		clear(counts)
		for _, r := range recs {
			if r.Subject == own {
				counts.Add(r.Verification.State)
			}
		}
		return counts.Unverified() >= 5 && slices.ContainsFunc(recs, func(r operator.AuditRecord) bool { return r.Verified() && r.Event.Type == "sealbus.test.genuine" })
	})
	for _, r := range recs {
		if r.Event != nil && r.Event.ID == forged.ID && r.Verified() {
			t.Fatalf("a forgery verified: %+v", r.Verification)
		}
		if r.Verified() && r.Verification.Writer == Billing && r.Subject != accounts.AuditSubject(Billing, billingSvc.Spec.EvidenceToken) {
			t.Fatalf("a record verified as billing's on %s", r.Subject)
		}
	}
	// unsigned: the JSON and the JetStream answer; misplaced: intern's own record naming billing
	// as the event's source; unknown_writer: billing's name on intern's card, billing's card
	// with intern's key.
	if counts[operator.StateUnsigned] != 2 || counts[operator.StateMisplaced] != 1 || counts[operator.StateUnknownWriter] != 2 || counts.Verified() != 0 {
		t.Errorf("states of the forgeries on the intern's subject: %v", counts)
	}
}

// Finding 3: a service could take a dead letter's deduplication slot before the consumer wrote
// it, so the real dead letter was never stored and its audit event pointed at the decoy. Now
// the ids are keyed by each writer's secret: the insider fills its own subject with every id it
// can compute, and billing's dead letter is stored anyway, and its audit event points at it.
func attackPreemptDeadLetters(t *testing.T, w *World) {
	js := adminJS(t, w)
	ship := insiderOf(t, w, Shipping)
	next := streamMsgs(t, js, OrdersStream) + 1
	for seq := next; seq < next+5; seq++ {
		for _, id := range []string{
			fmt.Sprintf("dlq.%s.%d", OrdersStream, seq),                                   // the old scheme
			bus.EvidenceMsgID(ship.Token, "dlq", fmt.Sprintf("%s.%d", OrdersStream, seq)), // the new one, with its own token
		} {
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, id)
			if _, err := publishAs(t, ship, accounts.DLQSubject(ship.Name, ship.Token), []byte("decoy"), h); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := billingDeadLetter(t, w, connectAs(t, w, Billing), js, []byte("\x01\x01 junk"))
	waitFor(t, "its audit event", func() bool {
		for _, r := range auditRecords(t, w) {
			if r.Verified() && r.Verification.Writer == Billing && r.Event.Type == bus.EventRejected && r.Event.Data.Sequence == got.SourceSequence {
				if r.Event.Data.DLQSeq != got.Sequence {
					t.Fatalf("the audit event points at dead letter %d, the dead letter is %d", r.Event.Data.DLQSeq, got.Sequence)
				}
				return true
			}
		}
		return false
	})
}

// Finding 4: a few dozen 1 MB messages into the audit and dead-letter subjects pushed earlier
// genuine entries out of the streams. Now each writer has its own quota: the flood is refused at
// the flooder (error 10077, or 10054 for oversized records) and every earlier record of every
// other writer is still there; the refusal of an SDK client's own records leaves evidence on its
// overflow subject.
func attackFlood(t *testing.T, w *World) {
	js := adminJS(t, w)
	billing := connectAs(t, w, Billing)
	shipping := connectAs(t, w, Shipping)
	var before []string
	for i := range 3 {
		for _, c := range []*bus.Client{billing, shipping} {
			e := bus.Event{Type: "sealbus.test.before", Data: bus.EventData{Reason: fmt.Sprint("r", i)}}
			if err := c.Audit(testCtx(t), e); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range auditRecords(t, w) {
		if r.Verified() {
			before = append(before, r.Event.ID)
		}
	}
	s, err := js.Stream(testCtx(t), accounts.AuditStream)
	if err != nil {
		t.Fatal(err)
	}
	quota := s.CachedInfo().Config.MaxMsgsPerSubject
	if quota < operator.MinEvidenceQuota || !s.CachedInfo().Config.DiscardNewPerSubject || s.CachedInfo().Config.Discard != jetstream.DiscardNew {
		t.Fatalf("audit stream config %+v", s.CachedInfo().Config)
	}
	intern := insiderOf(t, w, Intern)
	own := accounts.AuditSubject(intern.Name, intern.Token)
	// Oversized records are refused outright.
	if _, err := publishAs(t, intern, own, make([]byte, 1<<20), nil); !isAPIError(err, jetstream.JSErrCodeStreamMessageExceedsMaximum) {
		t.Fatalf("1 MB record: %v", err)
	}
	// The flood: up to the quota is stored (counting what the subject already holds),
	// everything beyond is refused with 10077.
	si, err := s.Info(testCtx(t), jetstream.WithSubjectFilter(own))
	if err != nil {
		t.Fatal(err)
	}
	held := int64(si.State.Subjects[own])
	junk := bytes.Repeat([]byte("x"), 8<<10)
	var stored, refused int64
	for range quota - held + 20 {
		_, err := publishAs(t, intern, own, junk, nil)
		switch {
		case err == nil:
			stored++
		case isAPIError(err, 10077):
			refused++
		default:
			t.Fatalf("flood: %v", err)
		}
	}
	if held+stored != quota || refused != 20 {
		t.Fatalf("flood: %d held, %d stored, %d refused, quota %d", held, stored, refused, quota)
	}
	// Every earlier record of every other writer is still there, and they still write.
	if err := billing.Audit(testCtx(t), bus.Event{Type: "sealbus.test.after"}); err != nil {
		t.Fatalf("billing after the flood: %v", err)
	}
	after := map[string]bool{}
	for _, r := range auditRecords(t, w) {
		if r.Verified() {
			after[r.Event.ID] = true
		}
	}
	for _, id := range before {
		if !after[id] {
			t.Fatalf("record %s of another writer is gone after the flood", id)
		}
	}
	// The intern's own SDK client is now refused too: Audit fails, and an overflow record on
	// its overflow subject says so (verified, counts by kind).
	ic := connectAs(t, w, Intern)
	if err := ic.Audit(testCtx(t), bus.Event{Type: "sealbus.test.refused"}); !errors.Is(err, bus.ErrEvidenceRefused) {
		t.Fatalf("audit over quota: %v", err)
	}
	waitFor(t, "the overflow record", func() bool {
		for _, r := range auditRecords(t, w) {
			if r.Verified() && r.Verification.Writer == Intern && r.Event.Type == bus.EventEvidenceRefused && r.Event.Data.Refused["audit"] >= 1 &&
				r.Subject == accounts.AuditOverflowSubject(intern.Name, intern.Token) {
				return true
			}
		}
		return false
	})
	waitFor(t, "the refusal counted", func() bool { m := ic.Metrics(); return m.EvidenceRefused >= 1 && m.OverflowWritten == 1 })

	// The same in the dead-letter stream: shipping floods its own subject; billing's dead
	// letters are still written.
	ship := insiderOf(t, w, Shipping)
	d, err := js.Stream(testCtx(t), accounts.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	for range d.CachedInfo().Config.MaxMsgsPerSubject + 1 {
		if _, err := publishAs(t, ship, accounts.DLQSubject(ship.Name, ship.Token), []byte("junk"), nil); err != nil && !isAPIError(err, 10077) {
			t.Fatal(err)
		}
	}
	billingDeadLetter(t, w, billing, js, []byte("junk"))
}

// billingDeadLetter consumes billing's durable with billing's client until junk, injected into
// ORDERS, is dead-lettered in a verified record written by billing, and returns that entry.
func billingDeadLetter(t *testing.T, w *World, billing *bus.Client, js jetstream.JetStream, junk []byte) *operator.DeadLetterEntry {
	t.Helper()
	cs, err := consumers.Consume(context.Background(), billing, OrdersStream, Billing, func(context.Context, *consumers.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	ack, err := js.Publish(testCtx(t), "orders.us.junk", junk)
	if err != nil {
		t.Fatal(err)
	}
	dl, done, err := w.Harness.Provisioner().DeadLetters(testCtx(t), Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var got *operator.DeadLetterEntry
	waitFor(t, "billing's dead letter", func() bool {
		list, err := dl.List(testCtx(t), 0)
		if err != nil {
			return false
		}
		for i := range list {
			if list[i].Verified() && list[i].Writer == Billing && list[i].SourceSequence == ack.Sequence {
				got = &list[i]
				return true
			}
		}
		return false
	})
	return got
}

// Finding 6: a dead letter replayed after the freshness window was dead-lettered again as stale.
// The envelope here is created ten minutes before it is consumed (the publisher's clock is
// injected ten minutes back); the first consumer, with a wide window, fails it up to
// max_deliveries; after the "fix" a consumer with the normal window gets the replay once, marked
// as a replay with its original creation time. The live path is not weakened: the same envelope
// without the authorization is stale, and the authorization does not work twice.
func attackLateReplay(t *testing.T, w *World) {
	js := adminJS(t, w)
	// A stream whose duplicate window admits a consumer with a 30-minute freshness window (the
	// replay guard's store must remember ids that long), and a reader of it: drafts.> is
	// checkout's and nobody else reads it.
	const stream, reader, subject = "LATE", "latereader", "drafts.late.1"
	if err := w.Harness.AddStream(testCtx(t), Shop, operator.StreamSpec{Name: stream, Subjects: []string{"drafts.late.>"},
		Duplicates: 30 * time.Minute, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Harness.AddService(testCtx(t), Shop, accounts.ServiceSpec{Name: reader, Subscribe: []string{"drafts.late.>"},
		Consumers: []accounts.ConsumerRef{{Stream: stream, Durable: reader}}}); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-10 * time.Minute)
	// Checkout's envelope, sealed by its own keys ten minutes ago (its clock injected).
	checkout := insiderOf(t, w, Checkout)
	data := sealFor(t, w, checkout, reader, subject, created)
	info, _ := envelope.Inspect(data)
	stored, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{info.ID.String()}}})
	if err != nil {
		t.Fatal(err)
	}
	ack := struct {
		ID       string
		Sequence uint64
	}{info.ID.String(), stored.Sequence}
	// The buggy handler, on a consumer whose window admits the envelope.
	buggy := connectAs(t, w, reader, bus.WithFreshness(30*time.Minute))
	cs, err := consumers.Consume(context.Background(), buggy, stream, reader,
		func(context.Context, *consumers.Message) error { return errors.New("handler bug") }, consumers.WithBackOff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	dl, done, err := w.Harness.Provisioner().DeadLetters(testCtx(t), Shop)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var entry operator.DeadLetterEntry
	waitFor(t, "the max_deliveries dead letter", func() bool {
		list, err := dl.List(testCtx(t), 0)
		if err != nil {
			return false
		}
		for _, e := range list {
			if e.Verified() && e.SourceStream == stream && e.SourceSequence == ack.Sequence && e.Reason == consumers.ReasonMaxDeliveries {
				entry = e
				return true
			}
		}
		return false
	})
	cs.Stop()
	<-cs.Done()

	// The fixed handler, with the normal window.
	fixed := connectAs(t, w, reader)
	var mu sync.Mutex
	var got []*consumers.Message
	cs, err = consumers.Consume(context.Background(), fixed, stream, reader, func(_ context.Context, m *consumers.Message) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	// Without authorization (re-published as an insider with publish rights would): stale.
	raw, err := js.Stream(testCtx(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := raw.GetMsg(testCtx(t), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	copyAck, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: subject, Data: orig.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{randomHex(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	// With it: handled once.
	res, err := dl.Replay(testCtx(t), entry.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	mu.Lock()
	m := got[0]
	mu.Unlock()
	skPub, _ := w.Accounts[Shop].SigningKeys[0].PublicKey()
	if m.Replay == nil || m.Replay.ID != res.AuthorizationID || m.Replay.OrderedBy != skPub || m.Replay.DeadLetter != entry.Sequence ||
		m.ID != ack.ID || string(m.Payload) != `{"x":1}` || m.Created.After(created.Add(time.Second)) || m.Stored.Sub(m.Created) < 9*time.Minute {
		t.Fatalf("replayed message: %+v (replay %+v)", m, m.Replay)
	}
	// The copy without authorization was dead-lettered as stale.
	waitFor(t, "the stale copy's dead letter", func() bool {
		list, _ := dl.List(testCtx(t), 0)
		return slices.ContainsFunc(list, func(e operator.DeadLetterEntry) bool {
			return e.Verified() && e.SourceStream == stream && e.SourceSequence == copyAck.Sequence && e.Reason == string(envelope.ReasonStale)
		})
	})
	// The replayed message again, authorization and all, at a new position: refused as a replay.
	again, err := raw.GetMsg(testCtx(t), res.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	h := again.Header
	h.Set(jetstream.MsgIDHeader, randomHex(t))
	againAck, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: subject, Data: again.Data, Header: h})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second use of the authorization refused", func() bool {
		list, _ := dl.List(testCtx(t), 0)
		return slices.ContainsFunc(list, func(e operator.DeadLetterEntry) bool {
			return e.Verified() && e.SourceStream == stream && e.SourceSequence == againAck.Sequence && e.Reason == consumers.ReasonReplay
		})
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("handled %d times", len(got))
	}
	// The replay is audited with who ordered it.
	found := false
	for _, r := range auditRecords(t, w) {
		found = found || r.Verified() && r.Event.Type == operator.EventReplayed && r.Event.Data.ReplayID == res.AuthorizationID && r.Event.Data.OrderedBy == skPub
	}
	if !found {
		t.Fatal("the replay is not audited")
	}
}

// Finding 7: the audit event of a tampered envelope named the sender the envelope claims as if
// verified. Now the verified fields stay empty and the claims are labelled.
func attackClaimedSender(t *testing.T, w *World) {
	js := adminJS(t, w)
	checkout := connectAs(t, w, Checkout)
	billing := connectAs(t, w, Billing)
	cs, err := consumers.Consume(context.Background(), billing, OrdersStream, Billing, func(context.Context, *consumers.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	ack, err := checkout.Publish(testCtx(t), "orders.us.1", []byte("genuine"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(testCtx(t), OrdersStream)
	m, err := st.GetMsg(testCtx(t), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(m.Data)
	forged[len(forged)-1] ^= 1 // the signature: the envelope still names checkout
	bad, err := js.PublishMsg(testCtx(t), &nats.Msg{Subject: "orders.us.1", Data: forged, Header: nats.Header{jetstream.MsgIDHeader: []string{randomHex(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejection's audit event", func() bool {
		for _, r := range auditRecords(t, w) {
			if !r.Verified() || r.Event.Type != bus.EventRejected || r.Event.Data.Sequence != bad.Sequence {
				continue
			}
			d := r.Event.Data
			if d.Sender != "" || d.MessageID != "" || d.Claimed == nil || d.Claimed.Sender != checkout.UserKey() || d.Claimed.MessageID != ack.ID {
				t.Fatalf("event data %+v (claimed %+v)", d, d.Claimed)
			}
			return true
		}
		return false
	})
}

// Finding 8: admin actions wrote no audit event. Now each writes a signed one naming the key
// that ordered it, from the Provisioner (so the CLI and Go callers alike).
func attackAdminActions(t *testing.T, w *World) {
	p := w.Harness.Provisioner()
	c := testCtx(t)
	if err := w.Harness.AddStream(c, Shop, operator.StreamSpec{Name: "INVOICES", Subjects: []string{"invoices.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Harness.RotateService(c, Shop, Support, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := w.Harness.RevokeService(c, Shop, Legacy); err != nil {
		t.Fatal(err)
	}
	acct, err := p.EditAccount(Shop, func(a *accounts.Account) error {
		a.Claims.Exports.Add(&jwt.Export{Name: "public", Subject: "orders.public.>", Type: jwt.Stream})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PushAccount(c, acct); err != nil {
		t.Fatal(err)
	}
	opKey := p.Operator.PublicKey()
	skPub, _ := acct.SigningKeys[0].PublicKey()
	want := map[string]string{ // type -> the key that ordered it
		operator.EventInit: opKey, operator.EventAccountCreated: opKey, operator.EventAccountSetup: opKey, operator.EventAccountEdited: opKey,
		operator.EventAccountPushed: opKey, operator.EventServiceCreated: skPub, operator.EventServicePublished: skPub,
		operator.EventServiceRotated: skPub, operator.EventServiceRevoked: opKey, operator.EventStreamAdded: skPub,
	}
	got := map[string]bool{}
	var export bool
	for _, r := range auditRecords(t, w) {
		if !r.Verified() || r.Verification.Record == nil {
			continue
		}
		e := r.Event
		if by, ok := want[e.Type]; ok {
			if e.Data.OrderedBy != by || r.Verification.Record.Writer != by {
				t.Errorf("%s ordered by %s, signed by %s, want %s", e.Type, e.Data.OrderedBy, r.Verification.Record.Writer, by)
			}
			got[e.Type] = true
		}
		if e.Type == operator.EventAccountEdited && slices.Contains(e.Data.Changes, "export +orders.public.>") {
			export = true
		}
	}
	for typ := range want {
		if !got[typ] {
			t.Errorf("no verified %s event", typ)
		}
	}
	if !export {
		t.Error("the edit event does not name the export")
	}
	if n, err := p.PendingAudit(Shop); err != nil || n != 0 {
		t.Errorf("%d admin records still pending (%v)", n, err)
	}
}
