package integration

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/integration/natstest"
)

// asyncErrors collects the errors the server sends a connection asynchronously (-ERR lines
// such as permission violations).
type asyncErrors chan error

// connectRaw connects to url with a service's credentials file using plain nats.go (no SDK):
// TLS with the deployment's CA, the service's inbox prefix (its permissions allow only that
// inbox), and the given extra options. Server errors are collected in the returned channel.
func connectRaw(t *testing.T, d *natstest.Deployment, url, credsPath string, extra ...nats.Option) (*nats.Conn, asyncErrors, error) {
	t.Helper()
	c, err := accounts.ReadCredsFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(c.UserSeed)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	errs := make(asyncErrors, 64)
	opts := append([]nats.Option{
		nats.RootCAs(d.CAFile()),
		nats.UserJWTAndSeed(c.UserJWT, string(c.UserSeed)),
		nats.CustomInboxPrefix(accounts.InboxPrefix(pub)),
		nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

// expectViolation waits for the server's permission violation naming subject.
func (e asyncErrors) expectViolation(t *testing.T, subject string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-e:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-deadline:
			t.Fatalf("no permissions violation from the server for %q", subject)
		}
	}
}

// testContext returns a context for one test with a generous deadline.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// poll calls cond every 50ms until it returns nil or the timeout expires, returning the last
// error. Each call gets a context bounded by attemptTimeout, so one lost reply cannot stall
// the polling.
func poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	return pollEvery(ctx, timeout, 50*time.Millisecond, cond)
}

// pollEvery is poll with another interval between attempts, for conditions that are costly
// to check (each read of the audit or dead-letter stream creates a consumer on the server).
func pollEvery(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
		err := cond(actx)
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(interval):
		}
	}
}

// attemptTimeout bounds one attempt of poll.
const attemptTimeout = 5 * time.Second

// contextWithTimeout is context.WithTimeout, named for readability at call sites that expect a
// refusal (the request times out because the server dropped it).
func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// republish stores the bytes of a stored message again under a new Nats-Msg-Id, as an insider
// replaying a captured envelope does (js is the insider's connection).
func republish(t *testing.T, ctx context.Context, js jetstream.JetStream, orig *jetstream.RawStreamMsg, msgID string) {
	t.Helper()
	msg := &nats.Msg{Subject: orig.Subject, Data: orig.Data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if ack, err := js.PublishMsg(ctx, msg); err != nil || ack.Duplicate {
		t.Fatalf("replay not stored: %v", err)
	}
}

// testLogger is a logger writing what is at level or above to t's log, so a failing test
// shows what the component warned about.
func testLogger(t *testing.T, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
