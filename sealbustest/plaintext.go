package sealbustest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// RefusesPlaintext dials addr (host:port, or a nats:// or tls:// URL) without TLS, reads the
// server's INFO, sends CONNECT and PING in the clear, and returns nil only if INFO announces that
// TLS is required and the server closes the connection without ever answering PONG. Otherwise
// the error says what the server did. It waits at most timeout.
func RefusesPlaintext(addr string, timeout time.Duration) error {
	for _, p := range []string{"tls://", "nats://"} {
		addr = strings.TrimPrefix(addr, p)
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("sealbustest: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("sealbustest: reading INFO: %w", err)
	}
	if !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"tls_required":true`) {
		return fmt.Errorf("sealbustest: INFO does not require TLS: %q", strings.TrimSpace(info))
	}
	if _, err := io.WriteString(conn, "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false}\r\nPING\r\n"); err != nil {
		return nil // already closed
	}
	// The server expects a TLS handshake after INFO: the plaintext CONNECT fails it and the
	// server closes the connection without answering PING.
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("sealbustest: the server kept the plaintext connection open")
	}
	if strings.Contains(string(rest), "PONG") {
		return errors.New("sealbustest: the plaintext client got a PONG")
	}
	return nil
}
