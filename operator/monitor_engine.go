package operator

// The monitor's rules: pure state over evidence, driven by the monitor's goroutines (or a
// test) under Monitor.mu. Every time here is evidence time (the server's timestamp of an
// event, a record's stored time, a poll's time) except for reporting (m.now()).

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
)

// maxWindowEntries bounds the timestamps a sliding window keeps (and so the counts its rules
// may ask for).
const maxWindowEntries = 10000

// maxTracked bounds the keys (addresses, user keys, accounts and reasons) each rule tracks, so
// an attacker spraying random keys cannot grow the monitor's memory without bound; when full,
// half are forgotten (a spray of user keys from one address is still caught by the address's
// window, which the spray does not grow).
const maxTracked = 20000

// window is a sliding window of evidence times, newest last, at most n kept.
type window struct {
	Times []time.Time `json:"times"`
}

// add records t and returns how many entries lie within span of the newest.
func (w *window) add(t time.Time, n int, span time.Duration) int {
	i, _ := slices.BinarySearchFunc(w.Times, t, func(a, b time.Time) int { return a.Compare(b) })
	w.Times = slices.Insert(w.Times, i, t)
	newest := w.Times[len(w.Times)-1]
	cut := 0
	for cut < len(w.Times) && newest.Sub(w.Times[cut]) > span {
		cut++
	}
	if over := len(w.Times) - cut - n; over > 0 {
		cut += over
	}
	w.Times = w.Times[cut:]
	return len(w.Times)
}

func (w *window) newest() time.Time {
	if len(w.Times) == 0 {
		return time.Time{}
	}
	return w.Times[len(w.Times)-1]
}

// spike is the state of one moving-baseline rule (rejections per bucket, rates per poll).
type spike struct {
	Bucket   int64   `json:"bucket"`  // current bucket index (rejections)
	Count    float64 `json:"count"`   // evidence in the current bucket
	EWMA     float64 `json:"ewma"`    // baseline
	Samples  int     `json:"samples"` // samples folded into the baseline
	Spiking  bool    `json:"spiking"` // the current bucket or sample is a spike
	LastSeen int64   `json:"last"`    // unix nanoseconds of the last evidence
}

// fold adds one finished sample to the baseline (skipped while spiking, so an attack does
// not become the new normal), and empty samples before it.
func (s *spike) fold(v float64, empty int64, cfg Spike) {
	decay := 1 - cfg.Alpha
	if empty > 0 {
		s.EWMA *= math.Pow(decay, float64(min(empty, 1000)))
		s.Samples += int(min(empty, 1000))
	}
	if s.Spiking {
		return
	}
	if s.Samples == 0 && cfg.Warmup > 0 {
		s.EWMA = v
	} else {
		s.EWMA = cfg.Alpha*v + decay*s.EWMA
	}
	s.Samples++
}

// isSpike reports whether v is a spike against the baseline.
func (s *spike) isSpike(v float64, cfg Spike) bool {
	if cfg.Warmup > 0 && s.Samples < cfg.Warmup {
		return false
	}
	return v >= cfg.MinCount && v > cfg.Factor*s.EWMA
}

// growth keeps samples of a monotonic-ish counter within a window.
type growth struct {
	At     []time.Time `json:"at"`
	Values []uint64    `json:"values"`
}

// add records v at t and returns how much the counter grew over the window (v minus the
// smallest value still in it). A value below the previous one restarts the window (the
// stream was recreated or the counter reset).
func (g *growth) add(t time.Time, v uint64, span time.Duration) uint64 {
	if below, far := g.below(v); below && far {
		g.At, g.Values = nil, nil
	}
	g.At, g.Values = append(g.At, t), append(g.Values, v)
	cut := 0
	for cut < len(g.At)-1 && t.Sub(g.At[cut]) > span {
		cut++
	}
	g.At, g.Values = g.At[cut:], g.Values[cut:]
	low := slices.Min(g.Values)
	return v - low
}

// below reports whether v is below the last value, and whether far below it (by more than
// half: a recreated stream or a reset counter rather than a stale reading).
func (g *growth) below(v uint64) (below, far bool) {
	n := len(g.Values)
	if n == 0 || v >= g.Values[n-1] {
		return false, false
	}
	return true, g.Values[n-1]-v > g.Values[n-1]/2
}

// restart makes v at t the window's only sample: growth that became an incident's evidence
// is not counted again.
func (g *growth) restart(t time.Time, v uint64) {
	g.At, g.Values = []time.Time{t}, []uint64{v}
}

// lag tracks how long a consumer has been behind.
type lag struct {
	Since time.Time `json:"since"`
}

// authFailure is one failed authentication, classified.
type authFailure struct {
	ID          string    // the server's event id
	Time        time.Time // the server's timestamp
	Server      string    // server name
	Address     string    // client IP
	UserKey     string    // claimed user key ("" when the client sent no decodable JWT)
	Account     string    // claimed account public key
	AccountName string    // its name, when the account is known
	Service     string    // name in the user JWT (authentic only when the JWT verified)
	Cause       string    // one of the auth* causes
	ClientName  string    // connection name the client sent (attacker-chosen)
}

// Causes of failed authentications, as the monitor classifies them (the server's event says
// only "Authentication Failure").
const (
	CauseRevoked         = "revoked"             // the user key is revoked in its account JWT
	CauseExpired         = "expired"             // the user JWT has expired
	CauseUnknownAccount  = "unknown_account"     // the JWT names an account the servers do not know
	CauseUnknownSigner   = "unknown_signing_key" // signed by a key the account does not list
	CauseBadCredentials  = "bad_credentials"     // a valid JWT, yet refused: wrong key for the nonce, or a source, time or connection-type limit
	CauseNoJWT           = "no_jwt"              // no JWT in CONNECT
	CauseMalformedJWT    = "malformed_jwt"       // a JWT that does not decode
	CausePassword        = "user_password"       // a user name and password, which operator mode never accepts
	CauseProtocolGarbage = "protocol_garbage"    // no CONNECT at all (a probe, an HTTP request)
	CauseHandshake       = "handshake"           // TLS handshake failure or authentication timeout: a scan or a plaintext client
)

func (m *Monitor) incident(kind AlertKind, key string) *incident {
	return m.st.Incidents[string(kind)+"|"+key]
}

// open starts an incident and reports it.
func (m *Monitor) open(in *incident) {
	in.ID = incidentID(in.Kind, in.Key, in.First)
	in.Reported, in.ReportedCnt = m.now(), in.Count
	m.st.Incidents[string(in.Kind)+"|"+in.Key] = in
	m.st.Opened[in.Kind]++
	m.dirty = true
	m.pending = append(m.pending, in.alert(AlertOpen, in.Reported))
}

// evidence extends an open incident.
func (m *Monitor) evidence(in *incident, t time.Time, n uint64) {
	in.Count += n
	if t.After(in.Last) {
		in.Last = t
	}
	m.dirty = true
}

// authFailure applies one failed authentication to the brute-force and stale-key rules.
func (m *Monitor) authFailure(f authFailure) {
	m.dirty = true
	if f.Cause == CauseRevoked || f.Cause == CauseExpired {
		m.staleKey(f)
		return
	}
	cfg := m.cfg.BruteForce
	// Evidence for an open incident of the same address or key joins it.
	for _, in := range m.st.Incidents {
		if in.Kind != AlertBruteForce {
			continue
		}
		if slices.Contains(in.Addresses, f.Address) || (f.UserKey != "" && slices.Contains(in.Keys, f.UserKey)) {
			m.evidence(in, f.Time, 1)
			in.Addresses = addListed(in.Addresses, f.Address)
			in.Keys = addListed(in.Keys, f.UserKey)
			in.Causes = addListed(in.Causes, f.Cause)
			return
		}
	}
	var byAddr, byKey int
	if f.Address != "" {
		byAddr = m.win(m.st.AddrFailures, f.Address).add(f.Time, cfg.Failures, cfg.Window.D())
	}
	if f.UserKey != "" {
		byKey = m.win(m.st.KeyFailures, f.UserKey).add(f.Time, cfg.Failures, cfg.Window.D())
	}
	if byAddr < cfg.Failures && byKey < cfg.Failures {
		return
	}
	in := &incident{Kind: AlertBruteForce, Account: f.Account, AccountName: f.AccountName, Last: f.Time}
	var w *window
	if byAddr >= byKey {
		in.Key, in.Address, in.Count, w = "address:"+f.Address, f.Address, uint64(byAddr), m.st.AddrFailures[f.Address]
		in.Summary = fmt.Sprintf("authentication failures from %s (at least %d within %v)", f.Address, cfg.Failures, cfg.Window.D())
	} else {
		in.Key, in.UserKey, in.Count, w = "key:"+f.UserKey, f.UserKey, uint64(byKey), m.st.KeyFailures[f.UserKey]
		in.Summary = fmt.Sprintf("authentication failures for user key %s (at least %d within %v)", f.UserKey, cfg.Failures, cfg.Window.D())
	}
	in.First = w.Times[0]
	in.Addresses = addListed(nil, f.Address)
	in.Keys = addListed(nil, f.UserKey)
	in.Causes = addListed(nil, f.Cause)
	// The windows' evidence now belongs to the incident: after it resolves, a new incident
	// needs a full window of new failures.
	delete(m.st.AddrFailures, f.Address)
	delete(m.st.KeyFailures, f.UserKey)
	m.open(in)
}

func (m *Monitor) staleKey(f authFailure) {
	kind := AlertRevokedKey
	if f.Cause == CauseExpired {
		kind = AlertExpiredKey
	}
	if in := m.incident(kind, f.UserKey); in != nil {
		m.evidence(in, f.Time, 1)
		in.Addresses = addListed(in.Addresses, f.Address)
		return
	}
	cfg := m.cfg.StaleKey
	key := string(kind) + ":" + f.UserKey
	n := m.win(m.st.StaleAttempts, key).add(f.Time, cfg.Attempts, cfg.Window.D())
	if n < cfg.Attempts {
		return
	}
	what := "revoked"
	if kind == AlertExpiredKey {
		what = "expired"
	}
	in := &incident{
		Kind: kind, Key: f.UserKey, Count: uint64(n), First: m.st.StaleAttempts[key].Times[0], Last: f.Time,
		Account: f.Account, AccountName: f.AccountName, Service: f.Service, UserKey: f.UserKey, Address: f.Address,
		Addresses: addListed(nil, f.Address),
		Summary:   fmt.Sprintf("the %s user key of %s keeps trying to connect (at least %d attempts within %v)", what, serviceLabel(f.Service, f.UserKey), cfg.Attempts, cfg.Window.D()),
	}
	delete(m.st.StaleAttempts, key)
	m.open(in)
}

func serviceLabel(service, key string) string {
	if service != "" {
		return "service " + service
	}
	return "user " + key
}

// win returns the window of key in ws, making room first if ws is full.
func (m *Monitor) win(ws map[string]*window, key string) *window {
	if w, ok := ws[key]; ok {
		return w
	}
	if len(ws) >= maxTracked {
		// Full (a spray of addresses or keys, each below the threshold): forget half, in
		// the map's random order, so making room costs one pass per maxTracked/2 new keys.
		n := 0
		for k := range ws {
			if n >= maxTracked/2 {
				break
			}
			delete(ws, k)
			n++
		}
	}
	w := &window{}
	ws[key] = w
	return w
}

// viewRecord is one record of the operator-wide view.
type viewRecord struct {
	Account     string    // the tenant the record came from (from the view stream it is in)
	AccountName string    // its name
	Kind        string    // "audit" or "dlq"
	Stream      string    // view stream
	Seq         uint64    // sequence in the view stream
	Stored      time.Time // the view stream's timestamp
	Type        string    // audit event type, "" for dead letters and records that do not decode
	Reason      string    // rejection or dead-letter reason
	Writer      string    // who wrote it, when known
	Problem     string    // why it does not decode or verify; "" for a good record
}

// record applies one record of the operator-wide view.
func (m *Monitor) record(r viewRecord) {
	m.st.Events[r.Kind]++
	m.dirty = true
	if r.Problem != "" {
		m.forged(r)
		return
	}
	if r.Type == bus.EventRejected {
		m.rejection(r)
	}
}

func (m *Monitor) forged(r viewRecord) {
	key := r.Account + "|" + r.Kind
	if in := m.incident(AlertForgedRecord, key); in != nil {
		m.evidence(in, r.Stored, 1)
		return
	}
	n := m.win(m.st.Forged, key).add(r.Stored, m.cfg.ForgedRecords.Records, m.cfg.Quiet.D())
	if n < m.cfg.ForgedRecords.Records {
		return
	}
	delete(m.st.Forged, key)
	m.open(&incident{
		Kind: AlertForgedRecord, Key: key, Count: uint64(n), First: r.Stored, Last: r.Stored,
		Account: r.Account, AccountName: r.AccountName, Stream: r.Stream, Reason: r.Problem,
		Summary: fmt.Sprintf("%s record %d of account %s does not verify: %s", r.Kind, r.Seq, firstNonEmpty(r.AccountName, r.Account), r.Problem),
	})
}

func (m *Monitor) rejection(r viewRecord) {
	cfg := m.cfg.Rejections
	key := r.Account + "|" + r.Reason
	s := m.spikeOf(m.st.Rejections, key)
	b := r.Stored.UnixNano() / int64(cfg.Interval.D())
	switch {
	case s.Samples == 0 && s.Count == 0 && s.Bucket == 0:
		s.Bucket = b
	case b > s.Bucket:
		s.fold(s.Count, b-s.Bucket-1, cfg.Spike)
		s.Bucket, s.Count, s.Spiking = b, 0, false
	}
	s.Count++
	s.LastSeen = r.Stored.UnixNano()
	in := m.incident(AlertRejectionSpike, key)
	if !s.Spiking && s.isSpike(s.Count, cfg.Spike) {
		s.Spiking = true
		if in != nil {
			m.evidence(in, r.Stored, uint64(s.Count))
			in.Value = max(in.Value, s.Count)
			return
		}
		m.open(&incident{
			Kind: AlertRejectionSpike, Key: key, Count: uint64(s.Count),
			First: time.Unix(0, b*int64(cfg.Interval.D())), Last: r.Stored,
			Account: r.Account, AccountName: r.AccountName, Reason: r.Reason, Value: s.Count, Baseline: s.EWMA,
			Summary: fmt.Sprintf("account %s rejects envelopes with reason %s: %v within %v against a baseline of %.1f",
				firstNonEmpty(r.AccountName, r.Account), r.Reason, s.Count, cfg.Interval.D(), s.EWMA),
		})
		return
	}
	if s.Spiking && in != nil {
		m.evidence(in, r.Stored, 1)
		in.Value = max(in.Value, s.Count)
	}
}

func (m *Monitor) spikeOf(ss map[string]*spike, key string) *spike {
	if s, ok := ss[key]; ok {
		return s
	}
	if len(ss) >= maxTracked {
		n := 0
		for k := range ss {
			if n >= maxTracked/2 {
				break
			}
			delete(ss, k)
			n++
		}
	}
	s := &spike{}
	ss[key] = s
	return s
}

// pollResult is one reading of the servers' state.
type pollResult struct {
	At        time.Time
	Conns     []connSample
	Streams   []streamSample
	Consumers []consumerSample
	Servers   []ServerStats
	Errors    int
}

type connSample struct {
	Server, Account, AccountName, User, Service string
	CID                                         uint64
	Start                                       time.Time
	InMsgs                                      uint64
}

type streamSample struct {
	Account, AccountName, Stream string
	LastSeq, Messages            uint64
	Bytes                        uint64
	MaxBytes                     int64 // the stream's size limit; <= 0: none
}

type consumerSample struct {
	Account, AccountName, Stream, Consumer string
	Pending, AckPending, Redelivered       uint64
}

// connState is what the previous poll saw of one connection.
type connState struct {
	Start  time.Time `json:"start"`
	InMsgs uint64    `json:"in"`
}

// poll applies one reading of the servers' state: publish rates, consumer lag and
// redeliveries, dead-letter growth.
func (m *Monitor) poll(p pollResult) {
	m.st.Events["poll"]++
	m.pollErrors += uint64(p.Errors)
	m.lastPollFailed = p.Errors > 0
	if p.Errors > 0 && len(p.Streams) == 0 && len(p.Conns) == 0 {
		m.dirty = true
		return // nothing read: keep the last readings as the base of the next rates
	}
	m.servers = p.Servers
	m.consumers = p.Consumers
	m.dirty = true
	prev := m.st.LastPoll
	m.st.LastPoll = p.At
	dt := p.At.Sub(prev).Seconds()

	// Services: messages their connections published since the last poll.
	type svc struct{ account, accountName, user, service string }
	rates := map[svc]float64{}
	conns := make(map[string]connState, len(p.Conns))
	for _, c := range p.Conns {
		if c.User == "" {
			continue
		}
		id := fmt.Sprintf("%s/%d", c.Server, c.CID)
		conns[id] = connState{Start: c.Start, InMsgs: c.InMsgs}
		if prev.IsZero() || dt <= 0 {
			continue
		}
		var delta uint64
		switch old, ok := m.st.Conns[id]; {
		case ok && old.Start.Equal(c.Start) && c.InMsgs >= old.InMsgs:
			delta = c.InMsgs - old.InMsgs
		case c.Start.After(prev):
			delta = c.InMsgs
		default:
			continue // a connection from before the last poll that was not seen then
		}
		k := svc{c.Account, c.AccountName, c.User, c.Service}
		rates[k] += float64(delta) / dt
	}
	m.st.Conns = conns
	for k, r := range rates {
		m.rate("service:"+k.account+"|"+k.user, r, p.At, func(in *incident) {
			in.Account, in.AccountName, in.UserKey, in.Service = k.account, k.accountName, k.user, k.service
			in.Summary = fmt.Sprintf("%s of account %s publishes %.0f messages/s", serviceLabel(k.service, k.user), firstNonEmpty(k.accountName, k.account), r)
		})
	}

	streams := make(map[string]uint64, len(p.Streams))
	for _, s := range p.Streams {
		key := s.Account + "|" + s.Stream
		if s.Stream == accounts.DLQStream {
			m.deadLetterGrowth(s, p.At)
		}
		m.guardStoreUse(s, p.At)
		old, ok := m.st.Streams[key]
		if ok && s.LastSeq < old {
			// Behind the last reading: a server that led the stream before it was cut off
			// answering with its old state, or a stream deleted and made again. Neither is a
			// base for the next rate (a stale reading would make the catch-up look like a
			// flood): the next reading starts the stream's rate afresh.
			continue
		}
		streams[key] = s.LastSeq
		if prev.IsZero() || dt <= 0 || !ok {
			continue
		}
		r := float64(s.LastSeq-old) / dt
		m.rate("stream:"+key, r, p.At, func(in *incident) {
			in.Account, in.AccountName, in.Stream = s.Account, s.AccountName, s.Stream
			in.Summary = fmt.Sprintf("stream %s of account %s takes in %.0f messages/s", s.Stream, firstNonEmpty(s.AccountName, s.Account), r)
		})
	}
	m.st.Streams = streams

	for _, c := range p.Consumers {
		m.consumerState(c, p.At)
	}
}

// guardStoreUse applies the guard-store rule to a stream sample: a durable's replay guard store
// at least GuardStoreFullPercent full is evidence, every poll it stays so.
func (m *Monitor) guardStoreUse(s streamSample, at time.Time) {
	stream, durable, ok := accounts.ParseGuardStream(s.Stream)
	if !ok || s.MaxBytes <= 0 || s.Bytes*100 < GuardStoreFullPercent*uint64(s.MaxBytes) {
		return
	}
	key := s.Account + "|" + s.Stream
	pct := float64(s.Bytes) * 100 / float64(s.MaxBytes)
	if in := m.incident(AlertGuardStoreFull, key); in != nil {
		m.evidence(in, at, 1)
		in.Value = max(in.Value, pct)
		return
	}
	in := &incident{Kind: AlertGuardStoreFull, Key: key, Count: 1, First: at, Last: at, Value: pct,
		Account: s.Account, AccountName: s.AccountName, Stream: stream, Consumer: durable,
		Summary: fmt.Sprintf("the replay guard store of durable %s on stream %s of account %s is %.0f%% full (%d of %d bytes): when full, the durable stops handling messages; resize it with sealbus stream guard-size",
			durable, stream, firstNonEmpty(s.AccountName, s.Account), pct, s.Bytes, s.MaxBytes)}
	m.open(in)
}

// rate applies one rate sample of key to the publish-rate rule; describe fills a new
// incident's fields.
func (m *Monitor) rate(key string, r float64, at time.Time, describe func(*incident)) {
	cfg := m.cfg.PublishRate
	s := m.spikeOf(m.st.Rates, key)
	s.LastSeen = at.UnixNano()
	in := m.incident(AlertPublishRate, key)
	if s.isSpike(r, cfg) {
		s.Spiking = true
		if in != nil {
			m.evidence(in, at, 1)
			in.Value = max(in.Value, r)
			return
		}
		in = &incident{Kind: AlertPublishRate, Key: key, Count: 1, First: at, Last: at, Value: r, Baseline: s.EWMA}
		describe(in)
		in.Summary += fmt.Sprintf(" (baseline %.1f/s)", s.EWMA)
		m.open(in)
		return
	}
	s.Spiking = false
	s.fold(r, 0, cfg)
}

func (m *Monitor) consumerState(c consumerSample, at time.Time) {
	key := c.Account + "|" + c.Stream + "|" + c.Consumer
	describe := func(in *incident) {
		in.Account, in.AccountName, in.Stream, in.Consumer = c.Account, c.AccountName, c.Stream, c.Consumer
	}
	// Lag: behind by at least Pending for at least For.
	l := m.st.Lag[key]
	if c.Pending >= m.cfg.ConsumerLag.Pending {
		if l == nil {
			l = &lag{Since: at}
			m.st.Lag[key] = l
		}
		if at.Sub(l.Since) >= m.cfg.ConsumerLag.For.D() {
			if in := m.incident(AlertConsumerLag, key); in != nil {
				m.evidence(in, at, 1)
				in.Value = max(in.Value, float64(c.Pending))
			} else {
				in := &incident{Kind: AlertConsumerLag, Key: key, Count: 1, First: l.Since, Last: at, Value: float64(c.Pending),
					Summary: fmt.Sprintf("consumer %s on stream %s of account %s is %d messages behind since %s",
						c.Consumer, c.Stream, firstNonEmpty(c.AccountName, c.Account), c.Pending, l.Since.UTC().Format(time.RFC3339))}
				describe(in)
				m.open(in)
			}
		}
	} else {
		delete(m.st.Lag, key)
	}
	// Redeliveries growing.
	g := m.st.Redelivered[key]
	if g == nil {
		g = &growth{}
		m.st.Redelivered[key] = g
	}
	if up := g.add(at, c.Redelivered, m.cfg.Redelivery.Window.D()); up >= m.cfg.Redelivery.Growth {
		first := g.At[0]
		g.restart(at, c.Redelivered) // the growth is now the incident's evidence
		if in := m.incident(AlertRedelivery, key); in != nil {
			m.evidence(in, at, 1)
			in.Value = max(in.Value, float64(up))
		} else {
			in := &incident{Kind: AlertRedelivery, Key: key, Count: 1, First: first, Last: at, Value: float64(up),
				Summary: fmt.Sprintf("consumer %s on stream %s of account %s: redelivered messages grow (at least %d within %v)",
					c.Consumer, c.Stream, firstNonEmpty(c.AccountName, c.Account), m.cfg.Redelivery.Growth, m.cfg.Redelivery.Window.D())}
			describe(in)
			m.open(in)
		}
	}
}

func (m *Monitor) deadLetterGrowth(s streamSample, at time.Time) {
	g := m.st.DeadLetters[s.Account]
	if g == nil {
		g = &growth{}
		m.st.DeadLetters[s.Account] = g
	}
	if below, far := g.below(s.LastSeq); below && !far {
		// Behind the last reading: a former leader answering with its old state. As a low
		// point of the window it would make the catch-up look like growth; a stream made
		// again (far behind) restarts the window in add.
		return
	}
	up := g.add(at, s.LastSeq, m.cfg.DeadLetters.Window.D())
	if up < m.cfg.DeadLetters.Growth {
		return
	}
	first := g.At[0]
	g.restart(at, s.LastSeq) // the growth is now the incident's evidence
	if in := m.incident(AlertDeadLetters, s.Account); in != nil {
		m.evidence(in, at, up)
		in.Value = max(in.Value, float64(up))
		return
	}
	m.open(&incident{Kind: AlertDeadLetters, Key: s.Account, Count: up, First: first, Last: at, Value: float64(up),
		Account: s.Account, AccountName: s.AccountName, Stream: s.Stream,
		Summary: fmt.Sprintf("account %s: dead letters grow (at least %d within %v)", firstNonEmpty(s.AccountName, s.Account), m.cfg.DeadLetters.Growth, m.cfg.DeadLetters.Window.D())})
}

// tick reports incidents that grew (at most every Repeat) and resolves those without
// evidence for Quiet. Resolution waits until every recorded source is caught up, so a
// monitor reading a backlog does not close an incident whose evidence is still to come.
func (m *Monitor) tick() {
	now := m.now()
	caught := m.caughtUp()
	for k, in := range m.st.Incidents {
		switch {
		case caught && now.Sub(in.Last) > m.cfg.Quiet.D():
			delete(m.st.Incidents, k)
			m.dirty = true
			m.pending = append(m.pending, in.alert(AlertResolved, now))
		case in.Count > in.ReportedCnt && now.Sub(in.Reported) >= m.cfg.Repeat.D():
			in.Reported, in.ReportedCnt = now, in.Count
			m.dirty = true
			m.pending = append(m.pending, in.alert(AlertUpdate, now))
		}
	}
	// Forget windows whose evidence is too old to matter.
	for _, set := range []struct {
		ws   map[string]*window
		span time.Duration
	}{{m.st.AddrFailures, m.cfg.BruteForce.Window.D()}, {m.st.KeyFailures, m.cfg.BruteForce.Window.D()}, {m.st.StaleAttempts, m.cfg.StaleKey.Window.D()}, {m.st.Forged, m.cfg.Quiet.D()}} {
		for k, w := range set.ws {
			if now.Sub(w.newest()) > set.span {
				delete(set.ws, k)
				m.dirty = true
			}
		}
	}
}

func (m *Monitor) caughtUp() bool {
	// A poll that failed (servers unreachable, restarting) is no evidence that poll-based
	// incidents are over.
	if m.lastPollFailed {
		return false
	}
	for _, pending := range m.sourcePending {
		if pending > 0 {
			return false
		}
	}
	return true
}
