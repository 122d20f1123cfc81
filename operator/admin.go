package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// MaxAdminCredsTTL bounds the lifetime of creds issued by [Provisioner.IssueAdminCreds].
const MaxAdminCredsTTL = 24 * time.Hour

// AdminEvent is an admin action the operator took, for the account's audit log.
type AdminEvent struct {
	Type    string            // "sealbus.admin.<action>", e.g. sealbus.admin.creds_issued
	Account string            // account name the action is about
	Detail  map[string]string // what was done (no secrets)
	At      time.Time
}

// AdminAuditor records admin actions. It is the seam through which signed admin audit
// events are written (docs/ARCHITECTURE.md, practice 6); with none set, [Provisioner] writes
// the event unsigned into the account's audit stream.
type AdminAuditor interface {
	AuditAdmin(ctx context.Context, e AdminEvent) error
}

// recordAdmin writes e through p.Auditor, else unsigned into the account's SEALBUS_AUDIT
// (source "sealbus://<account key>/operator").
func (p *Provisioner) recordAdmin(ctx context.Context, acct *accounts.Account, e AdminEvent) error {
	if p.Auditor != nil {
		return p.Auditor.AuditAdmin(ctx, e)
	}
	nc, err := ConnectAdmin(ctx, p.Target, acct)
	if err != nil {
		return err
	}
	defer nc.Close()
	return writeAdminEvent(ctx, nc, acct, e)
}

func writeAdminEvent(ctx context.Context, nc *nats.Conn, acct *accounts.Account, e AdminEvent) error {
	detail, _ := json.Marshal(e.Detail)
	ev := bus.Event{
		SpecVersion: bus.EventSpecVersion, ID: nats.NewInbox()[len(nats.InboxPrefix):],
		Source: "sealbus://" + acct.PublicKey() + "/operator", Type: e.Type, Time: e.At.UTC(),
		DataContentType: "application/json", Data: bus.EventData{Reason: string(detail)},
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("operator: admin event: %w", err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("operator: admin event: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, accounts.AuditSubject(e.Type), b)
	if err != nil {
		return fmt.Errorf("operator: writing admin event %s: %w", e.Type, err)
	}
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(msg.Data, &ack) == nil && ack.Error != nil {
		return fmt.Errorf("operator: writing admin event %s: %s", e.Type, ack.Error.Description)
	}
	return nil
}

// AdminCreds are short-lived operator-side credentials for one account.
type AdminCreds struct {
	Account string    `json:"account"`
	UserKey string    `json:"user_key"`
	Expires time.Time `json:"expires"`
	// Creds is the creds file (user JWT and seed): a secret. Write it 0600 and wipe it.
	Creds []byte `json:"-"`
}

// IssueAdminCreds mints a user of account (accounts.SystemAccountName for the system account,
// for `nats server ls` and friends) with no permission limit inside the account, expiring after
// ttl (at most [MaxAdminCredsTTL]): what the stock `nats` CLI needs for `nats stream ls`,
// `nats consumer info`, and so on. The issuance is audited first ([AdminAuditor], or an event
// in the account's audit stream; the system account has none and its issuance is audited in
// no stream), and no creds are returned when that fails. The seed never leaves the result.
func (p *Provisioner) IssueAdminCreds(ctx context.Context, account string, ttl time.Duration) (*AdminCreds, error) {
	if ttl <= 0 || ttl > MaxAdminCredsTTL {
		return nil, fmt.Errorf("%w: admin creds lifetime %v must be above 0 and at most %v", ErrInvalidSpec, ttl, MaxAdminCredsTTL)
	}
	var acct *accounts.Account
	if account == accounts.SystemAccountName {
		acct = p.Operator.System
	} else {
		var err error
		if acct, err = p.Keystore.LoadAccount(account); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	userJWT, seed, err := adminUser(acct, now, ttl, "sealbus-admin-creds")
	if err != nil {
		return nil, err
	}
	defer wipe(seed)
	creds, err := accounts.FormatCreds(accounts.Creds{UserJWT: userJWT, UserSeed: seed})
	if err != nil {
		return nil, err
	}
	out := &AdminCreds{Account: account, Expires: now.Add(ttl).Truncate(time.Second), Creds: creds}
	if uc, err := decodeUser(userJWT); err == nil {
		out.UserKey = uc
	}
	if account != accounts.SystemAccountName {
		if err := p.recordAdmin(ctx, acct, AdminEvent{
			Type: "sealbus.admin.creds_issued", Account: account, At: now,
			Detail: map[string]string{"user_key": out.UserKey, "expires": out.Expires.UTC().Format(time.RFC3339)},
		}); err != nil {
			wipe(creds)
			return nil, fmt.Errorf("operator: admin creds not issued: the audit event was not written: %w", err)
		}
	}
	return out, nil
}
