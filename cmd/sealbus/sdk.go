package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/internal/demo"
)

// addSDKCommands adds the commands built on the SDK: pub, sub, dlq, audit, demo.
func (a *app) addSDKCommands(root *cobra.Command) {
	root.AddCommand(a.pubCmd(), a.subCmd(), a.dlqCmd(), a.auditCmd(), a.demoCmd())
}

// identityFlags locate the service a pub or sub acts as.
type identityFlags struct {
	as, creds, operator string
}

func (f *identityFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.as, "as", "", "act as ACCOUNT/SERVICE from the keystore")
	cmd.Flags().StringVar(&f.creds, "creds", "", "act as the service of this creds file (env SEALBUS_CREDS)")
	cmd.Flags().StringVar(&f.operator, "operator", "", "trusted operator public key (env SEALBUS_OPERATOR; default this home's operator)")
}

// connect opens an SDK client for the identity, trusting the given or this home's operator.
func (a *app) connectAs(ctx context.Context, f identityFlags) (*bus.Client, error) {
	creds := firstNonEmpty(f.creds, os.Getenv("SEALBUS_CREDS"))
	operator := firstNonEmpty(f.operator, os.Getenv("SEALBUS_OPERATOR"))
	if f.as != "" {
		acct, svc, ok := strings.Cut(f.as, "/")
		if !ok || acct == "" || svc == "" {
			return nil, usageErr("--as wants ACCOUNT/SERVICE, not %q", f.as)
		}
		s, err := a.open(false)
		if err != nil {
			return nil, err
		}
		sv, err := s.ks.LoadService(acct, svc)
		if err == nil {
			creds, err = s.prov.WriteCreds(acct, sv)
		}
		if operator == "" {
			operator = s.op.PublicKey()
		}
		s.Close()
		if err != nil {
			return nil, err
		}
	}
	if creds == "" {
		return nil, usageErr("say who you are: --as ACCOUNT/SERVICE or --creds FILE")
	}
	if operator == "" {
		op, err := a.operatorKey()
		if err != nil {
			return nil, withHint(err, "pass --operator O... (the trust anchor) when there is no keystore")
		}
		operator = op
	}
	t, err := a.target()
	if err != nil {
		return nil, err
	}
	opts := []bus.Option{bus.WithURL(t.URLs...), bus.WithCredsFile(creds), bus.WithTrustedOperator(operator), bus.WithName("sealbus-cli")}
	if t.RootCA != "" {
		opts = append(opts, bus.WithRootCA(t.RootCA))
	}
	if t.ClientCert != "" {
		opts = append(opts, bus.WithClientCert(t.ClientCert, t.ClientKey))
	}
	return bus.Connect(ctx, opts...)
}

func (a *app) pubCmd() *cobra.Command {
	var id identityFlags
	var contentType string
	var count int
	cmd := &cobra.Command{
		Use:   "pub SUBJECT [DATA|-]",
		Short: "Publish a sealed envelope as a service",
		Long: `pub seals DATA (or standard input with "-") as the given service — signed by it, encrypted to
every service whose card may read SUBJECT — and publishes it, waiting for the JetStream ack.`,
		Example: `  sealbus pub --as shop/checkout orders.created '{"id":1}'
  echo hello | sealbus pub --creds checkout.creds --operator O... orders.created -`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			switch {
			case len(args) == 1:
			case args[1] == "-":
				var err error
				if data, err = io.ReadAll(io.LimitReader(a.stdin, 8<<20)); err != nil {
					return err
				}
			default:
				data = []byte(args[1])
			}
			ctx, cancel := a.context()
			defer cancel()
			c, err := a.connectAs(ctx, id)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []bus.PublishOption
			if contentType != "" {
				opts = append(opts, bus.WithContentType(contentType))
			}
			acks := []*bus.PubAck{}
			for range max(count, 1) {
				ack, err := c.Publish(ctx, args[0], data, opts...)
				if err != nil {
					return err
				}
				acks = append(acks, ack)
			}
			return a.print(acks, func(w io.Writer) {
				for _, ack := range acks {
					fmt.Fprintf(w, "published %s to %s seq %d\n", ack.ID, ack.Stream, ack.Sequence)
				}
			})
		},
	}
	id.add(cmd)
	cmd.Flags().StringVar(&contentType, "content-type", "", "content type (signed)")
	cmd.Flags().IntVar(&count, "count", 1, "publish the message this many times (distinct envelopes)")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) subCmd() *cobra.Command {
	var id identityFlags
	var count int
	var timeout string
	cmd := &cobra.Command{
		Use:   "sub STREAM DURABLE",
		Short: "Consume and verify sealed envelopes from a service's durable",
		Long: `sub consumes the service's durable consumer DURABLE on STREAM through the SDK: every envelope is
verified and opened (rejected ones go to the dead-letter stream), then printed and acknowledged.
The durable is the service's own: messages sub acknowledges are not delivered to it again.`,
		Example: `  sealbus sub --as shop/billing ORDERS billing --count 10
  sealbus sub --as shop/billing ORDERS billing --json --timeout 30s`,
		Args: exact(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var wait time.Duration
			if timeout != "" {
				var err error
				if wait, err = parseDuration(timeout); err != nil {
					return usageErr("--timeout: %v", err)
				}
			}
			ctx, cancel := context.WithCancel(a.ctx)
			defer cancel()
			if wait > 0 {
				ctx, cancel = context.WithTimeout(ctx, wait)
				defer cancel()
			}
			c, err := a.connectAs(ctx, id)
			if err != nil {
				return err
			}
			defer c.Close()
			var n atomic.Int64
			enc := json.NewEncoder(a.stdout)
			h := func(_ context.Context, m *consumers.Message) error {
				if a.json {
					_ = enc.Encode(map[string]any{
						"id": m.ID, "subject": m.Subject, "sender": m.Sender, "sender_key": m.SenderKey,
						"content_type": m.ContentType, "created": m.Created, "stream": m.Stream, "seq": m.Sequence,
						"payload": string(m.Payload),
					})
				} else {
					fmt.Fprintf(a.stdout, "verified %s from %s on %s: %s\n", m.ID, m.Sender, m.Subject, m.Payload)
				}
				if count > 0 && n.Add(1) >= int64(count) {
					cancel()
				}
				return nil
			}
			cons, err := consumers.Consume(ctx, c, args[0], args[1], h, consumers.WithWorkers(1))
			if err != nil {
				return err
			}
			<-ctx.Done()
			cons.Drain()
			<-cons.Done()
			return nil
		},
	}
	id.add(cmd)
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages (0 = until interrupted)")
	cmd.Flags().StringVar(&timeout, "timeout", "", "stop after this long")
	a.serverFlags(cmd)
	return cmd
}

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
func (a *app) deadLetters(ctx context.Context, account string) (*consumers.DeadLetters, func(), error) {
	nc, done, err := a.openAdmin(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		done()
		return nil, nil, err
	}
	return consumers.NewDeadLetters(js), done, nil
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

func dlView(d consumers.DeadLetterEntry) deadLetterJSON {
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

func (a *app) auditCmd() *cobra.Command {
	return group("audit", "Read an account's audit stream",
		"  sealbus audit tail shop --follow",
		a.auditTailCmd())
}

func (a *app) auditTailCmd() *cobra.Command {
	var last int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail ACCOUNT",
		Short: "Print the latest audit events, and with --follow new ones as they come",
		Long: `tail prints the account's latest audit events (rejected envelopes, dead letters, directory
problems, admin actions), oldest first; --follow keeps printing new events until interrupted.
With --json each event is one CloudEvents JSON object per line.`,
		Example: `  sealbus audit tail shop --last 20
  sealbus audit tail shop --follow --json | jq .type`,
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.context()
			nc, done, err := a.openAdmin(ctx, args[0])
			cancel()
			if err != nil {
				return err
			}
			defer done()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			log := bus.NewAuditLog(js)
			tctx, tcancel := a.context()
			recs, lastSeq, err := log.Tail(tctx, last)
			tcancel()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			emit := func(r bus.AuditRecord) error {
				if a.json {
					if r.Event != nil {
						return enc.Encode(r.Event)
					}
					return enc.Encode(map[string]any{"seq": r.Sequence, "subject": r.Subject, "error": fmt.Sprint(r.Err)})
				}
				if r.Event == nil {
					_, err := fmt.Fprintf(a.stdout, "%6d  %s  undecodable event: %v\n", r.Sequence, r.Stored.Format(time.RFC3339), r.Err)
					return err
				}
				e := r.Event
				_, err := fmt.Fprintf(a.stdout, "%6d  %s  %-32s %s %s %s\n", r.Sequence, e.Time.Format(time.RFC3339), e.Type, e.Source, e.Data.Reason, e.Subject)
				return err
			}
			for _, r := range recs {
				if err := emit(r); err != nil {
					return err
				}
			}
			if !follow {
				if len(recs) == 0 && !a.json {
					fmt.Fprintln(a.stdout, "no audit events")
				}
				return nil
			}
			err = log.Follow(a.ctx, lastSeq, emit)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVar(&last, "last", 20, "how many of the latest events (0 = all)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new events until interrupted")
	a.serverFlags(cmd)
	return cmd
}

func (a *app) demoCmd() *cobra.Command {
	var messages int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the end-to-end demo on a temporary embedded server",
		Long: `demo starts a dev server in a temporary home, creates an operator, two accounts, services and
streams, sends sealed messages between services, then plays an attacker (tampering, replay,
moved envelope, revoked sender, publishing outside permissions, cross-account read) whose every
attempt must fail with its reason. It exits 0 only if every attack failed and every valid
message was delivered.`,
		Example: "  sealbus demo",
		Args:    exact(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := demo.Run(a.ctx, a.stdout, demo.Options{Messages: messages}); err != nil {
				return &cliError{code: exitError, err: err}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&messages, "messages", 0, "valid messages sent before and after the attacks (default 6)")
	return cmd
}
