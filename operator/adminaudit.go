package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/internal/atomicfile"
)

// Admin event types: every administrative action of a [Provisioner] writes one, as a record
// signed by the key that ordered it — the operator key for what it signs (accounts: creation,
// edits, pushes, set-up; the operator's own initialization), the account's signing key for what
// it signs (services, streams, replays) — on the account's admin audit subject. Data.OrderedBy
// names that key.
const (
	EventInit             = "sealbus.admin.init"               // the operator that governs the account (time: its creation)
	EventAccountCreated   = "sealbus.admin.account.created"    // Data.Changes: the limits
	EventAccountEdited    = "sealbus.admin.account.edited"     // Data.Changes: what the new account JWT changed (exports, imports, limits, revocations, signing keys)
	EventAccountPushed    = "sealbus.admin.account.pushed"     // the account JWT was pushed to the server
	EventAccountSetup     = "sealbus.admin.account.setup"      // the directory and evidence streams were set up (Data.Changes: the quotas)
	EventServiceCreated   = "sealbus.admin.service.created"    // Data.Service, Data.Key: its user key
	EventServiceRotated   = "sealbus.admin.service.rotated"    // Data.Key: the new user key; Data.Changes: the revoked one
	EventServiceRevoked   = "sealbus.admin.service.revoked"    // Data.Key: the revoked user key
	EventServicePublished = "sealbus.admin.service.published"  // its card published, its durables ensured
	EventStreamAdded      = "sealbus.admin.stream.added"       // Data.Stream; Data.Changes: its subjects
	EventReplayed         = "sealbus.admin.dlq.replayed"       // Data.DLQSeq, Stream, Sequence (the replay's), Consumer, ReplayID
	EventReplayRefused    = "sealbus.admin.dlq.replay_refused" // Data.DLQSeq, Reason, Error
	EventCredsIssued      = "sealbus.admin.creds_issued"       // Data.Key: the short-lived admin user; Data.Changes: its expiry
	EventServiceEdited    = "sealbus.admin.service.edited"     // Data.Key: the new user key; Data.Changes: the revoked one
	EventServiceRemoved   = "sealbus.admin.service.removed"    // Data.Key: the revoked user key
	EventStreamEdited     = "sealbus.admin.stream.edited"      // Data.Stream; Data.Changes: its subjects
	EventStreamRemoved    = "sealbus.admin.stream.removed"     // Data.Stream
	EventGuardResized     = "sealbus.admin.guard.resized"      // Data.Stream, Consumer; Data.Changes: the store's new size limit in bytes
)

// pendingDir is where admin records wait for a connection to their account's server:
// <home>/audit-pending/<account>/. Records are signed when the action happens (most actions
// change only the keystore) and written to the account's audit stream by the next call that
// connects to it (any admin connection of the Provisioner); a failed write leaves them there.
func (p *Provisioner) pendingDir(account string) string {
	return p.Keystore.Path("audit-pending", account)
}

// signer returns the key an admin action of acct is signed with: the operator key when
// byOperator and its seed is at hand, else the account's first signing key.
func (p *Provisioner) signer(acct *accounts.Account, byOperator bool) (nkeys.KeyPair, error) {
	if byOperator && p.Operator != nil && p.Operator.Key != nil {
		if _, err := p.Operator.Key.Seed(); err == nil {
			return p.Operator.Key, nil
		}
	}
	if acct == nil || len(acct.SigningKeys) == 0 {
		return nil, fmt.Errorf("%w: account has no signing key", ErrInvalidSpec)
	}
	return acct.SigningKeys[0], nil
}

// record signs an admin event of acct and queues it for the account's audit stream.
func (p *Provisioner) record(acct *accounts.Account, byOperator bool, e bus.Event) error {
	key, err := p.signer(acct, byOperator)
	if err != nil {
		return err
	}
	data, err := signAdminEvent(key, acct.PublicKey(), &e, time.Now())
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%020d-%s.rec", e.Time.UnixNano(), e.ID)
	return atomicfile.Write(filepath.Join(p.pendingDir(acct.Name), name), data, atomicfile.Private)
}

// signAdminEvent fills e in as an admin event of account (source the account's admin writer,
// OrderedBy the signing key unless set, time now unless set, an id unless set) and signs it
// with key (the account's signing or identity key, or the operator key) as an audit record.
func signAdminEvent(key nkeys.KeyPair, account string, e *bus.Event, now time.Time) ([]byte, error) {
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: signing key", accounts.ErrNoSeed)
	}
	if e.Data.OrderedBy == "" {
		e.Data.OrderedBy = pub
	}
	if err := e.Fill(bus.EventSource(account, accounts.AdminWriter), now, nil); err != nil {
		return nil, err
	}
	payload, err := jsonEvent(e)
	if err != nil {
		return nil, err
	}
	var id envelope.RecordID
	copy(id[:], mustHex(e.ID))
	data, err := envelope.SignRecord(key, envelope.Record{Kind: envelope.RecordAudit, ID: id, Time: now, Account: account, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("operator: sign admin event: %w", err)
	}
	return data, nil
}

// writeAdminRecord stores a signed admin record (from signAdminEvent) on the admin audit
// subject of token, deduplicated by its record id.
func writeAdminRecord(ctx context.Context, js jetstream.JetStream, token string, data []byte) error {
	r, err := envelope.ParseRecord(data)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: accounts.AdminAuditSubject(token), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, bus.EvidenceMsgID(token, "admin", r.ID.String()))
	_, err = js.PublishMsg(ctx, msg, jetstream.WithExpectStream(accounts.AuditStream))
	return err
}

// mustHex decodes an event id made by bus.Event.Fill (32 hex digits); other ids map through
// SHA-256, so a record id is always derived from the event id.
func mustHex(id string) []byte {
	if b, err := hex.DecodeString(id); err == nil && len(b) == 16 {
		return b
	}
	h := sha256.Sum256([]byte(id))
	return h[:16]
}

// audit records an admin event and writes what is pending over nc. A failed write leaves the
// records pending (the next connection writes them): an administrative action that succeeded is
// not reported as failed because its audit record is late. A record that could not be made at
// all is reported ([ErrNotAudited]).
func (p *Provisioner) audit(ctx context.Context, nc *nats.Conn, acct *accounts.Account, byOperator bool, e bus.Event) error {
	if err := p.recordOnly(acct, byOperator, e); err != nil {
		return err
	}
	if nc != nil {
		_ = p.flushAudit(ctx, nc, acct)
	}
	return nil
}

// recordOnly queues an admin event for an action that changed only the keystore; an event it
// could not sign or keep is an [ErrNotAudited].
func (p *Provisioner) recordOnly(acct *accounts.Account, byOperator bool, e bus.Event) error {
	if err := p.record(acct, byOperator, e); err != nil {
		return fmt.Errorf("%w: %s of account %s: %w", ErrNotAudited, e.Type, acct.Name, err)
	}
	return nil
}

// flushAudit writes acct's pending admin records, oldest first, to its admin audit subject over
// nc and removes each once the server stored it. It stops at the first failure.
func (p *Provisioner) flushAudit(ctx context.Context, nc *nats.Conn, acct *accounts.Account) error {
	p.amu.Lock()
	defer p.amu.Unlock()
	dir := p.pendingDir(acct.Name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("operator: pending audit records: %w", err)
	}
	tok, err := AdminEvidenceToken(acct)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".rec") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("operator: pending audit record: %w", err)
		}
		if _, err := envelope.ParseRecord(data); err != nil {
			return fmt.Errorf("operator: pending audit record %s: %w", name, err)
		}
		if err := writeAdminRecord(ctx, js, tok, data); err != nil {
			return fmt.Errorf("operator: writing admin audit records of %s: %w", acct.Name, err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("operator: pending audit record: %w", err)
		}
	}
	return nil
}

// FlushAudit writes the account's pending admin audit records now (see [Provisioner] for when
// they are written otherwise) and returns why it could not.
func (p *Provisioner) FlushAudit(ctx context.Context, account string) error {
	acct, nc, err := p.adminOf(ctx, account)
	if err != nil {
		return err
	}
	defer nc.Close()
	return p.flushAudit(ctx, nc, acct)
}

// PendingAudit returns how many admin audit records of the account wait to be written.
func (p *Provisioner) PendingAudit(account string) (int, error) {
	entries, err := os.ReadDir(p.pendingDir(account))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".rec") {
			n++
		}
	}
	return n, err
}

// initEvent is the operator's initialization, stated to each account when its audit stream is
// created: signed by the operator key, with the time the operator JWT was issued and an id
// derived from the operator key (so setting an account up again states it under the same id).
func (p *Provisioner) initEvent() bus.Event {
	e := bus.Event{Type: EventInit, Data: bus.EventData{OrderedBy: p.Operator.PublicKey()}}
	if oc, err := jwt.DecodeOperatorClaims(p.Operator.JWT); err == nil && oc.IssuedAt > 0 {
		e.Time = time.Unix(oc.IssuedAt, 0)
	}
	h := sha256.Sum256([]byte("sealbus operator init " + p.Operator.PublicKey()))
	e.ID = hex.EncodeToString(h[:16])
	return e
}

// claimChanges describes what a new account JWT changes: exports and imports added or removed
// (by subject), revocations added, signing keys added or removed, limits.
func claimChanges(before, after *jwt.AccountClaims) []string {
	var out []string
	if before == nil || after == nil {
		return out
	}
	subjectsOf := func(n int, f func(int) string) []string {
		var s []string
		for i := range n {
			s = append(s, f(i))
		}
		slices.Sort(s)
		return s
	}
	diff := func(what string, a, b []string) {
		for _, s := range b {
			if !slices.Contains(a, s) {
				out = append(out, what+" +"+s)
			}
		}
		for _, s := range a {
			if !slices.Contains(b, s) {
				out = append(out, what+" -"+s)
			}
		}
	}
	diff("export",
		subjectsOf(len(before.Exports), func(i int) string { return string(before.Exports[i].Subject) }),
		subjectsOf(len(after.Exports), func(i int) string { return string(after.Exports[i].Subject) }))
	diff("import",
		subjectsOf(len(before.Imports), func(i int) string { return string(before.Imports[i].Subject) }),
		subjectsOf(len(after.Imports), func(i int) string { return string(after.Imports[i].Subject) }))
	var revoked []string
	for k, ts := range after.Revocations {
		if old, ok := before.Revocations[k]; !ok || old != ts {
			revoked = append(revoked, "revoked "+k)
		}
	}
	slices.Sort(revoked)
	out = append(out, revoked...)
	keys := func(c *jwt.AccountClaims) []string {
		var s []string
		for k := range c.SigningKeys {
			s = append(s, k)
		}
		slices.Sort(s)
		return s
	}
	diff("signing key", keys(before), keys(after))
	bl, _ := json.Marshal(before.Limits)
	al, _ := json.Marshal(after.Limits)
	if string(bl) != string(al) {
		out = append(out, "limits")
	}
	return out
}

func jsonEvent(e *bus.Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("operator: encode admin event: %w", err)
	}
	return b, nil
}
