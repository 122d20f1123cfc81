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

// AuditView reads the operator-wide view ([Provisioner.SetupMonitoring]): every account's
// audit and dead-letter records and the operator-owned account's own audit events (the
// monitor's alerts), merged. It needs an admin connection of the operator-owned account.
type AuditView struct {
	js jetstream.JetStream
}

// NewAuditView returns a reader of the view of the operator-owned account js is connected to.
func NewAuditView(js jetstream.JetStream) *AuditView { return &AuditView{js: js} }

// OperatorRecords is the AccountName of the operator-owned account's own records (the
// monitor's alerts) in the view.
const OperatorRecords = "(operator)"

// ViewRecord is one record of the view. Exactly one of Audit and DeadLetter is set.
type ViewRecord struct {
	Account     string // the account the record comes from (from the stream it is in, never from the record)
	AccountName string
	Kind        string // "audit" or "dlq"
	Stream      string // the view stream (or the operator-owned account's audit stream)
	Audit       *AuditRecord
	DeadLetter  *DeadLetterEntry
	// Verification says what was checked: "undecodable" for an audit record that is not an
	// event, "unsigned" for a record that decodes (records carry no signature of their writer
	// yet), "envelope" for a dead letter (its envelope is signed by its sender, checked when
	// replayed).
	Verification string
}

// Stored is the record's time in the view.
func (r ViewRecord) Stored() time.Time {
	if r.Audit != nil {
		return r.Audit.Stored
	}
	return r.DeadLetter.Stored
}

// ViewFilter selects records of the view. Empty fields select everything.
type ViewFilter struct {
	Account string    // account name or public key
	Service string    // the writing service's name (audit events: the event source)
	Type    string    // audit event type, or "dlq" for dead letters only
	Reason  string    // reason code (audit events and dead letters)
	Since   time.Time // stored at or after
}

func (f ViewFilter) match(r ViewRecord) bool {
	if f.Account != "" && f.Account != r.Account && f.Account != r.AccountName {
		return false
	}
	if !f.Since.IsZero() && r.Stored().Before(f.Since) {
		return false
	}
	if r.DeadLetter != nil {
		// A dead letter names no writer the view can vouch for: a service filter excludes it.
		return (f.Type == "" || f.Type == "dlq") && f.Service == "" && (f.Reason == "" || f.Reason == r.DeadLetter.Reason)
	}
	e := r.Audit.Event
	if f.Type == "dlq" {
		return false
	}
	if e == nil {
		return f.Type == "" && f.Reason == "" && f.Service == ""
	}
	if f.Type != "" && f.Type != e.Type {
		return false
	}
	if f.Reason != "" && f.Reason != e.Data.Reason {
		return false
	}
	if f.Service != "" && !strings.HasSuffix(e.Source, "/"+f.Service) {
		return false
	}
	return true
}

// viewStream is one stream of the view and whose records it holds.
type viewStream struct {
	name, kind, account, accountName string
}

// streams lists the view's streams: every account's view streams and the operator-owned
// account's own audit stream.
func (v *AuditView) streams(ctx context.Context) ([]viewStream, error) {
	var out []viewStream
	lister := v.js.ListStreams(ctx)
	for info := range lister.Info() {
		name := info.Config.Name
		if kind, account, ok := accounts.ParseViewStream(name); ok {
			out = append(out, viewStream{name, kind, account, info.Config.Metadata["sealbus_account_name"]})
		}
		if name == accounts.AuditStream {
			out = append(out, viewStream{name: name, kind: "audit", accountName: OperatorRecords})
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("operator: audit view: %w", err)
	}
	slices.SortFunc(out, func(a, b viewStream) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func (s viewStream) record(m jetstream.Msg) (ViewRecord, error) {
	r := ViewRecord{Account: s.account, AccountName: s.accountName, Kind: s.kind, Stream: s.name}
	if s.kind == "dlq" {
		md, err := m.Metadata()
		if err != nil {
			return r, err
		}
		dl := deadLetterOf(md.Sequence.Stream, m.Subject(), md.Timestamp, m.Headers(), m.Data())
		r.DeadLetter, r.Verification = &dl, "envelope"
		return r, nil
	}
	ar, err := record(m)
	if err != nil {
		return r, err
	}
	r.Audit, r.Verification = &ar, "unsigned"
	if ar.Event == nil {
		r.Verification = "undecodable"
	}
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
		if f.Account != "" && s.account != "" && f.Account != s.account && f.Account != s.accountName {
			continue
		}
		// Unfiltered, the last n of each stream hold the last n of the view; a filter may
		// reject most of them, so then the whole stream is read.
		per := n
		if f != (ViewFilter{}) {
			per = 0
		}
		last, err := readLast(ctx, v.js, s.name, per, func(m jetstream.Msg) error {
			r, err := s.record(m)
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
// error. Streams of accounts set up later are not followed.
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
		if f.Account != "" && s.account != "" && f.Account != s.account && f.Account != s.accountName {
			continue
		}
		wg.Go(func() {
			err := follow(ctx, v.js, s.name, pos[s.name]+1, func(m jetstream.Msg) error {
				r, err := s.record(m)
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
