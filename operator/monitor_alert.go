package operator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AlertKind names what an alert is about. Every kind is listed, with its rule and threshold,
// in docs/MONITORING.md.
type AlertKind string

// The alerts the monitor raises.
const (
	// AlertBruteForce: many authentication failures for one user key or from one client
	// address in a short time ([MonitorConfig].BruteForce).
	AlertBruteForce AlertKind = "brute_force"
	// AlertRevokedKey: a revoked user key keeps trying to connect ([MonitorConfig].StaleKey).
	AlertRevokedKey AlertKind = "revoked_key"
	// AlertExpiredKey: an expired user JWT keeps trying to connect ([MonitorConfig].StaleKey).
	AlertExpiredKey AlertKind = "expired_key"
	// AlertRejectionSpike: an account rejects envelopes of one reason far above its baseline
	// ([MonitorConfig].Rejections).
	AlertRejectionSpike AlertKind = "rejection_spike"
	// AlertPublishRate: a service publishes, or a stream takes in messages, far above its
	// baseline ([MonitorConfig].PublishRate).
	AlertPublishRate AlertKind = "publish_rate"
	// AlertConsumerLag: a durable consumer falls behind ([MonitorConfig].ConsumerLag).
	AlertConsumerLag AlertKind = "consumer_lag"
	// AlertRedelivery: a consumer's redeliveries grow ([MonitorConfig].Redelivery).
	AlertRedelivery AlertKind = "redelivery"
	// AlertDeadLetters: an account's dead-letter stream grows ([MonitorConfig].DeadLetters).
	AlertDeadLetters AlertKind = "dead_letters"
	// AlertForgedRecord: a record in the operator-wide audit view does not decode or does not
	// verify ([MonitorConfig].ForgedRecords).
	AlertForgedRecord AlertKind = "forged_record"
	// AlertGuardStoreFull: a durable's replay guard store is at least GuardStoreFullPercent
	// full; when it is full the durable stops handling messages (fail-closed) until entries
	// expire. `sealbus stream guard-size` resizes it.
	AlertGuardStoreFull AlertKind = "guard_store_full"
)

// GuardStoreFullPercent is the use of a replay guard store, in percent of its size limit,
// from which the monitor raises AlertGuardStoreFull.
const GuardStoreFullPercent = 80

// AlertKinds lists every kind, in a stable order.
var AlertKinds = []AlertKind{
	AlertBruteForce, AlertRevokedKey, AlertExpiredKey, AlertRejectionSpike, AlertPublishRate,
	AlertConsumerLag, AlertRedelivery, AlertDeadLetters, AlertForgedRecord, AlertGuardStoreFull,
}

// AlertState is where an incident is in its life.
type AlertState string

const (
	// AlertOpen is the first report of an incident: its rule's threshold was crossed.
	AlertOpen AlertState = "open"
	// AlertUpdate reports an open incident again, at most every [MonitorConfig].Repeat, when
	// its count grew.
	AlertUpdate AlertState = "update"
	// AlertResolved reports an incident closed after [MonitorConfig].Quiet without new
	// evidence, with its final count.
	AlertResolved AlertState = "resolved"
)

// Alert is one report of an incident. An incident is reported open once, then at most every
// Repeat while it grows, then resolved: never once per failed login. Strings taken from
// events (client names, reasons, service names) may be attacker-chosen: print them with
// [Alert.String], which escapes them, or as JSON.
type Alert struct {
	Incident string     `json:"incident"` // stable id of the incident (hex)
	Kind     AlertKind  `json:"kind"`
	State    AlertState `json:"state"`
	Count    uint64     `json:"count"` // evidence so far: failures, attempts, rejections, records, polls
	First    time.Time  `json:"first"` // time of the first evidence (server time)
	Last     time.Time  `json:"last"`  // time of the latest evidence
	At       time.Time  `json:"at"`    // when this report was made (monitor clock)

	Account     string   `json:"account,omitempty"`      // account public key
	AccountName string   `json:"account_name,omitempty"` // its name, from the account JWT
	Service     string   `json:"service,omitempty"`      // service name, when known
	UserKey     string   `json:"user_key,omitempty"`     // a user key ("U..."), claimed unless the cause says otherwise
	Address     string   `json:"address,omitempty"`      // a client IP address
	Addresses   []string `json:"addresses,omitempty"`    // client addresses seen (at most maxListed)
	Keys        []string `json:"keys,omitempty"`         // claimed user keys seen (at most maxListed)
	Stream      string   `json:"stream,omitempty"`
	Consumer    string   `json:"consumer,omitempty"`
	Reason      string   `json:"reason,omitempty"`   // rejection reason code, or why a record is forged
	Causes      []string `json:"causes,omitempty"`   // classified causes of auth failures
	Value       float64  `json:"value,omitempty"`    // the measurement that crossed the threshold (rate, pending, growth)
	Baseline    float64  `json:"baseline,omitempty"` // its moving baseline, for spikes
	Summary     string   `json:"summary"`            // one line for humans (not escaped; String escapes it)
}

// maxListed bounds the addresses and keys an incident lists.
const maxListed = 8

// String is the alert as one line for a terminal, with every untrusted string escaped by
// [Printable].
func (a Alert) String() string { return a.Format(Printable) }

// Format is the alert as one line for a terminal, with every untrusted string (names, reasons,
// addresses, keys, the summary) passed through escape: a program with its own escaping of
// untrusted text for its terminal output uses it here too.
func (a Alert) Format(escape func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ALERT %s %s count=%d", a.At.UTC().Format(time.RFC3339), a.Kind, a.State, a.Count)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, escape(v))
		}
	}
	field("account", firstNonEmpty(a.AccountName, a.Account))
	field("service", a.Service)
	field("stream", a.Stream)
	field("consumer", a.Consumer)
	field("reason", a.Reason)
	field("key", a.UserKey)
	field("address", a.Address)
	if len(a.Addresses) > 0 && (len(a.Addresses) > 1 || a.Addresses[0] != a.Address) {
		field("addresses", strings.Join(a.Addresses, ","))
	}
	if len(a.Keys) > 0 && (len(a.Keys) > 1 || a.Keys[0] != a.UserKey) {
		field("keys", strings.Join(a.Keys, ","))
	}
	if len(a.Causes) > 0 {
		field("causes", strings.Join(a.Causes, ","))
	}
	fmt.Fprintf(&b, " first=%s last=%s incident=%s: %s", a.First.UTC().Format(time.RFC3339), a.Last.UTC().Format(time.RFC3339), a.Incident, escape(a.Summary))
	return b.String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// AlertEventPrefix starts the type of the audit event recording an alert:
// "sealbus.alert.<kind>" (Data.Reason: the alert's state, Data.Key: the incident id,
// Data.Sequence: its count, Data.Error: its summary).
const AlertEventPrefix = "sealbus.alert."

// incident is the monitor's record of one incident (persisted in its state).
type incident struct {
	ID          string    `json:"id"`
	Kind        AlertKind `json:"kind"`
	Key         string    `json:"key"` // fingerprint: what makes two pieces of evidence the same incident
	Count       uint64    `json:"count"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Reported    time.Time `json:"reported"`     // last open or update report (monitor clock)
	ReportedCnt uint64    `json:"reported_cnt"` // count at that report
	Account     string    `json:"account,omitempty"`
	AccountName string    `json:"account_name,omitempty"`
	Service     string    `json:"service,omitempty"`
	UserKey     string    `json:"user_key,omitempty"`
	Address     string    `json:"address,omitempty"`
	Addresses   []string  `json:"addresses,omitempty"`
	Keys        []string  `json:"keys,omitempty"`
	Stream      string    `json:"stream,omitempty"`
	Consumer    string    `json:"consumer,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Causes      []string  `json:"causes,omitempty"`
	Value       float64   `json:"value,omitempty"`
	Baseline    float64   `json:"baseline,omitempty"`
	Summary     string    `json:"summary"`
}

// incidentID is a stable id for an incident of kind with fingerprint key first seen at first.
func incidentID(kind AlertKind, key string, first time.Time) string {
	h := sha256.Sum256([]byte(string(kind) + "\x00" + key + "\x00" + strconv.FormatInt(first.UnixNano(), 10)))
	return hex.EncodeToString(h[:8])
}

func (in *incident) alert(state AlertState, at time.Time) Alert {
	return Alert{
		Incident: in.ID, Kind: in.Kind, State: state, Count: in.Count, First: in.First, Last: in.Last, At: at,
		Account: in.Account, AccountName: in.AccountName, Service: in.Service, UserKey: in.UserKey,
		Address: in.Address, Addresses: slices.Clone(in.Addresses), Keys: slices.Clone(in.Keys),
		Stream: in.Stream, Consumer: in.Consumer, Reason: in.Reason, Causes: slices.Clone(in.Causes),
		Value: in.Value, Baseline: in.Baseline, Summary: in.Summary,
	}
}

// addListed adds v to a bounded, sorted list of distinct values.
func addListed(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) || len(list) >= maxListed {
		return list
	}
	list = append(list, v)
	slices.Sort(list)
	return list
}
