//go:build linux

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the master (the "keyboard and screen") and the slave
// (the program's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err) // a kernel without /dev/ptmx cannot have this path tested
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(filepath.Join("/dev/pts", itoa(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestPassphraseNotEchoedOnATerminal runs `sealbus init` on a pseudo-terminal without
// SEALBUS_PASSPHRASE: it prompts twice and what is typed never appears on the terminal.
func TestPassphraseNotEchoedOnATerminal(t *testing.T) {
	cleanEnv(t)
	master, slave := openPTY(t)
	defer master.Close()
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], "--home", home, "init")
	cmd.Env = append(os.Environ(), "SEALBUS_TEST_AS_MAIN=1", "SEALBUS_PASSPHRASE=")
	var stderr syncBuffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var screen bytes.Buffer
	var mu sync.Mutex
	go func() {
		b := make([]byte, 256)
		for {
			n, err := master.Read(b)
			mu.Lock()
			screen.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	const secret = "typed on a terminal"
	for _, prompt := range []string{"passphrase: ", "passphrase again: "} {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.HasSuffix(stderr.String(), prompt) {
			if time.Now().After(deadline) {
				t.Fatalf("no prompt %q: %q", prompt, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The prompt is written just before the terminal's echo is turned off: type once it
		// is off, as a person does (anything typed ahead of a prompt is echoed by any program;
		// under CI load the test typed inside that window).
		for {
			tio, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if tio.Lflag&unix.ECHO == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the terminal's echo is still on after the prompt %q", prompt)
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := master.Write([]byte(secret + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("init on a terminal: %v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(screen.String(), "typed") {
		t.Fatalf("the passphrase was echoed on the terminal: %q", screen.String())
	}
	if _, err := os.Stat(filepath.Join(home, "keystore.json")); err != nil {
		t.Fatalf("no keystore after init: %v", err)
	}
}
