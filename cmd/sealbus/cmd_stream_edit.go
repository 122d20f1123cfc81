package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
)

func (a *app) streamEditCmd() *cobra.Command {
	var subjects []string
	var replicas int
	var maxAge, dup, maxBytes string
	cmd := &cobra.Command{
		Use:   "edit ACCOUNT NAME",
		Short: "Change an application stream's subjects, limits or replicas",
		Long: `edit changes the flags given (the others stay) of an existing application stream, after checking
the result like ` + "`stream add`" + ` (reserved names and subjects, a duplicate window of at least the
freshness window of ` + envelope.DefaultFreshness.String() + `). The storage type cannot change.`,
		Example: `  sealbus stream edit shop ORDERS --max-age 30d
  sealbus stream edit shop ORDERS --subjects 'orders.>,refunds.>' --replicas 3`,
		Args:              exact(2),
		ValidArgsFunction: a.accountThenStream,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var err error
			var age, duplicates = parsedDuration{}, parsedDuration{}
			if age, err = optDuration(f.Changed("max-age"), maxAge, "--max-age"); err != nil {
				return err
			}
			if duplicates, err = optDuration(f.Changed("duplicates"), dup, "--duplicates"); err != nil {
				return err
			}
			var mb int64
			if f.Changed("max-bytes") {
				if mb, err = parseBytes(maxBytes); err != nil || mb < 0 {
					return usageErr("--max-bytes: %v", firstErr(err, "negative"))
				}
			}
			if f.Changed("replicas") && (replicas < 1 || replicas > 5) {
				return usageErr("--replicas %d: 1 to 5", replicas)
			}
			ctx, cancel := a.context()
			defer cancel()
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			si, err := s.prov.EditStream(ctx, args[0], args[1], func(s *operator.StreamSpec) error {
				if f.Changed("subjects") {
					s.Subjects = splitAll(subjects)
				}
				if f.Changed("replicas") {
					s.Replicas = replicas
				}
				if age.set {
					s.MaxAge = age.d
				}
				if duplicates.set {
					s.Duplicates = duplicates.d
				}
				if f.Changed("max-bytes") {
					s.MaxBytes = mb
				}
				return nil
			})
			if err != nil {
				return err
			}
			v := streamView(si)
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "stream %s in %s: subjects %s, replicas %d, max age %v, duplicate window %v\n", v.Name, args[0], strings.Join(v.Subjects, ","), v.Replicas, v.MaxAge, v.Duplicates)
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&subjects, "subjects", nil, "replace the subjects")
	f.IntVar(&replicas, "replicas", 1, "replicas")
	f.StringVar(&maxAge, "max-age", "", "drop messages older than this (0 = no limit)")
	f.StringVar(&maxBytes, "max-bytes", "", "size limit (0 = the account's)")
	f.StringVar(&dup, "duplicates", "", "duplicate window (at least "+envelope.DefaultFreshness.String()+")")
	a.serverFlags(cmd)
	return cmd
}

type parsedDuration struct {
	d   durationValue
	set bool
}

type durationValue = time.Duration

func optDuration(changed bool, v, flag string) (parsedDuration, error) {
	if !changed {
		return parsedDuration{}, nil
	}
	d, err := parseDuration(v)
	if err != nil || d < 0 {
		return parsedDuration{}, usageErr("%s: %v", flag, firstErr(err, "negative"))
	}
	return parsedDuration{d: d, set: true}, nil
}

func (a *app) streamRemoveCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove ACCOUNT NAME",
		Short: "Delete an application stream and its messages",
		Long: `remove deletes an application stream and every message in it. It is refused while a service of
the keystore declares a durable on it, unless --force (their consumers fail until the stream is
made again). sealbus's own streams cannot be removed.`,
		Example:           "  sealbus stream remove shop ORDERS\n  sealbus stream remove shop ORDERS --force",
		Args:              exact(2),
		ValidArgsFunction: a.accountThenStream,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open(true)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := a.context()
			defer cancel()
			if err := s.prov.RemoveStream(ctx, args[0], args[1], force); err != nil {
				return err
			}
			return a.print(map[string]any{"account": args[0], "stream": args[1], "removed": true}, func(w io.Writer) {
				fmt.Fprintf(w, "stream %s of %s removed\n", args[1], args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even while services declare durables on it")
	a.serverFlags(cmd)
	return cmd
}
