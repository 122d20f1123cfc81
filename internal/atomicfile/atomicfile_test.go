package atomicfile

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteModesAndContents(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		perm fs.FileMode
	}{{"secret.creds", Private}, {"ca.pem", Public}} {
		path := filepath.Join(dir, "a", "b", tc.name)
		if err := Write(path, []byte("v1"), tc.perm); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, []byte("v2"), tc.perm); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.perm {
			t.Errorf("%s: mode %v, want %v", tc.name, fi.Mode().Perm(), tc.perm)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, []byte("v2")) {
			t.Errorf("%s: contents %q", tc.name, got)
		}
	}
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != DirMode {
			t.Errorf("%s: mode %v, want %v despite umask 0", d, fi.Mode().Perm(), DirMode)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "a", "b"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestWriteRefusesFileAsDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(file, "child"), []byte("secret-bytes"), Private)
	if err == nil {
		t.Fatal("wrote under a regular file")
	}
	if strings.Contains(err.Error(), "secret-bytes") {
		t.Errorf("error carries the contents: %v", err)
	}
}

func TestFailedWriteLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	// A non-empty directory at the target: the final rename fails (even for root).
	if err := os.MkdirAll(filepath.Join(target, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("new"), Private); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "target" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(target, "inside")); err != nil {
		t.Errorf("target touched: %v", err)
	}
}
