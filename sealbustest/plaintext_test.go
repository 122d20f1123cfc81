package sealbustest

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeServer answers one connection with INFO carrying tlsRequired, then either closes (refuse)
// or answers PONG.
func fakeServer(t *testing.T, tlsRequired, pong bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := "false"
		if tlsRequired {
			req = "true"
		}
		c.Write([]byte(`INFO {"server_id":"x","tls_required":` + req + "}\r\n"))
		if !pong {
			return
		}
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(l, "PING") {
				c.Write([]byte("PONG\r\n"))
				return
			}
		}
	}()
	return "tls://" + ln.Addr().String()
}

func TestRefusesPlaintext(t *testing.T) {
	if err := RefusesPlaintext(fakeServer(t, true, false), 5*time.Second); err != nil {
		t.Fatalf("a server that requires TLS and closes: %v", err)
	}
	if err := RefusesPlaintext(fakeServer(t, false, true), 5*time.Second); err == nil {
		t.Fatal("a server that does not require TLS passed")
	}
	if err := RefusesPlaintext(fakeServer(t, true, true), 5*time.Second); err == nil {
		t.Fatal("a server that answered PONG in plaintext passed")
	}
}
