package accounts

// This file names every stream, bucket, directory key and subject sealbus itself uses. Other
// packages refer to these names; none spells them out again.

import (
	"strings"

	"github.com/nats-io/nkeys"
)

// Streams, buckets and keys inside every account (docs/ARCHITECTURE.md, "Streams and subjects").
const (
	// DirectoryBucket is the JetStream KV bucket holding the account JWT and
	// every identity card of the account. Services read it; admins write it.
	DirectoryBucket = "SEALBUS_DIRECTORY"
	// DirectoryStream is the stream behind [DirectoryBucket].
	DirectoryStream = "KV_" + DirectoryBucket
	// DirectoryAccountKey is the directory key of the account JWT.
	DirectoryAccountKey = "account"
	// DLQStream holds dead letters: signed records, each carrying a rejected or
	// dead-lettered envelope, on its writer's own subject ([DLQSubject]).
	DLQStream = "SEALBUS_DLQ"
	// DLQSubjectPrefix is the first two tokens of every subject of [DLQStream].
	DLQSubjectPrefix = "sealbus.dlq"
	// AuditStream holds signed audit records (security and admin events), each on its
	// writer's own subject ([AuditSubject], [AdminAuditSubject]).
	AuditStream = "SEALBUS_AUDIT"
	// AuditSubjectPrefix is the first two tokens of every subject of [AuditStream].
	AuditSubjectPrefix = "sealbus.audit"
	// AdminWriter is the writer token of the operator's own audit subject. It is not a valid
	// service name (names start with a letter or digit), so no service's subject can be it.
	AdminWriter = "_admin"
)

// DirectoryCardKey returns the directory key of a service's card: "card.<name>".
func DirectoryCardKey(serviceName string) string { return cardPrefix + serviceName }

const cardPrefix = "card."

// Directory keys of peer accounts (cross-account flows): the JWT and cards of another account
// of the same operator, copied into this account's directory by the operator.
const peerPrefix = "peer."

// PeerAccountKey returns the directory key of a peer account's JWT: "peer.<account>.account".
func PeerAccountKey(account string) string {
	return peerPrefix + account + "." + DirectoryAccountKey
}

// PeerCardKey returns the directory key of a peer service's card: "peer.<account>.card.<name>".
func PeerCardKey(account, service string) string {
	return peerPrefix + account + "." + DirectoryCardKey(service)
}

// DirectoryKey is a directory key taken apart by [ParseDirectoryKey].
type DirectoryKey struct {
	Peer    string // the peer account ("A...") of a "peer.<account>...." key; "" for the account's own
	Account bool   // the key holds an account JWT
	Card    string // the key holds the card of this service (not validated as a name)
}

// ParseDirectoryKey takes a directory key apart: "account", "card.<name>",
// "peer.<account>.account" or "peer.<account>.card.<name>". ok is false for any other key,
// including a peer key that does not name an account public key.
func ParseDirectoryKey(key string) (k DirectoryKey, ok bool) {
	rest := key
	if r, isPeer := strings.CutPrefix(key, peerPrefix); isPeer {
		acct, tail, found := strings.Cut(r, ".")
		if !found || !nkeys.IsValidPublicAccountKey(acct) {
			return DirectoryKey{}, false
		}
		k.Peer, rest = acct, tail
	}
	if rest == DirectoryAccountKey {
		k.Account = true
		return k, true
	}
	if name, isCard := strings.CutPrefix(rest, cardPrefix); isCard && name != "" {
		k.Card = name
		return k, true
	}
	return DirectoryKey{}, false
}

// DirectorySubjects is the subject filter of [DirectoryStream] (the KV API's "$KV.<bucket>.>").
const DirectorySubjects = "$KV." + DirectoryBucket + ".>"

// Evidence subjects (docs/ARCHITECTURE.md, "Streams and subjects"). Every writer of records
// has its own literal subjects, named by its service name and a secret token (see
// [NewEvidenceToken]) that appears only in that service's user JWT: a service may publish on its
// own subjects only, another service cannot even name them (so it cannot make the server store
// a JetStream API answer there with a reply subject), and the streams capture exactly the
// listed subjects, each with its own per-subject limit.

// AuditSubject returns writer's audit subject: "sealbus.audit.<writer>.<token>".
func AuditSubject(writer, token string) string {
	return AuditSubjectPrefix + "." + writer + "." + token
}

// overflowToken ends the subject of a writer's overflow records.
const overflowToken = "overflow"

// AuditOverflowSubject returns the subject a writer reports its refused records on when its
// audit or dead-letter subject is full: "sealbus.audit.<writer>.<token>.overflow".
func AuditOverflowSubject(writer, token string) string {
	return AuditSubject(writer, token) + "." + overflowToken
}

// DLQSubject returns writer's dead-letter subject: "sealbus.dlq.<writer>.<token>".
func DLQSubject(writer, token string) string {
	return DLQSubjectPrefix + "." + writer + "." + token
}

// AdminAuditSubject returns the operator's audit subject of an account:
// "sealbus.audit._admin.<token>", the token derived from the account's signing key.
func AdminAuditSubject(token string) string { return AuditSubject(AdminWriter, token) }

// EvidenceSubject is an evidence subject taken apart by [ParseEvidenceSubject].
type EvidenceSubject struct {
	Stream   string // AuditStream or DLQStream
	Writer   string // a service name, or AdminWriter
	Token    string
	Overflow bool // an overflow subject (audit stream only)
}

// ParseEvidenceSubject takes an evidence subject apart. ok is false for any other subject,
// including one whose writer is neither a valid service name nor AdminWriter, or whose token is
// not a valid evidence token.
func ParseEvidenceSubject(subject string) (e EvidenceSubject, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(subject, AuditSubjectPrefix+"."):
		e.Stream, rest = AuditStream, subject[len(AuditSubjectPrefix)+1:]
	case strings.HasPrefix(subject, DLQSubjectPrefix+"."):
		e.Stream, rest = DLQStream, subject[len(DLQSubjectPrefix)+1:]
	default:
		return EvidenceSubject{}, false
	}
	parts := strings.Split(rest, ".")
	switch {
	case len(parts) == 3 && parts[2] == overflowToken && e.Stream == AuditStream:
		e.Overflow = true
	case len(parts) != 2:
		return EvidenceSubject{}, false
	}
	e.Writer, e.Token = parts[0], parts[1]
	if (e.Writer != AdminWriter && !ValidName(e.Writer)) || !ValidEvidenceToken(e.Token) || (e.Writer == AdminWriter && e.Overflow) {
		return EvidenceSubject{}, false
	}
	return e, true
}

// ClaimsUpdateSubject is the system account subject account JWTs are pushed to.
const ClaimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"

// InboxPrefix returns the private inbox prefix of the service whose user key
// is userKey: "_INBOX_" followed by the full public key. Service user JWTs
// may subscribe only to InboxPrefix(userKey)+".>" (plus their declared
// subscribe subjects), so no other service can read their replies, pull
// deliveries or directory watches. The SDK passes it to nats.CustomInboxPrefix.
func InboxPrefix(userKey string) string { return "_INBOX_" + userKey }

// reservedToken is the first token of sealbus's own subjects.
const reservedToken = "sealbus"
