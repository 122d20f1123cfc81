package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/internal/pki"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// startTimeout bounds starting a deployment, image build excluded.
const startTimeout = 3 * time.Minute

// Deployment is what [StartServer] and [StartCluster] have in common: the nodes, the operator
// and keystore they trust, the TLS CA, the Docker network, and the operator's provisioning
// actions (accounts, streams, consumers, services), done over NATS through package operator as
// the CLI does them.
type Deployment struct {
	// Keystore holds the operator, the accounts and the services of the deployment.
	Keystore *accounts.Keystore
	// Operator is the operator the servers trust; its public key is the SDK's trust anchor.
	Operator *accounts.Operator
	// CAPEM is the content of CAFile.
	CAPEM []byte
	// Network is the name of the Docker network the nodes are on; service containers join it.
	Network string
	// Nodes are the servers, in order.
	Nodes []*Node
	// Replicas is the replica count of the sealbus streams of each account (nodes, up to 3).
	Replicas int

	t      testing.TB
	dir    string
	caFile string
	ca     *pki.CA
	mtls   bool

	prov      *operator.Provisioner
	guard     *operator.ConnectionGuard
	adminCert string
	adminKey  string
}

// nodeName returns the server name and network alias of node i of n.
func nodeName(i, n int) string {
	if n == 1 {
		return "nats"
	}
	return fmt.Sprintf("n%d", i+1)
}

// start builds the deployment's identities and certificates and starts n nodes, waiting until
// every one is healthy. It fails t on any error.
func start(t testing.TB, n int, opts []Option) *Deployment {
	t.Helper()
	RequireDocker(t)
	holdRunLock(t)
	var cfg config
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	d, err := newDeployment(t, n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newDeployment(t testing.TB, n int, cfg config) (*Deployment, error) {
	if n < 1 || n > 5 {
		return nil, fmt.Errorf("%w: %d nodes (1 to 5)", ErrInvalidOption, n)
	}
	image := cfg.image
	if image == "" {
		// Built outside the start timeout: the first build on a machine takes a while.
		var err error
		if image, err = NATSImage(context.Background()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	dir := t.TempDir()
	ks := cfg.keystore
	if ks == nil {
		var err error
		ks, err = accounts.OpenKeystore(filepath.Join(dir, "keystore"), nil, accounts.WithUnencrypted())
		if err != nil {
			return nil, fmt.Errorf("natstest: keystore: %w", err)
		}
	}
	op, err := ks.LoadOperator()
	if errors.Is(err, accounts.ErrNotFound) {
		if op, err = accounts.NewOperator("natstest"); err == nil {
			err = ks.SaveOperator(op)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natstest: operator: %w", err)
	}
	// The operator account (the directory of every tenant), through the Provisioner the CLI
	// and the sandbox use, before the accounts are preloaded.
	prov := &operator.Provisioner{Keystore: ks, Operator: op, Replicas: min(n, 3)}
	if _, err := prov.OperatorAccount(); err != nil {
		return nil, fmt.Errorf("natstest: operator account: %w", err)
	}
	names, err := ks.ListAccounts()
	if err != nil {
		return nil, fmt.Errorf("natstest: listing accounts: %w", err)
	}
	var preload []*accounts.Account
	for _, name := range names {
		a, err := ks.LoadAccount(name)
		if err != nil {
			return nil, fmt.Errorf("natstest: account %s: %w", name, err)
		}
		preload = append(preload, a)
	}

	ca, err := pki.NewCA("sealbus natstest CA", certValidity)
	if err != nil {
		return nil, fmt.Errorf("natstest: CA: %w", err)
	}
	caPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caPath, ca.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("natstest: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("natstest: storage key: %w", err)
	}
	storageKey := hex.EncodeToString(key)

	netName, err := newNetwork(t, ctx)
	if err != nil {
		return nil, err
	}
	d := &Deployment{
		Keystore: ks,
		Operator: op,
		CAPEM:    ca.CertPEM,
		Network:  netName,
		Replicas: min(n, 3),
		t:        t,
		dir:      dir,
		caFile:   caPath,
		ca:       ca,
		mtls:     cfg.mtls,
	}
	if d.mtls {
		if d.adminCert, d.adminKey, err = d.ClientCert("natstest-admin"); err != nil {
			return nil, err
		}
	}
	var routes []string
	if n > 1 {
		for i := range n {
			routes = append(routes, fmt.Sprintf("nats-route://%s:%d", nodeName(i, n), ClusterPort))
		}
	}
	for i := range n {
		name := nodeName(i, n)
		files, err := serverFiles(ca, name, n > 1)
		if err != nil {
			return nil, err
		}
		sc := operator.ServerConfig{
			Operator:      op,
			Accounts:      preload,
			Host:          "0.0.0.0",
			Port:          ClientPort,
			HTTPPort:      MonitorPort,
			StoreDir:      StoreDir,
			ResolverDir:   ResolverDir,
			StorageKey:    storageKey,
			TLSCert:       CertDir + "/" + serverCertFile,
			TLSKey:        CertDir + "/" + serverKeyFile,
			TLSCA:         CertDir + "/" + caFile,
			VerifyClients: cfg.mtls,
			ServerName:    name,
			MaxPayload:    cfg.maxPayload,
		}
		if n > 1 {
			// NoAdvertise: nodes do not tell clients the addresses they listen on inside the
			// Docker network, so clients on the host use only the 127.0.0.1 URLs they were
			// given. Advertise by alias: routes learned from gossip dial the network alias, not
			// the container IP, so they verify against the node certificates, which name it.
			sc.Cluster = &operator.ClusterConfig{
				Name: "sealbus", Port: ClusterPort, Routes: routes,
				NoAdvertise: true, Advertise: fmt.Sprintf("%s:%d", name, ClusterPort),
			}
		}
		conf, err := sc.Render()
		if err != nil {
			return nil, fmt.Errorf("natstest: config of %s: %w", name, err)
		}
		node, err := startNode(t, ctx, nodeSpec{Image: image, Name: name, Network: netName, Config: conf, Files: files, TLS: true})
		if err != nil {
			return nil, err
		}
		d.Nodes = append(d.Nodes, node)
	}
	if err := d.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	prov.Target = d.Target()
	d.prov = prov
	t.Cleanup(d.prov.Close)
	if err := d.prov.SetupOperatorAccount(ctx); err != nil {
		return nil, fmt.Errorf("natstest: setting up the operator account: %w", err)
	}
	// The connection guard runs in the test process, on the host, as an operator would run
	// `sealbus guard` beside the servers.
	sys, err := operator.ConnectSystem(ctx, d.Target(), op)
	if err != nil {
		return nil, fmt.Errorf("natstest: connection guard: %w", err)
	}
	if d.guard, err = operator.StartConnectionGuard(ctx, sys); err != nil {
		sys.Close()
		return nil, fmt.Errorf("natstest: connection guard: %w", err)
	}
	t.Cleanup(d.guard.Close)
	return d, nil
}

// Guard returns the deployment's connection guard, which enforces each service's connection
// quota (accounts.ServiceLimits); it runs in the test process against every node.
func (d *Deployment) Guard() *operator.ConnectionGuard { return d.guard }

// WaitHealthy waits until every node that is not stopped or paused reports healthy.
func (d *Deployment) WaitHealthy(ctx context.Context) error {
	errs := make([]error, len(d.Nodes))
	var wg sync.WaitGroup
	for i, n := range d.Nodes {
		if n.State() != Running {
			continue
		}
		wg.Go(func() { errs[i] = n.WaitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// URLs returns the nodes' client URLs on the host (tls://127.0.0.1:<port>).
func (d *Deployment) URLs() []string {
	out := make([]string, len(d.Nodes))
	for i, n := range d.Nodes {
		out[i] = n.URL
	}
	return out
}

// InternalURLs returns the nodes' client URLs for containers on [Deployment.Network].
func (d *Deployment) InternalURLs() []string {
	out := make([]string, len(d.Nodes))
	for i, n := range d.Nodes {
		out[i] = n.InternalURL
	}
	return out
}

// CAFile returns the PEM file, on the host, of the CA that issued the server certificates.
func (d *Deployment) CAFile() string { return d.caFile }

// OperatorKey returns the operator's public key ("O..."), the trust anchor clients pass to
// bus.WithTrustedOperator.
func (d *Deployment) OperatorKey() string { return d.Operator.PublicKey() }

// MTLS reports whether the servers require client certificates.
func (d *Deployment) MTLS() bool { return d.mtls }

// Target returns the admin target of the deployment: every node's URL, the CA and, with mTLS,
// the deployment's admin client certificate.
func (d *Deployment) Target() operator.Target {
	return operator.Target{URLs: d.URLs(), RootCA: d.caFile, ClientCert: d.adminCert, ClientKey: d.adminKey}
}

// ClientCert issues a client certificate named name from the deployment's CA and writes it
// and its key (0600) under the test's temporary directory, returning both paths. Servers
// started [WithMTLS] accept only clients presenting such a certificate.
func (d *Deployment) ClientCert(name string) (certPath, keyPath string, err error) {
	pair, err := d.ca.IssueClient(name, certValidity)
	if err != nil {
		return "", "", fmt.Errorf("natstest: client certificate %s: %w", name, err)
	}
	certPath = filepath.Join(d.dir, "clients", name+".pem")
	keyPath = filepath.Join(d.dir, "clients", name+"-key.pem")
	if err := pair.WriteFiles(certPath, keyPath); err != nil {
		return "", "", fmt.Errorf("natstest: client certificate %s: %w", name, err)
	}
	return certPath, keyPath, nil
}

// Provisioner returns the operator's provisioning actions against this deployment (the same
// code the CLI and the sandbox run).
func (d *Deployment) Provisioner() *operator.Provisioner { return d.prov }

// SystemConn opens a connection as the operator's system user (for $SYS requests and
// events). The caller closes it.
func (d *Deployment) SystemConn(ctx context.Context) (*nats.Conn, error) {
	return operator.ConnectSystem(ctx, d.Target(), d.Operator)
}

// AdminConn opens a connection to account with a short-lived admin user (full rights inside
// the account, no card; see operator.ConnectAdmin). The caller closes it.
func (d *Deployment) AdminConn(ctx context.Context, account string) (*nats.Conn, error) {
	return d.prov.Admin(ctx, account)
}

// Account loads the account named name from the keystore.
func (d *Deployment) Account(name string) (*accounts.Account, error) {
	return d.Keystore.LoadAccount(name)
}

// AddAccount creates an account with limits lim, saves it, pushes its JWT to the servers and
// sets up its directory, dead-letter and audit streams (replicated [Deployment.Replicas]
// times).
func (d *Deployment) AddAccount(ctx context.Context, name string, lim accounts.Limits) (*accounts.Account, error) {
	a, err := d.prov.CreateAccount(name, lim)
	if err != nil {
		return nil, fmt.Errorf("natstest: account %s: %w", name, err)
	}
	if err := d.prov.SetupAccount(ctx, a); err != nil {
		return nil, fmt.Errorf("natstest: setting up account %s: %w", name, err)
	}
	return a, nil
}

// EditAccount applies edit to the account (limits, revocations, imports, exports, signing
// keys), reissues and saves it, pushes it to the servers and writes it into its directory.
func (d *Deployment) EditAccount(ctx context.Context, name string, edit func(*accounts.Account) error) (*accounts.Account, error) {
	a, err := d.prov.EditAccount(name, edit)
	if err != nil {
		return nil, fmt.Errorf("natstest: editing account %s: %w", name, err)
	}
	if err := d.prov.PushAccount(ctx, a); err != nil {
		return nil, fmt.Errorf("natstest: pushing account %s: %w", name, err)
	}
	return a, nil
}

// AddStream creates (or updates) an application stream in account (audited, see
// operator.Provisioner.AddStream).
func (d *Deployment) AddStream(ctx context.Context, account string, spec operator.StreamSpec) error {
	return d.prov.AddStream(ctx, account, spec)
}

// AddConsumer creates (or updates) a durable pull consumer in account. Create a service's
// durable this way before [Deployment.AddService] to give it settings other than the defaults.
func (d *Deployment) AddConsumer(ctx context.Context, account string, spec operator.ConsumerSpec) error {
	nc, err := d.AdminConn(ctx, account)
	if err != nil {
		return err
	}
	defer nc.Close()
	return operator.AddConsumer(ctx, nc, spec)
}

// AddService creates a service of account from spec, saves it, writes its sealbus
// credentials file (user JWT, user seed, curve seed; mode 0600) and returns its path. It
// publishes the service's identity card in the account's directory and creates each durable
// the spec declares that does not exist yet (filter: the service's subscribe subjects within
// the stream; operator.DefaultMaxDeliver, operator.DefaultBackOff). The streams must exist.
func (d *Deployment) AddService(ctx context.Context, account string, spec accounts.ServiceSpec) (credsPath string, err error) {
	svc, path, err := d.prov.CreateService(account, spec)
	if err != nil {
		return "", fmt.Errorf("natstest: service %s/%s: %w", account, spec.Name, err)
	}
	if _, err := d.prov.PublishService(ctx, account, svc, nil, false); err != nil {
		return "", fmt.Errorf("natstest: publishing service %s/%s: %w", account, spec.Name, err)
	}
	return path, nil
}

// Service loads a service of account from the keystore.
func (d *Deployment) Service(account, name string) (*accounts.Service, error) {
	return d.Keystore.LoadService(account, name)
}

// CredsPath is where the credentials file of a service is.
func (d *Deployment) CredsPath(account, name string) string { return d.prov.CredsPath(account, name) }

// PreviousCredsPath is where the credentials of a service before its last rotation are.
func (d *Deployment) PreviousCredsPath(account, name string) string {
	return d.prov.PreviousCredsPath(account, name)
}

// RevokeService revokes the service's user key (and card) in its account from now on, pushes
// the account (the servers disconnect and refuse the service) and writes it into the
// directory and those of the accounts it shares a stream with (the SDK stops trusting the
// card): [operator.Provisioner.ApplyRevocation].
func (d *Deployment) RevokeService(ctx context.Context, account, name string) error {
	a, err := d.prov.RevokeService(account, name, time.Now())
	if err != nil {
		return fmt.Errorf("natstest: revoking %s/%s: %w", account, name, err)
	}
	if _, err := d.prov.ApplyRevocation(ctx, a); err != nil {
		return fmt.Errorf("natstest: %s/%s: %w", account, name, err)
	}
	return nil
}

// RotateService gives the service new keys (its previous curve key still opens envelopes for
// grace), publishes the new card, revokes the old user key, pushes the account, updates the
// directories of the accounts it shares a stream with ([operator.Provisioner.ApplyRotation])
// and returns the new credentials path.
func (d *Deployment) RotateService(ctx context.Context, account, name string, grace time.Duration) (string, error) {
	svc, a, path, err := d.prov.RotateService(account, name, grace)
	if err != nil {
		return "", fmt.Errorf("natstest: rotating %s/%s: %w", account, name, err)
	}
	if _, err := d.prov.ApplyRotation(ctx, a, svc); err != nil {
		return "", fmt.Errorf("natstest: %s/%s: %w", account, name, err)
	}
	return path, nil
}

// Server is a single node started by [StartServer].
type Server struct {
	*Deployment
	// Node is the server's container.
	Node *Node
	// URL is the client URL on the host: tls://127.0.0.1:<port>.
	URL string
}

// StartServer starts one nats-server in a container: operator mode with the operator of the
// keystore ([WithKeystore], else a fresh one) and a full account resolver preloaded with its
// accounts, TLS required (certificate for 127.0.0.1, localhost and its network alias "nats"),
// optionally mTLS ([WithMTLS]), JetStream with file storage encrypted (AES) under a random
// key. Its client port is published on 127.0.0.1. It fails the test on any error and removes
// the container and network when the test ends.
func StartServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	d := start(t, 1, opts)
	return &Server{Deployment: d, Node: d.Nodes[0], URL: d.Nodes[0].URL}
}

// Cluster is a JetStream cluster started by [StartCluster].
type Cluster struct {
	*Deployment
}

// StartCluster starts n nodes (1 to 5; three for R3 streams) like [StartServer], named n1…nN,
// on a Docker network the test creates, routed to each other by their network aliases over
// TLS with verified certificates, JetStream clustered. Each node's client port is published on
// 127.0.0.1. Sealbus streams of accounts are replicated min(n, 3) times.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	return &Cluster{Deployment: start(t, n, opts)}
}

// Node returns node i (0-based), or nil when there is none.
func (c *Cluster) Node(i int) *Node {
	if i < 0 || i >= len(c.Nodes) {
		return nil
	}
	return c.Nodes[i]
}

func (c *Cluster) node(i int) (*Node, error) {
	if n := c.Node(i); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("%w: %d of %d", ErrNoNode, i, len(c.Nodes))
}

// Stop stops node i gracefully; its JetStream store is kept (see [Node.Stop]).
func (c *Cluster) Stop(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Stop(ctx)
}

// Start starts node i again and waits until it is healthy, that is caught up with the
// cluster (see [Node.Start]).
func (c *Cluster) Start(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Start(ctx)
}

// Pause freezes node i (see [Node.Pause]).
func (c *Cluster) Pause(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Pause(ctx)
}

// Unpause resumes node i (see [Node.Unpause]).
func (c *Cluster) Unpause(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Unpause(ctx)
}

// Disconnect cuts node i off the cluster's network (see [Node.Disconnect]).
func (c *Cluster) Disconnect(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Disconnect(ctx)
}

// Reconnect heals node i after [Cluster.Disconnect] (see [Node.Reconnect]).
func (c *Cluster) Reconnect(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Reconnect(ctx)
}

// Kill stops node i abruptly (see [Node.Kill]).
func (c *Cluster) Kill(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.Kill(ctx)
}

// A Deployment is a sealbustest.Harness: tests written against the harness run unchanged on
// the embedded server (sealbustest.StartSandbox) or on these containers.
var _ sealbustest.Harness = (*Deployment)(nil)
