package accounts

import (
	"testing"

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

func TestSubjectsOfSealbusStreams(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{AuditSubject("sealbus.rejected"), "sealbus.audit.rejected"},
		{AuditSubject("sealbus.directory.unverifiable"), "sealbus.audit.directory.unverifiable"},
		{DLQSubject("bad_signature"), "sealbus.dlq.bad_signature"},
		{DirectorySubjects, "$KV.SEALBUS_DIRECTORY.>"},
		{DirectorySubject("ASHOP", "account"), "$KV.SEALBUS_DIRECTORY.ASHOP.account"},
		{DirectoryFilter("ASHOP"), "$KV.SEALBUS_DIRECTORY.ASHOP.>"},
		{DirectoryGetSubject("ASHOP", "index"), "$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.ASHOP.index"},
		{DirectoryDeliverPrefix("ASHOP"), "sealbus.directory.deliver.ASHOP"},
		{DirectoryCardPrefix("billing"), "card.billing."},
		{PeerCardPrefix("ABANK", "ledger"), "peer.ABANK.card.ledger."},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
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
