package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// MaxAdminCredsTTL bounds the lifetime of creds issued by [Provisioner.IssueAdminCreds].
const MaxAdminCredsTTL = 24 * time.Hour

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
// `nats consumer info`, and so on. The issuance is audited first, as a signed admin event
// ([EventCredsIssued]) written to the account's audit stream, and no creds are returned when
// that write fails. The system account has no audit stream (JetStream is off there): the
// issuance of its creds is not recorded in any stream. The seed never leaves the result.
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
		ev := bus.Event{Type: EventCredsIssued, Data: bus.EventData{Key: out.UserKey,
			Changes: []string{"expires " + out.Expires.UTC().Format(time.RFC3339)}}}
		err := p.record(acct, false, ev)
		if err == nil {
			err = p.FlushAudit(ctx, account)
		}
		if err != nil {
			wipe(creds)
			return nil, fmt.Errorf("operator: admin creds not issued: the audit event was not written: %w", err)
		}
	}
	return out, nil
}
