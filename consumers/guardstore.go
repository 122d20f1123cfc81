package consumers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
)

// The guard store: one JetStream stream per durable ([accounts.GuardStream]), created by the
// operator with the durable, one message per subject, per-message TTLs. Its subjects are
// "sealbus.guard.<stream>.<durable>.<key>", where key is
//
//	m.<32 hex>  a delivery key: HMAC-SHA256(guard key, kind 0x00 name), first 16 bytes
//	o.<32 hex>  the heartbeat of one consumption (its owner id)
//
// The guard key is in the durable's metadata, which only the durable's service and admins can
// read, so no other service can name the entry of a message id, even by making the server
// publish to a subject of its choosing (the reply-subject path of docs/PERMISSIONS.md).
//
// An entry is a compare-and-set write (Nats-Expected-Last-Subject-Sequence), so two
// processes cannot both claim a key. Reads go to the stream leader (STREAM.MSG.GET), never to
// a replica that may lag.

// Errors of the store.
var (
	// errConflict: the key is not at the expected revision.
	errConflict = errors.New("consumers: guard entry changed")
	// errNoEntry: the key holds nothing.
	errNoEntry = errors.New("consumers: no guard entry")
	// ErrGuardUnavailable reports that the replay guard's store could not be written or read
	// (server fault, or the store is full): the message is not handled until it can be, so
	// that no message is handled twice or unchecked.
	ErrGuardUnavailable = errors.New("consumers: replay guard store unavailable")
)

// guardStore is what the replay guard needs of its store. Implementations are safe for
// concurrent use. Keys are whole subjects of the store: keyPrefix followed by "m.<hex>" or
// "o.<hex>" (the guard makes them, keyWith and beatKey, so a delivery's key costs one
// allocation).
type guardStore interface {
	// keyPrefix is what every key of the store starts with.
	keyPrefix() string
	// put writes val under key if the key's last revision is last (0: the key holds nothing)
	// and returns the new revision; errConflict when the key is at another revision. It does
	// not keep val once it returns.
	put(ctx context.Context, key string, val []byte, ttl time.Duration, last uint64) (uint64, error)
	// beat writes val under key whatever it holds.
	beat(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// get returns the key's value and revision, errNoEntry when it holds nothing.
	get(ctx context.Context, key string) ([]byte, uint64, error)
}

// jsGuardStore is the guard store of one durable on a JetStream server.
type jsGuardStore struct {
	js     jetstream.JetStream
	prefix string // "sealbus.guard.<stream>.<durable>.": only the guard stream has these subjects

	getSubj string   // "$JS.API.STREAM.MSG.GET.<guard stream>"
	r       *replies // answers to writes and reads, each waited for at most the ack timeout
}

func newJSGuardStore(nc *nats.Conn, stream, durable string, timeout time.Duration, pending int) (*jsGuardStore, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(pending), jetstream.WithPublishAsyncTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	r, err := newReplies(nc, timeout)
	if err != nil {
		return nil, fmt.Errorf("consumers: guard store answers: %w", err)
	}
	name := accounts.GuardStream(stream, durable)
	return &jsGuardStore{
		js: js, r: r,
		prefix:  accounts.GuardSubjectPrefix + "." + stream + "." + durable + ".",
		getSubj: "$JS.API.STREAM.MSG.GET." + name,
	}, nil
}

func (s *jsGuardStore) keyPrefix() string { return s.prefix }

// check refuses a key outside the store (a bug: the guard makes every key with keyPrefix).
func (s *jsGuardStore) check(key string) error {
	if len(key) <= len(s.prefix) || key[:len(s.prefix)] != s.prefix {
		return fmt.Errorf("consumers: guard store key %q outside %s", key, s.prefix)
	}
	return nil
}

// close ends the store's answer subscription.
func (s *jsGuardStore) close() { s.r.stop() }

// ttlOption rounds a TTL up to whole seconds (the server's unit), at least one.
func ttlOption(ttl time.Duration) jetstream.PublishOpt {
	return jetstream.WithMsgTTL(max(((ttl+time.Second-1)/time.Second)*time.Second, time.Second))
}

// put is a request answered on the store's reply subscription: the stream's answer is the
// reply. (A jetstream asynchronous publish costs a future, two channels, options and a JSON
// decoding per write; this is the hot path, a write per handled message.) Each attempt waits
// at most the ack timeout: an answer lost with a connection is retried by the caller rather
// than waited for until its deadline.
func (s *jsGuardStore) put(ctx context.Context, key string, val []byte, ttl time.Duration, last uint64) (uint64, error) {
	if err := s.check(key); err != nil {
		return 0, err
	}
	w, _ := puts.Get().(*putMsg)
	if w == nil {
		w = &putMsg{}
		w.msg.Header = nats.Header{jetstream.MsgTTLHeader: w.ttl[:], jetstream.ExpectedLastSubjSeqHeader: w.last[:]}
	}
	// The entry is copied: a request given up may still be in the outbox (replies.send), and
	// the caller may rewrite val once put returns.
	w.buf = append(w.buf[:0], val...)
	w.msg.Subject, w.msg.Data = key, w.buf
	w.ttl[0], w.last[0] = ttlSeconds(ttl), strconv.FormatUint(last, 10)
	resp, err := s.r.request(ctx, &w.msg)
	if !unanswered(err) {
		// Answered, so published: nothing reads w any more. One given up is left to the
		// garbage collector, with its copy.
		puts.Put(w)
	}
	if err != nil {
		return 0, err
	}
	return parsePutAnswer(resp.Data)
}

// putMsg is a guard store write, pooled: its header map, values and entry buffer are reused.
type putMsg struct {
	msg  nats.Msg
	ttl  [1]string
	last [1]string
	buf  []byte
}

var puts sync.Pool

// ttlSeconds is a TTL in whole seconds, rounded up, at least one (the server's unit).
func ttlSeconds(ttl time.Duration) string {
	return strconv.FormatInt(int64(max((ttl+time.Second-1)/time.Second, 1)), 10)
}

// jsStoreFailed is JetStream's error code for a message the stream could not store
// (JSStreamStoreFailedF); its description says why.
const jsStoreFailed = 10077

// errGuardStoreFull: the durable's replay guard store refused a write for its size limit.
// The guard fails closed (the delivery comes back later); the operator sizes the store.
var errGuardStoreFull = errors.New("consumers: the durable's replay guard store is full (`sealbus stream guard-size ACCOUNT STREAM DURABLE` shows its use and raises its size)")

// parsePutAnswer reads JetStream's answer to a publish: the stored sequence, errConflict for a
// compare-and-set that failed, or the server's error. A success ({"stream":..,"seq":N,..})
// is read without a JSON decoding; anything else is decoded strictly.
func parsePutAnswer(b []byte) (uint64, error) {
	if !bytes.Contains(b, []byte(`"error"`)) {
		if i := bytes.Index(b, []byte(`"seq":`)); i >= 0 {
			var seq uint64
			n := 0
			for _, c := range b[i+len(`"seq":`):] {
				if c < '0' || c > '9' || n == 20 {
					break
				}
				seq = seq*10 + uint64(c-'0')
				n++
			}
			if n > 0 && seq > 0 {
				return seq, nil
			}
		}
	}
	var a struct {
		Seq   uint64 `json:"seq"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return 0, fmt.Errorf("consumers: guard store answer: %w", err)
	}
	switch {
	case a.Error != nil && (a.Error.ErrCode == int(jetstream.JSErrCodeStreamWrongLastSequence) || a.Error.ErrCode == int(jetstream.JSErrCodeStreamWrongLastSequenceConstant)):
		return 0, errConflict
	case a.Error != nil && a.Error.ErrCode == jsStoreFailed && strings.Contains(a.Error.Description, "maximum bytes exceeded"):
		return 0, fmt.Errorf("%w: %w", errGuardStoreFull, &jetstream.APIError{Code: a.Error.Code, ErrorCode: jetstream.ErrorCode(a.Error.ErrCode), Description: a.Error.Description})
	case a.Error != nil:
		return 0, &jetstream.APIError{Code: a.Error.Code, ErrorCode: jetstream.ErrorCode(a.Error.ErrCode), Description: a.Error.Description}
	case a.Seq == 0:
		return 0, fmt.Errorf("consumers: guard store answer without a sequence")
	}
	return a.Seq, nil
}

func (s *jsGuardStore) beat(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := s.check(key); err != nil {
		return err
	}
	msg := &nats.Msg{Subject: key, Data: val}
	f, err := s.js.PublishMsgAsync(msg, ttlOption(ttl))
	if err != nil {
		return err
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// msgGetResponse is the JetStream API's answer to STREAM.MSG.GET.
type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Subject string `json:"subject"`
		Seq     uint64 `json:"seq"`
		Data    []byte `json:"data"`
	} `json:"message"`
}

func (s *jsGuardStore) get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := s.check(key); err != nil {
		return nil, 0, err
	}
	subject := key
	req, _ := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject})
	resp, err := s.r.request(ctx, &nats.Msg{Subject: s.getSubj, Data: req}) // as put: a lost answer is retried
	if err != nil {
		return nil, 0, err
	}
	var r msgGetResponse
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, 0, fmt.Errorf("consumers: guard store answer: %w", err)
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound):
		return nil, 0, errNoEntry
	case r.Error != nil:
		return nil, 0, fmt.Errorf("consumers: guard store: %d %d %s", r.Error.Code, r.Error.ErrCode, r.Error.Description)
	case r.Message == nil || r.Message.Subject != subject:
		return nil, 0, fmt.Errorf("consumers: guard store answered for another subject")
	}
	return r.Message.Data, r.Message.Seq, nil
}

// ownerID names one consumption (one process's Consume on the durable) in the store.
type ownerID [16]byte

func (o ownerID) String() string { return hex.EncodeToString(o[:]) }

// Entry states.
const (
	stateClaimed  byte = 'c' // the owner is calling the handler
	stateHandled  byte = 'h' // a handler call returned nil
	stateReleased byte = 'r' // the owner's handler call failed: anyone may claim it again
)

// Heartbeat states.
const (
	beatAlive   byte = 'a'
	beatStopped byte = 's'
)

const (
	entryMagic = "sbg1"
	beatMagic  = "sbo1"
	entryLen   = len(entryMagic) + 1 + len(ownerID{}) + 8
	beatLen    = len(beatMagic) + 1 + len(ownerID{})
)

// guardEntry is the value of a delivery key: its state, who wrote it and the stream sequence
// at which the key was first claimed (a delivery at another sequence is a replay).
type guardEntry struct {
	state byte
	owner ownerID
	seq   uint64
}

func (e guardEntry) encode() []byte { return e.appendTo(make([]byte, 0, entryLen)) }

// appendTo appends the encoded entry to b.
func (e guardEntry) appendTo(b []byte) []byte {
	b = append(b, entryMagic...)
	b = append(b, e.state)
	b = append(b, e.owner[:]...)
	return binary.BigEndian.AppendUint64(b, e.seq)
}

// decodeEntry parses an entry strictly; anything else is not an entry.
func decodeEntry(b []byte) (guardEntry, bool) {
	var e guardEntry
	if len(b) != entryLen || string(b[:len(entryMagic)]) != entryMagic {
		return e, false
	}
	b = b[len(entryMagic):]
	e.state = b[0]
	if e.state != stateClaimed && e.state != stateHandled && e.state != stateReleased {
		return guardEntry{}, false
	}
	copy(e.owner[:], b[1:1+len(e.owner)])
	e.seq = binary.BigEndian.Uint64(b[1+len(e.owner):])
	return e, true
}

func encodeBeat(state byte, owner ownerID) []byte {
	b := make([]byte, 0, beatLen)
	b = append(b, beatMagic...)
	b = append(b, state)
	return append(b, owner[:]...)
}

// decodeBeat reports whether b is a heartbeat of owner saying it is alive.
func decodeBeat(b []byte, owner ownerID) bool {
	return len(b) == beatLen && string(b[:len(beatMagic)]) == beatMagic && b[len(beatMagic)] == beatAlive &&
		ownerID(b[len(beatMagic)+1:]) == owner
}

// Kinds of delivery keys.
const (
	kindMessage       byte = 'm' // an envelope's message id
	kindAuthorization byte = 'a' // an operator's authorization of one replay (Message.Replay.ID)
)

// deliveryKey is what the guard lets through once: by default an envelope's message id. A
// verifier may key a delivery by something else (an operator-authorized replay of a dead
// letter, by its authorization id) by setting Message.guardKey.
type deliveryKey struct {
	kind byte
	name string
	ttl  time.Duration // 0: computed from the envelope's times (entryTTL)
}

// keyHasher is a keyed hash of the guard key with its scratch space, reused across messages
// (guard.macs): keying a hash and its buffers cost allocations per message otherwise.
type keyHasher struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

func newKeyHasher(hmacKey []byte) *keyHasher {
	return &keyHasher{mac: hmac.New(sha256.New, hmacKey), in: make([]byte, 0, 64)}
}

// keyWith returns the key's 16-byte keyed hash and its store key (prefix "m.<hex>"), the
// latter in one allocation.
func (kh *keyHasher) keyWith(k deliveryKey, prefix string) (msgKey, string) {
	kh.mac.Reset()
	kh.in = append(append(kh.in[:0], k.kind, 0), k.name...)
	kh.mac.Write(kh.in)
	var h msgKey
	copy(h[:], kh.mac.Sum(kh.sum[:0]))
	var buf [128]byte
	b := append(append(buf[:0], prefix...), "m."...)
	b = hex.AppendEncode(b, h[:])
	return h, string(b)
}

// beatKey is the store key of o's heartbeat.
func beatKey(prefix string, o ownerID) string { return prefix + "o." + o.String() }

// GuardHorizon returns how long a durable's replay guard store must be able to keep an entry
// when envelopes are checked against a freshness window of at most window and the durable's
// AckWait is ackWait: the longest entry TTL (see entryTTL) plus a minute. The operator sets
// it as the store's MaxAge ([accounts.GuardHorizonMetadata]).
func GuardHorizon(window, ackWait time.Duration) time.Duration {
	return 3*window + ackWait + time.Minute
}

// entryTTL is how long the store keeps a message id, from the write: until no copy of the
// envelope can be stored any more (its signed creation time plus the freshness window:
// created-stored+window from the original's storage, between 0 and 2 windows), plus one
// window and the AckWait for the redeliveries and replays the consumer takes out of order.
// It depends on the server's stored time and the signed creation time only, never on the
// consumer's clock.
func entryTTL(created, stored time.Time, window, ackWait time.Duration) time.Duration {
	d := min(max(created.Sub(stored)+window, 0), 2*window)
	return d + window + ackWait
}
