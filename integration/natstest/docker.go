package natstest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// The environment testcontainers-go needs on these machines; see the package documentation.
var testcontainersDefaults = [][2]string{
	{"TESTCONTAINERS_RYUK_DISABLED", "true"},
	{"TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1"},
}

func init() { setTestcontainersDefaults() }

// setTestcontainersDefaults sets each testcontainers variable that is unset. testcontainers-go
// reads its configuration once, lazily, so this must run before its first use; init does.
func setTestcontainersDefaults() {
	for _, kv := range testcontainersDefaults {
		if _, ok := os.LookupEnv(kv[0]); !ok {
			os.Setenv(kv[0], kv[1])
		}
	}
}

var (
	providerMu sync.Mutex
	provider   *testcontainers.DockerProvider
)

// dockerProvider returns a shared testcontainers Docker provider, checking the engine answers.
func dockerProvider(ctx context.Context) (*testcontainers.DockerProvider, error) {
	providerMu.Lock()
	defer providerMu.Unlock()
	if provider != nil {
		return provider, nil
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.Health(hctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	provider = p
	return p, nil
}

// DockerAvailable reports whether a Docker engine answers, and the error when it does not.
func DockerAvailable(ctx context.Context) error {
	_, err := dockerProvider(ctx)
	return err
}

// RequireDocker stops the test when no Docker engine answers: it skips, giving the reason,
// when the CI environment variable is unset, and fails the test when CI is set, because a CI
// machine without Docker must not turn container tests into silent skips.
func RequireDocker(t testing.TB) {
	t.Helper()
	if err := DockerAvailable(context.Background()); err != nil {
		dockerMissing(t, err)
	}
}

// dockerMissing skips or fails t for the reason err, depending on CI.
func dockerMissing(t testing.TB, err error) {
	t.Helper()
	if _, ci := os.LookupEnv("CI"); ci {
		t.Fatalf("container tests need Docker under CI: %v", err)
		return
	}
	t.Skipf("skipping container test: %v (set CI to make this a failure)", err)
}
