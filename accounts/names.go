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
	// DLQStream holds rejected and dead-lettered envelopes.
	DLQStream = "SEALBUS_DLQ"
	// DLQSubjectPrefix is the subject prefix of [DLQStream] ("sealbus.dlq.>").
	DLQSubjectPrefix = "sealbus.dlq"
	// AuditStream holds structured security and admin events.
	AuditStream = "SEALBUS_AUDIT"
	// AuditSubjectPrefix is the subject prefix of [AuditStream] ("sealbus.audit.>").
	AuditSubjectPrefix = "sealbus.audit"
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

// AuditSubject returns the subject an audit event of type typ ("sealbus.x.y") is published on:
// "sealbus.audit.x.y".
func AuditSubject(typ string) string {
	return AuditSubjectPrefix + "." + strings.TrimPrefix(typ, reservedToken+".")
}

// DLQSubject returns the subject a dead letter with reason is published on: "sealbus.dlq.<reason>".
func DLQSubject(reason string) string { return DLQSubjectPrefix + "." + reason }

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

// The operator's monitoring (docs/MONITORING.md): the servers' system events the operator
// records, and the operator-wide view of every account's audit and dead-letter records, both
// kept in the operator-owned account.
const (
	// AuthErrorEventSubject is where servers publish, in the system account, one event per
	// failed client authentication.
	AuthErrorEventSubject = "$SYS.SERVER.*.CLIENT.AUTH.ERR"
	// ConnectEventSubject and DisconnectEventSubject carry the system account's connection
	// events of every account ("*" is the account public key; "$G" for failed logins).
	ConnectEventSubject    = "$SYS.ACCOUNT.*.CONNECT"
	DisconnectEventSubject = "$SYS.ACCOUNT.*.DISCONNECT"
	// SystemEventsStream records those events in the operator-owned account, under
	// SystemEventsSubjectPrefix: "sealbus.sys.autherr.<server id>",
	// "sealbus.sys.connect.<account>" and "sealbus.sys.disconnect.<account>".
	SystemEventsStream        = "SEALBUS_SYSEVENTS"
	SystemEventsSubjectPrefix = "sealbus.sys"
	// ViewStreamPrefix starts the name of every stream of the operator-wide view.
	ViewStreamPrefix = "SEALBUS_VIEW_"
	// MonitorBucket is the KV bucket of the operator-owned account holding the monitor's
	// state (incidents, baselines, read positions).
	MonitorBucket = "SEALBUS_MONITOR"
)

// ViewSourceStream is the subject-less mirror, inside account, of its SEALBUS_AUDIT (kind
// "audit") or SEALBUS_DLQ (kind "dlq") that the view sources from:
// "SEALBUS_VIEWSRC_AUDIT_<account>" or "SEALBUS_VIEWSRC_DLQ_<account>". Its name is the
// account's own, so the flow-control subjects of the view's sourcing consumers
// ("$JS.FC.<stream>.<consumer>.*") differ between accounts.
func ViewSourceStream(kind, account string) string {
	return "SEALBUS_VIEWSRC_" + strings.ToUpper(kind) + "_" + account
}

// ViewAuditStream is the stream of the operator-owned account that sources account's
// SEALBUS_AUDIT: "SEALBUS_VIEW_AUDIT_<account public key>".
func ViewAuditStream(account string) string { return ViewStreamPrefix + "AUDIT_" + account }

// ViewDLQStream is the stream of the operator-owned account that sources account's
// SEALBUS_DLQ: "SEALBUS_VIEW_DLQ_<account public key>".
func ViewDLQStream(account string) string { return ViewStreamPrefix + "DLQ_" + account }

// ParseViewStream takes a view stream name apart: kind is "audit" or "dlq" and account the
// source account's public key. ok is false for any other name.
func ParseViewStream(name string) (kind, account string, ok bool) {
	rest, found := strings.CutPrefix(name, ViewStreamPrefix)
	if !found {
		return "", "", false
	}
	switch {
	case strings.HasPrefix(rest, "AUDIT_"):
		kind, account = "audit", rest[len("AUDIT_"):]
	case strings.HasPrefix(rest, "DLQ_"):
		kind, account = "dlq", rest[len("DLQ_"):]
	default:
		return "", "", false
	}
	if !nkeys.IsValidPublicAccountKey(account) {
		return "", "", false
	}
	return kind, account, true
}

// ViewDeliverPrefix is the subject prefix, in account, on which the view's sourcing
// consumers deliver to the operator-owned account: "sealbus.view.<account public key>".
// Services can neither publish nor subscribe there (their subjects never start with
// "sealbus").
func ViewDeliverPrefix(account string) string { return reservedToken + ".view." + account }
