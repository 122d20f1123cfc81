package consumers

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestParsePutAnswer: the guard store's fast reading of a publish answer agrees with the
// server's forms: a stored sequence, a failed compare-and-set, another refusal, junk.
func TestParsePutAnswer(t *testing.T) {
	for _, c := range []struct {
		in   string
		seq  uint64
		want error
	}{
		{`{"stream":"SEALBUS_GUARD_X","seq":42}`, 42, nil},
		{`{"stream":"S","domain":"d","seq":18446744073709551615,"duplicate":true}`, 18446744073709551615, nil},
		{`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 7"},"stream":"S","seq":0}`, 0, errConflict},
		{`{"error":{"code":400,"err_code":10164,"description":"wrong last sequence"}}`, 0, errConflict},
		{`{"stream":"S","seq":0}`, 0, errors.New("no sequence")},
		{`not json`, 0, errors.New("junk")},
	} {
		seq, err := parsePutAnswer([]byte(c.in))
		switch {
		case c.want == nil && (err != nil || seq != c.seq):
			t.Errorf("%s: %d, %v; want %d", c.in, seq, err, c.seq)
		case c.want == errConflict && !errors.Is(err, errConflict):
			t.Errorf("%s: %v, want a conflict", c.in, err)
		case c.want != nil && c.want != errConflict && err == nil:
			t.Errorf("%s: accepted as %d", c.in, seq)
		}
	}
	_, err := parsePutAnswer([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10077 || !errors.Is(err, errGuardStoreFull) || !strings.Contains(err.Error(), "guard-size") {
		t.Fatalf("a full store: %v, want errGuardStoreFull with the server's API error and the fix", err)
	}
	// Another storage refusal is not taken for a full store.
	if _, err := parsePutAnswer([]byte(`{"error":{"code":503,"err_code":10077,"description":"message size exceeds maximum allowed"}}`)); err == nil || errors.Is(err, errGuardStoreFull) {
		t.Fatalf("a refused message: %v", err)
	}
}
