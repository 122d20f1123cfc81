package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// The attacks on the evidence itself: a service with raw NATS access forging audit events, and
// a consumer crafting a dead letter that would make the operator's replay act with the
// operator's rights (the confused deputy).

// insider connects as a service with plain nats.go, holding what a hostile service holds (its
// creds, keys, card and evidence token).
func (d *run) insider(ctx context.Context, service string) (*sealbustest.Insider, error) {
	in, err := sealbustest.NewInsider(ctx, d.world.Harness, sealbustest.Shop, service)
	if err != nil {
		return nil, fmt.Errorf("demo: %s's raw connection: %w", service, err)
	}
	d.closers = append(d.closers, in.Close)
	return in, nil
}

// rawPublish publishes as the insider and reports whether the server stored it.
func rawPublish(ctx context.Context, js jetstream.JetStream, subject string, data []byte) (*jetstream.PubAck, error) {
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return inject(pctx, js, subject, data)
}

func (d *run) attackForgedAudit(ctx context.Context, _ *bus.Client) error {
	intern, err := d.insider(ctx, sealbustest.Intern)
	if err != nil {
		return err
	}
	js, tok := intern.JS, intern.Token
	forged := bus.Event{Type: bus.EventRejected, Subject: "orders.us.1", Data: bus.EventData{Reason: "bad_signature", Stream: sealbustest.OrdersStream, Sequence: 1}}
	if err := forged.Fill(bus.EventSource(d.world.Accounts[sealbustest.Shop].PublicKey(), sealbustest.Billing), time.Now(), nil); err != nil {
		return err
	}
	event, _ := json.Marshal(forged)
	var steps []string
	// Where every service could write before: the account-wide audit subject.
	if _, err := rawPublish(ctx, js, "sealbus.audit.rejected", event); err != nil {
		steps = append(steps, "server refused sealbus.audit.rejected")
	}
	// Billing's own subject: the intern does not know billing's token, and may not publish there.
	if _, err := rawPublish(ctx, js, accounts.AuditSubject(sealbustest.Billing, strings.Repeat("0", 32)), event); err != nil {
		steps = append(steps, "and billing's subject")
	}
	// Its own subject: an unsigned event naming billing, and a record it signed itself naming
	// billing as the writer.
	own := accounts.AuditSubject(sealbustest.Intern, tok)
	stored := 0
	if _, err := rawPublish(ctx, js, own, event); err == nil {
		stored++
	}
	// Its own key and card, billing's name.
	rec, err := intern.ID.SignRecord(envelope.Record{Kind: envelope.RecordAudit, Account: intern.Account,
		WriterName: sealbustest.Billing, Credential: intern.Card, Payload: event})
	if err != nil {
		return err
	}
	if _, err := rawPublish(ctx, js, own, rec); err == nil {
		stored++
	}
	d.forged += stored
	// What the operator sees: neither forgery as billing's.
	states := map[operator.RecordState]int{}
	asBilling := false
	if err := poll(ctx, "the forged records", func() bool {
		recs, _, err := d.audits[d.shopJS].Tail(ctx, 0)
		if err != nil {
			return false
		}
		clear(states)
		for _, r := range recs {
			if r.Event != nil && r.Event.ID == forged.ID {
				states[r.Verification.State]++
				asBilling = asBilling || r.Verified()
			}
		}
		return len(states) > 0 && sum(states) >= stored
	}); err != nil {
		return err
	}
	var seen []string
	for st, n := range states {
		seen = append(seen, fmt.Sprintf("%s %d", st, n))
	}
	sort.Strings(seen)
	outcome := fmt.Sprintf("%s; on its own subject %d stored, shown as UNVERIFIED (%s), never as billing's", strings.Join(steps, " "), stored, strings.Join(seen, ", "))
	ok := len(steps) == 2 && stored == 2 && !asBilling && states[operator.StateVerified] == 0
	d.attacks = append(d.attacks, attackResult{name: "forged audit event (intern writes one in billing's name)", outcome: outcome, ok: ok})
	return nil
}

func sum(m map[operator.RecordState]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (d *run) attackHijackReplay(ctx context.Context, checkout *bus.Client) error {
	ship, err := d.insider(ctx, sealbustest.Shipping)
	if err != nil {
		return err
	}
	js, tok := ship.JS, ship.Token
	target := "$JS.API.STREAM.PURGE." + accounts.AuditStream
	before, err := d.auditCount(ctx)
	if err != nil {
		return err
	}
	own := accounts.DLQSubject(sealbustest.Shipping, tok)
	// 1. The old trick: an unsigned dead letter whose headers name the purge as its source.
	junk := &nats.Msg{Subject: own, Data: []byte("{}"), Header: nats.Header{}}
	junk.Header.Set("Sealbus-Source-Subject", target)
	junk.Header.Set("Sealbus-Source-Stream", accounts.AuditStream)
	junk.Header.Set(jetstream.MsgIDHeader, "hijack-unsigned")
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	ack1, err := js.PublishMsg(pctx, junk)
	cancel()
	if err != nil {
		return fmt.Errorf("demo: shipping could not store its crafted dead letter: %w", err)
	}
	// 2. A dead letter shipping signed itself, carrying an envelope it sealed for the purge
	// subject: both signatures are genuine.
	to, err := d.billingKey(checkout)
	if err != nil {
		return err
	}
	env, err := ship.Seal(target, time.Now(), []byte(`{"purge":true}`), to...)
	if err != nil {
		return fmt.Errorf("demo: seal: %w", err)
	}
	h := sha256.Sum256(env)
	meta, _ := json.Marshal(consumers.DeadLetterMeta{Reason: "bad_signature", Stream: sealbustest.OrdersStream, Sequence: 1, Subject: target,
		Consumer: sealbustest.Shipping, Delivered: 1, Stored: time.Now().UTC(), EnvelopeSize: len(env), EnvelopeSHA256: hex.EncodeToString(h[:])})
	rec, err := ship.SignRecord(envelope.Record{Kind: envelope.RecordDeadLetter, Payload: meta, Attachment: env})
	if err != nil {
		return err
	}
	ack2, err := rawPublish(ctx, js, own, rec)
	if err != nil {
		return fmt.Errorf("demo: shipping could not store its signed dead letter: %w", err)
	}
	// The operator replays both.
	var reasons []string
	for _, seq := range []uint64{ack1.Sequence, ack2.Sequence} {
		_, err := d.dlqs[d.shopJS].Replay(ctx, seq)
		var re *operator.ReplayError
		if !errors.As(err, &re) {
			d.attacks = append(d.attacks, attackResult{name: "hijacking dead letter (replay as the operator's deputy)", outcome: fmt.Sprintf("REPLAYED dead letter %d: %v", seq, err)})
			return nil
		}
		reasons = append(reasons, re.Reason)
	}
	after, err := d.auditCount(ctx)
	if err != nil {
		return err
	}
	ok := reasons[0] == operator.ReplayRecordUnverified && reasons[1] == operator.ReplaySubjectForbidden && after > before
	outcome := fmt.Sprintf("replay refused: %s (unsigned), %s (signed, but %s is not an application subject); SEALBUS_AUDIT %d -> %d records, refusals audited",
		reasons[0], reasons[1], target, before, after)
	d.attacks = append(d.attacks, attackResult{name: "hijacking dead letter (replay as the operator's deputy)", outcome: outcome, ok: ok})
	return nil
}

// auditCount returns how many records shop's audit stream holds.
func (d *run) auditCount(ctx context.Context) (uint64, error) {
	s, err := d.shopJS.Stream(ctx, accounts.AuditStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// countsText is a summary of verification states: "41 records, 39 verified, 2 UNVERIFIED (unsigned 1, unknown_writer 1)".
func countsText(c operator.Counts) string {
	s := fmt.Sprintf("%d records, %d verified", c.Verified()+c.Unverified(), c.Verified())
	if c.Unverified() == 0 {
		return s
	}
	var parts []string
	for st, n := range c {
		if st != operator.StateVerified {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	sort.Strings(parts)
	return s + fmt.Sprintf(", %d UNVERIFIED (%s), the attacker's forgeries", c.Unverified(), strings.Join(parts, ", "))
}
