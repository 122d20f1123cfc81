package main

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"orders.eu.1":          "orders.eu.1",
		"caf\u00e9 ok":         "caf\u00e9 ok",
		"\x1b[2Jgone":          `\x1b[2Jgone`,
		"line\nfake: verified": `line\x0afake: verified`,
		"back\\slash":          `back\\slash`,
		"\x9b31m":              `\x9b31m`, // a lone C1 byte is not UTF-8
		"\u009b31m":            `\u009b31m`,
		"rtl\u202eexe":         `rtl\u202eexe`,
		"del\x7f":              `del\x7f`,
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}
