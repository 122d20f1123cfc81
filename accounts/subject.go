package accounts

import (
	"fmt"
	"strings"
)

// SubjectMatches reports whether the literal subject matches pattern under
// NATS rules: tokens are separated by '.', '*' matches exactly one token and
// '>' (only as the last token) matches one or more tokens. A subject that
// contains wildcards, empty tokens or whitespace never matches, nor does an
// invalid pattern.
func SubjectMatches(pattern, subject string) bool {
	if !validSubject(subject, false) || !validSubject(pattern, true) {
		return false
	}
	pt := strings.Split(pattern, ".")
	st := strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		if p != "*" && p != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}

// validSubject checks NATS subject syntax: non-empty tokens, no whitespace;
// with wildcards allowed, '*' and '>' must be whole tokens and '>' last.
func validSubject(s string, wildcards bool) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	if strings.ContainsAny(s, " \t\r\n\x00") {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" {
			return false
		}
		if strings.ContainsAny(t, "*>") {
			if !wildcards || len(t) != 1 {
				return false
			}
			if t == ">" && i != len(toks)-1 {
				return false
			}
		}
	}
	return true
}

// checkAppSubject validates a subject a service declares. Application
// subjects must start with a literal token that is not reserved: a first
// token of '*' or '>' would also match "$JS.API..." and "$SYS..." subjects,
// so it is refused; "$..." (server APIs), "_INBOX..." (inboxes) and
// "sealbus..." (sealbus's own streams) are reserved. The same rule applies
// to the subjects of an identity card, when it is issued and when it is
// decoded.
func checkAppSubject(kind, s string) error {
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
