package integration

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/integration/natstest"
)

// authErrorSubject is where nats-server publishes, on the system account, one event per
// failed client authentication (server/events.go, authErrorEventSubj).
const authErrorSubject = "$SYS.SERVER.*.CLIENT.AUTH.ERR"

// authErrorEvent is the part of the server's DisconnectEventMsg the monitor relies on.
type authErrorEvent struct {
	Type   string `json:"type"`
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Client struct {
		Host string `json:"host"`
		Name string `json:"name"`
	} `json:"client"`
	Reason string `json:"reason"`
}

// TestAuthFailuresAreVisible makes 20 connection attempts with bad credentials of five kinds
// and counts the auth error events the server publishes on the system account: exactly 20.
func TestAuthFailuresAreVisible(t *testing.T) {
	s := natstest.StartServer(t)
	ctx := testContext(t, 2*time.Minute)
	acct, err := s.AddAccount(ctx, "A", accounts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	goodCreds, err := s.AddService(ctx, "A", accounts.ServiceSpec{Name: "good", Publish: []string{"a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	revokedCreds, err := s.AddService(ctx, "A", accounts.ServiceSpec{Name: "revoked", Publish: []string{"a.b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeService(ctx, "A", "revoked"); err != nil {
		t.Fatal(err)
	}
	acct, err = s.Account("A")
	if err != nil {
		t.Fatal(err)
	}
	good, err := accounts.ReadCredsFile(goodCreds)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := accounts.ReadCredsFile(revokedCreds)
	if err != nil {
		t.Fatal(err)
	}

	// The five kinds of bad credentials, each a user JWT and the seed that signs the nonce.
	type badCreds struct {
		kind      string
		jwt, seed string
	}
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	unknownAccount, _ := nkeys.CreateAccount()
	unlistedSigner, _ := nkeys.CreateAccount()
	mint := func(signer nkeys.KeyPair, expires time.Time) string {
		pub, _ := stranger.PublicKey()
		uc := jwt.NewUserClaims(pub)
		uc.IssuerAccount = acct.PublicKey()
		if expires.IsZero() {
			uc.Expires = time.Now().Add(time.Hour).Unix()
		} else {
			uc.IssuedAt = expires.Add(-time.Hour).Unix()
			uc.Expires = expires.Unix()
		}
		if signer == unknownAccount {
			uc.IssuerAccount = ""
		}
		tok, err := uc.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	kinds := []badCreds{
		{"wrong seed for the JWT", good.UserJWT, string(strangerSeed)},
		{"revoked user", revoked.UserJWT, string(revoked.UserSeed)},
		{"expired user JWT", mint(acct.SigningKeys[0], time.Now().Add(-time.Minute)), string(strangerSeed)},
		{"account unknown to the server", mint(unknownAccount, time.Time{}), string(strangerSeed)},
		{"signer not listed in the account", mint(unlistedSigner, time.Time{}), string(strangerSeed)},
	}

	sys, err := s.SystemConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	events := make(chan *nats.Msg, 100)
	sub, err := sys.ChanSubscribe(authErrorSubject, events)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sys.Flush(); err != nil {
		t.Fatal(err)
	}

	// The good creds connect: the server is reachable and the failures are about credentials.
	if nc, err := nats.Connect(s.URL, nats.RootCAs(s.CAFile()), nats.UserJWTAndSeed(good.UserJWT, string(good.UserSeed))); err != nil {
		t.Fatalf("good credentials refused: %v", err)
	} else {
		nc.Close()
	}

	const attempts = 20
	for i := range attempts {
		bc := kinds[i%len(kinds)]
		nc, err := nats.Connect(s.URL, nats.RootCAs(s.CAFile()), nats.UserJWTAndSeed(bc.jwt, bc.seed),
			nats.Name(fmt.Sprintf("attempt-%02d", i)), nats.NoReconnect(), nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Fatalf("attempt %d (%s) connected", i, bc.kind)
		}
	}

	got := map[string]int{}
	for n := 0; n < attempts; n++ {
		select {
		case m := <-events:
			var ev authErrorEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatalf("event %d: %v", n, err)
			}
			if ev.Reason == "" || ev.Client.Host == "" || ev.Server.Name != "nats" {
				t.Errorf("event %d lacks reason, client host or server: %s", n, m.Data)
			}
			got[ev.Reason]++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d auth error events after %d bad attempts; reasons so far %v", n, attempts, got)
		}
	}
	// Nothing beyond one event per attempt (the good connection made none).
	select {
	case m := <-events:
		t.Fatalf("more than %d auth error events: %s", attempts, m.Data)
	case <-time.After(time.Second):
	}
	t.Logf("%d auth error events, by reason: %v", attempts, got)
}
