package accounts

import (
	"testing"

	"github.com/nats-io/jwt/v2"
)

func TestImportMapping(t *testing.T) {
	for _, tc := range []struct {
		imp           jwt.Import
		subject, want string
		ok            bool
	}{
		{jwt.Import{Subject: "orders.public.>"}, "orders.public.eu.1", "orders.public.eu.1", true},
		{jwt.Import{Subject: "orders.public.>", LocalSubject: "shop.orders.>"}, "orders.public.eu.1", "shop.orders.eu.1", true},
		{jwt.Import{Subject: "orders.*.new", LocalSubject: "shop.$1.created"}, "orders.eu.new", "shop.eu.created", true},
		{jwt.Import{Subject: "orders.*.*", LocalSubject: "shop.$2.$1"}, "orders.eu.new", "shop.new.eu", true},
		{jwt.Import{Subject: "orders.*.*", LocalSubject: "shop.*.*"}, "orders.eu.new", "shop.eu.new", true},
		{jwt.Import{Subject: "orders.public.>", To: "shop"}, "orders.public.x", "shop.orders.public.x", true},
		{jwt.Import{Subject: "orders.public.>", LocalSubject: "shop.orders.>"}, "orders.private.x", "", false},
		{jwt.Import{Subject: "orders.public.>", LocalSubject: "shop.orders.>"}, "orders.public", "", false},
	} {
		imp := tc.imp
		got, ok := ImportedAs(&imp, tc.subject)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ImportedAs(%+v, %q) = %q %v, want %q %v", tc.imp, tc.subject, got, ok, tc.want, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		back, ok := ImportOrigin(&imp, got)
		if !ok || back != tc.subject {
			t.Errorf("ImportOrigin(%+v, %q) = %q %v, want %q", tc.imp, got, back, ok, tc.subject)
		}
	}
	imp := jwt.Import{Subject: "orders.public.>", LocalSubject: "shop.orders.>"}
	if _, ok := ImportOrigin(&imp, "bank.orders.x"); ok {
		t.Error("a local subject outside the import mapped back")
	}
}
