package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// deadLetters opens an admin connection to account and a dead-letter reader.
func (a *app) deadLetters(ctx context.Context, account string) (*operator.DeadLetters, func(), error) {
	nc, done, err := a.openAdmin(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		done()
		return nil, nil, err
	}
	return operator.NewDeadLetters(js), done, nil
}

// deadLetterSeq reads the SEQ argument of dlq show and dlq replay.
func deadLetterSeq(arg string) (uint64, error) {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return 0, usageErr("SEQ must be a number")
	}
	return seq, nil
}

type deadLetterJSON struct {
	Sequence       uint64    `json:"seq"`
	Reason         string    `json:"reason"`
	SourceStream   string    `json:"source_stream"`
	SourceSequence uint64    `json:"source_seq"`
	SourceSubject  string    `json:"source_subject"`
	Consumer       string    `json:"consumer"`
	Time           time.Time `json:"time"`
	Error          string    `json:"error,omitempty"`
	MessageID      string    `json:"message_id,omitempty"`
	Delivered      uint64    `json:"delivered,omitempty"`
	Size           int       `json:"size"`
}

func dlView(d operator.DeadLetterEntry) deadLetterJSON {
	return deadLetterJSON{d.Sequence, d.Reason, d.SourceStream, d.SourceSequence, d.SourceSubject, d.Consumer, d.Time, d.Error, d.MessageID, d.Delivered, len(d.Envelope)}
}

func (a *app) dlqListCmd() *cobra.Command {
	var last int
	cmd := &cobra.Command{
		Use:               "list ACCOUNT",
		Short:             "List the account's dead letters with their reasons",
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
			for _, d := range list {
				rows = append(rows, dlView(d))
			}
			return a.print(rows, func(w io.Writer) {
				if len(rows) == 0 {
					fmt.Fprintln(w, "no dead letters")
				}
				for _, r := range rows {
					fmt.Fprintf(w, "%6d  %-16s %s seq %d  %s  %s\n", r.Sequence, r.Reason, r.SourceStream, r.SourceSequence, r.SourceSubject, r.Time.Format(time.RFC3339))
				}
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
		Short:             "Show one dead letter and its envelope's header",
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
			env, human, ierr := inspectEnvelope(d.Envelope)
			if ierr == nil {
				v["envelope"] = env
			} else {
				v["envelope_error"] = ierr.Error()
			}
			return a.print(v, func(w io.Writer) {
				r := dlView(*d)
				fmt.Fprintf(w, "dead letter %d: %s\n  from %s seq %d (%s) consumer %s\n  at %s\n", r.Sequence, r.Reason, r.SourceStream, r.SourceSequence, r.SourceSubject, r.Consumer, r.Time.Format(time.RFC3339))
				if r.Error != "" {
					fmt.Fprintf(w, "  error %s\n", r.Error)
				}
				if human != nil {
					human(w)
				} else {
					fmt.Fprintf(w, "  envelope does not parse: %v\n", ierr)
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
		Short: "Republish a dead letter's original bytes to its source subject",
		Long: `replay publishes the dead letter's envelope, byte for byte, to its source subject again (for
example after a handler bug was fixed). It is verified again on delivery: a forged or stale
envelope is dead-lettered again.`,
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
			ack, err := dl.Replay(ctx, seq)
			if err != nil {
				return err
			}
			return a.print(map[string]any{"stream": ack.Stream, "seq": ack.Sequence, "duplicate": ack.Duplicate}, func(w io.Writer) {
				fmt.Fprintf(w, "replayed dead letter %d to %s seq %d\n", seq, ack.Stream, ack.Sequence)
			})
		},
	}
	a.serverFlags(cmd)
	return cmd
}
