package accounts

import (
	"fmt"
	"strings"
)

// MaxSubjectLen is the longest subject or subject pattern sealbus accepts: the envelope
// format's limit, so every subject a service may publish on can be sealed.
const MaxSubjectLen = 1024

// ValidSubject reports whether s is a concrete NATS subject as sealbus accepts it: 1 to
// [MaxSubjectLen] bytes of printable ASCII (0x21-0x7E) without '*' or '>', split at '.' into
// non-empty tokens. It is the envelope format's subject rule; this is the one subject validator
// of sealbus, every package checks subjects with it, [ValidPattern] or [CheckAppSubject].
func ValidSubject(s string) bool { return validSubject(s, false) }

// ValidPattern reports whether s is a valid subject pattern: [ValidSubject] except that a token
// may be '*' (one token) and the last token may be '>' (one or more tokens). Partial-token
// wildcards ("foo*") are refused.
func ValidPattern(s string) bool { return validSubject(s, true) }

// SubjectMatches reports whether the literal subject matches pattern under
// NATS rules: tokens are separated by '.', '*' matches exactly one token and
// '>' (only as the last token) matches one or more tokens. A subject that
// is not [ValidSubject] never matches, nor does a pattern that is not [ValidPattern].
func SubjectMatches(pattern, subject string) bool {
	if !validSubject(subject, false) || !validSubject(pattern, true) {
		return false
	}
	// Walk both token by token without splitting: this runs for every envelope published and
	// received.
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		if p == ">" {
			return true // subject has at least one token left here (it is valid, not empty)
		}
		tok, srest, smore := strings.Cut(subject, ".")
		if p != "*" && p != tok {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

// SubjectSubset reports whether every subject matched by pattern a is matched by pattern b.
// Both must be [ValidPattern].
func SubjectSubset(a, b string) bool {
	if !validSubject(a, true) || !validSubject(b, true) {
		return false
	}
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range bt {
		if t == ">" {
			return len(at) > i
		}
		if i >= len(at) {
			return false
		}
		switch {
		case at[i] == ">":
			return false
		case t == "*":
		case t != at[i]:
			return false
		}
	}
	return len(at) == len(bt)
}

// validSubject checks the syntax shared by subjects and patterns; with wildcards, '*' and '>'
// may be whole tokens and '>' only the last.
func validSubject(s string, wildcards bool) bool {
	if s == "" || len(s) > MaxSubjectLen || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c < 0x21 || c > 0x7e {
				return false
			}
			continue
		}
		tok := s[start:i]
		start = i + 1
		switch {
		case tok == "":
			return false
		case tok == "*":
			if !wildcards {
				return false
			}
		case tok == ">":
			if !wildcards || i != len(s) {
				return false
			}
		case strings.ContainsAny(tok, "*>"):
			return false
		}
	}
	return true
}

// CheckAppSubject refuses a subject or pattern that is not an application subject, with
// [ErrInvalidOption] and the reason: invalid syntax ([ValidPattern]), a wildcard first token
// (it would also match "$JS.API..." and "$SYS..."), the server's "$..." and "_..." namespaces
// (APIs, inboxes) and sealbus's own "sealbus..." subjects. kind names the subject in the error
// ("publish", "stream", ...). The same rule applies to services' declared subjects, identity
// cards, streams and consumer filters.
func CheckAppSubject(kind, s string) error {
	if why := appSubjectProblem(s); why != "" {
		return fmt.Errorf("%w: %s subject %q %s", ErrInvalidOption, kind, s, why)
	}
	return nil
}

// appSubjectProblem returns why s is not an application subject, or "".
func appSubjectProblem(s string) string {
	if !validSubject(s, true) {
		return "is not a valid NATS subject"
	}
	first, _, _ := strings.Cut(s, ".")
	switch {
	case first == "*" || first == ">":
		return "must start with a literal token"
	case strings.HasPrefix(first, "$"), strings.HasPrefix(first, "_"):
		return "is reserved for the server ($..., _...)"
	case first == reservedToken:
		return "is reserved for sealbus (sealbus.>)"
	}
	return ""
}
