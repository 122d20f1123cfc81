package operator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// AdminValidity is the lifetime of the user JWT minted by [ConnectAdmin].
const AdminValidity = 10 * time.Minute

// AdminUserName is the name in the user JWT minted by [ConnectAdmin].
const AdminUserName = "sealbus-admin"

// Target is a server (or cluster) to administer.
type Target struct {
	URLs       []string // nats:// or tls:// URLs; TLS is used either way
	RootCA     string   // PEM file of the CA that issued the server certificate ("" = system roots)
	ClientCert string   // client certificate for mTLS (optional, with ClientKey)
	ClientKey  string
}

func (t Target) options(ctx context.Context) ([]nats.Option, error) {
	if len(t.URLs) == 0 {
		return nil, fmt.Errorf("%w: no server URL", ErrInvalidSpec)
	}
	for _, u := range t.URLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			return nil, fmt.Errorf("%w: server URL %q", ErrInvalidSpec, u)
		}
		if pu.Scheme != "tls" && pu.Scheme != "nats" {
			return nil, fmt.Errorf("%w: server URL %q: only tls:// (or nats:// upgraded to TLS) is allowed", ErrNoTLS, u)
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return nil, fmt.Errorf("%w: client certificate and key go together", ErrInvalidSpec)
	}
	opts := []nats.Option{nats.Timeout(timeoutOf(ctx)), nats.MaxReconnects(10)}
	if t.RootCA != "" {
		opts = append(opts, nats.RootCAs(t.RootCA))
	} else {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if t.ClientCert != "" {
		opts = append(opts, nats.ClientCert(t.ClientCert, t.ClientKey))
	}
	return opts, nil
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return DefaultTimeout
}

// withDefaultTimeout applies DefaultTimeout when ctx has no deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// connect connects to t as the user of userJWT and seed (see userAuth), with extra options last.
func connect(ctx context.Context, t Target, name, userJWT string, seed []byte, extra ...nats.Option) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts, err := t.options(ctx)
	if err != nil {
		return nil, err
	}
	auth, wipeAuth := userAuth(userJWT, seed)
	opts = append(append(append(opts, nats.Name(name)), auth...), extra...)
	nc, err := nats.Connect(strings.Join(t.URLs, ","), opts...)
	if err != nil {
		wipeAuth()
		return nil, fmt.Errorf("operator: connecting as %s: %w", name, err)
	}
	return nc, nil
}

// ConnectSystem connects as the operator's system account user, for pushing account JWTs.
func ConnectSystem(ctx context.Context, t Target, op *accounts.Operator) (*nats.Conn, error) {
	if op == nil || op.SysUser == nil || op.SysUser.UserKey == nil {
		return nil, fmt.Errorf("%w: operator has no system user", ErrInvalidSpec)
	}
	seed, err := op.SysUser.UserKey.Seed()
	if err != nil {
		return nil, fmt.Errorf("%w: system user key", accounts.ErrNoSeed)
	}
	return connect(ctx, t, "sealbus-system", op.SysUser.UserJWT, seed)
}

// ConnectAdmin connects to acct with a user JWT minted in memory: signed by the account's
// first signing key, valid for [AdminValidity], with no permission restrictions inside the
// account. It is used for stream, KV and consumer administration; it has no identity card and
// cannot publish sealed envelopes.
func ConnectAdmin(ctx context.Context, t Target, acct *accounts.Account) (*nats.Conn, error) {
	userJWT, seed, err := AdminUser(acct, time.Now())
	if err != nil {
		return nil, err
	}
	defer wipe(seed)
	nc, err := connect(ctx, t, AdminUserName, userJWT, seed)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("%w (the server does not know account %s: has it been pushed to this server?)", err, acct.Name)
	}
	return nc, err
}

// AdminUser mints the user JWT and seed [ConnectAdmin] uses, issued at now. The seed is a
// secret: keep it in memory only.
func AdminUser(acct *accounts.Account, now time.Time) (userJWT string, seed []byte, err error) {
	return adminUser(acct, now, AdminValidity, AdminUserName)
}

// decodeUser returns the subject (user key) of a user JWT.
func decodeUser(userJWT string) (string, error) {
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return "", err
	}
	return uc.Subject, nil
}

func adminUser(acct *accounts.Account, now time.Time, validity time.Duration, name string) (userJWT string, seed []byte, err error) {
	if acct == nil || acct.Claims == nil || len(acct.SigningKeys) == 0 {
		return "", nil, fmt.Errorf("%w: account has no signing key", ErrInvalidSpec)
	}
	sk := acct.SigningKeys[0]
	skPub, err := sk.PublicKey()
	if err != nil {
		return "", nil, fmt.Errorf("%w: account signing key", accounts.ErrNoSeed)
	}
	if _, err := sk.Seed(); err != nil {
		return "", nil, fmt.Errorf("%w: signing key of account %s", accounts.ErrNoSeed, acct.Name)
	}
	if !acct.Claims.SigningKeys.Contains(skPub) {
		return "", nil, fmt.Errorf("%w: signing key of account %s is not listed in its JWT", accounts.ErrUnknownSigner, acct.Name)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("operator: creating admin user key: %w", err)
	}
	pub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = acct.PublicKey()
	uc.IssuedAt = now.Unix()
	uc.Expires = now.Add(validity).Unix()
	tok, err := uc.Encode(sk)
	if err != nil {
		return "", nil, fmt.Errorf("operator: signing admin user JWT: %w", err)
	}
	seed, err = ukp.Seed()
	if err != nil {
		return "", nil, fmt.Errorf("operator: admin user seed: %w", err)
	}
	return tok, seed, nil
}

// userAuth returns the options that authenticate as userJWT: the server's nonce is signed with
// a private copy of seed, which the connection's closed handler wipes (nats.UserJWTAndSeed
// would hold the seed as a string, which cannot be wiped, for the life of the connection and
// after). The caller may wipe seed as soon as userAuth returns; wipeNow wipes the copy at once,
// for a connection that failed to open. A caller that replaces the closed handler of the
// connection leaves the copy to the garbage collector.
func userAuth(userJWT string, seed []byte) (opts []nats.Option, wipeNow func()) {
	var mu sync.Mutex
	own := slices.Clone(seed)
	wipeNow = func() {
		mu.Lock()
		defer mu.Unlock()
		wipe(own)
		own = nil
	}
	sign := func(nonce []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if own == nil {
			return nil, errors.New("operator: the connection is closed and its key wiped")
		}
		kp, err := nkeys.FromSeed(own)
		if err != nil {
			return nil, fmt.Errorf("%w: user seed", accounts.ErrNoSeed)
		}
		defer kp.Wipe()
		return kp.Sign(nonce)
	}
	return []nats.Option{
		nats.UserJWT(func() (string, error) { return userJWT, nil }, sign),
		nats.ClosedHandler(func(*nats.Conn) { wipeNow() }),
	}, wipeNow
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// claimUpdateResponse is the server's answer on $SYS.REQ.CLAIMS.UPDATE.
type claimUpdateResponse struct {
	Data *struct {
		Account string `json:"account"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"data,omitempty"`
	Error *struct {
		Account     string `json:"account"`
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
}

// PushAccount sends accountJWT to the server's account resolver over a system account
// connection and checks the reply. A refusal is a [*PushError]. With a cluster, the servers
// share the update among themselves; the first reply is checked.
func PushAccount(ctx context.Context, sys *nats.Conn, accountJWT string) error {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: not an account JWT: %v", ErrInvalidSpec, err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := sys.RequestWithContext(ctx, accounts.ClaimsUpdateSubject, []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("operator: pushing account %s: %w", ac.Subject, err)
	}
	var resp claimUpdateResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("operator: pushing account %s: unreadable reply: %w", ac.Subject, err)
	}
	if resp.Error != nil {
		return &PushError{Account: resp.Error.Account, Code: resp.Error.Code, Description: resp.Error.Description}
	}
	if resp.Data == nil || resp.Data.Code != 200 {
		return &PushError{Account: ac.Subject, Code: 0, Description: "no confirmation in the reply"}
	}
	return nil
}

// MonitorUserValidity is the lifetime of the user JWTs [ConnectMonitor] mints for the
// operator account; a new one is minted at every reconnect.
const MonitorUserValidity = 24 * time.Hour

// MonitorUserName is the name in those JWTs.
const MonitorUserName = "sealbus-monitor"

// ConnectMonitor opens the connections a long-running monitor needs, both reconnecting
// forever: sys as the operator's system user and, when ops is not nil, one to the
// operator account ops as an admin whose user JWT is minted in memory with a key that
// lives only in this process, valid for [MonitorUserValidity] and minted again at every
// reconnect. Close both when done.
func ConnectMonitor(ctx context.Context, t Target, op *accounts.Operator, ops *accounts.Account) (sys, opsConn *nats.Conn, err error) {
	if op == nil || op.SysUser == nil || op.SysUser.UserKey == nil {
		return nil, nil, fmt.Errorf("%w: operator has no system user", ErrInvalidSpec)
	}
	opts, err := t.options(ctx)
	if err != nil {
		return nil, nil, err
	}
	forever := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(time.Second), nats.ReconnectBufSize(-1)}
	seed, err := op.SysUser.UserKey.Seed()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: system user key", accounts.ErrNoSeed)
	}
	// seed is the key pair's own copy (nkeys returns it, not a copy): not wiped here.
	auth, wipeAuth := userAuth(op.SysUser.UserJWT, seed)
	sysOpts := append(append(append(append([]nats.Option{}, opts...), forever...), nats.Name("sealbus-monitor-system")), auth...)
	if sys, err = nats.Connect(strings.Join(t.URLs, ","), sysOpts...); err != nil {
		wipeAuth()
		return nil, nil, fmt.Errorf("operator: connecting as the system user: %w", err)
	}
	if ops == nil {
		return sys, nil, nil
	}
	if ops.Claims == nil || len(ops.SigningKeys) == 0 {
		sys.Close()
		return nil, nil, fmt.Errorf("%w: account has no signing key", ErrInvalidSpec)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		sys.Close()
		return nil, nil, fmt.Errorf("operator: creating the monitor user key: %w", err)
	}
	pub, _ := ukp.PublicKey()
	mint := func() (string, error) {
		now := time.Now()
		uc := jwt.NewUserClaims(pub)
		uc.Name = MonitorUserName
		uc.IssuerAccount = ops.PublicKey()
		uc.IssuedAt = now.Unix()
		uc.Expires = now.Add(MonitorUserValidity).Unix()
		return uc.Encode(ops.SigningKeys[0])
	}
	if _, err := mint(); err != nil {
		sys.Close()
		return nil, nil, fmt.Errorf("operator: signing the monitor user JWT: %w", err)
	}
	opsOpts := append(append(append([]nats.Option{}, opts...), forever...), nats.Name(MonitorUserName),
		nats.UserJWT(mint, func(nonce []byte) ([]byte, error) { return ukp.Sign(nonce) }))
	if opsConn, err = nats.Connect(strings.Join(t.URLs, ","), opsOpts...); err != nil {
		sys.Close()
		return nil, nil, fmt.Errorf("operator: connecting to account %s as the monitor: %w", ops.Name, err)
	}
	return sys, opsConn, nil
}
