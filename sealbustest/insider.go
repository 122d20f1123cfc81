package sealbustest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
)

// Insider plays a hostile service of a harness: it holds the service's creds (its keys, its
// evidence token read from its own user JWT, its identity card, public anyway) and, with plain
// nats.go as the stock nats CLI would, does whatever the service's permissions allow: against
// what the account's services share (the directory, the account's connections and
// subscriptions, the streams) and against the evidence (audit and dead-letter records). Attack
// tests run it while honest clients start and work, and check what it achieved. Each attack
// returns how many of its attempts the server accepted; everything the server refused is what
// sealbus relies on. Safe for concurrent use.
type Insider struct {
	Name    string              // the service
	Account string              // the account's public key
	Conn    *nats.Conn          // its raw connection ([InsiderConn]): the service's permissions
	JS      jetstream.JetStream // JetStream on Conn
	Token   string              // the secret token of its own evidence subjects
	ID      *envelope.Identity  // its user and curve keys
	Card    string              // its identity card

	h           Harness
	accountName string
	subRefused  atomic.Int64 // subscriptions the server refused on Conn

	mu    sync.Mutex
	conns []*nats.Conn
}

// NewInsider connects as service of account with plain nats.go ([InsiderConn]) and loads what
// the insider holds. Close releases it.
func NewInsider(ctx context.Context, h Harness, account, service string) (*Insider, error) {
	creds, err := accounts.ReadCredsFile(h.CredsPath(account, service))
	if err != nil {
		return nil, err
	}
	defer clear(creds.UserSeed)
	defer clear(creds.CurveSeed)
	uc, err := jwt.DecodeUserClaims(creds.UserJWT)
	if err != nil {
		return nil, fmt.Errorf("sealbustest: creds of %s: %w", service, err)
	}
	svc, err := h.Provisioner().Keystore.LoadService(account, service)
	if err != nil {
		return nil, err
	}
	id, err := envelope.NewIdentity(creds.UserSeed, creds.CurveSeed)
	if err != nil {
		return nil, fmt.Errorf("sealbustest: keys of %s: %w", service, err)
	}
	tok, _ := accounts.EvidenceTokenOf(uc.Pub.Allow, service)
	in := &Insider{Name: service, Account: svc.Account, Token: tok, ID: id, Card: svc.Card, h: h, accountName: account}
	in.Conn, err = InsiderConn(ctx, h, account, service, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrMaxSubscriptionsExceeded) {
			in.subRefused.Add(1)
		}
	}))
	if err != nil {
		id.Wipe()
		return nil, err
	}
	if in.JS, err = jetstream.New(in.Conn); err != nil {
		in.Conn.Close()
		id.Wipe()
		return nil, fmt.Errorf("sealbustest: %w", err)
	}
	return in, nil
}

// Close closes every connection the insider opened and wipes its keys.
func (in *Insider) Close() {
	in.Conn.Close()
	in.ID.Wipe()
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range in.conns {
		c.Close()
	}
	in.conns = nil
}

// answers sends each request with a reply subject on a private inbox and counts, until ctx
// ends or every request is answered, the answers accept says the server granted. A request
// the server refuses by permissions gets no answer.
func (in *Insider) answers(ctx context.Context, reqs []request, accept func(*nats.Msg) bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	inbox := in.Conn.NewRespInbox()
	ch := make(chan *nats.Msg, len(reqs)+1)
	sub, err := in.Conn.ChanSubscribe(inbox, ch)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	for _, r := range reqs {
		if err := in.Conn.PublishRequest(r.subject, inbox, r.body); err != nil {
			return 0, err
		}
	}
	if err := in.Conn.FlushWithContext(ctx); err != nil && ctx.Err() == nil {
		return 0, err
	}
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	granted, seen := 0, 0
	for seen < len(reqs) {
		select {
		case m := <-ch:
			seen++
			if accept(m) {
				granted++
			}
		case <-wait.Done():
			return granted, nil
		}
	}
	return granted, nil
}

type request struct {
	subject string
	body    []byte
}

// CreateDirectoryConsumers tries n times to create consumers on the account's directory view,
// in every form of the JetStream API (ephemeral, named, filtered, legacy durable) and with the
// flags that escape the server's consumer limits ("direct", "sourcing"), and on the operator
// account's directory stream through the tenant's import prefix. It returns how many the
// server created. This is how finding 1 of the insider review starved every fresh client
// ("maximum consumers limit reached").
func (in *Insider) CreateDirectoryConsumers(ctx context.Context, n int) (int, error) {
	view := accounts.DirectoryView
	filter := accounts.DirectoryFilter(in.Account)
	var reqs []request
	for i := range n {
		name := fmt.Sprintf("starve%d", i)
		for _, cfg := range []map[string]any{
			{"name": name, "durable_name": name, "ack_policy": "explicit", "inactive_threshold": int64(time.Hour)},
			{"name": name + "d", "direct": true, "deliver_subject": in.Conn.NewRespInbox()},
			{"name": name + "s", "sourcing": true, "ack_policy": "none"},
		} {
			body, _ := json.Marshal(map[string]any{"stream_name": view, "config": cfg})
			reqs = append(reqs,
				request{"$JS.API.CONSUMER.CREATE." + view, body},
				request{"$JS.API.CONSUMER.CREATE." + view + "." + cfg["name"].(string), body},
				request{"$JS.API.CONSUMER.CREATE." + view + "." + cfg["name"].(string) + "." + filter, body},
				request{"$JS.API.CONSUMER.DURABLE.CREATE." + view + "." + cfg["name"].(string), body},
			)
			obody, _ := json.Marshal(map[string]any{"stream_name": accounts.DirectoryStream, "config": map[string]any{"name": cfg["name"], "filter_subject": filter, "direct": true}})
			reqs = append(reqs, request{accounts.OperatorAPIPrefix + ".CONSUMER.CREATE." + accounts.DirectoryStream + "." + cfg["name"].(string) + "." + filter, obody})
		}
	}
	return in.answers(ctx, reqs, func(m *nats.Msg) bool {
		var r struct {
			Type  string          `json:"type"`
			Error json.RawMessage `json:"error"`
		}
		return json.Unmarshal(m.Data, &r) == nil && r.Type == "io.nats.jetstream.api.v1.consumer_create_response" && r.Error == nil
	})
}

// FloodDirectory tries, n times each, to get junk and copies stored under the account's
// directory subjects: JetStream API requests and single-key directory gets whose reply subject
// is a directory subject (the reply-subject trick: NATS does not check reply subjects against
// publish permissions), batch gets of the directory view aimed the same way, and plain
// publishes. It aims at the subjects of the directory's keys both in the operator account's
// layout ("$KV.SEALBUS_DIRECTORY.<account>.<key>") and in the one of earlier versions, which
// kept the bucket inside the account ("$KV.SEALBUS_DIRECTORY.<key>"). It returns how many of
// the requests the server answered (the answers went wherever the reply pointed); the test
// checks that none of them was stored. This is how finding 2 pushed the valid entries out of
// the directory's history.
func (in *Insider) FloodDirectory(ctx context.Context, n int, keys ...string) (int, error) {
	if len(keys) == 0 {
		keys = []string{accounts.DirectoryAccountKey, accounts.DirectoryIndexKey}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var targets []string
	for _, k := range keys {
		targets = append(targets, accounts.DirectorySubject(in.Account, k), "$KV."+accounts.DirectoryBucket+"."+k)
	}
	var sent atomic.Int64
	for i := range n {
		for _, target := range targets {
			for _, r := range []request{
				{"$JS.API.INFO", nil},
				{accounts.DirectoryGetSubject(in.Account, keys[i%len(keys)]), nil},
				{"$JS.API.DIRECT.GET." + accounts.DirectoryView, []byte(`{"seq":1,"batch":1000}`)},
			} {
				if err := in.Conn.PublishRequest(r.subject, target, r.body); err != nil {
					return int(sent.Load()), err
				}
				sent.Add(1)
			}
			if err := in.Conn.Publish(target, []byte("forged")); err != nil {
				return int(sent.Load()), err
			}
		}
		if i%64 == 63 {
			if err := in.Conn.FlushWithContext(ctx); err != nil {
				return int(sent.Load()), err
			}
		}
	}
	if err := in.Conn.FlushWithContext(ctx); err != nil {
		return int(sent.Load()), err
	}
	return int(sent.Load()), nil
}

// OpenConnections tries n times, one after the other, to open one more connection as the
// service, and keeps those the server accepts (closed by Close). It returns how many it
// opened and the last refusal (nil when none was refused). [Insider.Connected] says how many
// are still open after the connection guard had its say. This is how finding 4 locked every
// other service out ("maximum account active connections exceeded").
func (in *Insider) OpenConnections(ctx context.Context, n int) (opened int, refusal error) {
	for range n {
		if err := ctx.Err(); err != nil {
			return opened, err
		}
		nc, err := InsiderConn(ctx, in.h, in.accountName, in.Name, nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			refusal = err
			continue
		}
		in.mu.Lock()
		in.conns = append(in.conns, nc)
		in.mu.Unlock()
		opened++
	}
	return opened, refusal
}

// Connected returns how many of the connections OpenConnections opened are still open.
func (in *Insider) Connected() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, c := range in.conns {
		if !c.IsClosed() {
			n++
		}
	}
	return n
}

// HoldConnections keeps workers goroutines opening connections as the service until ctx ends,
// each opening a new one as soon as its last was refused or closed, and returns how many the
// server accepted in all (a connection guard closes those beyond the service's quota, and the
// attacker opens them again).
func (in *Insider) HoldConnections(ctx context.Context, workers int) int {
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				closed := make(chan struct{})
				nc, err := InsiderConn(ctx, in.h, in.accountName, in.Name, nats.NoReconnect(),
					nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
					nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				accepted.Add(1)
				select {
				case <-ctx.Done():
					nc.Close()
				case <-closed:
				}
			}
		})
	}
	wg.Wait()
	return int(accepted.Load())
}

// Subscribe opens n more subscriptions on the insider's connection (on its private inbox) and
// returns how many the server accepted: a service's user JWT bounds subscriptions per
// connection, and the server refuses those beyond it.
func (in *Insider) Subscribe(ctx context.Context, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	before := in.subRefused.Load()
	for range n {
		if _, err := in.Conn.SubscribeSync(in.Conn.NewRespInbox()); err != nil {
			return 0, err
		}
	}
	if err := in.Conn.FlushWithContext(ctx); err != nil {
		return 0, err
	}
	// Refusals arrive as asynchronous errors, in order, before the flush's PONG is read; give
	// the error handler a moment to count them.
	time.Sleep(200 * time.Millisecond)
	return n - int(in.subRefused.Load()-before), nil
}

// Flood publishes n messages of size random bytes on subject through JetStream and returns how
// many the stream acknowledged and the first refusal (nil when all were stored), where it
// stops. This is how finding 3 pushed acknowledged messages of other services out of a
// shared stream.
func (in *Insider) Flood(ctx context.Context, subject string, n, size int) (acked int, refusal error) {
	js, err := jetstream.New(in.Conn)
	if err != nil {
		return 0, err
	}
	payload := make([]byte, size)
	for range n {
		if _, err := rand.Read(payload); err != nil {
			return acked, err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Publish(pctx, subject, payload)
		cancel()
		if err != nil {
			return acked, err
		}
		acked++
	}
	return acked, nil
}

// Fill publishes on subject until the stream refuses even a 128-byte message (sizes halving
// from size after each refusal) and returns how many it stored and the last refusal.
func (in *Insider) Fill(ctx context.Context, subject string, size int) (stored int, refusal error) {
	for ; size >= 128; size /= 2 {
		for {
			n, err := in.Flood(ctx, subject, 1, size)
			stored += n
			if err != nil {
				refusal = err
				break
			}
		}
	}
	return stored, refusal
}
