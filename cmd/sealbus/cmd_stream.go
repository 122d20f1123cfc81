package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) streamCmd() *cobra.Command {
	return group("stream", "Manage an account's application streams (on the server)",
		`  sealbus stream add shop ORDERS --subjects 'orders.>' --max-age 7d
  sealbus stream list shop`,
		a.streamAddCmd(), a.streamListCmd(), a.streamEditCmd(), a.streamRemoveCmd(), a.streamGuardSizeCmd())
}

type streamJSON struct {
	Name              string        `json:"name"`
	Subjects          []string      `json:"subjects"`
	Replicas          int           `json:"replicas"`
	Storage           string        `json:"storage"`
	MaxAge            time.Duration `json:"max_age_ns"`
	MaxBytes          int64         `json:"max_bytes"`
	MaxMsgsPerSubject int64         `json:"max_msgs_per_subject"` // 0: no cap
	Discard           string        `json:"discard"`              // "new": a full stream refuses; "old": it removes its oldest messages
	Duplicates        time.Duration `json:"duplicates_ns"`
	Messages          uint64        `json:"messages"`
	Bytes             uint64        `json:"bytes"`
	Consumers         int           `json:"consumers"`
}

func (a *app) streamAddCmd() *cobra.Command {
	var subjects []string
	var replicas int
	var maxAge, dup, maxBytes, discard string
	var perSubject int64
	var memory bool
	cmd := &cobra.Command{
		Use:   "add ACCOUNT NAME",
		Short: "Create (or update) an application stream",
		Long: `add creates a stream in ACCOUNT on the server. Its duplicate window defaults to, and may not
be shorter than, the envelope freshness window (` + envelope.DefaultFreshness.String() + `), so a replay inside the
window is deduplicated by the server.

A full stream refuses new messages (--discard new, the default): no publisher, however much it
sends, removes messages of others that no consumer has read yet; the publisher that finds the
stream full gets the error (and the SDK audits it). --max-msgs-per-subject N also refuses a
publish beyond N messages on its subject, so a service flooding its own subjects does not fill
the stream for the others. --discard old removes the oldest messages instead: any publisher can
then push out what others have not consumed. Without --max-bytes the stream takes at most a
quarter of the account's storage (half of what its other streams leave, divided by the replicas).`,
		Example: `  sealbus stream add shop ORDERS --subjects 'orders.>'
  sealbus stream add shop EVENTS --subjects 'events.>' --replicas 3 --max-age 7d --max-bytes 512MiB
  sealbus stream add shop METRICS --subjects 'metrics.>' --max-msgs-per-subject 1000 --max-age 1d`,
		Args:              exact(2),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := operator.StreamSpec{Name: args[1], Subjects: splitAll(subjects), Replicas: replicas}
			var err error
			if maxAge != "" {
				if spec.MaxAge, err = parseDuration(maxAge); err != nil {
					return usageErr("--max-age: %v", err)
				}
			}
			if dup != "" {
				if spec.Duplicates, err = parseDuration(dup); err != nil {
					return usageErr("--duplicates: %v", err)
				}
			}
			if maxBytes != "" {
				if spec.MaxBytes, err = parseBytes(maxBytes); err != nil {
					return usageErr("--max-bytes: %v", err)
				}
			}
			if memory {
				spec.Storage = jetstream.MemoryStorage
			}
			switch discard {
			case "new":
			case "old":
				spec.DiscardOld = true
			default:
				return usageErr("--discard: %q is neither new nor old", discard)
			}
			spec.MaxMsgsPerSubject = perSubject
			if err := spec.Validate(); err != nil {
				return &cliError{code: exitUsage, err: err}
			}
			if spec.DiscardOld {
				fmt.Fprintln(a.stderr, "sealbus: WARNING: --discard old: a full stream removes its oldest messages, so any publisher can push out messages others have not consumed.")
			}
			ctx, cancel := a.context()
			defer cancel()
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.prov.AddStream(ctx, args[0], spec); err != nil {
				return err
			}
			nc, err := s.prov.Admin(ctx, args[0])
			if err != nil {
				return err
			}
			defer nc.Close()
			infos, err := operator.Streams(ctx, nc)
			if err != nil {
				return err
			}
			for _, si := range infos {
				if si.Config.Name == spec.Name {
					v := streamView(si)
					return a.print(v, func(w io.Writer) {
						fmt.Fprintf(w, "stream %s in %s: subjects %s, replicas %d, duplicate window %v, max bytes %d, discard %s", v.Name, args[0], strings.Join(v.Subjects, ","), v.Replicas, v.Duplicates, v.MaxBytes, v.Discard)
						if v.MaxMsgsPerSubject > 0 {
							fmt.Fprintf(w, ", at most %d messages per subject", v.MaxMsgsPerSubject)
						}
						fmt.Fprintln(w)
					})
				}
			}
			return fmt.Errorf("stream %s not listed after creation", spec.Name)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&subjects, "subjects", nil, "subjects the stream stores (required, repeatable)")
	f.IntVar(&replicas, "replicas", 1, "replicas (3 in a cluster)")
	f.StringVar(&maxAge, "max-age", "", "drop messages older than this (e.g. 7d; default none)")
	f.StringVar(&maxBytes, "max-bytes", "", "size limit (e.g. 512MiB; default: half of the account's unreserved storage, at most a quarter)")
	f.StringVar(&discard, "discard", "new", "when full: new (refuse new messages) or old (remove the oldest: others' unconsumed messages can be pushed out)")
	f.Int64Var(&perSubject, "max-msgs-per-subject", 0, "refuse a publish beyond this many messages on its subject (0 = no cap)")
	f.StringVar(&dup, "duplicates", "", "duplicate window (default and minimum "+envelope.DefaultFreshness.String()+")")
	f.BoolVar(&memory, "memory", false, "memory storage instead of file storage")
	_ = cmd.MarkFlagRequired("subjects")
	a.serverFlags(cmd)
	return cmd
}

func streamView(si *jetstream.StreamInfo) streamJSON {
	discard := "new"
	if si.Config.Discard == jetstream.DiscardOld {
		discard = "old"
	}
	return streamJSON{
		Name: si.Config.Name, Subjects: si.Config.Subjects, Replicas: si.Config.Replicas,
		Storage: si.Config.Storage.String(), MaxAge: si.Config.MaxAge, MaxBytes: si.Config.MaxBytes,
		MaxMsgsPerSubject: max(si.Config.MaxMsgsPerSubject, 0), Discard: discard,
		Duplicates: si.Config.Duplicates, Messages: si.State.Msgs, Bytes: si.State.Bytes, Consumers: si.State.Consumers,
	}
}

func (a *app) streamListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "list ACCOUNT",
		Short:             "List the account's streams (sealbus's own included)",
		Example:           "  sealbus stream list shop\n  sealbus stream list shop --json",
		Args:              exact(1),
		ValidArgsFunction: a.accountNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := a.context()
			defer cancel()
			nc, done, err := a.openAdmin(ctx, args[0])
			if err != nil {
				return err
			}
			defer done()
			infos, err := operator.Streams(ctx, nc)
			if err != nil {
				return err
			}
			rows := []streamJSON{}
			for _, si := range infos {
				rows = append(rows, streamView(si))
			}
			return a.print(rows, func(w io.Writer) {
				for _, r := range rows {
					fmt.Fprintf(w, "%-22s %-28s msgs=%d bytes=%d consumers=%d replicas=%d discard=%s\n", r.Name, strings.Join(r.Subjects, ","), r.Messages, r.Bytes, r.Consumers, r.Replicas, r.Discard)
				}
			})
		},
	}
	a.serverFlags(cmd)
	return cmd
}
