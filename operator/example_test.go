package operator_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/operator"
	"github.com/sealbus/sealbus/sealbustest"
)

// Automate what `sealbus account add`, `stream add` and `service add --push` do: a Provisioner
// over a keystore, its operator and a server (here a sandbox's; in production a Target with
// the cluster's URLs and CA).
func ExampleProvisioner() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := sealbustest.StartSandbox(ctx, sealbustest.SandboxOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.Close()
	p := &operator.Provisioner{Keystore: sb.Keystore(), Operator: sb.Operator(), Target: sb.Target()}
	defer p.Close()

	acct, err := p.CreateAccount("shop", accounts.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	if err := p.SetupAccount(ctx, acct); err != nil { // push the JWT, create the sealbus streams
		log.Fatal(err)
	}
	nc, err := p.Admin(ctx, "shop")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	if err := operator.AddStream(ctx, nc, operator.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		log.Fatal(err)
	}
	svc, creds, err := p.CreateService("shop", accounts.ServiceSpec{
		Name: "billing", Subscribe: []string{"orders.eu.>"},
		Consumers: []accounts.ConsumerRef{{Stream: "ORDERS", Durable: "billing"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := p.PublishService(ctx, "shop", svc, nil, false) // card into the directory, durables
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("creds written:", creds != "")
	for _, c := range res {
		fmt.Printf("durable %s:%s %s, filter %v\n", c.Stream, c.Durable, c.Status, c.Filter)
	}
	// Output:
	// creds written: true
	// durable ORDERS:billing created, filter [orders.eu.>]
}

// The filter of a service's durable is what it may read of the stream.
func ExampleConsumerFilter() {
	fmt.Println(operator.ConsumerFilter([]string{"orders.eu.>", "tickets.>"}, []string{"orders.>"}))
	// Output: [orders.eu.>]
}
