package accounts_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/sealbus/sealbus/accounts"
)

// The whole chain: an operator, a tenant, a service, and a verifier that
// trusts only the operator key.
func Example() {
	op, err := accounts.NewOperator("acme")
	if err != nil {
		panic(err)
	}
	shop, err := op.NewAccount("shop", accounts.DefaultLimits())
	if err != nil {
		panic(err)
	}
	billing, err := shop.NewService(accounts.ServiceSpec{
		Name:      "billing",
		Publish:   []string{"billing.invoiced"},
		Subscribe: []string{"orders.created"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		panic(err)
	}

	trust := accounts.Trust{Operators: []string{op.PublicKey()}}
	acct, err := trust.VerifyAccount(shop.JWT)
	if err != nil {
		panic(err)
	}
	card, err := trust.VerifyService(billing.Card, billing.UserJWT, acct)
	if err != nil {
		panic(err)
	}
	fmt.Println(card.Name, card.MaySubscribe("orders.created"), card.MayPublish("orders.created"))

	// Revoke the service: its card no longer verifies once the account JWT
	// is re-signed (and pushed).
	shop.Revoke(billing.UserPublicKey(), time.Now())
	if err := op.Reissue(shop); err != nil {
		panic(err)
	}
	acct, _ = trust.VerifyAccount(shop.JWT)
	_, err = trust.VerifyCard(billing.Card, acct)
	fmt.Println(errors.Is(err, accounts.ErrRevoked))
	// Output:
	// billing true false
	// true
}

func ExampleSubjectMatches() {
	fmt.Println(accounts.SubjectMatches("orders.*", "orders.created"))
	fmt.Println(accounts.SubjectMatches("orders.>", "orders.eu.created"))
	fmt.Println(accounts.SubjectMatches("orders.*", "orders.eu.created"))
	// Output:
	// true
	// true
	// false
}

func ExampleInboxPrefix() {
	// The SDK connects with nats.CustomInboxPrefix(accounts.InboxPrefix(userKey)).
	fmt.Println(accounts.InboxPrefix("UABC"))
	// Output: _INBOX_UABC
}
