package natstest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// fileLock is an exclusive lock shared by the test processes of one machine (flock on a file
// in the temporary directory), re-entrant within a process: `go test ./...` runs packages in
// parallel, and two packages building the same image or running clusters side by side on a
// two-core machine would only slow each other down.
type fileLock struct {
	name string

	mu sync.Mutex
	n  int
	f  *os.File
}

var (
	buildLock = &fileLock{name: "sealbus-natstest-build.lock"}
	runLock   = &fileLock{name: "sealbus-natstest-run.lock"}
)

func (l *fileLock) acquire() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), l.name), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("natstest: lock %s: %w", l.name, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return fmt.Errorf("natstest: lock %s: %w", l.name, err)
		}
		l.f = f
	}
	l.n++
	return nil
}

func (l *fileLock) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return
	}
	l.n--
	if l.n == 0 {
		syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// holdRunLock makes the test the only one on the machine running natstest containers (other
// test processes wait) until it ends.
func holdRunLock(t testing.TB) {
	t.Helper()
	if err := runLock.acquire(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runLock.release)
}
