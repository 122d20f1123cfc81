package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// escape makes an untrusted string safe to print on a terminal: control characters (C0, DEL,
// C1, and the Unicode line and paragraph separators and bidirectional controls) and bytes
// that are not UTF-8 become \xNN or \uNNNN escapes, and a backslash becomes \\, so nothing
// taken from a stream or a file can move the cursor, rewrite lines or fake a line of output.
// Printable text, spaces included, is unchanged. JSON output is not escaped this way: the
// JSON encoder already escapes control characters.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
