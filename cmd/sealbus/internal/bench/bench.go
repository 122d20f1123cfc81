// Package bench is `sealbus bench`: it measures sealbus end to end on a real server, and,
// with Config.Raw, raw nats.go JetStream on the same server with the same stream settings in
// the same run, so the ratio between them is measured side by side.
//
// # Modes
//
//   - pub: publishers publish asynchronously; a message counts when JetStream has acknowledged
//     it (sealbus: bus.Client.PublishAsync, sealed and batch-signed; raw: jetstream.PublishAsync).
//   - sub: the messages are published first (not measured), then consumers consume them from a
//     durable pull consumer with explicit acks (sealbus: consumers.Consume, verified, replay
//     guarded, decrypted, confirmed ack; raw: jetstream Consume with a plain Ack).
//   - pubsub: both at once; a message counts when its handler has been called.
//   - latency: one publisher at a fixed rate (Config.Rate) with consumers running; the figure
//     of interest is the latency from the publish call to the handler call.
//
// # Layouts
//
// By default the server is an embedded nats-server (TLS, operator mode, encrypted file
// store) in a process of its own, started by Config.ServerCommand (the CLI runs its own `dev`
// command), so it can be pinned to CPUs apart from the clients (Config.ServerCPUs and
// Config.ClientCPUs, with taskset). Config.InProcess runs it inside the bench process
// instead; Config.Remote benchmarks a server that is already running, with a home's keystore.
//
// # Figures
//
// Every figure is measured over one phase of one side (Report.Measures says what each one
// is): wall time, CPU time of this process (getrusage) and of the server process when the
// bench started it (/proc), heap allocations (runtime.MemStats), write system calls
// (/proc/self/io), latencies in an HDR histogram, the SDK's signature count
// (bus.Client.Metrics) and the bytes the stream stored. With Config.Runs > 1 the two sides
// are run alternately, each run on purged streams, and the summary is the median of each
// figure.
package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/sealbus/sealbus/operator"
)

// Mode is what a run measures.
type Mode string

// Modes.
const (
	ModePub     Mode = "pub"
	ModeSub     Mode = "sub"
	ModePubSub  Mode = "pubsub"
	ModeLatency Mode = "latency"
)

// Modes lists the modes in the order the CLI documents them.
var Modes = []Mode{ModePub, ModeSub, ModePubSub, ModeLatency}

// ErrInvalidConfig is returned for a configuration Run cannot use.
var ErrInvalidConfig = errors.New("bench: invalid configuration")

// Defaults.
const (
	DefaultSize     = 1024
	DefaultMsgs     = 50000
	DefaultRate     = 500
	DefaultWorkers  = 2
	DefaultInFlight = 512
	// MinSize is the smallest payload: the first 8 bytes carry the send time.
	MinSize = 8
)

// Config configures Run.
type Config struct {
	Mode       Mode
	Size       int // payload bytes (at least MinSize)
	Msgs       int // messages per run and side
	Publishers int // publishing clients (connections), each publishing Msgs/Publishers
	Consumers  int // consuming clients, all on one durable
	Workers    int // handler goroutines per consuming client
	InFlight   int // messages pulled and not yet acknowledged, per consuming client
	MaxPending int // publishes sent and not yet acknowledged, per publisher (both sides)
	Recipients int // cards that may read the subject (the audience of each envelope)
	Cards      int // cards in the directory in total (0: only the bench's own)
	Rate       int // messages per second in latency mode
	Runs       int // runs per side; the summary is the median
	Warmup     int // messages per side before the first run, not measured
	Raw        bool

	// InProcess runs the embedded server inside this process.
	InProcess bool
	// ServerCommand returns the program and arguments that run a dev server for a sealbus
	// home and print its JSON description on stdout (`sealbus --home H --json dev --port 0`).
	// Used unless InProcess or Remote is set.
	ServerCommand func(home string) (path string, args []string)
	// ServerCPUs and ClientCPUs pin the server process and this process to CPUs (taskset
	// lists, e.g. "0" and "1"); they need taskset.
	ServerCPUs, ClientCPUs string

	// Remote is the provisioner of a running server to use instead of an embedded one (its
	// Target set), with Account, an account of its keystore already set up on that server.
	// The bench creates (or reuses) services named bench-* and the streams BENCH and
	// BENCH_RAW in that account, and purges those streams before each run.
	Remote  *operator.Provisioner
	Account string

	// Progress receives a progress bar (nil: none). Notices receives what the bench says
	// about itself (raw runs, pinning); nil discards them.
	Progress io.Writer
	Notices  io.Writer
	Log      *slog.Logger
	// CPUProfile receives a pprof CPU profile of this process over the measured runs (not
	// the set-up or the warm-up); nil: none.
	CPUProfile io.Writer
	// MemProfile receives a pprof heap profile (allocations since the start of the process)
	// after the measured runs; nil: none.
	MemProfile io.Writer

	now func() time.Time
}

func (c *Config) fill() error {
	if c.Mode == "" {
		c.Mode = ModePubSub
	}
	if !validMode(c.Mode) {
		return fmt.Errorf("%w: mode %q (pub, sub, pubsub, latency)", ErrInvalidConfig, c.Mode)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Size, DefaultSize)
	def(&c.Msgs, DefaultMsgs)
	def(&c.Publishers, 1)
	def(&c.Consumers, 1)
	def(&c.Workers, DefaultWorkers)
	def(&c.InFlight, DefaultInFlight)
	def(&c.Recipients, 1)
	def(&c.Rate, DefaultRate)
	// Bound the bytes in flight too, or large payloads overrun the server's queues (HTTP-like
	// 429 answers) on the raw side, which has no retry for them.
	def(&c.MaxPending, min(4096, max(64, (32<<20)/max(c.Size, 1))))
	def(&c.Runs, 1)
	if c.Warmup == 0 {
		c.Warmup = min(1000, c.Msgs)
	}
	switch {
	case c.Size < MinSize || c.Size > 900<<10:
		return fmt.Errorf("%w: size %d (%d to %d bytes)", ErrInvalidConfig, c.Size, MinSize, 900<<10)
	case c.Msgs < 1:
		return fmt.Errorf("%w: msgs %d", ErrInvalidConfig, c.Msgs)
	case c.Publishers < 1 || c.Publishers > 64 || c.Consumers < 1 || c.Consumers > 64:
		return fmt.Errorf("%w: publishers and consumers 1 to 64", ErrInvalidConfig)
	case c.Mode == ModeLatency && c.Publishers != 1:
		return fmt.Errorf("%w: latency mode uses one publisher", ErrInvalidConfig)
	case c.Workers < 1 || c.InFlight < c.Workers:
		return fmt.Errorf("%w: workers %d, in flight %d (at least the workers)", ErrInvalidConfig, c.Workers, c.InFlight)
	case c.Recipients < 1 || c.Recipients > 256:
		return fmt.Errorf("%w: recipients %d (1 to 256)", ErrInvalidConfig, c.Recipients)
	case c.Cards < 0 || c.Cards > 10000:
		return fmt.Errorf("%w: cards %d (0 to 10000)", ErrInvalidConfig, c.Cards)
	case c.MaxPending < 1 || c.MaxPending > 1<<16:
		return fmt.Errorf("%w: max pending %d (1 to 65536)", ErrInvalidConfig, c.MaxPending)
	case c.Rate < 1 || c.Rate > 100000:
		return fmt.Errorf("%w: rate %d", ErrInvalidConfig, c.Rate)
	case c.Runs < 1 || c.Runs > 50:
		return fmt.Errorf("%w: runs %d (1 to 50)", ErrInvalidConfig, c.Runs)
	case c.Warmup < 0:
		return fmt.Errorf("%w: warmup %d", ErrInvalidConfig, c.Warmup)
	case c.Remote != nil && (c.InProcess || c.ServerCPUs != ""):
		return fmt.Errorf("%w: a running server (--server) is neither in process nor pinned by the bench", ErrInvalidConfig)
	case c.Remote != nil && c.Account == "":
		return fmt.Errorf("%w: a running server needs the account to benchmark in", ErrInvalidConfig)
	case c.InProcess && c.ServerCPUs != "":
		return fmt.Errorf("%w: an in-process server cannot be pinned apart from the clients", ErrInvalidConfig)
	case c.Remote == nil && !c.InProcess && c.ServerCommand == nil:
		return fmt.Errorf("%w: no way to start the server", ErrInvalidConfig)
	}
	if c.ServerCPUs != "" || c.ClientCPUs != "" {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("%w: pinning to CPUs needs taskset (util-linux)", ErrInvalidConfig)
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Notices == nil {
		c.Notices = io.Discard
	}
	if c.now == nil {
		c.now = time.Now
	}
	return nil
}

func validMode(m Mode) bool {
	for _, v := range Modes {
		if v == m {
			return true
		}
	}
	return false
}

// minCards is the number of cards the bench itself needs: the publisher and the recipients.
func (c *Config) minCards() int { return 1 + c.Recipients }
