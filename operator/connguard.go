package operator

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sealbus/sealbus/accounts"
)

// NATS limits connections per account, not per user: one service holding an account's
// credentials could open every connection the account allows and lock its neighbours out. A
// service's user JWT therefore states its own quota in a tag ([accounts.ConnectionQuotaTag],
// from [accounts.ServiceLimits]), and the connection guard enforces it from outside the server:
// it follows the servers' connect and disconnect events on the system account and closes
// ("kicks") every connection of a service beyond its quota, newest first, as soon as the
// event arrives. docs/PERMISSIONS.md, "Per-service limits", says what this defends and what it
// does not: it reacts to connections the server already accepted, so a burst can hold the
// account's slots for the milliseconds until the kicks land, and nothing is enforced while the
// guard is not running.

// Subjects of the system account the guard uses (nats-server's events.go).
const (
	connectEventSubject    = "$SYS.ACCOUNT.*.CONNECT"
	disconnectEventSubject = "$SYS.ACCOUNT.*.DISCONNECT"
	connzPingSubject       = "$SYS.REQ.SERVER.PING.CONNZ"
	kickSubjectFormat      = "$SYS.REQ.SERVER.%s.KICK"
)

// DefaultGuardReconcile is how often, by default, the guard compares its view with the
// servers' connection lists (events can be lost under load).
const DefaultGuardReconcile = 15 * time.Second

// GuardOption configures [StartConnectionGuard].
type GuardOption func(*guardConfig) error

type guardConfig struct {
	log       *slog.Logger
	reconcile time.Duration
}

// WithGuardLogger sets the logger of the guard (default: none).
func WithGuardLogger(l *slog.Logger) GuardOption {
	return func(c *guardConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidSpec)
		}
		c.log = l
		return nil
	}
}

// WithGuardReconcile sets how often the guard reads the servers' connection lists (1 s to 10
// min; default [DefaultGuardReconcile]).
func WithGuardReconcile(d time.Duration) GuardOption {
	return func(c *guardConfig) error {
		if d < time.Second || d > 10*time.Minute {
			return fmt.Errorf("%w: reconcile interval %v (1s to 10m)", ErrInvalidSpec, d)
		}
		c.reconcile = d
		return nil
	}
}

// ConnectionGuard enforces the connection quotas of sealbus services; see
// [StartConnectionGuard]. Safe for concurrent use.
type ConnectionGuard struct {
	nc     *nats.Conn
	cfg    guardConfig
	events chan *nats.Msg
	subs   []*nats.Subscription
	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once

	mu    sync.Mutex
	users map[string]*guardedUser // user key -> its connections

	kicked   atomic.Uint64
	kickErrs atomic.Uint64
	lost     atomic.Uint64
	ready    chan struct{}
}

type guardedUser struct {
	quota int
	conns map[connID]*guardedConn
}

type connID struct {
	server string
	cid    uint64
}

type guardedConn struct {
	start  time.Time
	kicked bool
}

// StartConnectionGuard starts a guard on sys, a connection as the operator's system user
// ([ConnectSystem]) that the guard owns and closes on [ConnectionGuard.Close]. It subscribes to
// the connect and disconnect events of every account, reads the servers' current connections,
// closes those beyond their service's quota, and from then on closes each new connection that
// takes a service beyond its quota. Users without a quota tag (admins, the system user) are
// left alone. It returns once the first reading of the servers is done or ctx ends (with no
// deadline, [DefaultTimeout] applies).
func StartConnectionGuard(ctx context.Context, sys *nats.Conn, opts ...GuardOption) (*ConnectionGuard, error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidSpec)
	}
	cfg := guardConfig{log: slog.New(slog.DiscardHandler), reconcile: DefaultGuardReconcile}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidSpec)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	g := &ConnectionGuard{
		nc: sys, cfg: cfg, events: make(chan *nats.Msg, 1<<16),
		users: map[string]*guardedUser{}, done: make(chan struct{}), ready: make(chan struct{}),
	}
	for _, subj := range []string{connectEventSubject, disconnectEventSubject} {
		sub, err := sys.ChanSubscribe(subj, g.events)
		if err != nil {
			g.unsubscribe()
			return nil, fmt.Errorf("operator: connection guard: %w", err)
		}
		// A burst of connections is exactly when events must not be dropped.
		_ = sub.SetPendingLimits(-1, -1)
		g.subs = append(g.subs, sub)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := sys.FlushWithContext(ctx); err != nil {
		g.unsubscribe()
		return nil, fmt.Errorf("operator: connection guard: %w", err)
	}
	gctx, stop := context.WithCancel(context.Background())
	g.cancel = stop
	go g.run(gctx)
	select {
	case <-g.ready:
	case <-ctx.Done():
	}
	return g, nil
}

// Close stops the guard and closes its connection. Safe to call more than once.
func (g *ConnectionGuard) Close() {
	g.closed.Do(func() {
		g.cancel()
		<-g.done
		g.unsubscribe()
		g.nc.Close()
	})
}

func (g *ConnectionGuard) unsubscribe() {
	for _, s := range g.subs {
		_ = s.Unsubscribe()
	}
}

// GuardStats counts what a guard did.
type GuardStats struct {
	Kicked     uint64 // connections closed for going beyond their service's quota
	KickErrors uint64 // kicks the server did not confirm (the connection was gone already, mostly)
	Tracked    int    // connections of services with a quota the guard knows of
	LostEvents uint64 // connect or disconnect events that did not parse
}

// Stats returns a snapshot of the guard's counters.
func (g *ConnectionGuard) Stats() GuardStats {
	g.mu.Lock()
	n := 0
	for _, u := range g.users {
		n += len(u.conns)
	}
	g.mu.Unlock()
	return GuardStats{Kicked: g.kicked.Load(), KickErrors: g.kickErrs.Load(), Tracked: n, LostEvents: g.lost.Load()}
}

func (g *ConnectionGuard) run(ctx context.Context) {
	defer close(g.done)
	g.reconcileOnce(ctx)
	close(g.ready)
	t := time.NewTicker(g.cfg.reconcile)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-g.events:
			g.handle(m)
		case <-t.C:
			g.reconcileOnce(ctx)
		}
	}
}

// connEvent is the part of nats-server's ConnectEventMsg and DisconnectEventMsg the guard reads.
type connEvent struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Client struct {
		ID    uint64     `json:"id"`
		User  string     `json:"user"`
		Tags  []string   `json:"tags"`
		Start *time.Time `json:"start"`
		Kind  string     `json:"kind"`
	} `json:"client"`
}

func (g *ConnectionGuard) handle(m *nats.Msg) {
	var ev connEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Server.ID == "" || ev.Client.ID == 0 {
		g.lost.Add(1)
		return
	}
	id := connID{server: ev.Server.ID, cid: ev.Client.ID}
	if strings.HasSuffix(m.Subject, ".DISCONNECT") {
		g.mu.Lock()
		if u := g.users[ev.Client.User]; u != nil {
			delete(u.conns, id)
			if len(u.conns) == 0 {
				delete(g.users, ev.Client.User)
			}
		}
		g.mu.Unlock()
		return
	}
	quota, ok := quotaOf(ev.Client.Tags)
	if !ok || ev.Client.User == "" {
		return
	}
	start := time.Now()
	if ev.Client.Start != nil {
		start = *ev.Client.Start
	}
	g.mu.Lock()
	over := g.add(ev.Client.User, quota, id, start)
	g.mu.Unlock()
	g.kick(ev.Client.User, over)
}

// add records a connection and returns the connections of the user to close. The caller
// holds g.mu.
func (g *ConnectionGuard) add(user string, quota int, id connID, start time.Time) []connID {
	u := g.users[user]
	if u == nil {
		u = &guardedUser{conns: map[connID]*guardedConn{}}
		g.users[user] = u
	}
	u.quota = quota
	if _, known := u.conns[id]; !known {
		u.conns[id] = &guardedConn{start: start}
	}
	return excess(u)
}

// excess marks and returns the connections of u beyond its quota that are not being closed
// already: the newest ones, so a service's established connections are never the ones closed
// to make room for newer ones.
func excess(u *guardedUser) []connID {
	var live []connID
	for id, c := range u.conns {
		if !c.kicked {
			live = append(live, id)
		}
	}
	if len(live) <= u.quota {
		return nil
	}
	slices.SortFunc(live, func(a, b connID) int {
		if c := u.conns[a].start.Compare(u.conns[b].start); c != 0 {
			return c
		}
		return cmp.Compare(a.cid, b.cid)
	})
	over := live[u.quota:]
	for _, id := range over {
		u.conns[id].kicked = true
	}
	return over
}

// kick asks each connection's server to close it. The answers are counted, not awaited.
func (g *ConnectionGuard) kick(user string, ids []connID) {
	for _, id := range ids {
		body, _ := json.Marshal(map[string]uint64{"cid": id.cid})
		g.kicked.Add(1)
		g.cfg.log.Warn("sealbus: closing a connection beyond the service's connection quota", "user", user, "server", id.server, "cid", id.cid)
		inbox := g.nc.NewRespInbox()
		sub, err := g.nc.Subscribe(inbox, func(m *nats.Msg) {
			var resp struct {
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if json.Unmarshal(m.Data, &resp) != nil || resp.Error != nil {
				g.kickErrs.Add(1)
			}
		})
		if err != nil {
			g.kickErrs.Add(1)
			continue
		}
		_ = sub.AutoUnsubscribe(1)
		if err := g.nc.PublishRequest(fmt.Sprintf(kickSubjectFormat, id.server), inbox, body); err != nil {
			g.kickErrs.Add(1)
		}
	}
}

func quotaOf(tags []string) (int, bool) {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(strings.ToLower(t), accounts.ConnectionQuotaTag); ok {
			q, err := strconv.Atoi(v)
			return q, err == nil && q > 0
		}
	}
	return 0, false
}

// connzResponse is the part of a server's CONNZ answer the guard reads.
type connzResponse struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Data *struct {
		Conns []struct {
			Cid   uint64    `json:"cid"`
			User  string    `json:"authorized_user"`
			Tags  []string  `json:"tags"`
			Start time.Time `json:"start"`
		} `json:"connections"`
	} `json:"data"`
}

// reconcileOnce replaces the guard's view with the servers' connection lists (gathered for up
// to a second) and closes what is beyond a quota.
func (g *ConnectionGuard) reconcileOnce(ctx context.Context) {
	inbox := g.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := g.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(map[string]any{"auth": true, "limit": 1 << 20})
	if err := g.nc.PublishRequest(connzPingSubject, inbox, body); err != nil {
		return
	}
	seen := map[string]bool{}
	fresh := map[string]*guardedUser{}
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	var quiet <-chan time.Time
gather:
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
			break gather
		case <-quiet:
			break gather
		case m := <-replies:
			var r connzResponse
			if json.Unmarshal(m.Data, &r) != nil || r.Data == nil || r.Server.ID == "" {
				continue
			}
			seen[r.Server.ID] = true
			for _, c := range r.Data.Conns {
				q, ok := quotaOf(c.Tags)
				if !ok || c.User == "" {
					continue
				}
				u := fresh[c.User]
				if u == nil {
					u = &guardedUser{conns: map[connID]*guardedConn{}}
					fresh[c.User] = u
				}
				u.quota = q
				u.conns[connID{server: r.Server.ID, cid: c.Cid}] = &guardedConn{start: c.Start}
			}
			// More servers may answer; stop 100 ms after the last one did.
			quiet = time.After(100 * time.Millisecond)
		}
	}
	if len(seen) == 0 {
		return
	}
	type kick struct {
		user string
		ids  []connID
	}
	var kicks []kick
	g.mu.Lock()
	for user, u := range g.users {
		for id, c := range u.conns {
			f := fresh[user]
			switch {
			case seen[id.server] && f != nil && f.conns[id] != nil:
				f.conns[id].kicked = c.kicked // a kick already on its way
			case !seen[id.server]:
				// A server that did not answer: keep what the events said.
				if f == nil {
					f = &guardedUser{quota: u.quota, conns: map[connID]*guardedConn{}}
					fresh[user] = f
				}
				f.conns[id] = c
			}
		}
	}
	g.users = fresh
	for user, u := range fresh {
		if over := excess(u); len(over) > 0 {
			kicks = append(kicks, kick{user, over})
		}
	}
	g.mu.Unlock()
	for _, k := range kicks {
		g.kick(k.user, k.ids)
	}
}
