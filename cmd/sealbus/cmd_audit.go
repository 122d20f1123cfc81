package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	return group("audit", "Read an account's audit stream",
		"  sealbus audit tail shop --follow",
		a.auditTailCmd())
}

// verificationJSON is a record's verification in --json output.
type verificationJSON struct {
	State      operator.RecordState `json:"state"`
	Detail     string               `json:"detail,omitempty"`
	Writer     string               `json:"writer,omitempty"` // verified writer (service name, _admin, _operator)
	WriterKey  string               `json:"writer_key,omitempty"`
	WriterRole string               `json:"writer_role,omitempty"`
	RecordID   string               `json:"record_id,omitempty"`
	RecordTime *time.Time           `json:"record_time,omitempty"`
}

func verificationView(v operator.Verification) verificationJSON {
	out := verificationJSON{State: v.State, Detail: v.Detail, Writer: v.Writer}
	if r := v.Record; r != nil {
		t := r.Time
		out.WriterKey, out.WriterRole, out.RecordID, out.RecordTime = r.Writer, r.Role.String(), r.ID.String(), &t
	}
	return out
}

// auditJSON is one record of `audit tail --json`: the CloudEvent itself (so `jq .type` works),
// with the stream position and the verification beside it. The event of an unverified record
// is what its bytes claim.
type auditJSON struct {
	*bus.Event
	Seq           uint64           `json:"seq"`
	StreamSubject string           `json:"stream_subject"`
	Stored        time.Time        `json:"stored"`
	Verification  verificationJSON `json:"verification"`
	Raw           []byte           `json:"raw,omitempty"` // the stored bytes, when nothing decodes as an event
}

// auditLine prints one record in human mode: verified records as they are, every other one
// marked UNVERIFIED with its state and only as a claim, every untrusted field escaped.
func auditLine(w io.Writer, r operator.AuditRecord) {
	if r.Verified() {
		e := r.Event
		fmt.Fprintf(w, "%6d  %s  verified  %-10s %-32s %s %s%s\n", r.Sequence, e.Time.UTC().Format(time.RFC3339), operator.Escape(r.Verification.Writer),
			operator.Escape(e.Type), operator.Escape(e.Data.Reason), operator.Escape(e.Subject), eventDetail(e))
		return
	}
	claim := "undecodable"
	if e := r.Event; e != nil {
		claim = fmt.Sprintf("claims %s from %s %s %s", operator.Escape(e.Type), operator.Escape(e.Source), operator.Escape(e.Data.Reason), operator.Escape(e.Subject))
	}
	fmt.Fprintf(w, "%6d  %s  UNVERIFIED (%s: %s)  %s\n", r.Sequence, r.Stored.UTC().Format(time.RFC3339), r.Verification.State,
		operator.Escape(r.Verification.Detail), claim)
}

// eventDetail adds what an event says beyond its type and reason: the verified sender, or the
// claimed one of an envelope that did not verify, and what an admin event was about.
func eventDetail(e *bus.Event) string {
	var parts []string
	d := e.Data
	switch {
	case d.Stream != "" && d.Sequence > 0:
		parts = append(parts, fmt.Sprintf("%s/%d", operator.Escape(d.Stream), d.Sequence))
	case d.Stream != "":
		parts = append(parts, "stream "+operator.Escape(d.Stream))
	}
	if d.Sender != "" {
		parts = append(parts, "sender "+operator.Escape(d.Sender))
	}
	if c := d.Claimed; c != nil && c.Sender != "" {
		parts = append(parts, "claimed sender "+operator.Escape(c.Sender)+" (unverified)")
	}
	if d.Service != "" {
		parts = append(parts, "service "+operator.Escape(d.Service))
	}
	if d.OrderedBy != "" {
		parts = append(parts, "by "+operator.Escape(d.OrderedBy))
	}
	if d.DLQSeq != 0 {
		parts = append(parts, fmt.Sprintf("dlq %d", d.DLQSeq))
	}
	for _, c := range d.Changes {
		parts = append(parts, operator.Escape(c))
	}
	kinds := make([]string, 0, len(d.Refused))
	for k := range d.Refused {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("refused %s %d", operator.Escape(k), d.Refused[k]))
	}
	if len(parts) == 0 {
		return ""
	}
	return "  (" + strings.Join(parts, "; ") + ")"
}

// countsLine summarizes verification states: "12 records: 10 verified, 2 UNVERIFIED (unsigned 1, bad_signature 1)".
func countsLine(what string, c operator.Counts) string {
	total := c.Verified() + c.Unverified()
	s := fmt.Sprintf("%d %s: %d verified", total, what, c.Verified())
	if n := c.Unverified(); n > 0 {
		var states []string
		for st, k := range c {
			if st != operator.StateVerified {
				states = append(states, fmt.Sprintf("%s %d", st, k))
			}
		}
		slices.Sort(states)
		s += fmt.Sprintf(", %d UNVERIFIED (%s): not evidence, nothing proves who wrote them", n, strings.Join(states, ", "))
	}
	return s
}

// viewJSON is one record of `audit tail --all --json`: an audit record's CloudEvent itself (so
// `jq .type` works) or a dead letter, with the account whose view stream holds it, the stream
// position and the verification beside it. What an unverified record carries is a claim.
type viewJSON struct {
	*bus.Event
	Account       string           `json:"account"`
	AccountName   string           `json:"account_name"`
	Kind          string           `json:"kind"` // "audit" or "dlq"
	ViewStream    string           `json:"view_stream"`
	Seq           uint64           `json:"seq"`
	StreamSubject string           `json:"stream_subject"`
	Stored        time.Time        `json:"stored"`
	StoredBy      string           `json:"stored_by,omitempty"` // the verified writer, else the writer of the evidence subject it is on
	Verification  verificationJSON `json:"verification"`
	DeadLetter    *deadLetterJSON  `json:"dead_letter,omitempty"`
	Raw           []byte           `json:"raw,omitempty"` // the stored bytes, when nothing decodes
}

func viewView(r operator.ViewRecord) viewJSON {
	v := viewJSON{Account: r.Account, AccountName: r.AccountName, Kind: r.Kind, ViewStream: r.Stream, Seq: r.Sequence(),
		StreamSubject: r.Subject(), Stored: r.Stored(), StoredBy: r.Service(), Verification: verificationView(r.Verification())}
	switch {
	case r.Audit != nil:
		v.Event = r.Audit.Event
		if r.Audit.Event == nil {
			v.Raw = r.Audit.Raw
		}
	default:
		d := dlView(*r.DeadLetter)
		v.DeadLetter = &d
		if r.DeadLetter.Reason == "" {
			v.Raw = r.DeadLetter.Raw
		}
	}
	return v
}

// viewLine prints one record of the operator-wide view in human mode: the account it comes from
// (the view stream it is in), then as auditLine and dlLine do, every untrusted field escaped.
func viewLine(w io.Writer, r operator.ViewRecord) {
	v := r.Verification()
	head := fmt.Sprintf("%s  %-12s %-5s %6d", r.Stored().UTC().Format(time.RFC3339), operator.Escape(firstNonEmpty(r.AccountName, r.Account)), r.Kind, r.Sequence())
	if v.Verified() {
		if d := r.DeadLetter; d != nil {
			fmt.Fprintf(w, "%s  verified  %-10s dead letter %-16s %s seq %d  %s%s\n", head, operator.Escape(v.Writer), operator.Escape(d.Reason),
				operator.Escape(d.SourceStream), d.SourceSequence, operator.Escape(d.SourceSubject), claimedNote(d.Claimed))
			return
		}
		e := r.Audit.Event
		detail := eventDetail(e)
		if strings.HasPrefix(e.Type, operator.AlertEventPrefix) {
			detail = fmt.Sprintf("  (count %d: %s)", e.Data.Sequence, operator.Escape(e.Data.Error))
		}
		fmt.Fprintf(w, "%s  verified  %-10s %-32s %s %s%s\n", head, operator.Escape(v.Writer), operator.Escape(e.Type), operator.Escape(e.Data.Reason), operator.Escape(e.Subject), detail)
		return
	}
	claim := "undecodable"
	switch {
	case r.DeadLetter != nil && r.DeadLetter.Reason != "":
		d := r.DeadLetter
		claim = fmt.Sprintf("claims a dead letter %s of %s seq %d", operator.Escape(d.Reason), operator.Escape(d.SourceStream), d.SourceSequence)
	case r.Audit != nil && r.Audit.Event != nil:
		e := r.Audit.Event
		claim = fmt.Sprintf("claims %s from %s %s %s", operator.Escape(e.Type), operator.Escape(e.Source), operator.Escape(e.Data.Reason), operator.Escape(e.Subject))
	}
	by := ""
	if s := r.Service(); s != "" {
		by = "  stored by " + operator.Escape(s)
	}
	fmt.Fprintf(w, "%s  UNVERIFIED (%s: %s)%s  %s\n", head, v.State, operator.Escape(v.Detail), by, claim)
}

func (a *app) auditTailCmd() *cobra.Command {
	var (
		last        int
		follow, all bool
		since       time.Duration
		filter      operator.ViewFilter
	)
	cmd := &cobra.Command{
		Use:   "tail [ACCOUNT | --all]",
		Short: "Print the latest audit events, verified, and with --follow new ones as they come",
		Long: `tail prints the account's latest audit records (rejected envelopes, dead letters, directory
problems, admin actions: init, account add/edit/push, service add/rotate/revoke, stream add,
dlq replay), oldest first; --follow keeps printing new ones until interrupted.

With --all instead of an account it reads the operator-wide view in the operator account: every
tenant's audit and dead-letter records and the operator account's own (the monitor's alerts,
sealbus.alert.<kind>), merged by the time they were stored, each with the account it comes from
(the view stream it is in, never what the record says). --account, --service (who stored it),
--type (an event type, or dlq for dead letters), --reason and --since select records.

Every record is verified before it is shown: signed by its writer, the writer vouched for by the
account up to the trusted operator and not revoked at the record's time, stored on its writer's
own subject. Verified records show their writer; anything else is marked UNVERIFIED with why
(unsigned, malformed, bad_signature, unknown_writer, revoked_writer, misplaced) and shown only
as a claim, and a last line counts both. Untrusted text is escaped (control characters as \x1b).
With --json each record is one CloudEvents JSON object per line with "seq", "stream_subject",
"stored" and "verification" beside the event's own fields; with --all also "account",
"account_name", "kind", "view_stream", "stored_by" and, for a dead letter, "dead_letter".`,
		Example: `  sealbus audit tail shop --last 20
  sealbus audit tail shop --follow --json | jq 'select(.verification.state == "verified") | .type'
  sealbus audit tail --all --type sealbus.rejected --since 1h
  sealbus audit tail --all --follow --json | jq 'select(.type | startswith("sealbus.alert."))'`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErr("give an account or --all, not both")
			case !all && len(args) != 1:
				return usageErr("give an account, or --all for the operator-wide view")
			case !all && (filter != (operator.ViewFilter{}) || since != 0):
				return usageErr("--account, --service, --type, --reason and --since select records of the view: use them with --all")
			}
			return nil
		},
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			counts := operator.Counts{}
			if all {
				if since > 0 {
					filter.Since = time.Now().Add(-since)
				}
				return a.auditTailAll(s, last, follow, filter, enc, counts)
			}
			ctx, cancel := a.context()
			log, done, err := s.prov.AuditLog(ctx, args[0])
			cancel()
			if err != nil {
				return err
			}
			defer done()
			tctx, tcancel := a.context()
			recs, lastSeq, err := log.Tail(tctx, last)
			tcancel()
			if err != nil {
				return err
			}
			emit := func(r operator.AuditRecord) error {
				counts.Add(r.Verification.State)
				if a.json {
					v := auditJSON{Event: r.Event, Seq: r.Sequence, StreamSubject: r.Subject, Stored: r.Stored, Verification: verificationView(r.Verification)}
					if r.Event == nil {
						v.Raw = r.Raw
					}
					return enc.Encode(v)
				}
				auditLine(a.stdout, r)
				return nil
			}
			var more func(func(operator.AuditRecord) error) error
			if follow {
				more = func(emit func(operator.AuditRecord) error) error { return log.Follow(a.ctx, lastSeq, emit) }
			}
			return printTail(a, recs, emit, more, counts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&last, "last", 20, "how many of the latest records (0 = all)")
	f.BoolVar(&follow, "follow", false, "keep printing new records until interrupted")
	f.BoolVar(&all, "all", false, "read the operator-wide view of every account instead of one account")
	f.StringVar(&filter.Account, "account", "", "with --all: only records of this account (name or public key)")
	f.StringVar(&filter.Service, "service", "", "with --all: only records stored by this service (or _admin)")
	f.StringVar(&filter.Type, "type", "", "with --all: only events of this type (dlq: dead letters only)")
	f.StringVar(&filter.Reason, "reason", "", "with --all: only records with this reason code")
	f.DurationVar(&since, "since", 0, "with --all: only records stored within this long (e.g. 1h)")
	a.serverFlags(cmd)
	return cmd
}

// tailSummary ends a human tail with the verification counts (or says there was nothing).
func (a *app) tailSummary(n int, counts operator.Counts) {
	if a.json {
		return
	}
	if n == 0 {
		fmt.Fprintln(a.stdout, "no audit events")
		return
	}
	fmt.Fprintln(a.stdout, countsLine("records", counts))
}

// auditTailAll is `audit tail --all`: the operator-wide view.
func (a *app) auditTailAll(s *session, last int, follow bool, filter operator.ViewFilter, enc *json.Encoder, counts operator.Counts) error {
	ctx, cancel := a.context()
	view, done, err := s.prov.AuditView(ctx)
	cancel()
	if err != nil {
		return err
	}
	defer done()
	emit := func(r operator.ViewRecord) error {
		counts.Add(r.Verification().State)
		if a.json {
			return enc.Encode(viewView(r))
		}
		viewLine(a.stdout, r)
		return nil
	}
	tctx, tcancel := a.context()
	recs, pos, err := view.Tail(tctx, last, filter)
	tcancel()
	if err != nil {
		return err
	}
	var more func(func(operator.ViewRecord) error) error
	if follow {
		more = func(emit func(operator.ViewRecord) error) error { return view.Follow(a.ctx, pos, filter, emit) }
	}
	return printTail(a, recs, emit, more, counts)
}

// printTail emits the records of a tail, then, with follow set, what follow emits until it
// ends (an interrupt ends it without error), and in human mode a last line that counts the
// records by verification state (or says there were none).
func printTail[R any](a *app, recs []R, emit func(R) error, follow func(func(R) error) error, counts operator.Counts) error {
	for _, r := range recs {
		if err := emit(r); err != nil {
			return err
		}
	}
	if follow == nil {
		a.tailSummary(len(recs), counts)
		return nil
	}
	err := follow(emit)
	a.tailSummary(1, counts)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
