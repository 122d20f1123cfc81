package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sealbus/sealbus/cmd/sealbus/internal/bench"
)

func (a *app) benchCmd() *cobra.Command {
	var cfg bench.Config
	var account string
	var noProgress bool
	var profile, memProfile string
	cmd := &cobra.Command{
		Use:   "bench pub|sub|pubsub|latency",
		Short: "Measure sealbus end to end, and raw nats.go JetStream beside it (--raw)",
		Long: `bench measures sealbus on a real server: publishing (pub), consuming a filled stream (sub),
both at once (pubsub), or the latency from publish call to handler call at a fixed rate
(latency). With --raw it runs raw nats.go JetStream on the same server with the same stream
and durable settings in the same run, and prints both sides and the ratio. --raw publishes
unsealed payloads (on a stream of their own, with an admin connection) and says so.

By default the server is an embedded dev server in a temporary home, in a process of its own
(this binary's dev command), so --server-cpus and --client-cpus can pin the two apart with
taskset (production layout: --server-cpus 0 --client-cpus 1). --in-process runs it inside
the bench. --server URL benchmarks a running server with this home's keystore: the bench
creates services bench-* and streams BENCH and BENCH_RAW in --account and purges those
streams before each run.

Results go to stdout (a table, or --json); a progress bar goes to stderr when it is a
terminal. Every figure says what it measured; timings vary between runs on a shared machine,
so use --runs for medians.`,
		Example: `  sealbus bench pubsub --raw
  sealbus bench pubsub --raw --server-cpus 0 --client-cpus 1 --runs 5
  sealbus bench latency --raw --rate 500 --msgs 5000
  sealbus bench pub --size 65536 --msgs 5000 --recipients 16 --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("bench takes a mode: pub, sub, pubsub or latency")
			}
			return nil
		},
		ValidArgs: []string{"pub", "sub", "pubsub", "latency"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Mode = bench.Mode(args[0])
			cfg.Notices = a.stderr
			if !noProgress && isTerminal(a.stderr) {
				cfg.Progress = a.stderr
			}
			if a.verbose {
				cfg.Log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if cmd.Flags().Changed("server") {
				if account == "" {
					return usageErr("--server needs --account: the account of this home to benchmark in")
				}
				s, err := a.open(true)
				if err != nil {
					return err
				}
				defer s.Close()
				cfg.Remote, cfg.Account = s.prov, account
			} else {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("locating this binary to run the server: %w", err)
				}
				cfg.ServerCommand = func(home string) (string, []string) {
					return exe, []string{"--home", home, "--json", "dev", "--port", "0"}
				}
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			if memProfile != "" {
				f, err := os.Create(memProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.MemProfile = f
			}
			rep, err := bench.Run(a.ctx, cfg)
			if errors.Is(err, bench.ErrInvalidConfig) {
				return &cliError{code: exitUsage, err: err, hint: "see `sealbus bench --help`"}
			}
			if err != nil {
				return err
			}
			return a.print(rep, func(w io.Writer) { _ = rep.Print(w) })
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Size, "size", bench.DefaultSize, "payload bytes")
	f.IntVar(&cfg.Msgs, "msgs", bench.DefaultMsgs, "messages per run and side")
	f.IntVar(&cfg.Publishers, "publishers", 1, "publishing clients")
	f.IntVar(&cfg.Consumers, "consumers", 1, "consuming clients (one durable)")
	f.IntVar(&cfg.Workers, "workers", bench.DefaultWorkers, "handler workers per sealbus consumer")
	f.IntVar(&cfg.InFlight, "in-flight", bench.DefaultInFlight, "messages pulled and not yet acknowledged, per consumer")
	f.IntVar(&cfg.MaxPending, "max-pending", 0, "publishes in flight per publisher, both sides (default min(4096, 32 MiB / size))")
	f.IntVar(&cfg.Recipients, "recipients", 1, "cards that may read the subject: every envelope is sealed to each")
	f.IntVar(&cfg.Cards, "cards", 0, "cards in the directory in total (default: the bench's own)")
	f.IntVar(&cfg.Rate, "rate", bench.DefaultRate, "messages per second in latency mode")
	f.IntVar(&cfg.Runs, "runs", 1, "measured runs per side, alternating sides; figures are medians")
	f.IntVar(&cfg.Warmup, "warmup", 0, "messages per side before the first run, not measured (default min(1000, msgs))")
	f.BoolVar(&cfg.Raw, "raw", false, "also run raw nats.go JetStream (UNSEALED payloads) and print the ratio")
	f.BoolVar(&cfg.InProcess, "in-process", false, "run the embedded server inside the bench process")
	f.StringVar(&cfg.ServerCPUs, "server-cpus", "", "pin the server process to these CPUs (taskset list)")
	f.StringVar(&cfg.ClientCPUs, "client-cpus", "", "pin the bench's clients to these CPUs (taskset list)")
	f.StringVar(&account, "account", "", "with --server: the account of this home to benchmark in")
	f.StringVar(&profile, "cpuprofile", "", "write a pprof CPU profile of the bench process over the measured runs to this file")
	f.StringVar(&memProfile, "memprofile", "", "write a pprof allocation profile of the bench process after the measured runs to this file")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar on stderr")
	f.BoolVar(&a.verbose, "verbose", false, "log the SDK at debug level on stderr")
	a.serverFlags(cmd)
	// Unlike other commands, bench starts its own server unless --server is given.
	f.Lookup("server").Usage = "benchmark this running server (URL) with this home's keystore instead of an embedded one; needs --account"
	return cmd
}

// isTerminal reports whether w is a terminal (progress bars only go to one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
