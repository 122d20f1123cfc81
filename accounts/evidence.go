package accounts

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// EvidenceTokenLen is the length of an evidence token: 128 random bits as lower-case hex.
const EvidenceTokenLen = 32

// NewEvidenceToken draws a service's evidence token from r (crypto/rand when nil): the secret
// last token of its audit and dead-letter subjects ([AuditSubject], [DLQSubject]). It is kept
// in the service's [ServiceSpec] (so in the keystore) and written into its user JWT's publish
// permissions, and nowhere else: not in its identity card, which every service of the account
// can read. Services that do not know it cannot name the subject, so they can neither flood it
// nor make the server store anything there.
func NewEvidenceToken(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [EvidenceTokenLen / 2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("accounts: evidence token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidEvidenceToken reports whether s has the form of an evidence token (32 lower-case hex
// digits).
func ValidEvidenceToken(s string) bool {
	if len(s) != EvidenceTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// evidenceSubjects returns the publish permissions a service gets for its evidence: its audit
// and overflow subjects, and its dead-letter subject when it declares consumers (only consumers
// write dead letters). None when the spec has no token.
func evidenceSubjects(spec ServiceSpec) []string {
	if spec.EvidenceToken == "" {
		return nil
	}
	out := []string{AuditSubject(spec.Name, spec.EvidenceToken), AuditOverflowSubject(spec.Name, spec.EvidenceToken)}
	if len(spec.Consumers) > 0 {
		out = append(out, DLQSubject(spec.Name, spec.EvidenceToken))
	}
	return out
}

// EvidenceTokenOf returns the evidence token that a service's publish permissions (its user
// JWT's) grant to the service called name: the last token of its "sealbus.audit.<name>.<token>"
// entry. The SDK reads its own token this way from its creds. ok is false when there is none.
func EvidenceTokenOf(pubAllow jwt.StringList, name string) (token string, ok bool) {
	pre := AuditSubjectPrefix + "." + name + "."
	for _, s := range pubAllow {
		tok, found := strings.CutPrefix(s, pre)
		if found && ValidEvidenceToken(tok) {
			return tok, true
		}
	}
	return "", false
}
