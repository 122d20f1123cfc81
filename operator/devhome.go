package operator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealbus/sealbus/internal/atomicfile"
)

// DevInfo is what a running `sealbus dev` publishes in its home (HOME/dev/server.json) so that
// other commands find it.
type DevInfo struct {
	URL        string `json:"url"`
	CAFile     string `json:"ca_file"`
	MTLS       bool   `json:"mtls"`
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	PID        int    `json:"pid"`
}

// DevRunningError is a second dev server refused for a home: the first one's process and URL.
// It matches [ErrDevRunning].
type DevRunningError struct {
	PID int
	URL string
}

func (e *DevRunningError) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("operator: a dev server is already running for this home (pid %d, still starting)", e.PID)
	}
	return fmt.Sprintf("operator: a dev server is already running for this home (pid %d, %s)", e.PID, e.URL)
}

// Is makes errors.Is(err, ErrDevRunning) true.
func (e *DevRunningError) Is(target error) bool { return target == ErrDevRunning }

// DevDir is the dev server's state directory of a home.
func DevDir(home string) string { return filepath.Join(home, "dev") }

func devInfoPath(home string) string { return filepath.Join(DevDir(home), "server.json") }
func devLockPath(home string) string { return filepath.Join(DevDir(home), "lock") }

// DevLock is the exclusive right to run the dev server of one home, held from [LockDevHome] to
// [DevLock.Release]. It is an OS file lock (released by the kernel if the process dies), so a
// crashed server never blocks the next one and two servers never share a JetStream store.
type DevLock struct {
	home string
	f    *os.File
	pid  int
}

// LockDevHome takes the dev lock of home. When another process (or another call in this one)
// holds it, it returns a [*DevRunningError] with that server's pid and URL; nothing of the
// running server is touched.
func LockDevHome(home string) (*DevLock, error) {
	if err := atomicfile.MkdirPrivate(DevDir(home)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(devLockPath(home), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("operator: dev lock: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("operator: dev lock: %w", err)
	}
	if !held {
		f.Close()
		e := &DevRunningError{}
		if info, err := readDevInfo(home); err == nil {
			e.PID, e.URL = info.PID, info.URL
		} else if b, err := os.ReadFile(devLockPath(home)); err == nil {
			fmt.Sscan(string(b), &e.PID)
		}
		return nil, e
	}
	pid := os.Getpid()
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", pid)), 0)
	}
	// A server.json left by a server that died without tidying up is not true any more.
	_ = atomicfile.Remove(devInfoPath(home))
	return &DevLock{home: home, f: f, pid: pid}, nil
}

// Publish writes info (server.json, mode 0600) for the other commands of the home.
func (l *DevLock) Publish(info DevInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("operator: encode dev info: %w", err)
	}
	return atomicfile.Write(devInfoPath(l.home), append(b, '\n'), atomicfile.Private)
}

// Release removes this server's server.json and releases the lock. Safe to call twice.
func (l *DevLock) Release() {
	if l.f == nil {
		return
	}
	if info, err := readDevInfo(l.home); err == nil && info.PID == l.pid {
		_ = atomicfile.Remove(devInfoPath(l.home))
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}

// ReadDevInfo returns what the running dev server of home published. It is [ErrNoDevServer]
// when none runs, including when a server.json was left behind by a server that died (its
// lock is free).
func ReadDevInfo(home string) (*DevInfo, error) {
	info, err := readDevInfo(home)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(devLockPath(home), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w (server.json of pid %d is stale)", ErrNoDevServer, info.PID)
	}
	defer f.Close()
	if held, err := tryLock(f); err == nil && held {
		unlock(f)
		return nil, fmt.Errorf("%w (server.json of pid %d is stale)", ErrNoDevServer, info.PID)
	}
	return info, nil
}

func readDevInfo(home string) (*DevInfo, error) {
	b, err := os.ReadFile(devInfoPath(home))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoDevServer
	}
	if err != nil {
		return nil, fmt.Errorf("operator: dev info: %w", err)
	}
	var info DevInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("operator: dev info %s: %w", devInfoPath(home), err)
	}
	return &info, nil
}

// NormalizeURL makes a server address a URL sealbus accepts: a bare "host:port" becomes
// "tls://host:port"; "nats://" and "tls://" URLs pass (TLS is used for both). Anything else is
// [ErrInvalidSpec] or, for another scheme, [ErrNoTLS].
func NormalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", fmt.Errorf("%w: server %q: want tls://HOST:PORT or HOST:PORT", ErrInvalidSpec, s)
		}
		s = "tls://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%w: server URL %q", ErrInvalidSpec, s)
	}
	if u.Scheme != "tls" && u.Scheme != "nats" {
		return "", fmt.Errorf("%w: server URL %q: only tls:// (or nats:// upgraded to TLS) is allowed", ErrNoTLS, s)
	}
	return s, nil
}

// ResolveTarget completes t for the commands of home. Each URL is normalized ([NormalizeURL]).
// Without a URL, the home's running dev server is the target (its URL, CA and, with mTLS, the
// admin client certificate); with no dev server that is [ErrNoDevServer]. With URLs but no
// RootCA, the dev server's CA is used when every URL is that running dev server's address, so
// `--server` naming the home's own dev server needs no `--ca`.
func ResolveTarget(home string, t Target) (Target, error) {
	for i, u := range t.URLs {
		n, err := NormalizeURL(u)
		if err != nil {
			return t, err
		}
		t.URLs[i] = n
	}
	if len(t.URLs) == 0 {
		info, err := ReadDevInfo(home)
		if err != nil {
			return t, err
		}
		t.URLs = []string{info.URL}
		if t.RootCA == "" {
			t.RootCA = info.CAFile
		}
		if t.ClientCert == "" && info.MTLS {
			t.ClientCert, t.ClientKey = info.ClientCert, info.ClientKey
		}
		return t, nil
	}
	if t.RootCA != "" {
		return t, nil
	}
	info, err := ReadDevInfo(home)
	if err != nil {
		return t, nil // not the dev server's: the system roots apply
	}
	dev, err := url.Parse(info.URL)
	if err != nil {
		return t, nil
	}
	for _, u := range t.URLs {
		pu, err := url.Parse(u)
		if err != nil || !sameLoopback(pu.Host, dev.Host) {
			return t, nil
		}
	}
	t.RootCA = info.CAFile
	if t.ClientCert == "" && info.MTLS {
		t.ClientCert, t.ClientKey = info.ClientCert, info.ClientKey
	}
	return t, nil
}

// sameLoopback reports whether a and b (host:port) are the same port on this machine's
// loopback (the dev server listens on 127.0.0.1 only).
func sameLoopback(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	loop := func(h string) bool {
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return loop(ah) && loop(bh)
}
