package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/spf13/cobra"
)

func (a *app) dlqCmd() *cobra.Command {
	return group("dlq", "Read and replay an account's dead letters",
		`  sealbus dlq list shop
  sealbus dlq show shop 3
  sealbus dlq replay shop 3`,
		a.dlqListCmd(), a.dlqShowCmd(), a.dlqReplayCmd())
}

// openAdmin opens the keystore with the server target and an admin connection to account;
// done closes both.
func (a *app) openAdmin(ctx context.Context, account string) (nc *nats.Conn, done func(), err error) {
	s, err := a.open(true)
	if err != nil {
		return nil, nil, err
	}
	nc, err = s.prov.Admin(ctx, account)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); s.Close() }, nil
}

// deadLetters opens the keystore and an admin connection to account and returns a verifying
// reader of its dead letters that can replay them.
func (a *app) deadLetters(ctx context.Context, account string) (*operator.DeadLetters, func(), error) {
	s, err := a.open(true)
	if err != nil {
		return nil, nil, err
	}
	dl, done, err := s.prov.DeadLetters(ctx, account)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return dl, func() { done(); s.Close() }, nil
}

// deadLetterSeq reads the SEQ argument of dlq show and dlq replay.
func deadLetterSeq(arg string) (uint64, error) {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return 0, usageErr("SEQ must be a number")
	}
	return seq, nil
}

// deadLetterJSON is one dead letter in --json output. Its fields after verification are the
// record's; they are evidence only when verification.state is "verified".
type deadLetterJSON struct {
	Sequence        uint64           `json:"seq"`
	Verification    verificationJSON `json:"verification"`
	Reason          string           `json:"reason"`
	SourceStream    string           `json:"source_stream"`
	SourceSequence  uint64           `json:"source_seq"`
	SourceSubject   string           `json:"source_subject"`
	Consumer        string           `json:"consumer"`
	Time            time.Time        `json:"time"`
	Error           string           `json:"error,omitempty"`
	MessageID       string           `json:"message_id,omitempty"`
	Claimed         *bus.Claimed     `json:"claimed,omitempty"`
	Delivered       uint64           `json:"delivered,omitempty"`
	Size            int              `json:"size"`
	EnvelopeSHA256  string           `json:"envelope_sha256,omitempty"`
	EnvelopeOmitted bool             `json:"envelope_omitted,omitempty"`
}

func dlView(d operator.DeadLetterEntry) deadLetterJSON {
	return deadLetterJSON{
		Sequence: d.Sequence, Verification: verificationView(d.Verification), Reason: d.Reason, SourceStream: d.SourceStream,
		SourceSequence: d.SourceSequence, SourceSubject: d.SourceSubject, Consumer: d.Consumer, Time: d.Time, Error: d.Error,
		MessageID: d.MessageID, Claimed: d.Claimed, Delivered: d.Delivered, Size: d.EnvelopeSize, EnvelopeSHA256: d.EnvelopeSHA256,
		EnvelopeOmitted: d.EnvelopeOmitted,
	}
}

// dlLine prints one dead letter in human mode: a verified one with its writer, any other marked
// UNVERIFIED with its state and only as a claim; untrusted fields escaped.
func dlLine(w io.Writer, d operator.DeadLetterEntry) {
	where := fmt.Sprintf("%-16s %s seq %d  %s", operator.Escape(d.Reason), operator.Escape(d.SourceStream), d.SourceSequence, operator.Escape(d.SourceSubject))
	if d.Verified() {
		fmt.Fprintf(w, "%6d  verified  %-10s %s  %s%s\n", d.Sequence, operator.Escape(d.Writer), where, d.Time.UTC().Format(time.RFC3339), claimedNote(d.Claimed))
		return
	}
	if d.Reason == "" {
		where = "undecodable"
	}
	fmt.Fprintf(w, "%6d  UNVERIFIED (%s: %s)  claims %s\n", d.Sequence, d.Verification.State, operator.Escape(d.Verification.Detail), where)
}

func claimedNote(c *bus.Claimed) string {
	if c == nil || c.Sender == "" {
		return ""
	}
	return "  (claimed sender " + operator.Escape(c.Sender) + ", unverified)"
}

func (a *app) dlqListCmd() *cobra.Command {
	var last int
	cmd := &cobra.Command{
		Use:   "list ACCOUNT",
		Short: "List the account's dead letters with their reasons, verified",
		Long: `list prints the account's latest dead letters. Each is a record signed by the consumer that
wrote it; it is verified up to the trusted operator before it is shown. Anything that does not
verify is marked UNVERIFIED with why and shown only as a claim, and a last line counts both.
Untrusted text is escaped (control characters as \x1b).`,
		Example:           "  sealbus dlq list shop --last 20\n  sealbus dlq list shop --json",
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.context()
			defer cancel()
			dl, done, err := a.deadLetters(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			list, err := dl.List(ctx, last)
			if err != nil {
				return err
			}
			rows := []deadLetterJSON{}
			counts := operator.Counts{}
			for _, d := range list {
				rows = append(rows, dlView(d))
				counts.Add(d.Verification.State)
			}
			return a.print(rows, func(w io.Writer) {
				if len(list) == 0 {
					fmt.Fprintln(w, "no dead letters")
					return
				}
				for _, d := range list {
					dlLine(w, d)
				}
				fmt.Fprintln(w, countsLine("dead letters", counts))
			})
		},
	}
	cmd.Flags().IntVar(&last, "last", 50, "how many of the latest (0 = all)")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) dlqShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "show ACCOUNT SEQ",
		Short:             "Show one dead letter, its verification and its envelope's header",
		Example:           "  sealbus dlq show shop 3",
		Args:              exact(2),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := deadLetterSeq(args[1])
			if err != nil {
				return err
			}
			ctx, cancel := a.context()
			defer cancel()
			dl, done, err := a.deadLetters(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			d, err := dl.Get(ctx, seq)
			if err != nil {
				return err
			}
			v := map[string]any{"dead_letter": dlView(*d)}
			var human func(io.Writer)
			var ierr error
			if len(d.Envelope) > 0 {
				var env any
				if env, human, ierr = inspectEnvelope(d.Envelope); ierr == nil {
					v["envelope"] = env
				} else {
					v["envelope_error"] = ierr.Error()
				}
			}
			return a.print(v, func(w io.Writer) {
				r := dlView(*d)
				if d.Verified() {
					fmt.Fprintf(w, "dead letter %d: verified, written by %s (%s)\n", r.Sequence, operator.Escape(d.Writer), operator.Escape(r.Verification.WriterKey))
				} else {
					fmt.Fprintf(w, "dead letter %d: UNVERIFIED (%s: %s)\n  NOT EVIDENCE: every field below is a claim by whoever stored it\n", r.Sequence, r.Verification.State, operator.Escape(r.Verification.Detail))
				}
				fmt.Fprintf(w, "  reason %s\n  from %s seq %d (%s) consumer %s\n  at %s\n", operator.Escape(r.Reason), operator.Escape(r.SourceStream), r.SourceSequence,
					operator.Escape(r.SourceSubject), operator.Escape(r.Consumer), r.Time.UTC().Format(time.RFC3339))
				if r.Error != "" {
					fmt.Fprintf(w, "  error %s\n", operator.Escape(r.Error))
				}
				if c := r.Claimed; c != nil {
					fmt.Fprintf(w, "  the envelope claims (unverified): sender %s, account %s, message id %s\n", operator.Escape(c.Sender), operator.Escape(c.Account), operator.Escape(c.MessageID))
				}
				switch {
				case d.EnvelopeOmitted:
					fmt.Fprintf(w, "  envelope of %d bytes not copied (sha256 %s); it stays in %s at %d\n", r.Size, operator.Escape(r.EnvelopeSHA256), operator.Escape(r.SourceStream), r.SourceSequence)
				case human != nil:
					human(w)
				case ierr != nil:
					fmt.Fprintf(w, "  envelope does not parse: %s\n", operator.Escape(ierr.Error()))
				}
			})
		},
	}
	a.serverFlags(cmd)
	return cmd
}

func (a *app) dlqReplayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay ACCOUNT SEQ",
		Short: "Deliver a dead letter's envelope once more, to the durable that refused it",
		Long: `replay re-sends the dead letter's envelope, byte for byte, with a replay authorization signed by
the account's signing key (for example after a handler bug was fixed, hours later). Only a
verified dead letter whose envelope's signature verifies is replayed, only onto the subject the
envelope is signed for (an application subject), only into the stream it came from, over a
connection that may publish on that subject and nothing else. The durable that refused it
accepts it once, outside the freshness window, checking everything else again; its handler sees
a replay. Every replay and every refusal is written to the account's audit log.`,
		Example:           "  sealbus dlq replay shop 3",
		Args:              exact(2),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := deadLetterSeq(args[1])
			if err != nil {
				return err
			}
			ctx, cancel := a.context()
			defer cancel()
			dl, done, err := a.deadLetters(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			res, err := dl.Replay(ctx, seq)
			var re *operator.ReplayError
			if errors.As(err, &re) {
				return &cliError{code: exitRefused, err: fmt.Errorf("replay of dead letter %d refused (%s): %s", seq, re.Reason, operator.Escape(re.Detail)),
					hint: "see `sealbus dlq show " + args[0] + " " + args[1] + "`"}
			}
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "replayed dead letter %d to %s seq %d on %s for durable %s (authorization %s)\n", seq, operator.Escape(res.Stream), res.Sequence,
					operator.Escape(res.Subject), operator.Escape(res.Durable), res.AuthorizationID)
			})
		},
	}
	a.serverFlags(cmd)
	return cmd
}
