package natstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/testcontainers/testcontainers-go"
)

// RootModule is the module path of sealbus; its directory is where binaries are built, so the
// nats-server version is the one its go.mod pins.
const RootModule = "github.com/sealbus/sealbus"

// NATSServerModule is the Go module the server image is built from.
const NATSServerModule = "github.com/nats-io/nats-server/v2"

// NATSImageRepo and ExamplesImageRepo are the repositories of the images this package builds.
const (
	NATSImageRepo     = "sealbus/nats-server"
	ExamplesImageRepo = "sealbus/examples"
)

// ExamplesBinDir is the directory of the example binaries inside the examples image: the
// example in examples/<name> is /bin/<name>.
const ExamplesBinDir = "/bin"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	natsMu    sync.Mutex
	natsImage string

	examplesMu    sync.Mutex
	examplesImage string
)

// RootDir returns the directory of the sealbus root module as the go command resolves it from
// the current directory (through the integration module's replace directive, the repository
// root).
func RootDir() (string, error) {
	rootOnce.Do(func() {
		out, err := goCommand(".", nil, "list", "-m", "-f", "{{.Dir}}", RootModule)
		if err != nil {
			rootErr = err
			return
		}
		rootDir = strings.TrimSpace(out)
		if rootDir == "" {
			rootErr = fmt.Errorf("%w: module %s has no directory", ErrBuild, RootModule)
		}
	})
	return rootDir, rootErr
}

// NATSServerVersion returns the nats-server version the root module pins, e.g. "v2.15.3".
func NATSServerVersion() (string, error) {
	root, err := RootDir()
	if err != nil {
		return "", err
	}
	out, err := goCommand(root, nil, "list", "-m", "-f", "{{.Version}}", NATSServerModule)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// NATSImage returns the tag of the nats-server image (sealbus/nats-server:<version>). When the
// engine does not hold that tag yet, it builds nats-server statically from the pinned module
// version and builds the image FROM scratch; the image is kept, so later calls and later test
// runs on the same machine reuse it.
func NATSImage(ctx context.Context) (string, error) {
	natsMu.Lock()
	defer natsMu.Unlock()
	if natsImage != "" {
		return natsImage, nil
	}
	if err := buildLock.acquire(); err != nil {
		return "", err
	}
	defer buildLock.release()
	version, err := NATSServerVersion()
	if err != nil {
		return "", err
	}
	tag := NATSImageRepo + ":" + version
	p, err := dockerProvider(ctx)
	if err != nil {
		return "", err
	}
	if ok, err := imageExists(ctx, p, tag); err != nil {
		return "", err
	} else if ok {
		natsImage = tag
		return tag, nil
	}
	root, err := RootDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sealbus-nats-image-")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer os.RemoveAll(dir)
	if _, err := goCommand(root, staticBuildEnv(), "build", "-trimpath", "-ldflags=-s -w",
		"-o", filepath.Join(dir, "nats-server"), NATSServerModule); err != nil {
		return "", err
	}
	dockerfile := "FROM scratch\n" +
		"COPY nats-server /nats-server\n" +
		"LABEL org.opencontainers.image.title=\"nats-server\" org.opencontainers.image.version=\"" + version + "\"\n" +
		"EXPOSE 4222 6222 8222\n" +
		"ENTRYPOINT [\"/nats-server\"]\n"
	if err := buildImage(ctx, p, dir, dockerfile, NATSImageRepo, version); err != nil {
		return "", err
	}
	natsImage = tag
	return tag, nil
}

// ExamplesImage returns the tag of an image FROM scratch holding every example service under
// the root module's examples/ folder as a static binary at /bin/<name>. The tag is a hash of
// the binaries, so the image is rebuilt only when an example changes.
func ExamplesImage(ctx context.Context) (string, error) {
	examplesMu.Lock()
	defer examplesMu.Unlock()
	if examplesImage != "" {
		return examplesImage, nil
	}
	if err := buildLock.acquire(); err != nil {
		return "", err
	}
	defer buildLock.release()
	root, err := RootDir()
	if err != nil {
		return "", err
	}
	out, err := goCommand(root, nil, "list", "-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", "./examples/...")
	if err != nil {
		return "", err
	}
	var pkgs []string
	for _, l := range strings.Fields(out) {
		pkgs = append(pkgs, l)
	}
	if len(pkgs) == 0 {
		return "", fmt.Errorf("%w: no example main packages under %s/examples", ErrBuild, root)
	}
	sort.Strings(pkgs)
	dir, err := os.MkdirTemp("", "sealbus-examples-image-")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin + string(filepath.Separator)}, pkgs...)
	if _, err := goCommand(root, staticBuildEnv(), args...); err != nil {
		return "", err
	}
	sum, err := hashDir(bin)
	if err != nil {
		return "", err
	}
	tag := ExamplesImageRepo + ":" + sum
	p, err := dockerProvider(ctx)
	if err != nil {
		return "", err
	}
	if ok, err := imageExists(ctx, p, tag); err != nil {
		return "", err
	} else if ok {
		examplesImage = tag
		return tag, nil
	}
	dockerfile := "FROM scratch\nCOPY bin/ " + ExamplesBinDir + "/\n"
	if err := buildImage(ctx, p, dir, dockerfile, ExamplesImageRepo, sum); err != nil {
		return "", err
	}
	examplesImage = tag
	return tag, nil
}

func staticBuildEnv() []string {
	return []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH}
}

// goCommand runs the go tool in dir with extra environment and returns its standard output.
func goCommand(dir string, env []string, args ...string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: go %s: %v: %s", ErrBuild, strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

func imageExists(ctx context.Context, p *testcontainers.DockerProvider, tag string) (bool, error) {
	_, err := p.Client().ImageInspect(ctx, tag)
	if err == nil {
		return true, nil
	}
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("natstest: inspecting image %s: %w", tag, err)
}

// buildImage builds dir (with dockerfile written into it) as repo:tag and keeps the image.
func buildImage(ctx context.Context, p *testcontainers.DockerProvider, dir, dockerfile, repo, tag string) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	var log bytes.Buffer
	req := &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context:        dir,
		Repo:           repo,
		Tag:            tag,
		KeepImage:      true,
		BuildLogWriter: &log,
	}}
	if _, err := p.BuildImage(ctx, req); err != nil {
		return fmt.Errorf("%w: image %s:%s: %v: %s", ErrBuild, repo, tag, err, tail(log.String(), 2000))
	}
	if ok, err := imageExists(ctx, p, repo+":"+tag); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: image %s:%s missing after build: %s", ErrBuild, repo, tag, tail(log.String(), 2000))
	}
	return nil
}

// hashDir returns a short SHA-256 over the names and contents of the regular files in dir.
func hashDir(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuild, err)
	}
	h := sha256.New()
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBuild, err)
		}
		fmt.Fprintf(h, "%s\x00", e.Name())
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBuild, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
