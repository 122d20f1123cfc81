package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
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
					fmt.Fprintf(a.stdout, "verified %s from %s on %s: %s\n", m.ID, esc(m.Sender), esc(m.Subject), esc(string(m.Payload))) // the sender chose the payload
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
