package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealbus/sealbus/operator"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	err := Run(context.Background(), &out, Options{})
	t.Logf("demo output (%v):\n%s", time.Since(start), out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bad_signature", "replay", "subject_mismatch", "sender_revoked", "sender_forbidden", "account_mismatch", "summary",
		"forged audit event", "never as billing's", "hijacking dead letter", operator.ReplayRecordUnverified, operator.ReplaySubjectForbidden,
		"audit log", "verified, 2 UNVERIFIED", "password guessing", "junk flood",
		"6. the monitor's view", string(operator.AlertBruteForce) + "      count 30", string(operator.AlertRevokedKey), string(operator.AlertRejectionSpike),
		string(operator.AlertForgedRecord), "signed audit event of the operator account"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "NOT REFUSED") {
		t.Error("an attack was not refused")
	}
}
