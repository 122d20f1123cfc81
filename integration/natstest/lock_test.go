package natstest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFileLockIsReentrantAndExclusive(t *testing.T) {
	l := &fileLock{name: "sealbus-natstest-locktest-" + strings.ReplaceAll(t.Name(), "/", "_")}
	path := filepath.Join(os.TempDir(), l.name)
	t.Cleanup(func() { os.Remove(path) })
	if err := l.acquire(); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(); err != nil { // re-entrant: a second start in the same test
		t.Fatal(err)
	}
	// Another open file description cannot take the lock while it is held.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatal("lock taken twice")
	}
	l.release()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatal("lock free after one release of two acquisitions")
	}
	l.release()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("lock still held after the last release: %v", err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
