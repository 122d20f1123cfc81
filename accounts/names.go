package accounts

// This file names every stream, bucket, directory key and subject sealbus itself uses. Other
// packages refer to these names; none spells them out again.

import (
	"strconv"
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

// GuardSubjectPrefix is the subject prefix of the replay guards' stores: the store of the
// durable D on stream S has the subjects "sealbus.guard.S.D.>" ([GuardSubjects]).
const GuardSubjectPrefix = "sealbus.guard"

// GuardStream returns the name of the stream that holds the replay guard's store of the
// durable consumer durable on stream: "SEALBUS_GUARD_<len(stream)>_<stream>_<durable>". The
// length makes the name unambiguous ("A_B" + "C" and "A" + "B_C" differ), so no two durables
// share a store. The operator creates it with the durable; only the durable's service may
// write and read it.
func GuardStream(stream, durable string) string {
	return "SEALBUS_GUARD_" + strconv.Itoa(len(stream)) + "_" + stream + "_" + durable
}

// GuardSubjects returns the subject filter of [GuardStream]: "sealbus.guard.<stream>.<durable>.>".
func GuardSubjects(stream, durable string) string {
	return GuardSubjectPrefix + "." + stream + "." + durable + ".>"
}

// Metadata of a durable consumer that its replay guard reads (set by the operator with the
// durable; only the durable's service and admins can read a consumer's configuration).
const (
	// GuardKeyMetadata holds the guard key (32 random bytes, standard base64): the store's keys
	// are keyed hashes of message ids, so no one without it can name the entry of an id.
	GuardKeyMetadata = "sealbus_guard_key"
	// GuardHorizonMetadata holds how long the store keeps an entry at most (its MaxAge, a Go
	// duration).
	GuardHorizonMetadata = "sealbus_guard_horizon"
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
