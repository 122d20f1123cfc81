package accounts

import (
	"testing"

	"github.com/nats-io/nkeys"
)

func TestParseDirectoryKey(t *testing.T) {
	kp, _ := nkeys.CreateAccount()
	peer, _ := kp.PublicKey()
	for _, tc := range []struct {
		key  string
		want DirectoryKey
		ok   bool
	}{
		{DirectoryAccountKey, DirectoryKey{Account: true}, true},
		{DirectoryCardKey("billing"), DirectoryKey{Card: "billing"}, true},
		{PeerAccountKey(peer), DirectoryKey{Peer: peer, Account: true}, true},
		{PeerCardKey(peer, "billing"), DirectoryKey{Peer: peer, Card: "billing"}, true},
		{"card.", DirectoryKey{}, false},
		{"cards.billing", DirectoryKey{}, false},
		{"peer.NOTAKEY.account", DirectoryKey{}, false},
		{"peer." + peer, DirectoryKey{}, false},
		{"peer." + peer + ".other", DirectoryKey{}, false},
		{"", DirectoryKey{}, false},
	} {
		got, ok := ParseDirectoryKey(tc.key)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseDirectoryKey(%q) = %+v, %v; want %+v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSubjectsOfSealbusStreams(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{AuditSubject("sealbus.rejected"), "sealbus.audit.rejected"},
		{AuditSubject("sealbus.directory.unverifiable"), "sealbus.audit.directory.unverifiable"},
		{DLQSubject("bad_signature"), "sealbus.dlq.bad_signature"},
		{DirectorySubjects, "$KV.SEALBUS_DIRECTORY.>"},
		{GuardStream("ORDERS", "billing"), "SEALBUS_GUARD_6_ORDERS_billing"},
		{GuardSubjects("ORDERS", "billing"), "sealbus.guard.ORDERS.billing.>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestGuardStreamUnambiguous: two durables whose names concatenate to the same string get
// different stores.
func TestGuardStreamUnambiguous(t *testing.T) {
	if GuardStream("A_B", "C") == GuardStream("A", "B_C") {
		t.Fatal("durables A_B:C and A:B_C share a guard stream")
	}
	if GuardSubjects("A_B", "C") == GuardSubjects("A", "B_C") {
		t.Fatal("durables A_B:C and A:B_C share guard subjects")
	}
}
