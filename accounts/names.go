package accounts

// This file names every stream, bucket, directory key and subject sealbus itself uses. Other
// packages refer to these names; none spells them out again.

import (
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"
)

// OperatorAccountName names the operator-owned account every sealbus deployment has beside the
// system account: it holds the directory of every tenant ([DirectoryBucket]) and exports to
// each tenant a read-only view of its own part ([DirectoryView]); see docs/ARCHITECTURE.md, "The
// operator account". No tenant may take this name ([ReservedAccountName]).
const OperatorAccountName = "SEALBUS"

// ReservedAccountName reports whether name belongs to an account sealbus makes itself (the
// system account and the operator account), which no tenant may be called.
func ReservedAccountName(name string) bool {
	return strings.EqualFold(name, SystemAccountName) || strings.EqualFold(name, OperatorAccountName)
}

// The directory (docs/ARCHITECTURE.md, "The directory").
const (
	// DirectoryBucket is the JetStream KV bucket of the operator account holding, for every
	// tenant, its account JWT, the identity cards of its services and those of its peers. Only
	// the operator writes it; keys start with the tenant's account public key
	// ("<account>.<key>", see [DirectorySubject]).
	DirectoryBucket = "SEALBUS_DIRECTORY"
	// DirectoryStream is the stream behind [DirectoryBucket], in the operator account.
	DirectoryStream = "KV_" + DirectoryBucket
	// DirectoryView is the stream in every tenant account through which its services read
	// the directory: a mirror of [DirectoryStream] filtered to the tenant's own keys. It has
	// no subjects, so nothing a service publishes, and no reply or deliver subject it names,
	// can be stored in it; services may only make single-key direct gets on it
	// ([DirectoryGetSubject]).
	DirectoryView = "SEALBUS_DIRECTORY"
	// DirectoryAccountKey is the directory key of the account JWT.
	DirectoryAccountKey = "account"
	// DirectoryIndexKey is the directory key of the index: the keys of the tenant's directory
	// and the stream sequence of the value of each (written by the operator after every
	// change, read by clients to find what to get).
	DirectoryIndexKey = "index"
	// DirectoryVersionKey is written by the operator last, after the index, at every change of
	// a tenant's directory; clients poll the newest message of the view to learn of changes.
	DirectoryVersionKey = "version"
	// OperatorAPIPrefix is the local prefix, in every tenant account, of the operator
	// account's JetStream API it imports: only the consumer creation of the tenant's mirrors
	// of the operator account's views, and only on the tenant's own subjects.
	OperatorAPIPrefix = "$JS.SEALBUS.API"
)

// DirectorySubject returns the subject of a tenant's directory key in [DirectoryStream] and
// [DirectoryView]: "$KV.SEALBUS_DIRECTORY.<account>.<key>".
func DirectorySubject(account, key string) string { return directoryPrefix + account + "." + key }

// DirectoryFilter returns the subjects of one tenant's directory: "$KV.SEALBUS_DIRECTORY.<account>.>",
// the filter of its [DirectoryView].
func DirectoryFilter(account string) string { return directoryPrefix + account + ".>" }

// DirectoryGetSubject returns the direct get subject of one key of the tenant's [DirectoryView]:
// "$JS.API.DIRECT.GET.SEALBUS_DIRECTORY.$KV.SEALBUS_DIRECTORY.<account>.<key>". The server
// answers a get on this form with the last message of that key only (a request asking for a
// sequence, a batch or several subjects is refused), so a get makes the server send one
// directory entry, wherever its reply subject points. With key ">" it answers the newest
// message of the tenant's directory.
func DirectoryGetSubject(account, key string) string {
	return directoryGetPrefix + DirectorySubject(account, key)
}

// DirectoryDeliverPrefix returns the deliver subject prefix of a tenant's [DirectoryView]
// mirror ("sealbus.directory.deliver.<account>"): the operator account exports
// "sealbus.directory.deliver.*.>" and each tenant imports only its own.
func DirectoryDeliverPrefix(account string) string { return directoryDeliverPrefix + account }

const (
	directoryPrefix        = "$KV." + DirectoryBucket + "."
	directoryGetPrefix     = "$JS.API.DIRECT.GET." + DirectoryView + "."
	directoryDeliverPrefix = "sealbus.directory.deliver."
)

// DLQ and audit streams inside every account (docs/ARCHITECTURE.md, "Streams and subjects").
const (
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

// DirectoryCardKey returns the directory key of one card of a service: "card.<name>.<user key>".
// Each key pair of a service has its own key, so the card a rotation replaced stays readable
// (for envelopes signed before the rotation) beside the new one.
func DirectoryCardKey(serviceName, userKey string) string {
	return cardPrefix + serviceName + "." + userKey
}

// DirectoryCardPrefix returns the prefix of every card key of a service: "card.<name>.".
func DirectoryCardPrefix(serviceName string) string { return cardPrefix + serviceName + "." }

// GuardSubjectPrefix is the subject prefix of the replay guards' stores: the store of the
// durable D on stream S has the subjects "sealbus.guard.S.D.>" ([GuardSubjects]).
const GuardSubjectPrefix = "sealbus.guard"

// GuardStream returns the name of the stream that holds the replay guard's store of the
// durable consumer durable on stream: "SEALBUS_GUARD_<len(stream)>_<stream>_<durable>". The
// length makes the name unambiguous ("A_B" + "C" and "A" + "B_C" differ), so no two durables
// share a store. The operator creates it with the durable; only the durable's service may
// write and read it.
func GuardStream(stream, durable string) string {
	return guardStreamPrefix + strconv.Itoa(len(stream)) + "_" + stream + "_" + durable
}

// ParseGuardStream splits a name made by [GuardStream] into its stream and durable; ok is
// false for any other name.
func ParseGuardStream(name string) (stream, durable string, ok bool) {
	rest, ok := strings.CutPrefix(name, guardStreamPrefix)
	if !ok {
		return "", "", false
	}
	n, rest, ok := strings.Cut(rest, "_")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l <= 0 || l+1 >= len(rest) || rest[l] != '_' {
		return "", "", false
	}
	stream, durable = rest[:l], rest[l+1:]
	if GuardStream(stream, durable) != name {
		return "", "", false
	}
	return stream, durable, true
}

const guardStreamPrefix = "SEALBUS_GUARD_"

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

const cardPrefix = "card."

// Directory keys of peer accounts (cross-account flows): the JWT and cards of another account
// of the same operator, copied into this account's directory by the operator.
const peerPrefix = "peer."

// PeerAccountKey returns the directory key of a peer account's JWT: "peer.<account>.account".
func PeerAccountKey(account string) string {
	return peerPrefix + account + "." + DirectoryAccountKey
}

// PeerCardKey returns the directory key of a peer service's card:
// "peer.<account>.card.<name>.<user key>".
func PeerCardKey(account, service, userKey string) string {
	return peerPrefix + account + "." + DirectoryCardKey(service, userKey)
}

// PeerCardPrefix returns the prefix of every card key of a peer service:
// "peer.<account>.card.<name>.".
func PeerCardPrefix(account, service string) string {
	return peerPrefix + account + "." + DirectoryCardPrefix(service)
}

// DirectoryKey is a directory key taken apart by [ParseDirectoryKey].
type DirectoryKey struct {
	Peer    string // the peer account ("A...") of a "peer.<account>...." key; "" for the account's own
	Account bool   // the key holds an account JWT
	Card    string // the key holds a card of this service (not validated as a name)
	User    string // the user key ("U...") of that card
}

// ParseDirectoryKey takes a directory key apart: "account", "card.<name>.<user key>",
// "peer.<account>.account" or "peer.<account>.card.<name>.<user key>". ok is false for any
// other key (the index and version keys included), including a peer key that does not name an
// account public key and a card key that does not end in a user public key.
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
	if r, isCard := strings.CutPrefix(rest, cardPrefix); isCard {
		name, user, found := strings.Cut(r, ".")
		if !found || name == "" || !nkeys.IsValidPublicUserKey(user) {
			return DirectoryKey{}, false
		}
		k.Card, k.User = name, user
		return k, true
	}
	return DirectoryKey{}, false
}

// DirectorySubjects is the subject filter of [DirectoryStream] (the KV API's "$KV.<bucket>.>").
const DirectorySubjects = "$KV." + DirectoryBucket + ".>"

// ConnectionQuotaTag prefixes the tag of a service's user JWT that states how many connections
// the service may hold at once ("sealbus-max-connections:16"). NATS has no per-user connection
// limit; the operator's connection guard (operator.StartConnectionGuard) reads this tag from the
// server's connect events and closes the connections beyond it.
const ConnectionQuotaTag = "sealbus-max-connections:"

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
// deliveries or directory gets. The SDK passes it to nats.CustomInboxPrefix.
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
