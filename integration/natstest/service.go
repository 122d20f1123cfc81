package natstest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Paths inside a service container.
const (
	ServiceCAPath    = "/etc/sealbus/ca.pem"
	ServiceCredsPath = "/etc/sealbus/service.creds"
)

// ServiceSpec describes an example service to run in its own container.
type ServiceSpec struct {
	// Example is the example's name: the binary /bin/<Example> of [ExamplesImage] (publisher,
	// consumer, crossaccount, ...).
	Example string
	// Creds is the host path of the service's credentials file; only this file (mode 0600)
	// and the deployment's CA certificate are copied into the container.
	Creds string
	// Env is added to the environment. SEALBUS_URL, SEALBUS_CA, SEALBUS_CREDS and
	// SEALBUS_OPERATOR are set for the deployment unless Env sets them.
	Env map[string]string
}

// ServiceContainer is an example service running in its own container, on the deployment's
// Docker network, with no published port and no volume: it shares nothing with other
// services but the bus.
type ServiceContainer struct {
	Example string
	ctr     testcontainers.Container
}

// RunService starts spec's example in a container from [ExamplesImage] on d's network,
// connected to the first node by its network alias over TLS. The container is removed when the
// test ends.
func RunService(t testing.TB, ctx context.Context, d *Deployment, spec ServiceSpec) (*ServiceContainer, error) {
	t.Helper()
	holdRunLock(t)
	if spec.Example == "" || spec.Creds == "" {
		return nil, fmt.Errorf("%w: a service needs an example and a creds file", ErrInvalidOption)
	}
	image, err := ExamplesImage(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := os.ReadFile(spec.Creds)
	if err != nil {
		return nil, fmt.Errorf("natstest: creds of %s: %w", spec.Example, err)
	}
	env := map[string]string{
		"SEALBUS_URL":      d.Nodes[0].InternalURL,
		"SEALBUS_CA":       ServiceCAPath,
		"SEALBUS_CREDS":    ServiceCredsPath,
		"SEALBUS_OPERATOR": d.OperatorKey(),
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	req := testcontainers.ContainerRequest{
		Image:      image,
		Entrypoint: []string{ExamplesBinDir + "/" + spec.Example},
		Env:        env,
		Networks:   []string{d.Network},
		Labels:     map[string]string{"org.sealbus.natstest": spec.Example},
		Files: []testcontainers.ContainerFile{
			{Reader: bytes.NewReader(d.CAPEM), ContainerFilePath: ServiceCAPath, FileMode: 0o644},
			{Reader: bytes.NewReader(creds), ContainerFilePath: ServiceCredsPath, FileMode: 0o600},
		},
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		ProviderType:     testcontainers.ProviderDocker,
		Logger:           tclog.TestLogger(t),
		Started:          true,
	})
	if ctr != nil {
		registerCleanup(t, ctr)
	}
	if err != nil {
		return nil, fmt.Errorf("natstest: starting service %s: %w", spec.Example, err)
	}
	return &ServiceContainer{Example: spec.Example, ctr: ctr}, nil
}

// Wait waits until the service's process exits and returns its exit code.
func (s *ServiceContainer) Wait(ctx context.Context) (int, error) {
	for {
		st, err := s.ctr.State(ctx)
		if err != nil {
			return 0, fmt.Errorf("natstest: state of %s: %w", s.Example, err)
		}
		if !st.Running && st.Status != "created" {
			return st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("natstest: waiting for %s: %w", s.Example, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logs returns the service's standard output and standard error so far, interleaved.
func (s *ServiceContainer) Logs(ctx context.Context) (string, error) {
	rc, err := s.ctr.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("natstest: logs of %s: %w", s.Example, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		return b.String(), fmt.Errorf("natstest: logs of %s: %w", s.Example, err)
	}
	return b.String(), nil
}

// Stop stops the service (SIGTERM, then SIGKILL after timeout).
func (s *ServiceContainer) Stop(ctx context.Context, timeout time.Duration) error {
	return s.ctr.Stop(ctx, &timeout)
}
