package operator

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"orders.eu.1":           "orders.eu.1",
		"bad\x1b[2J\x1b[1;1Hok": `bad\x1b[2J\x1b[1;1Hok`,
		"line\rrewritten\n":     `line\x0drewritten\x0a`,
		"tab\there":             `tab\x09here`,
		"del\x7f":               `del\x7f`,
		"c1\u009b31m":           `c1\x9b31m`,
		"rtl\u202eevil":         `rtl\u202eevil`,
		"sep\u2028x":            `sep\u2028x`,
		"nbsp\u00a0x":           `nbsp\xa0x`,
		"not utf8 \xff\xfe":     `not utf8 \xff\xfe`,
		`already \x1b escaped`:  `already \\x1b escaped`,
		"café ünïcode":          "café ünïcode",
		"tag \U000e0041":        `tag \U000e0041`,
		"":                      "",
		"line\nfake: verified":  `line\x0afake: verified`,
		"\x9b31m":               `\x9b31m`, // a lone C1 byte is not UTF-8
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		for _, c := range got {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Errorf("Escape(%q) still holds control character %U", in, c)
			}
		}
		if !utf8.ValidString(got) {
			t.Errorf("Escape(%q) is not UTF-8", in)
		}
	}
	// Every byte value: nothing below 0x20, no DEL, no raw C1 survives.
	var all strings.Builder
	for i := 0; i < 256; i++ {
		all.WriteByte(byte(i))
	}
	for _, c := range Escape(all.String()) {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			t.Fatalf("control character %U in the escaped byte range", c)
		}
	}
}
