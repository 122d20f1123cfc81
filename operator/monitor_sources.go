package operator

// Where the monitor's evidence comes from: system events (recorded or live), the
// operator-wide audit view, and polls of the servers through the system account.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// sysEvent is the part of the servers' connect, disconnect and auth-error events
// (nats-server's ConnectEventMsg and DisconnectEventMsg) the monitor reads.
type sysEvent struct {
	Type   string    `json:"type"`
	ID     string    `json:"id"`
	Time   time.Time `json:"timestamp"`
	Server struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"server"`
	Client struct {
		Host    string `json:"host"`
		ID      uint64 `json:"id"`
		Account string `json:"acc"`
		User    string `json:"user"`
		Name    string `json:"name"`
		Lang    string `json:"lang"`
		JWT     string `json:"jwt"`
	} `json:"client"`
	Reason string `json:"reason"`
}

// sysEventKind tells an event's kind from the subject it came on (live or recorded).
func sysEventKind(subject string) string {
	switch {
	case strings.HasSuffix(subject, ".CLIENT.AUTH.ERR"), strings.HasPrefix(subject, accounts.SystemEventsSubjectPrefix+".autherr."):
		return "auth_error"
	case strings.HasSuffix(subject, ".DISCONNECT"), strings.HasPrefix(subject, accounts.SystemEventsSubjectPrefix+".disconnect."):
		return "disconnect"
	case strings.HasSuffix(subject, ".CONNECT"), strings.HasPrefix(subject, accounts.SystemEventsSubjectPrefix+".connect."):
		return "connect"
	}
	return ""
}

// handshakeReasons are the disconnect reasons of clients that never got to authenticate:
// scans, plaintext clients on a TLS port, protocol garbage. The server sends no auth-error
// event for them, only a disconnect in the global account.
var handshakeReasons = map[string]string{
	"TLS Handshake Failure":  CauseHandshake,
	"Authentication Timeout": CauseHandshake,
	"Protocol Violation":     CauseProtocolGarbage,
}

// systemEvent applies one system event.
func (m *Monitor) systemEvent(ctx context.Context, subject string, data []byte) {
	kind := sysEventKind(subject)
	var ev sysEvent
	if kind == "" || json.Unmarshal(data, &ev) != nil {
		m.apply(func() { m.st.Events["unreadable"]++; m.dirty = true })
		return
	}
	switch kind {
	case "auth_error":
		f := m.classify(ctx, ev)
		m.apply(func() { m.st.Events[kind]++; m.authFailure(f) })
	case "disconnect":
		cause, probe := handshakeReasons[ev.Reason]
		if probe && ev.Client.Account == globalAccount {
			f := authFailure{ID: ev.ID, Time: ev.Time, Server: ev.Server.Name, Address: ev.Client.Host, Cause: cause, ClientName: ev.Client.Name}
			m.apply(func() { m.st.Events[kind]++; m.authFailure(f) })
			return
		}
		fallthrough
	default:
		m.apply(func() { m.st.Events[kind]++; m.dirty = true })
	}
}

// globalAccount is the account every connection starts in before it authenticates.
const globalAccount = "$G"

// classify works out why a login failed: the server's event says only "Authentication
// Failure". It decodes the JWT the client presented (its own signature is checked, so the
// user key is the one whose JWT was shown; whether it is authentic is decided against the
// account) and compares it with the account JWT the servers hold now.
func (m *Monitor) classify(ctx context.Context, ev sysEvent) authFailure {
	f := authFailure{ID: ev.ID, Time: ev.Time, Server: ev.Server.Name, Address: ev.Client.Host, ClientName: ev.Client.Name}
	if f.Time.IsZero() {
		f.Time = m.now()
	}
	c := ev.Client
	switch {
	case c.JWT == "" && c.User != "":
		f.Cause = CausePassword
		return f
	case c.JWT == "" && c.Name == "" && c.Lang == "":
		f.Cause = CauseProtocolGarbage
		return f
	case c.JWT == "":
		f.Cause = CauseNoJWT
		return f
	}
	uc, err := jwt.DecodeUserClaims(c.JWT)
	if err != nil {
		f.Cause = CauseMalformedJWT
		return f
	}
	f.UserKey = uc.Subject
	f.Account = uc.IssuerAccount
	if f.Account == "" {
		f.Account = uc.Issuer
	}
	ac, err := m.accountClaims(ctx, f.Account)
	switch {
	case err != nil:
		f.Cause = CauseBadCredentials
		return f
	case ac == nil:
		f.Cause = CauseUnknownAccount
		return f
	}
	f.AccountName = ac.Name
	if uc.Issuer != ac.Subject && !ac.SigningKeys.Contains(uc.Issuer) {
		f.Cause = CauseUnknownSigner
		return f
	}
	f.Service = uc.Name // signed by the account: authentic
	switch {
	case ac.IsClaimRevoked(uc):
		f.Cause = CauseRevoked
	case uc.Expires != 0 && uc.Expires <= f.Time.Unix():
		f.Cause = CauseExpired
	default:
		f.Cause = CauseBadCredentials
	}
	return f
}

// claimsTTL is how long a looked-up account JWT is used before it is asked for again.
const claimsTTL = 5 * time.Second

type claimsEntry struct {
	claims  *jwt.AccountClaims // nil: the servers do not know the account
	jwt     string
	fetched time.Time
}

// accountClaims returns the account JWT the servers hold for account, nil when they know
// none. It is verified against the operator the servers trust only in so far as the servers
// hold it: the system account answers, and a resolver stores only JWTs of its operator.
func (m *Monitor) accountClaims(ctx context.Context, account string) (*jwt.AccountClaims, error) {
	e, err := m.accountEntry(ctx, account)
	return e.claims, err
}

func (m *Monitor) accountEntry(ctx context.Context, account string) (claimsEntry, error) {
	m.claimsMu.Lock()
	e, ok := m.claims[account]
	m.claimsMu.Unlock()
	if ok && time.Since(e.fetched) < claimsTTL {
		return e, nil
	}
	if !strings.HasPrefix(account, "A") || strings.ContainsAny(account, ".*> ") {
		return claimsEntry{}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := m.sys.RequestWithContext(rctx, "$SYS.REQ.ACCOUNT."+account+".CLAIMS.LOOKUP", nil)
	if err != nil {
		return claimsEntry{}, fmt.Errorf("operator: monitor: looking up account %s: %w", account, err)
	}
	e = claimsEntry{fetched: time.Now()}
	if len(msg.Data) > 0 {
		if ac, err := jwt.DecodeAccountClaims(string(msg.Data)); err == nil && ac.Subject == account {
			e.claims, e.jwt = ac, string(msg.Data)
		}
	}
	m.claimsMu.Lock()
	if len(m.claims) > maxTracked {
		clear(m.claims)
	}
	m.claims[account] = e
	m.claimsMu.Unlock()
	return e, nil
}

// serverVerifier returns a lookup of record verifiers made from the account JWTs the servers
// hold (through accountEntry: asked for again after claimsTTL, at once after a push), each
// verified up to trust.
func (m *Monitor) serverVerifier(trust accounts.Trust) VerifierLookup {
	return func(ctx context.Context, account string) (*RecordVerifier, error) {
		e, err := m.accountEntry(ctx, account)
		if err != nil {
			return nil, err
		}
		if e.claims == nil {
			return nil, fmt.Errorf("%w: the servers know no account %s", accounts.ErrNotFound, account)
		}
		m.claimsMu.Lock()
		v, ok := m.verifiers[e.jwt]
		m.claimsMu.Unlock()
		if ok {
			return v, nil
		}
		if v, err = NewRecordVerifier(trust, e.jwt); err != nil {
			return nil, fmt.Errorf("%w: account %s: %w", accounts.ErrNotFound, account, err)
		}
		m.claimsMu.Lock()
		if len(m.verifiers) > maxTracked {
			clear(m.verifiers)
		}
		m.verifiers[e.jwt] = v
		m.claimsMu.Unlock()
		return v, nil
	}
}

// claimUpdates forgets a looked-up account JWT as soon as a new one is pushed, so a
// revocation is applied to the next failed login at once.
func (m *Monitor) claimUpdates(ctx context.Context) {
	ch := make(chan *nats.Msg, 256)
	for _, s := range []string{accounts.ClaimsUpdateSubject, "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE"} {
		sub, err := m.sys.ChanSubscribe(s, ch)
		if err != nil {
			m.log.Warn("sealbus: monitor: watching account JWT pushes", "error", err)
			continue
		}
		defer sub.Unsubscribe()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ch:
			ac, err := jwt.DecodeAccountClaims(string(msg.Data))
			m.claimsMu.Lock()
			if err != nil {
				clear(m.claims)
			} else {
				delete(m.claims, ac.Subject)
			}
			m.claimsMu.Unlock()
		}
	}
}

// systemEvents reads the system events: recorded in the operator account when it has
// the stream, else live from the system account (events made while the monitor is away are
// then lost).
func (m *Monitor) systemEvents(ctx context.Context) {
	if m.opsJS != nil {
		sctx, cancel := withDefaultTimeout(ctx)
		_, err := m.opsJS.Stream(sctx, accounts.SystemEventsStream)
		cancel()
		if err == nil {
			m.readRecorded(ctx, accounts.SystemEventsStream, func(msg jetstream.Msg) error {
				m.systemEvent(ctx, msg.Subject(), msg.Data())
				return nil
			})
			return
		}
		m.log.Warn("sealbus: monitor: the operator account records no system events; reading them live (events are lost while the monitor is away)",
			"stream", accounts.SystemEventsStream, "error", err)
	}
	ch := make(chan *nats.Msg, 4096)
	var subs []*nats.Subscription
	for _, s := range []string{accounts.AuthErrorEventSubject, accounts.ConnectEventSubject, accounts.DisconnectEventSubject} {
		sub, err := m.sys.ChanSubscribe(s, ch)
		if err != nil {
			m.log.Error("sealbus: monitor: subscribing to system events", "subject", s, "error", err)
			continue
		}
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		subs = append(subs, sub)
	}
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ch:
			m.systemEvent(ctx, msg.Subject, msg.Data)
		}
	}
}

// readRecorded reads stream of the operator account in order from the saved position
// (or, with none, from Backfill ago) until ctx ends, calling fn for each message, and
// re-creating its reader after any failure, fn's included (the message fn failed on is read
// again).
func (m *Monitor) readRecorded(ctx context.Context, stream string, fn func(jetstream.Msg) error) {
	for ctx.Err() == nil {
		err := m.readOnce(ctx, stream, fn)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoStream) {
			m.log.Debug("sealbus: monitor: recorded stream missing; retrying", "stream", stream)
		} else {
			m.log.Warn("sealbus: monitor: reading recorded events; retrying", "stream", stream, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.Poll.D()):
		}
	}
}

func (m *Monitor) readOnce(ctx context.Context, stream string, fn func(jetstream.Msg) error) error {
	m.mu.Lock()
	pos, known := m.st.Positions[stream]
	m.mu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: time.Minute}
	if known {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos+1
	} else {
		since := m.now().Add(-m.cfg.Backfill.D())
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cctx, cancel := withDefaultTimeout(ctx)
	cons, err := m.opsJS.OrderedConsumer(cctx, stream, cfg)
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return errNoStream
	}
	if err != nil {
		return err
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readIdle)
			_ = m.opsJS.DeleteConsumer(dctx, stream, info.Name)
			cancel()
		}
	}()
	// A stream that holds nothing to read is caught up; so is one whose first message waits.
	if info := cons.CachedInfo(); info != nil {
		m.setPending(stream, info.NumPending)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		if err := fn(msg); err != nil {
			return err
		}
		seq, left := md.Sequence.Stream, md.NumPending
		m.apply(func() {
			m.st.Positions[stream] = seq
			m.sourcePending[stream] = left
			m.dirty = true
		})
	}
}

func (m *Monitor) setPending(stream string, n uint64) {
	m.mu.Lock()
	m.sourcePending[stream] = n
	m.mu.Unlock()
}

// auditView reads every stream of the operator-wide view, starting a reader for each new one
// it finds (looked for every Poll).
func (m *Monitor) auditView(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	reading := map[string]bool{}
	for {
		lctx, cancel := withDefaultTimeout(ctx)
		names := m.opsJS.StreamNames(lctx, jetstream.WithStreamListSubject(">"))
		var found []string
		for n := range names.Name() {
			found = append(found, n)
		}
		cancel()
		// Streams without subjects (the view's) are not listed under a subject filter.
		lctx, cancel = withDefaultTimeout(ctx)
		all := m.opsJS.StreamNames(lctx)
		for n := range all.Name() {
			found = append(found, n)
		}
		cancel()
		for _, n := range found {
			kind, account, ok := accounts.ParseViewStream(n)
			if !ok || reading[n] {
				continue
			}
			reading[n] = true
			name := m.accountName(ctx, account)
			m.mu.Lock()
			m.names[account] = name
			m.mu.Unlock()
			wg.Go(func() {
				m.readRecorded(ctx, n, func(msg jetstream.Msg) error { return m.viewRecord(ctx, kind, account, name, n, msg) })
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.Poll.D()):
		}
	}
}

// accountName is the name in account's JWT, or "" when it cannot be had.
func (m *Monitor) accountName(ctx context.Context, account string) string {
	ac, err := m.accountClaims(ctx, account)
	if err != nil || ac == nil {
		return ""
	}
	return ac.Name
}

// viewRecord verifies and applies one record of the view. The record's account is the one
// whose stream it is in (each account's records have their own view stream, which only that
// account's mirror feeds), never what the record claims, and it is verified with that
// account's verifier. A verifier lookup that fails for another reason than an unknown account
// ([accounts.ErrNotFound]) is returned, so the record is read again later.
func (m *Monitor) viewRecord(ctx context.Context, kind, account, name, stream string, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return nil
	}
	r := viewRecord{Account: account, AccountName: name, Kind: kind, Stream: stream, Seq: md.Sequence.Stream, Stored: md.Timestamp}
	v, err := m.lookup(ctx, account)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		r.Problem = string(StateUnknownWriter) + ": " + err.Error()
	case err != nil:
		return err
	case kind == "dlq":
		if dl := deadLetterOf(v, md.Sequence.Stream, msg.Subject(), md.Timestamp, msg.Data()); dl.Verified() {
			r.Reason, r.Writer = dl.Reason, dl.Writer
		} else {
			r.Problem = problemOf(dl.Verification)
		}
	default:
		ar, err := auditRecordOf(v, msg)
		switch {
		case err != nil:
			r.Problem = err.Error()
		case ar.Verified() && ar.Event != nil:
			r.Type, r.Reason, r.Writer = ar.Event.Type, ar.Event.Data.Reason, ar.Verification.Writer
		default:
			r.Problem = problemOf(ar.Verification)
		}
	}
	m.apply(func() { m.record(r) })
	return nil
}

// problemOf says why a record is not evidence: its state and, escaped when printed, the detail.
func problemOf(v Verification) string {
	if v.Detail == "" {
		return string(v.State)
	}
	return string(v.State) + ": " + v.Detail
}

// poller reads the servers' state every Poll.
func (m *Monitor) poller(ctx context.Context) {
	t := time.NewTicker(m.cfg.Poll.D())
	defer t.Stop()
	for {
		p := m.readServers(ctx)
		if ctx.Err() != nil {
			return
		}
		m.apply(func() { m.poll(p) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gatherWait bounds a scatter-gather request to every server; gatherIdle ends it early once
// replies stop coming.
const (
	gatherWait = 3 * time.Second
	gatherIdle = 300 * time.Millisecond
)

// gather sends req on subject (answered by every server) and returns the replies, waiting
// at most gatherWait and no longer than gatherIdle after the last one.
func (m *Monitor) gather(ctx context.Context, subject string, req any) ([][]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inbox := m.sys.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := m.sys.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := m.sys.PublishRequest(subject, inbox, body); err != nil {
		return nil, err
	}
	var out [][]byte
	deadline := time.NewTimer(gatherWait)
	defer deadline.Stop()
	idle := time.NewTimer(gatherWait)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-deadline.C:
			return out, nil
		case <-idle.C:
			return out, nil
		case msg := <-ch:
			out = append(out, msg.Data)
			idle.Reset(gatherIdle)
		}
	}
}

// apiReply is the envelope of every server's answer to a $SYS.REQ.SERVER.PING request.
type apiReply struct {
	Server struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"server"`
	Data  json.RawMessage `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// gatherData is gather keeping the data of the replies that carry no error.
func (m *Monitor) gatherData(ctx context.Context, subject string, req any) ([]apiReply, error) {
	raw, err := m.gather(ctx, subject, req)
	var out []apiReply
	for _, b := range raw {
		var r apiReply
		if json.Unmarshal(b, &r) == nil && r.Error == nil && len(r.Data) > 0 {
			out = append(out, r)
		}
	}
	return out, err
}

// readServers polls JSZ (streams and consumers, each stream from its leader), CONNZ
// (connection counters) and STATSZ (server counters).
func (m *Monitor) readServers(ctx context.Context) pollResult {
	p := pollResult{At: m.now()}
	names := map[string]string{}

	type jsz struct {
		Accounts []struct {
			Name    string `json:"name"`
			ID      string `json:"id"`
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs    uint64 `json:"messages"`
					Bytes   uint64 `json:"bytes"`
					LastSeq uint64 `json:"last_seq"`
				} `json:"state"`
				Config *struct {
					MaxBytes int64 `json:"max_bytes"`
				} `json:"config"`
				Consumers []struct {
					Name   string `json:"name"`
					Config *struct {
						Durable string `json:"durable_name"`
					} `json:"config"`
					Pending     uint64 `json:"num_pending"`
					AckPending  uint64 `json:"num_ack_pending"`
					Redelivered uint64 `json:"num_redelivered"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
		Total int `json:"total"`
	}
	// Each stream as its leader reported it, with its durables. Two servers may both answer as
	// its leader (one back from a cut and not yet told otherwise): the one further along is.
	type streamRead struct {
		stream    streamSample
		consumers []consumerSample
	}
	reads := map[string]*streamRead{}
	var order []string
	for offset := 0; ; {
		replies, err := m.gatherData(ctx, "$SYS.REQ.SERVER.PING.JSZ", map[string]any{
			"accounts": true, "streams": true, "consumer": true, "config": true, "stream_leader_only": true, "offset": offset, "limit": 1024,
		})
		if err != nil || len(replies) == 0 {
			p.Errors++
			break
		}
		more := false
		for _, r := range replies {
			var z jsz
			if json.Unmarshal(r.Data, &z) != nil {
				continue
			}
			if z.Total > offset+len(z.Accounts) && len(z.Accounts) > 0 {
				more = true
			}
			for _, a := range z.Accounts {
				names[a.ID] = a.Name
				for _, s := range a.Streams {
					key := a.ID + "|" + s.Name
					sr := &streamRead{stream: streamSample{Account: a.ID, AccountName: a.Name, Stream: s.Name, LastSeq: s.State.LastSeq, Messages: s.State.Msgs, Bytes: s.State.Bytes}}
					if s.Config != nil {
						sr.stream.MaxBytes = s.Config.MaxBytes
					}
					for _, c := range s.Consumers {
						if c.Config == nil || c.Config.Durable == "" {
							continue // ephemeral (readers, watchers): no lag to watch, and random names
						}
						sr.consumers = append(sr.consumers, consumerSample{Account: a.ID, AccountName: a.Name, Stream: s.Name, Consumer: c.Name,
							Pending: c.Pending, AckPending: c.AckPending, Redelivered: c.Redelivered})
					}
					if old, dup := reads[key]; dup {
						if sr.stream.LastSeq > old.stream.LastSeq {
							reads[key] = sr
						}
						continue
					}
					reads[key] = sr
					order = append(order, key)
				}
			}
		}
		if !more {
			break
		}
		offset += 1024
	}
	for _, key := range order {
		p.Streams = append(p.Streams, reads[key].stream)
		p.Consumers = append(p.Consumers, reads[key].consumers...)
	}

	type connz struct {
		Total int `json:"total"`
		Conns []struct {
			CID     uint64    `json:"cid"`
			Start   time.Time `json:"start"`
			InMsgs  uint64    `json:"in_msgs"`
			User    string    `json:"authorized_user"`
			Account string    `json:"account"`
			JWT     string    `json:"jwt"`
		} `json:"connections"`
	}
	services := map[string]string{}
	for offset := 0; ; {
		replies, err := m.gatherData(ctx, "$SYS.REQ.SERVER.PING.CONNZ", map[string]any{"auth": true, "offset": offset, "limit": 1024})
		if err != nil || len(replies) == 0 {
			p.Errors++
			break
		}
		more := false
		for _, r := range replies {
			var z connz
			if json.Unmarshal(r.Data, &z) != nil {
				continue
			}
			if z.Total > offset+len(z.Conns) && len(z.Conns) > 0 {
				more = true
			}
			for _, c := range z.Conns {
				svc, ok := services[c.User]
				if !ok && c.JWT != "" {
					if uc, err := jwt.DecodeUserClaims(c.JWT); err == nil && uc.Subject == c.User {
						svc = uc.Name // the server authenticated this JWT
					}
					services[c.User] = svc
				}
				p.Conns = append(p.Conns, connSample{Server: r.Server.Name, Account: c.Account, AccountName: names[c.Account], User: c.User, Service: svc,
					CID: c.CID, Start: c.Start, InMsgs: c.InMsgs})
			}
		}
		if !more {
			break
		}
		offset += 1024
	}

	p.Servers = m.statsz(ctx)
	if len(p.Servers) == 0 {
		p.Errors++
	}
	return p
}

// statsz asks every server for its counters.
func (m *Monitor) statsz(ctx context.Context) []ServerStats {
	raw, _ := m.gather(ctx, "$SYS.REQ.SERVER.PING.STATSZ", map[string]any{})
	var out []ServerStats
	for _, b := range raw {
		var r struct {
			Server struct {
				Name string `json:"name"`
			} `json:"server"`
			Stats struct {
				Connections int `json:"connections"`
				Sent        struct {
					Msgs  uint64 `json:"msgs"`
					Bytes uint64 `json:"bytes"`
				} `json:"sent"`
				Received struct {
					Msgs  uint64 `json:"msgs"`
					Bytes uint64 `json:"bytes"`
				} `json:"received"`
				SlowConsumers int64 `json:"slow_consumers"`
			} `json:"statsz"`
		}
		if json.Unmarshal(b, &r) == nil && r.Server.Name != "" {
			out = append(out, ServerStats{Name: r.Server.Name, Connections: r.Stats.Connections,
				InMsgs: r.Stats.Received.Msgs, OutMsgs: r.Stats.Sent.Msgs, InBytes: r.Stats.Received.Bytes, OutBytes: r.Stats.Sent.Bytes,
				SlowConsumers: r.Stats.SlowConsumers})
		}
	}
	return out
}

// publishAlertEvent records an alert as an admin audit event of the operator account: signed
// with the account's signing key and written on its admin subject, where every reader of the
// view verifies it like any admin record.
func (m *Monitor) publishAlertEvent(ctx context.Context, e bus.Event) error {
	if len(m.opsAcct.SigningKeys) == 0 {
		return fmt.Errorf("%w: the operator account has no signing key", ErrInvalidSpec)
	}
	data, err := signAdminEvent(m.opsAcct.SigningKeys[0], m.opsKey, &e, m.now())
	if err != nil {
		return err
	}
	return writeAdminRecord(ctx, m.opsJS, m.opsToken, data)
}
