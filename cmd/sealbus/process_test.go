package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestMain lets the test binary act as the sealbus command (helper-process pattern), so the
// signal handling of run can be tested in a real process.
func TestMain(m *testing.M) {
	if os.Getenv("SEALBUS_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestDevStopsOnSIGTERM runs `sealbus dev` as a process, sends SIGTERM and checks a clean stop
// (exit 0, server.json removed) with the state kept for the next start.
func TestDevStopsOnSIGTERM(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")

	startProc := func() (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "--home", home, "dev", "--port", "0")
		cmd.Env = append(os.Environ(), "SEALBUS_TEST_AS_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		deadline := time.Now().Add(60 * time.Second)
		for {
			line, err := r.ReadString('\n')
			if strings.Contains(line, "press Ctrl-C") {
				break
			}
			if err != nil || time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("dev did not become ready: %v %s", err, stderr.String())
			}
		}
		return cmd, r, &stderr
	}

	cmd, r, stderr := startProc()
	b, err := os.ReadFile(filepath.Join(home, "dev", "server.json"))
	if err != nil {
		t.Fatal(err)
	}
	var di devInfo
	if err := json.Unmarshal(b, &di); err != nil {
		t.Fatal(err)
	}
	if di.PID != cmd.Process.Pid {
		t.Fatalf("server.json pid %d, process %d", di.PID, cmd.Process.Pid)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "state kept") {
		t.Fatalf("no clean-stop message: %s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(home, "dev", "server.json")); !os.IsNotExist(err) {
		t.Fatal("server.json left behind")
	}
	ca1, _ := os.ReadFile(filepath.Join(home, "dev", "tls", "ca.crt"))

	// The next start keeps the CA and the account's directory.
	cmd, r, stderr = startProc()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		go io.Copy(io.Discard, r)
		if err := cmd.Wait(); err != nil {
			t.Errorf("dev after SIGINT: %v %s", err, stderr.String())
		}
	}()
	ca2, _ := os.ReadFile(filepath.Join(home, "dev", "tls", "ca.crt"))
	if len(ca1) == 0 || !bytes.Equal(ca1, ca2) {
		t.Fatal("CA not kept across restarts")
	}
}

// TestDevMTLS runs `sealbus dev --mtls`: the CLI's own commands use the admin client
// certificate it issues, and a service connects only with a client certificate.
func TestDevMTLS(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	di := startDev(t, home, "--mtls")
	if !di.MTLS || di.ClientCert == "" {
		t.Fatalf("server.json: %+v", di)
	}
	var svc serviceJSON
	okJSON(t, home, &svc, "service", "add", "shop", "svc", "--pub", "a.b", "--push")
	ok(t, home, "stream", "list", "shop")
	if nc, err := connectCreds(t, di, svc.CredsPath); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	nc, err := connectCreds(t, di, svc.CredsPath, nats.ClientCert(di.ClientCert, di.ClientKey))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// TestPassphrasePrompt reads the passphrase from standard input when SEALBUS_PASSPHRASE is
// unset and standard input is not a terminal (a pipe: nothing is echoed), asking twice to
// confirm; a terminal is read without echo (golang.org/x/term).
func TestPassphrasePrompt(t *testing.T) {
	cleanEnv(t)
	var errb bytes.Buffer
	a := &app{stderr: &errb, stdin: strings.NewReader("s3cret phrase\ns3cret phrase\n")}
	p, err := a.passphrase(true)
	if err != nil || string(p) != "s3cret phrase" {
		t.Fatalf("passphrase: %q %v", p, err)
	}
	if errb.Len() != 0 {
		t.Fatalf("a pipe got a prompt or an echo: %q", errb.String())
	}
	a = &app{stderr: io.Discard, stdin: strings.NewReader("one\ntwo\n")}
	if _, err := a.passphrase(true); classify(err) != exitUsage {
		t.Fatalf("mismatched confirmation: %v", err)
	}
	a = &app{stderr: io.Discard, stdin: strings.NewReader("")}
	if _, err := a.passphrase(false); classify(err) != exitUsage {
		t.Fatalf("empty input: %v", err)
	}
}
