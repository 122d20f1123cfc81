package operator

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape is the one function every untrusted string goes through before sealbus prints it for a
// human (JSON output is encoded exactly, never escaped): subjects, reasons, error texts, writer
// names and anything else a service, an envelope or a stored message could have chosen. It
// writes control characters (C0, DEL, C1) as \xNN, bytes that are not UTF-8 as \xNN, other
// characters a terminal would not print as themselves (format characters such as the
// bidirectional overrides, line and paragraph separators, non-ASCII spaces) as \uNNNN or
// \UNNNNNNNN, and the backslash as \\, so the output is unambiguous and no escape sequence or
// reordering reaches the terminal.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == ' ' || r < 0x80 || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// maxPrintable bounds one printed untrusted string, in characters before escaping.
const maxPrintable = 200

// Printable is [Escape] of at most the first 200 characters of s, followed by "..." when s was
// longer: for one-line summaries (alerts) where a hostile string must not fill the screen.
func Printable(s string) string {
	n := 0
	for i := range s {
		if n == maxPrintable {
			return Escape(s[:i]) + "..."
		}
		n++
	}
	return Escape(s)
}
