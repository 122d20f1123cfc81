package accounts

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

// liveServer starts the dev server with the fixture's account and returns its address.
func liveServer(t *testing.T, f *fixture) (string, *x509.CertPool) {
	t.Helper()
	addr, _, pool := startServer(t, f.op, f.acc)
	return addr, pool
}

// protoConn is a minimal NATS protocol client: enough to authenticate with
// a creds file over TLS and observe what the server allows, without nats.go.
type protoConn struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	id int
}

// dialCreds connects with TLS and authenticates with creds. It returns the
// first line after CONNECT+PING: "PONG" on success, "-ERR ..." otherwise.
func dialCreds(t *testing.T, addr string, pool *x509.CertPool, creds []byte, useTLS bool) (*protoConn, string) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(raw)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("no INFO: %q %v", line, err)
	}
	var info struct {
		Nonce       string `json:"nonce"`
		TLSRequired bool   `json:"tls_required"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "INFO ")), &info); err != nil {
		t.Fatal(err)
	}
	if !info.TLSRequired {
		t.Fatal("server does not require TLS")
	}
	pc := &protoConn{t: t, c: raw, r: r}
	if useTLS {
		tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		pc.c, pc.r = tc, bufio.NewReader(tc)
	}
	userJWT, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign([]byte(info.Nonce))
	if err != nil {
		t.Fatal(err)
	}
	connect, _ := json.Marshal(map[string]any{
		"verbose": false, "pedantic": false, "protocol": 1, "headers": true,
		"jwt": userJWT, "sig": base64.RawURLEncoding.EncodeToString(sig),
	})
	pc.send("CONNECT " + string(connect) + "\r\nPING\r\n")
	return pc, pc.line()
}

func (p *protoConn) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *protoConn) line() string {
	p.t.Helper()
	for {
		l, err := p.r.ReadString('\n')
		if err != nil {
			return "EOF: " + err.Error()
		}
		l = strings.TrimSpace(l)
		if l == "PING" {
			p.send("PONG\r\n")
			continue
		}
		if strings.HasPrefix(l, "INFO ") || l == "+OK" {
			continue // asynchronous INFO updates
		}
		return l
	}
}

// msg returns the next message's payload, skipping anything else.
func (p *protoConn) msg() string {
	p.t.Helper()
	for i := 0; i < 10; i++ {
		l := p.line()
		if strings.HasPrefix(l, "MSG ") {
			return p.line()
		}
		if strings.HasPrefix(l, "EOF") {
			break
		}
	}
	p.t.Fatal("no message")
	return ""
}

// firstMsg returns the payload of the first message in out, or waits for one.
func (p *protoConn) firstMsg(out []string) string {
	for _, l := range out {
		if strings.HasPrefix(l, "MSG ") {
			_, payload, _ := strings.Cut(l, "\n")
			return payload
		}
	}
	return p.msg()
}

// roundTrip sends cmd followed by PING and returns the lines received
// before the PONG (errors, messages).
func (p *protoConn) roundTrip(cmd string) []string {
	p.t.Helper()
	p.send(cmd + "PING\r\n")
	var out []string
	for {
		l := p.line()
		if l == "PONG" {
			return out
		}
		if strings.HasPrefix(l, "EOF") {
			return append(out, l)
		}
		if strings.HasPrefix(l, "MSG ") || strings.HasPrefix(l, "HMSG ") {
			// Read the payload line as well.
			l += "\n" + p.line()
		}
		out = append(out, l)
	}
}

func (p *protoConn) pub(subject, reply, payload string) []string {
	return p.roundTrip(fmt.Sprintf("PUB %s %s %d\r\n%s\r\n", subject, reply, len(payload), payload))
}

func (p *protoConn) sub(subject string) []string {
	p.id++
	return p.roundTrip(fmt.Sprintf("SUB %s %d\r\n", subject, p.id))
}

func violation(lines []string) bool {
	for _, l := range lines {
		if strings.Contains(l, "Permissions Violation") {
			return true
		}
	}
	return false
}

// TestLiveServerEnforcesPermissions runs a stock nats-server with the
// rendered configuration and checks, over TLS with the generated creds,
// that the server enforces the computed permission set.
func TestLiveServerEnforcesPermissions(t *testing.T) {
	f := newFixture(t)
	s, pool := liveServer(t, f)
	creds, err := f.svc.Creds()
	if err != nil {
		t.Fatal(err)
	}

	if _, first := dialCreds(t, s, pool, creds, false); first == "PONG" {
		t.Fatal("a plaintext connection was accepted")
	}

	pc, first := dialCreds(t, s, pool, creds, true)
	if first != "PONG" {
		t.Fatalf("service could not connect: %s", first)
	}
	inbox := InboxPrefix(f.svc.UserPublicKey())

	tok := f.svc.Spec.EvidenceToken
	for _, subj := range []string{"orders.created", "orders.7.updated", AuditSubject("orders", tok), AuditOverflowSubject("orders", tok), DLQSubject("orders", tok)} {
		if out := pc.pub(subj, "", "x"); violation(out) {
			t.Errorf("publish %s refused: %v", subj, out)
		}
	}
	for _, subj := range []string{"payments.eu", inbox + ".abc"} {
		if out := pc.sub(subj); violation(out) {
			t.Errorf("subscribe %s refused: %v", subj, out)
		}
	}
	for _, subj := range []string{"orders.deleted", "$JS.API.STREAM.CREATE.ORDERS", "$JS.API.STREAM.DELETE.SEALBUS_AUDIT",
		"sealbus.audit.reject", "sealbus.dlq.orders", AuditSubject("payments", tok), AuditSubject("orders", tok) + ".x",
		"$JS.API.CONSUMER.CREATE.PAYMENTS.x", "$JS.API.CONSUMER.DURABLE.CREATE.PAYMENTS.x", "$KV.SEALBUS_DIRECTORY.card.orders",
		"$SYS.REQ.CLAIMS.UPDATE", "_INBOX.x"} {
		if out := pc.pub(subj, "", "{}"); !violation(out) {
			t.Errorf("publish %s allowed: %v", subj, out)
		}
	}
	for _, subj := range []string{"secrets.>", "_INBOX.>", ">", "orders.created"} {
		if out := pc.sub(subj); !violation(out) {
			t.Errorf("subscribe %s allowed: %v", subj, out)
		}
	}

	// The JetStream API answers on the private inbox.
	out := pc.pub("$JS.API.INFO", inbox+".abc", "")
	if violation(out) {
		t.Fatalf("$JS.API.INFO refused: %v", out)
	}
	got := pc.firstMsg(out)
	if !strings.Contains(got, "io.nats.jetstream.api.v1.account_info_response") || strings.Contains(got, `"error"`) {
		t.Fatalf("account info: %s", got)
	}
}

// TestLiveRevocationPush pushes a revocation with the system user, as the
// CLI does, and checks the revoked service can no longer connect while
// another service of the account still can.
func TestLiveRevocationPush(t *testing.T) {
	f := newFixture(t)
	other, err := f.acc.NewService(ServiceSpec{Name: "billing", Publish: []string{"billing.x"}})
	if err != nil {
		t.Fatal(err)
	}
	s, pool := liveServer(t, f)
	creds, _ := f.svc.Creds()
	if _, first := dialCreds(t, s, pool, creds, true); first != "PONG" {
		t.Fatalf("before revocation: %s", first)
	}

	f.acc.Revoke(f.svc.UserPublicKey(), time.Now())
	if err := f.op.Reissue(f.acc); err != nil {
		t.Fatal(err)
	}
	sysCreds, err := f.op.SysUser.Creds()
	if err != nil {
		t.Fatal(err)
	}
	sys, first := dialCreds(t, s, pool, sysCreds, true)
	if first != "PONG" {
		t.Fatalf("system user: %s", first)
	}
	inbox := "_INBOX.push"
	if out := sys.sub(inbox + ".>"); len(out) != 0 {
		t.Fatalf("sys sub: %v", out)
	}
	out := sys.pub("$SYS.REQ.CLAIMS.UPDATE", inbox+".1", f.acc.JWT)
	reply := sys.firstMsg(out)
	if !strings.Contains(reply, `"code":200`) {
		t.Fatalf("claims update: %s", reply)
	}

	if _, first := dialCreds(t, s, pool, creds, true); !strings.Contains(first, "Authorization Violation") && !strings.HasPrefix(first, "EOF") {
		t.Fatalf("revoked service connected: %s", first)
	}
	oc, _ := other.Creds()
	if _, first := dialCreds(t, s, pool, oc, true); first != "PONG" {
		t.Fatalf("other service after revocation: %s", first)
	}
}
