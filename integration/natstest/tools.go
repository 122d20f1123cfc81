package natstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NATSCLIModule and NATSCLIVersion are the stock nats CLI (natscli) the interop tests run.
const (
	NATSCLIModule  = "github.com/nats-io/natscli"
	NATSCLIVersion = "v0.5.0"
)

// NATSCLI returns the path of the stock `nats` CLI, built once per machine from the Go module
// proxy (`go install github.com/nats-io/natscli/nats@v0.5.0`) into the user cache directory and
// reused afterwards, like NATSImage builds nats-server.
func NATSCLI(ctx context.Context) (string, error) {
	if err := buildLock.acquire(); err != nil {
		return "", err
	}
	defer buildLock.release()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sealbus", "natscli-"+NATSCLIVersion)
	bin := filepath.Join(dir, "nats")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer os.RemoveAll(tmp)
	if _, err := goCommand(tmp, []string{"GOBIN=" + tmp, "CGO_ENABLED=0", "GOFLAGS="}, "install", "-trimpath", NATSCLIModule+"/nats@"+NATSCLIVersion); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, "nats"), bin); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	return bin, nil
}

// Compose returns the command line of docker compose on this machine: the plugin
// (`docker compose`) or the standalone `docker-compose`. Without either the test skips, or
// fails under CI.
func Compose(t testing.TB) []string {
	t.Helper()
	RequireDocker(t)
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err == nil && strings.Contains(string(out), "ersion") {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	dockerMissing(t, errors.New("neither `docker compose` nor `docker-compose` is installed"))
	return nil
}

// HoldRunLock makes t the only test on the machine running natstest containers (or a compose
// project) until it ends; others wait.
func HoldRunLock(t testing.TB) { holdRunLock(t) }

// SealbusCLI builds the sealbus command of the root module into dir and returns its path.
func SealbusCLI(dir string) (string, error) {
	root, err := RootDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sealbus")
	if _, err := goCommand(root, []string{"CGO_ENABLED=0"}, "build", "-o", bin, "./cmd/sealbus"); err != nil {
		return "", err
	}
	return bin, nil
}
