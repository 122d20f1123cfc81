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
		fmt.Fprintf(w, "%6d  %s  verified  %-10s %-32s %s %s%s\n", r.Sequence, e.Time.UTC().Format(time.RFC3339), esc(r.Verification.Writer),
			esc(e.Type), esc(e.Data.Reason), esc(e.Subject), eventDetail(e))
		return
	}
	claim := "undecodable"
	if e := r.Event; e != nil {
		claim = fmt.Sprintf("claims %s from %s %s %s", esc(e.Type), esc(e.Source), esc(e.Data.Reason), esc(e.Subject))
	}
	fmt.Fprintf(w, "%6d  %s  UNVERIFIED (%s: %s)  %s\n", r.Sequence, r.Stored.UTC().Format(time.RFC3339), r.Verification.State,
		esc(r.Verification.Detail), claim)
}

// eventDetail adds what an event says beyond its type and reason: the verified sender, or the
// claimed one of an envelope that did not verify, and what an admin event was about.
func eventDetail(e *bus.Event) string {
	var parts []string
	d := e.Data
	switch {
	case d.Stream != "" && d.Sequence > 0:
		parts = append(parts, fmt.Sprintf("%s/%d", esc(d.Stream), d.Sequence))
	case d.Stream != "":
		parts = append(parts, "stream "+esc(d.Stream))
	}
	if d.Sender != "" {
		parts = append(parts, "sender "+esc(d.Sender))
	}
	if c := d.Claimed; c != nil && c.Sender != "" {
		parts = append(parts, "claimed sender "+esc(c.Sender)+" (unverified)")
	}
	if d.Service != "" {
		parts = append(parts, "service "+esc(d.Service))
	}
	if d.OrderedBy != "" {
		parts = append(parts, "by "+esc(d.OrderedBy))
	}
	if d.DLQSeq != 0 {
		parts = append(parts, fmt.Sprintf("dlq %d", d.DLQSeq))
	}
	for _, c := range d.Changes {
		parts = append(parts, esc(c))
	}
	kinds := make([]string, 0, len(d.Refused))
	for k := range d.Refused {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("refused %s %d", esc(k), d.Refused[k]))
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

func (a *app) auditTailCmd() *cobra.Command {
	var last int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail ACCOUNT",
		Short: "Print the latest audit events, verified, and with --follow new ones as they come",
		Long: `tail prints the account's latest audit records (rejected envelopes, dead letters, directory
problems, admin actions: init, account add/edit/push, service add/rotate/revoke, stream add,
dlq replay), oldest first; --follow keeps printing new ones until interrupted.

Every record is verified before it is shown: signed by its writer, the writer vouched for by the
account up to the trusted operator and not revoked at the record's time, stored on its writer's
own subject. Verified records show their writer; anything else is marked UNVERIFIED with why
(unsigned, malformed, bad_signature, unknown_writer, revoked_writer, misplaced) and shown only
as a claim, and a last line counts both. Untrusted text is escaped (control characters as \x1b).
With --json each record is one CloudEvents JSON object per line with "seq", "stream_subject",
"stored" and "verification" beside the event's own fields.`,
		Example: `  sealbus audit tail shop --last 20
  sealbus audit tail shop --follow --json | jq 'select(.verification.state == "verified") | .type'`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
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
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			counts := operator.Counts{}
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
			for _, r := range recs {
				if err := emit(r); err != nil {
					return err
				}
			}
			if !follow {
				if !a.json {
					if len(recs) == 0 {
						fmt.Fprintln(a.stdout, "no audit events")
					} else {
						fmt.Fprintln(a.stdout, countsLine("records", counts))
					}
				}
				return nil
			}
			err = log.Follow(a.ctx, lastSeq, emit)
			if !a.json {
				fmt.Fprintln(a.stdout, countsLine("records", counts))
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVar(&last, "last", 20, "how many of the latest records (0 = all)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new records until interrupted")
	a.serverFlags(cmd)
	return cmd
}
