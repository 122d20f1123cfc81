package accounts

import (
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"

	"github.com/nats-io/nkeys"
)

func TestParseDirectoryKey(t *testing.T) {
	kp, _ := nkeys.CreateAccount()
	peer, _ := kp.PublicKey()
	ukp, _ := nkeys.CreateUser()
	user, _ := ukp.PublicKey()
	for _, tc := range []struct {
		key  string
		want DirectoryKey
		ok   bool
	}{
		{DirectoryAccountKey, DirectoryKey{Account: true}, true},
		{DirectoryCardKey("billing", user), DirectoryKey{Card: "billing", User: user}, true},
		{PeerAccountKey(peer), DirectoryKey{Peer: peer, Account: true}, true},
		{PeerCardKey(peer, "billing", user), DirectoryKey{Peer: peer, Card: "billing", User: user}, true},
		{"card.", DirectoryKey{}, false},
		{"card.billing", DirectoryKey{}, false},
		{"card.billing." + peer, DirectoryKey{}, false},
		{"card." + user, DirectoryKey{}, false},
		{DirectoryIndexKey, DirectoryKey{}, false},
		{DirectoryVersionKey, DirectoryKey{}, false},
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

const tok = "0123456789abcdef0123456789abcdef"

func TestSubjectsOfSealbusStreams(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{AuditSubject("billing", tok), "sealbus.audit.billing." + tok},
		{AuditOverflowSubject("billing", tok), "sealbus.audit.billing." + tok + ".overflow"},
		{DLQSubject("billing", tok), "sealbus.dlq.billing." + tok},
		{AdminAuditSubject(tok), "sealbus.audit._admin." + tok},
		{DirectorySubjects, "$KV.SEALBUS_DIRECTORY.>"},
		{DirectorySubject("ASHOP", "account"), "$KV.SEALBUS_DIRECTORY.ASHOP.account"},
		{DirectoryFilter("ASHOP"), "$KV.SEALBUS_DIRECTORY.ASHOP.>"},
		{DirectoryGetSubject("ASHOP", "index"), "$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.ASHOP.index"},
		{DirectoryDeliverPrefix("ASHOP"), "sealbus.directory.deliver.ASHOP"},
		{DirectoryCardPrefix("billing"), "card.billing."},
		{PeerCardPrefix("ABANK", "ledger"), "peer.ABANK.card.ledger."},
		{GuardStream("ORDERS", "billing"), "SEALBUS_GUARD_6_ORDERS_billing"},
		{GuardSubjects("ORDERS", "billing"), "sealbus.guard.ORDERS.billing.>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseEvidenceSubject(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    EvidenceSubject
		ok      bool
	}{
		{AuditSubject("billing", tok), EvidenceSubject{Stream: AuditStream, Writer: "billing", Token: tok}, true},
		{AuditOverflowSubject("billing", tok), EvidenceSubject{Stream: AuditStream, Writer: "billing", Token: tok, Overflow: true}, true},
		{DLQSubject("billing", tok), EvidenceSubject{Stream: DLQStream, Writer: "billing", Token: tok}, true},
		{AdminAuditSubject(tok), EvidenceSubject{Stream: AuditStream, Writer: AdminWriter, Token: tok}, true},
		{AdminAuditSubject(tok) + ".overflow", EvidenceSubject{}, false},
		{DLQSubject("billing", tok) + ".overflow", EvidenceSubject{}, false},
		{"sealbus.audit.billing", EvidenceSubject{}, false},
		{"sealbus.audit.billing." + tok[:31], EvidenceSubject{}, false},
		{"sealbus.audit.billing." + strings.ToUpper(tok), EvidenceSubject{}, false},
		{"sealbus.audit._x." + tok, EvidenceSubject{}, false},
		{"sealbus.audit.rejected", EvidenceSubject{}, false},
		{"sealbus.dlq.bad_signature", EvidenceSubject{}, false},
		{"orders.created", EvidenceSubject{}, false},
	} {
		got, ok := ParseEvidenceSubject(tc.subject)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseEvidenceSubject(%q) = %+v, %v; want %+v, %v", tc.subject, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEvidenceToken(t *testing.T) {
	a, err := NewEvidenceToken(nil)
	if err != nil || !ValidEvidenceToken(a) {
		t.Fatalf("token %q: %v", a, err)
	}
	b, _ := NewEvidenceToken(nil)
	if a == b {
		t.Fatal("two tokens are equal")
	}
	for _, s := range []string{"", tok[:31], tok + "0", strings.ToUpper(tok), "g123456789abcdef0123456789abcdef"} {
		if ValidEvidenceToken(s) {
			t.Errorf("%q accepted", s)
		}
	}
	pub := jwt.StringList{"orders.x", AuditOverflowSubject("billing", tok), AuditSubject("billing", tok), AuditSubject("other", a)}
	if got, ok := EvidenceTokenOf(pub, "billing"); !ok || got != tok {
		t.Fatalf("EvidenceTokenOf = %q, %v", got, ok)
	}
	if _, ok := EvidenceTokenOf(pub, "shipping"); ok {
		t.Fatal("found a token for a service that has none")
	}
}

func TestReservedAccountNames(t *testing.T) {
	for _, n := range []string{"SYS", "sys", "SEALBUS", "Sealbus"} {
		if !ReservedAccountName(n) {
			t.Errorf("%s is not reserved", n)
		}
	}
	for _, n := range []string{"shop", "SEALBUS2", "SYSTEM"} {
		if ReservedAccountName(n) {
			t.Errorf("%s is reserved", n)
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

// TestParseGuardStream: the replay guard store names GuardStream makes, and nothing else,
// parse back into their stream and durable (the length prefix keeps "A_B"+"C" and "A"+"B_C"
// apart).
func TestParseGuardStream(t *testing.T) {
	for _, c := range [][2]string{{"ORDERS", "billing"}, {"A_B", "C"}, {"A", "B_C"}} {
		if s, d, ok := ParseGuardStream(GuardStream(c[0], c[1])); !ok || s != c[0] || d != c[1] {
			t.Errorf("ParseGuardStream(GuardStream(%q, %q)) = %q, %q, %v", c[0], c[1], s, d, ok)
		}
	}
	for _, name := range []string{"ORDERS", "SEALBUS_GUARD_", "SEALBUS_GUARD_x_A_B", "SEALBUS_GUARD_6_ORDERS", "SEALBUS_GUARD_6_ORDERS_", "SEALBUS_GUARD_-1_A_B", "SEALBUS_GUARD_9_ORDERS_billing"} {
		if _, _, ok := ParseGuardStream(name); ok {
			t.Errorf("ParseGuardStream(%q) accepted", name)
		}
	}
}
