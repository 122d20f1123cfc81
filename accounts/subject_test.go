package accounts

import (
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
)

func TestSubjectMatches(t *testing.T) {
	cases := []struct {
		pattern, subject string
		want             bool
	}{
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"foo.bar", "foo.bar", true},
		{"foo.bar", "foo", false},
		{"foo", "foo.bar", false},
		{"foo.*", "foo.bar", true},
		{"foo.*", "foo", false},
		{"foo.*", "foo.bar.baz", false},
		{"*.bar", "foo.bar", true},
		{"*", "foo", true},
		{"*", "foo.bar", false},
		{"foo.*.baz", "foo.x.baz", true},
		{"foo.*.baz", "foo.x.qux", false},
		{"foo.>", "foo.bar", true},
		{"foo.>", "foo.bar.baz", true},
		{"foo.>", "foo", false},
		{">", "foo", true},
		{">", "foo.bar.baz", true},
		{"*.>", "foo", false},
		{"*.>", "foo.bar", true},
		{"foo.*.>", "foo.a.b", true},
		{"foo.*.>", "foo.a", false},
		// Partial-token wildcards are literals in NATS; sealbus rejects them.
		{"foo*", "foo", false},
		{"foo*", "foox", false},
		{"foo.b>", "foo.bar", false},
		// '>' only as the last token.
		{"foo.>.bar", "foo.x.bar", false},
		// Case sensitive.
		{"Foo", "foo", false},
		// Invalid subjects never match.
		{"foo", "", false},
		{"", "foo", false},
		{"foo.bar", "foo..bar", false},
		{"foo.>", "foo.", false},
		{">", ".foo", false},
		{"foo bar", "foo bar", false},
		{"foo.*", "foo.*", false},
		{"foo.>", "foo.>", false},
		{">", ">", false},
		{"foo.*", "foo.\tx", false},
	}
	for _, c := range cases {
		if got := SubjectMatches(c.pattern, c.subject); got != c.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

func FuzzSubjectMatches(f *testing.F) {
	for _, s := range []string{"foo", "foo.bar", "foo.*", "foo.>", "*", ">", "a..b", "a.*.c"} {
		f.Add(s, "foo.bar")
	}
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		m := SubjectMatches(pattern, subject)
		if m && (strings.ContainsAny(subject, "*> ") || subject == "") {
			t.Fatalf("matched invalid subject %q", subject)
		}
		// A literal pattern matches exactly itself.
		if !strings.ContainsAny(pattern, "*>") && m != (pattern == subject && ValidSubject(subject)) {
			t.Fatalf("literal %q vs %q: %v", pattern, subject, m)
		}
		// "<first token>.>" style patterns agree with prefix matching.
		if ValidSubject(subject) && SubjectMatches(">", subject) != true {
			t.Fatalf("> does not match %q", subject)
		}
	})
}

func TestPermissionsExact(t *testing.T) {
	spec := ServiceSpec{
		Name:      "billing",
		Publish:   []string{"billing.invoiced", "billing.invoiced"},
		Subscribe: []string{"orders.created", "orders.*.cancelled"},
		Consumers: []ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
		// the service's secret evidence token: its own literal audit, overflow and DLQ subjects
		EvidenceToken: "0123456789abcdef0123456789abcdef",
	}
	p := ServicePermissions(spec, "UKEY")
	wantPub := []string{
		"billing.invoiced",
		"sealbus.audit.billing.0123456789abcdef0123456789abcdef",
		"sealbus.audit.billing.0123456789abcdef0123456789abcdef.overflow",
		"sealbus.dlq.billing.0123456789abcdef0123456789abcdef",
		"$JS.API.INFO",
		"$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.>",
		"$JS.API.STREAM.INFO.ORDERS",
		"$JS.API.CONSUMER.INFO.ORDERS.billing",
		"$JS.API.CONSUMER.MSG.NEXT.ORDERS.billing",
		"$JS.ACK.ORDERS.billing.>",
		"sealbus.guard.ORDERS.billing.>",
		"$JS.API.STREAM.MSG.GET.SEALBUS_GUARD_6_ORDERS_billing",
	}
	if !slices.Equal(p.Pub.Allow, wantPub) {
		t.Errorf("pub allow\n got %q\nwant %q", p.Pub.Allow, wantPub)
	}
	wantSub := []string{"orders.created", "orders.*.cancelled", "_INBOX_UKEY.>"}
	if !slices.Equal(p.Sub.Allow, wantSub) {
		t.Errorf("sub allow\n got %q\nwant %q", p.Sub.Allow, wantSub)
	}
	if p.Resp != nil {
		t.Error("services get no response permission")
	}
	// What a service must never be able to do.
	never := []string{
		"$JS.API.STREAM.CREATE.ORDERS",
		"$JS.API.STREAM.UPDATE.ORDERS",
		"$JS.API.STREAM.DELETE.ORDERS",
		"$JS.API.STREAM.PURGE.ORDERS",
		"$JS.API.STREAM.MSG.DELETE.ORDERS",
		"$JS.API.CONSUMER.CREATE.ORDERS.x",
		"$JS.API.CONSUMER.CREATE.ORDERS.x.orders.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.x",
		"$JS.API.CONSUMER.DELETE.ORDERS.billing",
		"$JS.API.CONSUMER.MSG.NEXT.ORDERS.other",
		"$JS.ACK.ORDERS.other.1.2.3.4.5",
		"$KV.SEALBUS_DIRECTORY.card.billing",
		"$KV.SEALBUS_DIRECTORY.AACCT.card.billing.UKEY",
		"$JS.API.STREAM.CREATE.KV_SEALBUS_DIRECTORY",
		"$JS.API.STREAM.PURGE.KV_SEALBUS_DIRECTORY",
		"$JS.API.STREAM.PURGE.SEALBUS_DIRECTORY",
		// The directory: no batch gets (one request would send the whole view to any reply
		// subject), no stream message gets, no consumers of any kind on it.
		"$JS.API.DIRECT.GET.SEALBUS_DIRECTORY",
		"$JS.API.DIRECT.GET.ORDERS",
		"$JS.API.STREAM.MSG.GET.SEALBUS_DIRECTORY",
		"$JS.API.CONSUMER.CREATE.SEALBUS_DIRECTORY",
		"$JS.API.CONSUMER.CREATE.SEALBUS_DIRECTORY.w",
		"$JS.API.CONSUMER.CREATE.SEALBUS_DIRECTORY.w.$KV.SEALBUS_DIRECTORY.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.SEALBUS_DIRECTORY.d",
		"$JS.SEALBUS.API.CONSUMER.CREATE.KV_SEALBUS_DIRECTORY.x.$KV.SEALBUS_DIRECTORY.AACCT.>",
		"$JS.FC.KV_SEALBUS_DIRECTORY.x.y",
		"sealbus.directory.deliver.AACCT.M.x",
		"$SYS.REQ.CLAIMS.UPDATE",
		"orders.created",
		"_INBOX.x",
		// no other writer's evidence subjects, no wildcard evidence space
		"sealbus.audit.shipping.0123456789abcdef0123456789abcdef",
		"sealbus.audit.billing.ffffffffffffffffffffffffffffffff",
		"sealbus.audit.billing.0123456789abcdef0123456789abcdef.x",
		"sealbus.audit._admin.0123456789abcdef0123456789abcdef",
		"sealbus.dlq.billing.ffffffffffffffffffffffffffffffff",
		"sealbus.dlq.x",
		// Another durable's guard store, and what would tamper with its own.
		"sealbus.guard.ORDERS.shipping.m.x",
		"$JS.API.STREAM.MSG.GET.SEALBUS_GUARD_6_ORDERS_shipping",
		"$JS.API.STREAM.PURGE.SEALBUS_GUARD_6_ORDERS_billing",
		"$JS.API.STREAM.MSG.DELETE.SEALBUS_GUARD_6_ORDERS_billing",
		"$JS.API.DIRECT.GET.SEALBUS_GUARD_6_ORDERS_billing",
		"$JS.API.CONSUMER.CREATE.SEALBUS_GUARD_6_ORDERS_billing.x",
		// Gets of the streams it can read or write otherwise.
		"$JS.API.STREAM.MSG.GET.ORDERS",
		"$JS.API.STREAM.MSG.GET.KV_SEALBUS_DIRECTORY",
		"$JS.API.STREAM.MSG.GET.SEALBUS_DLQ",
		"$JS.API.DIRECT.GET.KV_SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.account",
	}
	for _, s := range never {
		if allowed(p.Pub, s) {
			t.Errorf("service may publish %s", s)
		}
	}
	for _, s := range []string{"_INBOX.x", "_INBOX_OTHER.x", "billing.invoiced", "$JS.API.>", "sealbus.directory.deliver.AACCT.M.x"} {
		if allowed(p.Sub, s) {
			t.Errorf("service may subscribe %s", s)
		}
	}
	for _, s := range []string{"billing.invoiced", DLQSubject("billing", spec.EvidenceToken), AuditSubject("billing", spec.EvidenceToken), "$JS.ACK.ORDERS.billing.1.2.3.4.5",
		"$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.AACCT.account",
		"sealbus.guard.ORDERS.billing.m.0123", "$JS.API.STREAM.MSG.GET.SEALBUS_GUARD_6_ORDERS_billing"} {
		if !allowed(p.Pub, s) {
			t.Errorf("service may not publish %s", s)
		}
	}
	for _, s := range []string{"_INBOX_UKEY.abc", "_INBOX_UKEY.abc.1", "orders.x.cancelled"} {
		if !allowed(p.Sub, s) {
			t.Errorf("service may not subscribe %s", s)
		}
	}
	// Without the inbox, Permissions is the same set.
	base := Permissions(spec)
	if !slices.Equal(base.Pub.Allow, p.Pub.Allow) || !slices.Equal(base.Sub.Allow, wantSub[:2]) {
		t.Error("Permissions and ServicePermissions differ beyond the inbox")
	}
}

// allowed applies NATS allow/deny semantics.
func allowed(p jwt.Permission, subject string) bool {
	return anyMatch(p.Allow, subject) && !anyMatch(p.Deny, subject)
}

func TestSubjectSubset(t *testing.T) {
	for _, s := range []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.*", true}, {"a.b.c", "a.>", true}, {"a.*", "a.>", true},
		{"a.>", "a.*", false}, {"a", "a.>", false}, {"a.*", "a.b", false}, {"a.>", "a.>", true},
		{"a.b", "a.b.c", false}, {"a.*.c", "a.*.*", true}, {">", ">", true}, {"a.>", ">", true},
		// Invalid patterns are never a subset of anything.
		{"a..b", ">", false}, {"a.b*", "a.>", false}, {"a.>.b", ">", false}, {"a.b", "a.b>", false},
	} {
		if got := SubjectSubset(s.a, s.b); got != s.want {
			t.Errorf("SubjectSubset(%q, %q) = %v, want %v", s.a, s.b, got, s.want)
		}
	}
}

func TestValidSubjectAndPattern(t *testing.T) {
	for _, c := range []struct {
		s                string
		subject, pattern bool
	}{
		{"orders.eu.1", true, true},
		{"orders.*", false, true},
		{"orders.>", false, true},
		{">", false, true},
		{"orders.>.x", false, false},
		{"orders*", false, false},
		{"orders.é", false, false},
		{"orders.\x7f", false, false},
		{"orders.a\x00b", false, false},
		{"orders. x", false, false},
		{"orders..x", false, false},
		{".orders", false, false},
		{"orders.", false, false},
		{"", false, false},
		{strings.Repeat("a", MaxSubjectLen), true, true},
		{strings.Repeat("a", MaxSubjectLen+1), false, false},
	} {
		if got := ValidSubject(c.s); got != c.subject {
			t.Errorf("ValidSubject(%q) = %v, want %v", c.s, got, c.subject)
		}
		if got := ValidPattern(c.s); got != c.pattern {
			t.Errorf("ValidPattern(%q) = %v, want %v", c.s, got, c.pattern)
		}
	}
}
