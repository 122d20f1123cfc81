package bus

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/envelope"
)

var testOperator = func() string {
	kp, err := nkeys.CreateOperator()
	if err != nil {
		panic(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}()

func TestOptions(t *testing.T) {
	base := []Option{WithURL("tls://127.0.0.1:4222"), WithCreds([]byte("x")), WithTrustedOperator(testOperator)}
	with := func(extra ...Option) []Option { return append(append([]Option(nil), base...), extra...) }
	for _, tc := range []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"minimal", base, true},
		{"no url", []Option{WithCreds([]byte("x")), WithTrustedOperator(testOperator)}, false},
		{"no creds", []Option{WithURL("tls://127.0.0.1:4222"), WithTrustedOperator(testOperator)}, false},
		{"no trust", []Option{WithURL("tls://127.0.0.1:4222"), WithCreds([]byte("x"))}, false},
		{"both creds", with(WithCredsFile("/x")), false},
		{"plaintext url without CA", []Option{WithURL("nats://127.0.0.1:4222"), WithCreds([]byte("x")), WithTrustedOperator(testOperator)}, false},
		{"nats url with CA", []Option{WithURL("nats://127.0.0.1:4222"), WithRootCA("/ca.pem"), WithCreds([]byte("x")), WithTrustedOperator(testOperator)}, true},
		{"bad scheme", with(WithURL("http://127.0.0.1:4222")), false},
		{"user in url", with(WithURL("tls://u:p@127.0.0.1:4222")), false},
		{"no host", with(WithURL("tls://")), false},
		{"empty url list", with(WithURL()), false},
		{"account key as operator", with(WithTrustedOperator("ABCDEF")), false},
		{"empty operator list", with(WithTrustedOperator()), false},
		{"both CAs", with(WithRootCA("/a"), WithRootCAPEM([]byte("b"))), false},
		{"client cert without key", with(WithClientCert("/c", "")), false},
		{"nil logger", with(WithLogger(nil)), false},
		{"logger", with(WithLogger(slog.New(slog.DiscardHandler))), true},
		{"name", with(WithName("orders")), true},
		{"name newline", with(WithName("a\nb")), false},
		{"rate", with(WithPublishRate(100, 10)), true},
		{"rate zero", with(WithPublishRate(0, 10)), false},
		{"rate burst zero", with(WithPublishRate(10, 0)), false},
		{"max pending", with(WithMaxPending(10)), true},
		{"max pending zero", with(WithMaxPending(0)), false},
		{"batch", with(WithBatch(16, time.Millisecond)), true},
		{"batch off", with(WithBatch(1, 0)), true},
		{"batch too big", with(WithBatch(envelope.MaxBatch+1, 0)), false},
		{"batch negative delay", with(WithBatch(8, -1)), false},
		{"batch long delay", with(WithBatch(8, 2*time.Second)), false},
		{"freshness", with(WithFreshness(time.Minute)), true},
		{"freshness zero", with(WithFreshness(0)), false},
		{"freshness huge", with(WithFreshness(envelope.MaxFreshness + time.Second)), false},
		{"nil clock", with(WithClock(nil)), false},
		{"nil rand", with(WithRand(nil)), false},
		{"rand", with(WithRand(bytes.NewReader(nil))), true},
		{"timeout zero", with(WithTimeout(0)), false},
		{"ping interval", with(WithPingInterval(time.Second, 2)), true},
		{"ping interval bounds", with(WithPingInterval(MinPingInterval, 1), WithPingInterval(MaxPingInterval, 100)), true},
		{"ping interval too short", with(WithPingInterval(MinPingInterval-1, 2)), false},
		{"ping interval too long", with(WithPingInterval(MaxPingInterval+1, 2)), false},
		{"ping interval no pings outstanding", with(WithPingInterval(time.Second, 0)), false},
		{"ping interval too many pings outstanding", with(WithPingInterval(time.Second, 101)), false},
		{"previous creds empty path", with(WithPreviousCreds("")), false},
		{"previous creds empty data", with(WithPreviousCredsData(nil)), false},
		{"nil option", with(nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newConfig(tc.opts)
			if tc.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.ok {
				if !errors.Is(err, ErrInvalidOption) {
					t.Fatalf("error %v, want ErrInvalidOption", err)
				}
				if !strings.HasPrefix(err.Error(), "bus: ") {
					t.Fatalf("error %q lacks the package prefix", err)
				}
			}
		})
	}
}

func TestCheckSubject(t *testing.T) {
	for s, ok := range map[string]bool{
		"orders.new": true, "a": true, "": false, "orders.*": false, "orders.>": false,
		"orders..new": false, ".orders": false, "orders.": false, "orders new": false,
		"orders.\tnew": false, strings.Repeat("a", 1025): false, strings.Repeat("a", 1024): true, "orders.é": false,
	} {
		if err := checkSubject(s); (err == nil) != ok {
			t.Errorf("checkSubject(%q) = %v, want ok=%v", s, err, ok)
		} else if err != nil && !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("checkSubject(%q) = %v, want ErrInvalidSubject", s, err)
		}
	}
}

func TestPublishOptions(t *testing.T) {
	var po publishOptions
	if err := WithContentType("application/json")(&po); err != nil || po.contentType != "application/json" {
		t.Fatalf("content type: %v %q", err, po.contentType)
	}
	if err := WithContentType("bad\x01")(&po); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("control character in content type: %v", err)
	}
	exp := time.Now().Add(time.Minute)
	if err := WithExpires(exp)(&po); err != nil || !po.expires.Equal(exp) {
		t.Fatal("expires not set")
	}
	if err := WithTTL(time.Second)(&po); err != nil || po.ttl != time.Second || !po.expires.IsZero() {
		t.Fatal("ttl should replace the expiry")
	}
	if err := WithTTL(0)(&po); !errors.Is(err, ErrInvalidOption) {
		t.Fatal("zero ttl accepted")
	}
	if err := WithExpires(time.Time{})(&po); !errors.Is(err, ErrInvalidOption) {
		t.Fatal("zero expiry accepted")
	}
}
