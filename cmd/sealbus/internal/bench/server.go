package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// Names the bench provisions.
const (
	benchAccount  = "bench"
	Stream        = "BENCH"
	RawStream     = "BENCH_RAW"
	subject       = "bench.msgs"
	rawSubject    = "benchraw.msgs"
	pubService    = "bench-pub"
	subService    = "bench-sub"
	rawDurable    = "bench-raw"
	benchAckWait  = 30 * time.Second
	serverTimeout = 90 * time.Second
)

// env is a server with the bench's account, streams, durables and services on it.
type env struct {
	layout  Layout
	prov    *operator.Provisioner
	account string
	url     string
	caFile  string
	opKey   string
	admin   *nats.Conn // admin connection of the account (stream purges and info; the raw side)
	closers []func()
}

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// startEnv starts (or reaches) the server and provisions the bench on it.
func startEnv(ctx context.Context, cfg *Config) (_ *env, err error) {
	e := &env{layout: Layout{ServerCPUs: cfg.ServerCPUs, ClientCPUs: cfg.ClientCPUs, Stream: Stream, StreamStore: "file"}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	switch {
	case cfg.Remote != nil:
		e.layout.Server = "remote"
		e.prov, e.account = cfg.Remote, cfg.Account
	case cfg.InProcess:
		e.layout.Server = "in-process"
		sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{OperatorName: "bench"})
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, func() { sb.Close() })
		e.prov, e.account = sb.Provisioner(), benchAccount
	default:
		e.layout.Server = "process"
		if err := e.startProcess(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if len(e.prov.Target.URLs) == 0 {
		return nil, fmt.Errorf("%w: no server URL", ErrInvalidConfig)
	}
	if e.prov.Target.ClientCert != "" {
		return nil, fmt.Errorf("%w: servers that require client certificates (mTLS) are not supported by the bench", ErrInvalidConfig)
	}
	e.url, e.caFile, e.opKey = e.prov.Target.URLs[0], e.prov.Target.RootCA, e.prov.Operator.PublicKey()
	e.layout.URL = e.url
	if cfg.Remote == nil {
		lim := accounts.DefaultLimits()
		lim.DiskStorage = -1 // the bench fills its streams; they are purged before each run
		lim.MemoryStorage = 256 << 20
		acct, err := e.prov.CreateAccount(e.account, lim)
		if err != nil {
			return nil, err
		}
		if err := e.prov.SetupAccount(ctx, acct); err != nil {
			return nil, err
		}
	}
	if e.admin, err = e.prov.Admin(ctx, e.account); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.admin.Close)
	if err := e.provision(ctx, cfg); err != nil {
		return nil, err
	}
	if cfg.ClientCPUs != "" {
		if err := pin(cfg.ClientCPUs, os.Getpid()); err != nil {
			return nil, err
		}
		// The Go runtime sized GOMAXPROCS for the CPUs it saw at start; with fewer, its extra
		// Ps would contend for them (a pinned server process starts pinned and sees its own).
		if n := affinityCPUs(); n > 0 && os.Getenv("GOMAXPROCS") == "" {
			runtime.GOMAXPROCS(n)
		}
	}
	return e, nil
}

// startProcess runs the server command in a temporary home (pinned with taskset when asked)
// and reads its JSON description.
func (e *env) startProcess(ctx context.Context, cfg *Config) error {
	home, err := os.MkdirTemp("", "sealbus-bench-*")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	e.closers = append(e.closers, func() { os.RemoveAll(home) })
	ks, err := accounts.OpenKeystore(home, nil, accounts.WithUnencrypted())
	if err != nil {
		return err
	}
	e.closers = append(e.closers, ks.Close)
	op, err := accounts.NewOperator("bench")
	if err != nil {
		return err
	}
	if err := ks.SaveOperator(op); err != nil {
		return err
	}
	path, args := cfg.ServerCommand(home)
	if cfg.ServerCPUs != "" {
		args = append([]string{"-c", cfg.ServerCPUs, path}, args...)
		path = "taskset"
	}
	cmd := exec.Command(path, args...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: starting the server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // the exit is reported through stderr
	e.closers = append(e.closers, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	type ready struct {
		URL    string `json:"url"`
		CAFile string `json:"ca_file"`
	}
	got := make(chan ready, 1)
	go func() {
		var r ready
		dec := json.NewDecoder(out)
		if dec.Decode(&r) == nil {
			got <- r
		}
		close(got)
		_, _ = io.Copy(io.Discard, out)
	}()
	var r ready
	select {
	case v, ok := <-got:
		if !ok || v.URL == "" {
			<-exited
			return fmt.Errorf("bench: the server process did not start: %s", stderr.tail())
		}
		r = v
	case <-time.After(serverTimeout):
		return fmt.Errorf("bench: the server process was not ready within %v: %s", serverTimeout, stderr.tail())
	case <-ctx.Done():
		return ctx.Err()
	}
	e.layout.ServerPID = cmd.Process.Pid
	e.prov = &operator.Provisioner{Keystore: ks, Operator: op, Target: operator.Target{URLs: []string{r.URL}, RootCA: r.CAFile}}
	e.closers = append(e.closers, e.prov.Close)
	e.account = benchAccount
	return nil
}

// provision creates the streams, durables and services of the bench.
func (e *env) provision(ctx context.Context, cfg *Config) error {
	streams := []operator.StreamSpec{{Name: Stream, Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage}}
	durables := []operator.ConsumerSpec{{Stream: Stream, Durable: subService, FilterSubjects: []string{"bench.>"}, MaxDeliver: operator.DefaultMaxDeliver, AckWait: benchAckWait}}
	if cfg.Raw {
		// The same settings as the sealbus stream and durable, on subjects of their own.
		streams = append(streams, operator.StreamSpec{Name: RawStream, Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage})
		durables = append(durables, operator.ConsumerSpec{Stream: RawStream, Durable: rawDurable, FilterSubjects: []string{"benchraw.>"}, MaxDeliver: operator.DefaultMaxDeliver, AckWait: benchAckWait})
		e.layout.RawStream = RawStream
	}
	for _, s := range streams {
		if err := operator.AddStream(ctx, e.admin, s); err != nil {
			return err
		}
	}
	for _, d := range durables {
		if err := operator.AddConsumer(ctx, e.admin, d); err != nil {
			return err
		}
	}
	specs := []accounts.ServiceSpec{
		{Name: pubService, Publish: []string{"bench.>"}},
		{Name: subService, Subscribe: []string{"bench.>"}, Consumers: []accounts.ConsumerRef{{Stream: Stream, Durable: subService}}},
	}
	for i := 2; i <= cfg.Recipients; i++ {
		specs = append(specs, accounts.ServiceSpec{Name: fmt.Sprintf("bench-rcpt-%d", i), Subscribe: []string{"bench.>"}})
	}
	for i := len(specs); i < cfg.Cards; i++ {
		specs = append(specs, accounts.ServiceSpec{Name: fmt.Sprintf("bench-card-%d", i), Subscribe: []string{fmt.Sprintf("benchcards.%d", i)}})
	}
	for _, spec := range specs {
		if _, err := e.service(spec); err != nil {
			return err
		}
	}
	// One sync for them all: their evidence subjects, their cards in the operator account's
	// directory, the tenant's view caught up.
	res, err := e.prov.Sync(ctx, e.account)
	if err != nil {
		return err
	}
	if len(res.Problems) > 0 {
		return res.Problems[0].Err()
	}
	return nil
}

// service creates the service, or reuses it from an earlier bench on the same home.
func (e *env) service(spec accounts.ServiceSpec) (*accounts.Service, error) {
	svc, _, err := e.prov.CreateService(e.account, spec)
	if !errors.Is(err, accounts.ErrExists) {
		return svc, err
	}
	if svc, err = e.prov.Keystore.LoadService(e.account, spec.Name); err != nil {
		return nil, err
	}
	if _, err := e.prov.WriteCreds(e.account, svc); err != nil {
		return nil, err
	}
	return svc, nil
}

// connect connects an SDK client as a service of the bench.
func (e *env) connect(ctx context.Context, service string, extra ...bus.Option) (*bus.Client, error) {
	opts := append([]bus.Option{
		bus.WithURL(e.url), bus.WithRootCA(e.caFile), bus.WithTrustedOperator(e.opKey),
		bus.WithCredsFile(e.prov.CredsPath(e.account, service)), bus.WithName(service),
	}, extra...)
	return bus.Connect(ctx, opts...)
}

// purge empties the bench's streams (before each run, so every run starts alike).
func (e *env) purge(ctx context.Context, streams ...string) error {
	js, err := jetstream.New(e.admin)
	if err != nil {
		return err
	}
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("bench: stream %s: %w", name, err)
		}
		if err := s.Purge(ctx); err != nil {
			return fmt.Errorf("bench: purging %s: %w", name, err)
		}
	}
	return nil
}

// storedPerMsg returns the bytes per message the stream holds, or nil when it is empty.
func (e *env) storedPerMsg(ctx context.Context, stream string) *float64 {
	js, err := jetstream.New(e.admin)
	if err != nil {
		return nil
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	v := float64(info.State.Bytes) / float64(info.State.Msgs)
	return &v
}

// pin sets the CPU affinity of every thread of process pid (taskset -a).
func pin(cpus string, pid int) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bench: taskset -c %s: %v: %s", cpus, err, bytes.TrimSpace(out))
	}
	return nil
}

// lockedBuffer keeps the end of a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 8192 {
		l.b = append(l.b[:0], l.b[len(l.b)-4096:]...)
	}
	return len(p), nil
}

func (l *lockedBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.TrimSpace(l.b))
}
