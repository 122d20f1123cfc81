package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// VerifierLookup returns the record verifier of the account whose public key is account. An
// error means that account's records cannot be verified: they are reported with the state
// [StateUnknownWriter] and the error as the detail, never as evidence.
type VerifierLookup func(ctx context.Context, account string) (*RecordVerifier, error)

// AuditView reads the operator-wide view ([Provisioner.SetupMonitoring]): every tenant's audit
// and dead-letter records and the operator account's own audit records (the monitor's alerts,
// its admin events), merged, each verified with the verifier of the account whose stream holds
// it. It needs an admin connection of the operator account.
type AuditView struct {
	js        jetstream.JetStream
	operator  string // the operator account's public key
	verifiers VerifierLookup

	mu    sync.Mutex
	cache map[string]*RecordVerifier
}

// NewAuditView returns a reader of the view of the operator account (public key
// operatorAccount) that js is connected to, verifying the records of each account with the
// verifier lookup returns for it ([Provisioner.AuditView] uses the keystore's account JWTs).
// A nil js or lookup is [ErrInvalidSpec].
func NewAuditView(js jetstream.JetStream, operatorAccount string, lookup VerifierLookup) (*AuditView, error) {
	if js == nil || lookup == nil {
		return nil, errNoVerifier
	}
	return &AuditView{js: js, operator: operatorAccount, verifiers: lookup, cache: map[string]*RecordVerifier{}}, nil
}

// ViewRecord is one record of the view. Exactly one of Audit and DeadLetter is set; each
// carries its Verification, made with the verifier of Account.
type ViewRecord struct {
	// Account is the account the record comes from: the one whose view stream holds it
	// (each tenant's records have their own view streams, which only that tenant's mirror
	// feeds), never what the record says.
	Account     string
	AccountName string
	Kind        string // "audit" or "dlq"
	Stream      string // the view stream (or the operator account's audit stream)
	Audit       *AuditRecord
	DeadLetter  *DeadLetterEntry
}

// Verification is the record's verification.
func (r ViewRecord) Verification() Verification {
	if r.Audit != nil {
		return r.Audit.Verification
	}
	return r.DeadLetter.Verification
}

// Stored is the record's time in the view.
func (r ViewRecord) Stored() time.Time {
	if r.Audit != nil {
		return r.Audit.Stored
	}
	return r.DeadLetter.Stored
}

// Sequence is the record's sequence in its view stream.
func (r ViewRecord) Sequence() uint64 {
	if r.Audit != nil {
		return r.Audit.Sequence
	}
	return r.DeadLetter.Sequence
}

// Subject is the subject the record was stored on in its account (its writer's evidence
// subject; a view keeps the subjects of what it sources).
func (r ViewRecord) Subject() string {
	if r.Audit != nil {
		return r.Audit.Subject
	}
	return r.DeadLetter.Subject
}

// Service names who stored the record: the verified writer of a verified record (a service,
// [accounts.AdminWriter] or [OperatorWriter]); for any other record, the writer whose evidence
// subject it was stored on (the servers let no one else publish there), or "" when the subject
// is not an evidence subject.
func (r ViewRecord) Service() string {
	if v := r.Verification(); v.Verified() {
		if v.Writer == OperatorWriter {
			return accounts.AdminWriter
		}
		return v.Writer
	}
	if es, ok := accounts.ParseEvidenceSubject(r.Subject()); ok {
		return es.Writer
	}
	return ""
}

// Type is the audit event's type (what an unverified record claims), "dlq" for a dead letter,
// "" for an audit record that does not decode as an event.
func (r ViewRecord) Type() string {
	switch {
	case r.DeadLetter != nil:
		return "dlq"
	case r.Audit.Event != nil:
		return r.Audit.Event.Type
	}
	return ""
}

// Reason is the audit event's or the dead letter's reason code (claimed, for an unverified
// record).
func (r ViewRecord) Reason() string {
	switch {
	case r.DeadLetter != nil:
		return r.DeadLetter.Reason
	case r.Audit.Event != nil:
		return r.Audit.Event.Data.Reason
	}
	return ""
}

// ViewFilter selects records of the view. Empty fields select everything.
type ViewFilter struct {
	Account string    // account name or public key
	Service string    // who stored it ([ViewRecord.Service]): a service name or _admin
	Type    string    // audit event type, or "dlq" for dead letters only
	Reason  string    // reason code (audit events and dead letters)
	Since   time.Time // stored at or after
}

func (f ViewFilter) match(r ViewRecord) bool {
	switch {
	case f.Account != "" && f.Account != r.Account && f.Account != r.AccountName:
		return false
	case !f.Since.IsZero() && r.Stored().Before(f.Since):
		return false
	case f.Type != "" && f.Type != r.Type():
		return false
	case f.Reason != "" && f.Reason != r.Reason():
		return false
	case f.Service != "" && f.Service != r.Service():
		return false
	}
	return true
}

// viewStream is one stream of the view and whose records it holds.
type viewStream struct {
	name, kind, account, accountName string
}

// wants reports whether f can select anything in s.
func (s viewStream) wants(f ViewFilter) bool {
	if f.Account != "" && f.Account != s.account && f.Account != s.accountName {
		return false
	}
	if f.Type != "" && (f.Type == "dlq") != (s.kind == "dlq") {
		return false
	}
	return true
}

// streams lists the view's streams: every tenant's view streams and the operator account's own
// audit stream.
func (v *AuditView) streams(ctx context.Context) ([]viewStream, error) {
	var out []viewStream
	lister := v.js.ListStreams(ctx)
	for info := range lister.Info() {
		name := info.Config.Name
		if kind, account, ok := accounts.ParseViewStream(name); ok {
			out = append(out, viewStream{name, kind, account, info.Config.Metadata["sealbus_account_name"]})
		}
		if name == accounts.AuditStream {
			out = append(out, viewStream{name: name, kind: "audit", account: v.operator, accountName: accounts.OperatorAccountName})
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("operator: audit view: %w", err)
	}
	slices.SortFunc(out, func(a, b viewStream) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// verifier returns the verifier of account, looked up once per AuditView.
func (v *AuditView) verifier(ctx context.Context, account string) (*RecordVerifier, error) {
	v.mu.Lock()
	rv, ok := v.cache[account]
	v.mu.Unlock()
	if ok {
		return rv, nil
	}
	rv, err := v.verifiers(ctx, account)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.cache[account] = rv
	v.mu.Unlock()
	return rv, nil
}

// record verifies one message of s.
func (v *AuditView) record(ctx context.Context, s viewStream, m jetstream.Msg) (ViewRecord, error) {
	r := ViewRecord{Account: s.account, AccountName: s.accountName, Kind: s.kind, Stream: s.name}
	md, err := m.Metadata()
	if err != nil {
		return r, err
	}
	rv, verr := v.verifier(ctx, s.account)
	if verr != nil {
		// Nothing can vouch for the records of this account: report them as such.
		unknown := Verification{State: StateUnknownWriter, Detail: "no verifier for account " + s.account + ": " + verr.Error()}
		if s.kind == "dlq" {
			r.DeadLetter = &DeadLetterEntry{Sequence: md.Sequence.Stream, Subject: m.Subject(), Stored: md.Timestamp, Raw: m.Data(), Verification: unknown}
		} else {
			r.Audit = &AuditRecord{Sequence: md.Sequence.Stream, Subject: m.Subject(), Stored: md.Timestamp, Raw: m.Data(), Verification: unknown}
		}
		return r, nil
	}
	if s.kind == "dlq" {
		dl := deadLetterOf(rv, md.Sequence.Stream, m.Subject(), md.Timestamp, m.Data())
		r.DeadLetter = &dl
		return r, nil
	}
	ar, err := auditRecordOf(rv, m)
	if err != nil {
		return r, err
	}
	r.Audit = &ar
	return r, nil
}

// ViewPositions are the last sequences Tail saw, per stream, from which Follow continues.
type ViewPositions map[string]uint64

// Tail returns the last n records (all when n <= 0) that f selects, across the whole view,
// oldest first by stored time, and the positions from which Follow continues.
func (v *AuditView) Tail(ctx context.Context, n int, f ViewFilter) ([]ViewRecord, ViewPositions, error) {
	streams, err := v.streams(ctx)
	if err != nil {
		return nil, nil, err
	}
	pos := ViewPositions{}
	var out []ViewRecord
	for _, s := range streams {
		if !s.wants(f) {
			continue
		}
		// Unfiltered, the last n of each stream hold the last n of the view; a filter may
		// reject most of them, so then the whole stream is read.
		per := n
		if f != (ViewFilter{}) {
			per = 0
		}
		last, err := readLast(ctx, v.js, s.name, per, func(m jetstream.Msg) error {
			r, err := v.record(ctx, s, m)
			if err != nil {
				return err
			}
			if f.match(r) {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("operator: audit view %s: %w", s.name, err)
		}
		pos[s.name] = last
	}
	slices.SortStableFunc(out, func(a, b ViewRecord) int { return a.Stored().Compare(b.Stored()) })
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, pos, nil
}

// Follow calls fn, one call at a time, for every record that f selects stored after pos
// (from Tail), in each stream's order, until ctx ends (then it returns nil) or fn returns an
// error. Streams of tenants set up later are not followed.
func (v *AuditView) Follow(ctx context.Context, pos ViewPositions, f ViewFilter, fn func(ViewRecord) error) error {
	streams, err := v.streams(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, s := range streams {
		if !s.wants(f) {
			continue
		}
		wg.Go(func() {
			err := follow(ctx, v.js, s.name, pos[s.name]+1, func(m jetstream.Msg) error {
				r, err := v.record(ctx, s, m)
				if err != nil || !f.match(r) {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				return fn(r)
			})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return first
}
