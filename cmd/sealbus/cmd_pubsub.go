package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/operator"
)

// identityFlags locate the service a pub or sub acts as.
type identityFlags struct {
	as, creds, operator string
}

func (f *identityFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.as, "as", "", "act as ACCOUNT/SERVICE from the keystore")
	cmd.Flags().StringVar(&f.creds, "creds", "", "act as the service of this creds file (env SEALBUS_CREDS)")
	cmd.Flags().StringVar(&f.operator, "operator", "", "trusted operator public key (env SEALBUS_OPERATOR; default this home's operator)")
}

// connectAs opens an SDK client for the identity, trusting the given or this home's operator.
// With --as, the service's creds file in the keystore is used as it is when it exists (no
// passphrase needed), else written from the keystore. Warnings of the SDK (retries,
// rejections) go to standard error, escaped.
func (a *app) connectAs(ctx context.Context, f identityFlags) (*bus.Client, error) {
	creds := firstNonEmpty(f.creds, os.Getenv("SEALBUS_CREDS"))
	operator := firstNonEmpty(f.operator, os.Getenv("SEALBUS_OPERATOR"))
	if f.as != "" {
		acct, svc, ok := strings.Cut(f.as, "/")
		if !ok || acct == "" || svc == "" {
			return nil, usageErr("--as wants ACCOUNT/SERVICE, not %q", f.as)
		}
		ro, err := a.openReadOnly()
		if err != nil {
			return nil, err
		}
		sv, err := ro.ks.LoadService(acct, svc)
		if operator == "" {
			operator = ro.op.PublicKey()
		}
		path := ro.prov.CredsPath(acct, svc)
		ro.Close()
		if err != nil {
			return nil, err
		}
		if !credsCurrent(path, sv.UserPublicKey()) {
			s, err := a.open(false)
			if err != nil {
				return nil, err
			}
			full, err := s.ks.LoadService(acct, svc)
			if err == nil {
				path, err = s.prov.WriteCreds(acct, full)
			}
			s.Close()
			if err != nil {
				return nil, err
			}
		}
		creds = path
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
	opts := []bus.Option{bus.WithURL(t.URLs...), bus.WithCredsFile(creds), bus.WithTrustedOperator(operator),
		bus.WithName("sealbus-cli"), bus.WithLogger(slog.New(&cliLogHandler{w: a.stderr, mu: new(sync.Mutex)}))}
	if t.RootCA != "" {
		opts = append(opts, bus.WithRootCA(t.RootCA))
	}
	if t.ClientCert != "" {
		opts = append(opts, bus.WithClientCert(t.ClientCert, t.ClientKey))
	}
	return bus.Connect(ctx, opts...)
}

// credsCurrent reports whether the creds file at path exists and holds userKey's JWT (it was
// not left from before a rotation).
func credsCurrent(path, userKey string) bool {
	c, err := accounts.ReadCredsFile(path)
	if err != nil {
		return false
	}
	defer wipe(c.UserSeed)
	defer wipe(c.CurveSeed)
	uc, err := jwt.DecodeUserClaims(c.UserJWT)
	return err == nil && uc.Subject == userKey
}

// pubAckJSON is the --json shape of one publish.
type pubAckJSON struct {
	ID        string `json:"id"`
	Stream    string `json:"stream"`
	Sequence  uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
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
  sealbus pub --as shop/checkout orders.created '{"id":2}' --count 10 --json
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
			if count < 1 {
				return usageErr("--count %d: at least 1", count)
			}
			acks := []pubAckJSON{}
			for range count {
				ack, err := c.Publish(ctx, args[0], data, opts...)
				if err != nil {
					return err
				}
				acks = append(acks, pubAckJSON{ID: ack.ID, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate})
			}
			return a.print(acks, func(w io.Writer) {
				for _, ack := range acks {
					fmt.Fprintf(w, "published %s to %s seq %d\n", ack.ID, ack.Stream, ack.Sequence)
				}
			})
		},
	}
	id.add(cmd)
	_ = cmd.RegisterFlagCompletionFunc("as", a.asValues)
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
verified and opened, then printed ("verified <id> from <sender> on <subject>: <payload>",
untrusted text escaped) and acknowledged. Rejected envelopes go to the dead-letter stream and are
reported on standard error with their reason. The durable is the service's own: messages sub
acknowledges are not delivered to it again.

With --timeout, sub stops after that long; if it received nothing (or fewer than --count) it says
so and exits 1. A durable the service may not use is refused by the server at once (exit 4,
with the durables it may use).`,
		Example: `  sealbus sub --as shop/billing ORDERS billing --count 10
  sealbus sub --as shop/billing ORDERS billing --json --timeout 30s`,
		Args:              exact(2),
		ValidArgsFunction: a.subArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var wait time.Duration
			if timeout != "" {
				var err error
				if wait, err = parseDuration(timeout); err != nil || wait <= 0 {
					return usageErr("--timeout: %v", firstErr(err, "must be positive"))
				}
			}
			if count < 0 {
				return usageErr("--count %d: negative", count)
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
			var outMu sync.Mutex
			h := func(_ context.Context, m *consumers.Message) error {
				outMu.Lock()
				if a.json {
					_ = enc.Encode(map[string]any{
						"id": m.ID, "subject": m.Subject, "sender": m.Sender, "sender_key": m.SenderKey,
						"content_type": m.ContentType, "created": m.Created, "stream": m.Stream, "seq": m.Sequence,
						"payload": string(m.Payload),
					})
				} else {
					fmt.Fprintf(a.stdout, "verified %s from %s on %s: %s\n", m.ID, operator.Escape(m.Sender), operator.Escape(m.Subject), operator.Escape(string(m.Payload))) // the sender chose the payload
				}
				outMu.Unlock()
				if count > 0 && n.Add(1) >= int64(count) {
					cancel()
				} else if count == 0 {
					n.Add(1)
				}
				return nil
			}
			cons, err := consumers.Consume(ctx, c, args[0], args[1], h, consumers.WithWorkers(1))
			if err != nil {
				return withHint(err, a.durablesHint(id, c))
			}
			<-ctx.Done()
			timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
			derr := cons.Drain()
			if derr != nil {
				return derr
			}
			got := n.Load()
			switch {
			case timedOut && got == 0:
				return &cliError{code: exitError, err: fmt.Errorf("no message received on %s:%s within %v", args[0], args[1], wait)}
			case timedOut && count > 0 && got < int64(count):
				return &cliError{code: exitError, err: fmt.Errorf("received %d of %d message(s) on %s:%s within %v", got, count, args[0], args[1], wait)}
			}
			return nil
		},
	}
	id.add(cmd)
	_ = cmd.RegisterFlagCompletionFunc("as", a.asValues)
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many messages (0 = until interrupted)")
	cmd.Flags().StringVar(&timeout, "timeout", "", "stop after this long (nothing received: exit 1)")
	a.serverFlags(cmd)
	return cmd
}

// durablesHint names the durables the connected service may use (from its card's account
// keystore entry when --as is given).
func (a *app) durablesHint(id identityFlags, c *bus.Client) string {
	var refs []string
	acct, svc, ok := strings.Cut(id.as, "/")
	if ok {
		for _, r := range a.serviceSpecs(acct)[svc].Consumers {
			refs = append(refs, r.Stream+" "+r.Durable)
		}
	}
	who := firstNonEmpty(id.as, c.Name())
	if len(refs) == 0 {
		return fmt.Sprintf("%s may use no durable; declare one with `sealbus service edit %s %s --add-consumer STREAM:DURABLE --push`", who, firstNonEmpty(acct, "ACCOUNT"), c.Name())
	}
	return fmt.Sprintf("%s may use: %s", who, strings.Join(refs, ", "))
}
